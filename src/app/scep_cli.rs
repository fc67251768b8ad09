//! `estd scep …`: one-time SCEP challenge passwords, issued, listed and withdrawn from the
//! command line (the JSON API and the portal do the same through `service::scep`).

use std::time::SystemTime;

use clap::Subcommand;

use crate::config::Config;
use crate::service::scep::challenge::{self, NewChallenge};

#[derive(Debug, Subcommand)]
pub enum ScepCommand {
    /// Issue a one-time challenge password: printed once, stored only as its hash
    Challenge {
        /// The certificate template it is for
        #[arg(long)]
        template: String,
        /// The CN the request must carry
        #[arg(long)]
        cn: Option<String>,
        /// A SubjectAltName the request must carry (KIND:VALUE: dns, ip, email, uri, upn);
        /// repeat for several: the request's SANs must be exactly these
        #[arg(long)]
        san: Vec<String>,
        /// How long it is valid: 30m, 24h, 7d (at most 90d)
        #[arg(long, default_value = "24h")]
        expires: String,
        /// Who issues it (audited)
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// List challenges (unused and unexpired ones; --all for every one)
    Challenges {
        #[arg(long)]
        all: bool,
    },
    /// Withdraw an unused challenge
    RevokeChallenge { id: i64 },
    /// Hash a static challenge for a template's scep_challenge (read from standard input):
    /// the template then holds the argon2 hash, not the secret
    HashChallenge,
}

pub async fn scep(cmd: ScepCommand, config: &Config) -> Result<(), String> {
    if let ScepCommand::HashChallenge = cmd {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("reading the challenge: {e}"))?;
        let secret = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
        if secret.len() < 8 || secret.len() > 255 || secret.chars().any(char::is_control) {
            return Err("a challenge is 8 to 255 characters without control characters".into());
        }
        let phc = crate::auth::hash_password(&secret).map_err(|e| e.to_string())?;
        crate::outln!("scep_challenge = \"{phc}\"");
        return Ok(());
    }
    let store = super::open_store(config).await.map_err(|e| e.to_string())?;
    match cmd {
        ScepCommand::Challenge {
            template,
            cn,
            san,
            expires,
            by,
        } => {
            let templates = super::load_templates(config).map_err(|e| e.to_string())?;
            let t = templates
                .get(Some(&template))
                .ok_or_else(|| format!("unknown certificate template {template:?}"))?;
            let lifetime =
                crate::model::parse_since(&expires).map_err(|e| format!("--expires {e}"))?;
            let issued = challenge::issue(
                store.as_ref(),
                &t,
                NewChallenge {
                    template: t.name.clone(),
                    cn,
                    san,
                    lifetime: Some(lifetime),
                    created_by: by,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            eprintln!(
                "challenge {} for the template {}, single use, expires at {}:",
                issued.id, t.name, issued.expires_at
            );
            crate::outln!("{}", issued.secret.as_str());
            Ok(())
        }
        ScepCommand::Challenges { all } => {
            let now = crate::model::timestamp(SystemTime::now());
            let list = store
                .list_challenges(&now, !all, 1000)
                .await
                .map_err(|e| e.to_string())?;
            if list.is_empty() {
                crate::outln!("no challenges{}", if all { "" } else { " open" });
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
        ScepCommand::HashChallenge => Ok(()),
        ScepCommand::RevokeChallenge { id } => {
            if store
                .revoke_challenge(id)
                .await
                .map_err(|e| e.to_string())?
            {
                tracing::info!(challenge = id, "SCEP challenge withdrawn");
                crate::outln!("challenge {id} withdrawn");
                Ok(())
            } else {
                Err(format!("no unused challenge {id}"))
            }
        }
    }
}
