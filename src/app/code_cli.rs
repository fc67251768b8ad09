//! `estd code …`: enrollment codes — one-time secrets a device presents over EST (the Basic
//! password, or its CSR's challengePassword) or SCEP (the challengePassword) — issued one at
//! a time or by the hundred into a CSV file, listed and withdrawn. `estd scep challenge…`
//! are the same codes under their SCEP names.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use clap::Subcommand;

use crate::config::Config;
use crate::enroll::codes::{self, NewCode};
use crate::store::Store;

/// What a code is for and how long it lives (`estd code issue`, `estd scep challenge`).
#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The certificate template it is for
    #[arg(long)]
    template: String,
    /// The CN the request must carry (one code only)
    #[arg(long)]
    cn: Option<String>,
    /// A SubjectAltName the request must carry (KIND:VALUE: dns, ip, email, uri, upn);
    /// repeat for several: the request's SANs must be exactly these (one code only)
    #[arg(long)]
    san: Vec<String>,
    /// How long it is valid: 30m, 24h, 7d (at most 90d)
    #[arg(long, default_value = "24h")]
    expires: String,
    /// Who issues it (audited)
    #[arg(long, default_value = "cli")]
    by: String,
}

impl IssueArgs {
    pub fn new_code(self) -> Result<NewCode, String> {
        Ok(NewCode {
            template: self.template,
            cn: self.cn,
            san: self.san,
            lifetime: Some(
                crate::model::parse_since(&self.expires).map_err(|e| format!("--expires {e}"))?,
            ),
            created_by: self.by,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum CodeCommand {
    /// Issue codes: one, printed once (stored only as its hash), or --count N into --csv FILE
    Issue {
        #[command(flatten)]
        code: IssueArgs,
        /// How many (at most 10000), each single use
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Write them to this new CSV file (mode 0600): id,code,template,cn,san,expires_at
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// List codes (unused and unexpired ones; --all for every one)
    List {
        #[arg(long)]
        all: bool,
    },
    /// Withdraw an unused code
    Revoke { id: i64 },
}

pub async fn code(cmd: CodeCommand, config: &Config) -> Result<(), String> {
    let store = super::open_store(config).await.map_err(|e| e.to_string())?;
    match cmd {
        CodeCommand::Issue { code, count, csv } => {
            issue(store.as_ref(), config, code.new_code()?, count, csv).await
        }
        CodeCommand::List { all } => list(store.as_ref(), all).await,
        CodeCommand::Revoke { id } => revoke(store.as_ref(), id).await,
    }
}

/// Issues the codes; one is printed alone on standard output, several go to a new CSV file.
pub async fn issue(
    store: &dyn Store,
    config: &Config,
    new: NewCode,
    count: u32,
    csv: Option<PathBuf>,
) -> Result<(), String> {
    if count > 1 && csv.is_none() {
        return Err("--count above 1 needs --csv FILE (the codes are shown this once)".into());
    }
    let templates = super::load_templates(config).map_err(|e| e.to_string())?;
    let t = templates
        .get(Some(&new.template))
        .ok_or_else(|| format!("unknown certificate template {:?}", new.template))?;
    // the file first: codes are not issued for a file that cannot be written
    let mut file = match &csv {
        Some(path) => Some(new_private_file(path)?),
        None => None,
    };
    let (cn, san) = (new.cn.clone(), new.san.clone());
    let issued = codes::issue_many(store, &t, new, count)
        .await
        .map_err(|e| e.to_string())?;
    match (&mut file, &csv) {
        (Some(f), Some(path)) => {
            let text = codes::csv(&t.name, cn.as_deref(), &san, &issued);
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            crate::outln!(
                "{} codes {}–{} for the template {}, single use, expire at {}: {}",
                issued.len(),
                issued.first().map(|c| c.id).unwrap_or_default(),
                issued.last().map(|c| c.id).unwrap_or_default(),
                t.name,
                issued.first().map(|c| c.expires_at.as_str()).unwrap_or(""),
                path.display()
            );
        }
        _ => {
            for c in &issued {
                eprintln!(
                    "code {} for the template {}, single use, expires at {}:",
                    c.id, t.name, c.expires_at
                );
                crate::outln!("{}", c.secret.as_str());
            }
        }
    }
    Ok(())
}

/// A new file only its owner reads; an existing one is never overwritten.
fn new_private_file(path: &std::path::Path) -> Result<std::fs::File, String> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub async fn list(store: &dyn Store, all: bool) -> Result<(), String> {
    let now = crate::model::timestamp(SystemTime::now());
    let list = store
        .list_challenges(&now, !all, 1000)
        .await
        .map_err(|e| e.to_string())?;
    if list.is_empty() {
        crate::outln!("no codes{}", if all { "" } else { " open" });
    }
    let p = crate::model::printable;
    for c in list {
        let state = match (&c.used_at, c.expires_at <= now) {
            (Some(at), _) => format!("used {at}"),
            (None, true) => "expired".to_string(),
            (None, false) => "open".to_string(),
        };
        crate::outln!(
            "{:>5}  {:<12} CN={:<20} SAN={:<20} by {:<10} expires {}  {}",
            c.id,
            p(&c.template),
            p(c.cn.as_deref().unwrap_or("*")),
            p(c.san.as_deref().unwrap_or("*")),
            p(&c.created_by),
            c.expires_at,
            state
        );
    }
    Ok(())
}

pub async fn revoke(store: &dyn Store, id: i64) -> Result<(), String> {
    if store
        .revoke_challenge(id)
        .await
        .map_err(|e| e.to_string())?
    {
        tracing::info!(code = id, "enrollment code withdrawn");
        crate::outln!("code {id} withdrawn");
        Ok(())
    } else {
        Err(format!("no unused code {id}"))
    }
}
