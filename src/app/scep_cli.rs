//! `estd scep …`: one-time SCEP challenge passwords — enrollment codes (`estd code`) under
//! their SCEP names — and the argon2 hash of a template's static challenge.

use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum ScepCommand {
    /// Issue a one-time challenge password: printed once, stored only as its hash
    Challenge(super::code_cli::IssueArgs),
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
        ScepCommand::Challenge(code) => {
            super::code_cli::issue(store.as_ref(), config, code.new_code()?, 1, None).await
        }
        ScepCommand::Challenges { all } => super::code_cli::list(store.as_ref(), all).await,
        ScepCommand::HashChallenge => Ok(()),
        ScepCommand::RevokeChallenge { id } => super::code_cli::revoke(store.as_ref(), id).await,
    }
}
