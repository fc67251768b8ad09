//! `estd scep …`: one-time SCEP challenge passwords — enrollment codes (`estd code`) under
//! their SCEP names — and the argon2 hash of a template's static challenge.

use clap::Subcommand;

use crate::config::Config;
use crate::enroll::codes::NewCode;

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
            let new = NewCode {
                template,
                cn,
                san,
                lifetime: Some(
                    crate::model::parse_since(&expires).map_err(|e| format!("--expires {e}"))?,
                ),
                created_by: by,
            };
            super::code_cli::issue(store.as_ref(), config, new, 1, None).await
        }
        ScepCommand::Challenges { all } => super::code_cli::list(store.as_ref(), all).await,
        ScepCommand::HashChallenge => Ok(()),
        ScepCommand::RevokeChallenge { id } => super::code_cli::revoke(store.as_ref(), id).await,
    }
}
