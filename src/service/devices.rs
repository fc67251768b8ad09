//! A template's device lists: the IDevID serial numbers allowed to enroll (when it keeps an
//! allow-list) or denied, added one at a time or from a CSV file, by the CLI and the JSON
//! API alike.

use std::time::SystemTime;

use crate::policy::Templates;
use crate::policy::vendor::{MAX_SERIAL, usable_serial};
use crate::store::{DeviceRecord, DeviceState, Store, StoreError};

/// The most devices one call adds (a larger list goes in several files).
pub const MAX_DEVICES: usize = 10_000;
/// The longest note kept with a device.
pub const MAX_NOTE: usize = 200;

/// One device to list: its serial number, allow or deny, and a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub serial: String,
    pub state: DeviceState,
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A value is wrong: the message names it (and the CSV line).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks the devices and lists them under `template` (which must trust a manufacturer
/// CA), in one transaction; returns how many were written.
pub async fn put(
    store: &dyn Store,
    templates: &Templates,
    template: &str,
    devices: &[NewDevice],
    by: &str,
) -> Result<u64, DeviceError> {
    let t = templates.get(Some(template)).ok_or_else(|| {
        DeviceError::Invalid(format!(
            "unknown certificate template {:?}",
            crate::model::printable(template)
        ))
    })?;
    if t.vendor.is_none() {
        return Err(DeviceError::Invalid(format!(
            "the certificate template {} trusts no manufacturer CA (trust_vendor_cas): it has no device list",
            t.name
        )));
    }
    if devices.is_empty() || devices.len() > MAX_DEVICES {
        return Err(DeviceError::Invalid(format!(
            "1 to {MAX_DEVICES} devices at a time (got {})",
            devices.len()
        )));
    }
    let at = crate::model::timestamp(SystemTime::now());
    let mut records = Vec::with_capacity(devices.len());
    for d in devices {
        check_serial(&d.serial)?;
        if let Some(n) = &d.note
            && (n.chars().count() > MAX_NOTE || crate::fields::has_control(n))
        {
            return Err(DeviceError::Invalid(format!(
                "device {}: a note is at most {MAX_NOTE} characters without control characters",
                d.serial
            )));
        }
        records.push(DeviceRecord {
            template: t.name.clone(),
            serial: d.serial.clone(),
            state: d.state,
            note: d.note.clone(),
            added_by: by.to_string(),
            added_at: at.clone(),
        });
    }
    let n = store.put_devices(&records).await?;
    tracing::info!(
        template = %t.name,
        devices = n,
        by = %crate::model::printable(by),
        "device list updated"
    );
    Ok(n)
}

/// A serial number as an IDevID carries it.
pub fn check_serial(serial: &str) -> Result<(), DeviceError> {
    if usable_serial(serial) {
        return Ok(());
    }
    Err(DeviceError::Invalid(format!(
        "the serial number {:?} is not 1 to {MAX_SERIAL} printable ASCII characters",
        crate::model::printable(&serial.chars().take(80).collect::<String>())
    )))
}

/// Reads `serial[,state[,note]]` lines (state `allow`, the default, or `deny`); a first
/// line `serial,…` is a header; empty lines are skipped. Errors name the line.
pub fn parse_csv(text: &str) -> Result<Vec<NewDevice>, DeviceError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let first = line.split(',').next().unwrap_or_default().trim();
        if line.trim().is_empty() || (i == 0 && first.eq_ignore_ascii_case("serial")) {
            continue;
        }
        if out.len() >= MAX_DEVICES {
            return Err(DeviceError::Invalid(format!(
                "more than {MAX_DEVICES} devices: split the file"
            )));
        }
        let bad = |m: String| DeviceError::Invalid(format!("line {}: {m}", i + 1));
        let mut cols = line.splitn(3, ',');
        let serial = cols.next().unwrap_or_default().trim().to_string();
        check_serial(&serial).map_err(|e| bad(e.to_string()))?;
        let state = match cols.next().map(str::trim) {
            None | Some("") => DeviceState::Allow,
            Some(s) => {
                DeviceState::parse(s).ok_or_else(|| bad(format!("state {s:?}: allow or deny")))?
            }
        };
        let note = cols
            .next()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        out.push(NewDevice {
            serial,
            state,
            note,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Fixed inputs: an index out of range is the test failing.
    use super::*;

    #[test]
    fn csv_lines() {
        // a first serial that starts with "serial" is a serial, not a header
        assert_eq!(parse_csv("SERIAL-0001\n").map(|d| d.len()).ok(), Some(1));
        let got =
            parse_csv("serial,state,note\nSN-1\r\n\nSN-2,deny,stolen, in March\nSN-3,allow\n")
                .map_err(|e| e.to_string());
        assert_eq!(
            got.as_deref().map(|d| d.len()),
            Ok(3),
            "three devices, header and empty line skipped"
        );
        let d = got.unwrap_or_default();
        assert_eq!(d[0].state, DeviceState::Allow);
        assert_eq!(d[1].state, DeviceState::Deny);
        assert_eq!(d[1].note.as_deref(), Some("stolen, in March"));
        let e = parse_csv("SN-1\nSN\t2\n").err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.starts_with("line 2:")));
        let e = parse_csv("SN-1,maybe\n").err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("allow or deny")));
    }
}
