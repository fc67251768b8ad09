//! `estd device …`: the devices a template's allow-list or deny-list names, by the serial
//! number of their manufacturer certificate (IDevID). The JSON API does the same through
//! `service::devices`.

use clap::Subcommand;

use crate::config::Config;
use crate::service::devices::{self, NewDevice};
use crate::store::DeviceState;

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Allow a device (or with --deny, refuse it) on a template that trusts its manufacturer
    Add {
        /// The serialNumber of the device's IDevID
        serial: String,
        #[arg(long)]
        template: String,
        /// Put it on the deny-list instead
        #[arg(long)]
        deny: bool,
        #[arg(long)]
        note: Option<String>,
        /// Who adds it (kept with the entry)
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Take a device off the template's lists
    Remove {
        serial: String,
        #[arg(long)]
        template: String,
    },
    /// List the devices (of one template)
    List {
        #[arg(long)]
        template: Option<String>,
    },
    /// Add devices from a CSV file: serial[,allow|deny[,note]] per line
    Import {
        file: std::path::PathBuf,
        #[arg(long)]
        template: String,
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

pub async fn device(cmd: DeviceCommand, config: &Config) -> Result<(), String> {
    let store = super::open_store(config).await.map_err(|e| e.to_string())?;
    let templates = || super::load_templates(config).map_err(|e| e.to_string());
    match cmd {
        DeviceCommand::Add {
            serial,
            template,
            deny,
            note,
            by,
        } => {
            let state = if deny {
                DeviceState::Deny
            } else {
                DeviceState::Allow
            };
            let d = NewDevice {
                serial: serial.clone(),
                state,
                note,
            };
            devices::put(store.as_ref(), &templates()?, &template, &[d], &by)
                .await
                .map_err(|e| e.to_string())?;
            crate::outln!(
                "device {} {} on the template {template}",
                crate::model::printable(&serial),
                if deny { "denied" } else { "allowed" }
            );
            Ok(())
        }
        DeviceCommand::Import { file, template, by } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let list = devices::parse_csv(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            let n = devices::put(store.as_ref(), &templates()?, &template, &list, &by)
                .await
                .map_err(|e| e.to_string())?;
            crate::outln!("{n} devices listed on the template {template}");
            Ok(())
        }
        DeviceCommand::Remove { serial, template } => {
            if store
                .remove_device(&template, &serial)
                .await
                .map_err(|e| e.to_string())?
            {
                tracing::info!(serial = %crate::model::printable(&serial), %template, "device taken off the list");
                crate::outln!(
                    "device {} taken off the lists of {template}",
                    crate::model::printable(&serial)
                );
                Ok(())
            } else {
                Err(format!(
                    "the device {} is not on a list of the template {template}",
                    crate::model::printable(&serial)
                ))
            }
        }
        DeviceCommand::List { template } => {
            let list = store
                .list_devices(template.as_deref(), 100_000)
                .await
                .map_err(|e| e.to_string())?;
            if list.is_empty() {
                crate::outln!("no devices listed");
            }
            let p = crate::model::printable;
            for d in list {
                crate::outln!(
                    "{:<12} {:<24} {:<5} by {:<10} {}  {}",
                    p(&d.template),
                    p(&d.serial),
                    d.state.as_str(),
                    p(&d.added_by),
                    d.added_at,
                    p(d.note.as_deref().unwrap_or(""))
                );
            }
            Ok(())
        }
    }
}
