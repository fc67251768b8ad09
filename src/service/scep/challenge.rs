//! SCEP challenge passwords: one-time challenges an administrator issues (`estd scep
//! challenge`, the JSON API, the portal) — random, shown once, stored as their SHA-256,
//! single use, expiring, optionally bound to a CN and SubjectAltName — and the template's
//! static `scep_challenge`.

use std::time::{Duration, SystemTime};

use super::Fail;
use crate::auth::{AuthMethod, Principal};
use crate::est::Csr;
use crate::policy::Template;
use crate::store::{ChallengeRecord, Store, StoreError, timestamp};

/// The longest a challenge may live.
pub const MAX_LIFETIME: Duration = Duration::from_secs(90 * 86_400);
/// How long a challenge lives unless told otherwise.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_400);

/// The SHA-256 (hex) a challenge is stored and looked up by. A challenge is 128 random
/// bits: a fast hash is enough (nothing to guess from it).
pub fn hash(secret: &str) -> String {
    crate::est::hex(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()).as_ref(),
    )
}

/// What to issue: for a template, bound to a CN and/or SANs, for a time.
#[derive(Debug, Clone, Default)]
pub struct NewChallenge {
    pub template: String,
    pub cn: Option<String>,
    /// SubjectAltName entries the request must carry exactly (`DNS:x`, `IP:y`, as
    /// `SanEntry` prints them).
    pub san: Vec<String>,
    pub lifetime: Option<Duration>,
    /// Who issues it (audited).
    pub created_by: String,
}

/// A challenge just issued: the secret is shown this once.
#[derive(Debug, Clone)]
pub struct IssuedChallenge {
    pub id: i64,
    pub secret: zeroize::Zeroizing<String>,
    pub expires_at: String,
}

/// Why a challenge was not issued.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Issues a one-time challenge for `template` (which must serve SCEP). A template whose CN
/// must match the user's name takes only challenges bound to a CN: nobody's name is the
/// challenge's.
pub async fn issue(
    store: &dyn Store,
    template: &Template,
    new: NewChallenge,
) -> Result<IssuedChallenge, ChallengeError> {
    if !template.scep {
        return Err(ChallengeError::Invalid(format!(
            "the certificate template {} does not serve SCEP (scep = false)",
            template.name
        )));
    }
    if new.created_by.is_empty()
        || new.created_by.len() > 64
        || crate::fields::has_control(&new.created_by)
    {
        return Err(ChallengeError::Invalid(
            "who issues it: 1 to 64 characters without control characters".into(),
        ));
    }
    let lifetime = new.lifetime.unwrap_or(DEFAULT_LIFETIME);
    if lifetime.is_zero() || lifetime > MAX_LIFETIME {
        return Err(ChallengeError::Invalid(
            "a challenge expires after 1 second to 90 days".into(),
        ));
    }
    let cn = new
        .cn
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if let Some(c) = &cn
        && (c.len() > 64 || crate::fields::has_control(c))
    {
        return Err(ChallengeError::Invalid(
            "the CN is 1 to 64 characters without control characters".into(),
        ));
    }
    if template.cn_must_match_user && cn.is_none() {
        return Err(ChallengeError::Invalid(format!(
            "the certificate template {} requires the CN to match the user name: bind the challenge to a CN (--cn)",
            template.name
        )));
    }
    let mut san = Vec::new();
    for s in &new.san {
        let entry = crate::est::SanEntry::parse_arg(s).map_err(ChallengeError::Invalid)?;
        san.push(entry.to_string());
    }
    san.sort();
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| ChallengeError::Invalid("no randomness available".into()))?;
    let secret = zeroize::Zeroizing::new(crate::est::hex(&bytes));
    let now = SystemTime::now();
    let expires_at = timestamp(now + lifetime);
    let id = store
        .create_challenge(&ChallengeRecord {
            id: 0,
            template: template.name.clone(),
            secret_hash: hash(&secret),
            cn: cn.clone(),
            san: (!san.is_empty()).then(|| san.join(", ")),
            created_by: new.created_by.clone(),
            created_at: timestamp(now),
            expires_at: expires_at.clone(),
            used_at: None,
            used_by: None,
        })
        .await?;
    tracing::info!(challenge = id, template = %template.name, cn = %crate::model::printable(cn.as_deref().unwrap_or("-")), expires_at = %expires_at, created_by = %crate::model::printable(&new.created_by), "SCEP challenge issued");
    Ok(IssuedChallenge {
        id,
        secret,
        expires_at,
    })
}

/// Checks a PKCSReq's challenge password: the principal it stands for, and the template
/// to apply when it differs from `template` (a challenge bound to a CN is that CN's
/// permission: the CN-must-match-user rule is met by the binding). A one-time challenge is
/// used up here, by `txid` (which may present it again). Wrong challenges count as failed log-ins of the user
/// `scep:<template>` from `peer` (`auth::throttle`): a guesser is slowed (429).
pub(super) async fn check(
    store: &dyn Store,
    enroll: &crate::enroll::EnrollService,
    peer: &str,
    template: &Template,
    csr: &Csr,
    txid: &str,
) -> Result<Result<(Principal, Option<Template>), Fail>, super::Refusal> {
    let user = format!("scep:{}", template.name);
    let throttle = enroll.throttle();
    if let Some(retry_after) = throttle.take_check(&user, peer) {
        tracing::warn!(%peer, template = %template.name, retry_after, "slowed: repeated wrong SCEP challenges from this address");
        return Err(super::Refusal::Throttled { retry_after });
    }
    // a hashed static challenge: one argon2 check, bounded like log-ins' (503 at the bound)
    let fixed_matches = match (&template.scep_challenge, csr.challenge_password.as_deref()) {
        (Some(fixed), Some(given)) if crate::auth::is_phc(fixed) => enroll
            .verify_secret(&user, given, fixed)
            .await
            .map_err(|e| match e {
                crate::enroll::EnrollError::Busy { retry_after } => super::Refusal::Unavailable {
                    reason: e.to_string(),
                    retry_after,
                },
                other => super::Refusal::Internal(other.to_string()),
            })?,
        (Some(fixed), Some(given)) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(fixed.as_bytes(), given.as_bytes())
                .is_ok()
        }
        _ => false,
    };
    let checked = check_challenge(store, template, csr, txid, fixed_matches)
        .await
        .map_err(super::unavailable)?;
    if checked.is_err() {
        throttle.failed(&user, peer);
    }
    Ok(checked)
}

async fn check_challenge(
    store: &dyn Store,
    template: &Template,
    csr: &Csr,
    txid: &str,
    fixed_matches: bool,
) -> Result<Result<(Principal, Option<Template>), Fail>, StoreError> {
    if !template.scep {
        return Ok(Err(Fail::bad_request(format!(
            "the certificate template {} does not serve SCEP",
            template.name
        ))));
    }
    let Some(password) = csr.challenge_password.as_deref() else {
        return Ok(Err(Fail::bad_request(
            "the request carries no challenge password",
        )));
    };
    let principal = |name: String, id| Principal {
        name,
        groups: Vec::new(),
        method: AuthMethod::ScepChallenge {
            template: template.name.clone(),
            id,
        },
    };
    if fixed_matches {
        return Ok(Ok((principal("scep:static".into(), None), None)));
    }
    let Some(c) = store.find_challenge(&hash(password)).await? else {
        return Ok(Err(Fail::bad_request(
            "the challenge password is not one this server issued",
        )));
    };
    let refuse = |why: String| Ok(Err(Fail::bad_request(format!("challenge {}: {why}", c.id))));
    let now = timestamp(SystemTime::now());
    if c.template != template.name {
        return refuse(format!(
            "issued for the template {}, not {}",
            c.template, template.name
        ));
    }
    // used by this very transaction: its request again (the answer was lost, or estd could
    // not finish it), which may use it again
    let ours = c.used_at.is_some() && c.used_by.as_deref() == Some(txid);
    if c.used_at.is_some() && !ours {
        return refuse(format!(
            "already used{}",
            c.used_by
                .as_deref()
                .map(|t| format!(" by the transaction {}", crate::model::printable(t)))
                .unwrap_or_default()
        ));
    }
    if c.expires_at <= now && !ours {
        return refuse(format!("expired at {}", c.expires_at));
    }
    if let Some(cn) = &c.cn
        && csr.common_name().as_deref() != Some(cn.as_str())
    {
        return refuse(format!(
            "bound to CN={cn}; the request has {}",
            csr.common_name()
                .map(|n| format!("CN={}", crate::model::printable(&n)))
                .unwrap_or_else(|| "no CN".into())
        ));
    }
    if let Some(want) = &c.san {
        let mut have: Vec<String> = csr
            .san
            .as_ref()
            .map(|s| s.entries.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        have.sort();
        if have.join(", ") != *want {
            return refuse(format!("bound to the SubjectAltName {want}"));
        }
    }
    if !ours && !store.use_challenge(c.id, &now, txid).await? {
        return refuse("already used".into());
    }
    let effective = c.cn.is_some().then(|| {
        let mut t = template.clone();
        t.cn_must_match_user = false;
        t
    });
    Ok(Ok((
        principal(format!("scep:challenge-{}", c.id), Some(c.id)),
        effective,
    )))
}
