//! Enrollment codes: one-time secrets an administrator issues for a template (`estd code
//! issue`, `estd scep challenge`, the JSON API, the portal) — 128 random bits, shown once,
//! stored as their SHA-256, single use, expiring, optionally bound to a CN and an exact set
//! of SubjectAltNames, withdrawable. One mechanism for two protocols: a SCEP PKCSReq carries
//! one as its challengePassword (`service::scep::challenge`), an EST request as the Basic
//! password or the CSR's challengePassword on a template whose `auth` takes `code`.

use std::time::{Duration, SystemTime};

use super::{EnrollError, EnrollService};
use crate::auth::{AuthMethod, Principal};
use crate::est::Csr;
use crate::policy::{AuthScheme, Template};
use crate::store::{ChallengeRecord, Store, StoreError, timestamp};

/// The longest a code may live.
pub const MAX_LIFETIME: Duration = Duration::from_secs(90 * 86_400);
/// How long a code lives unless told otherwise.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_400);
/// The most codes one call issues.
pub const MAX_BATCH: u32 = 10_000;

/// The SHA-256 (hex) a code is stored and looked up by. A code is 128 random bits: a fast
/// hash is enough (nothing to guess from it; no argon2 per request).
pub fn hash(secret: &str) -> String {
    crate::est::hex(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()).as_ref(),
    )
}

/// What to issue: for a template, bound to a CN and/or SANs, for a time.
#[derive(Debug, Clone, Default)]
pub struct NewCode {
    pub template: String,
    pub cn: Option<String>,
    /// SubjectAltName entries the request must carry exactly (`dns:x`, `ip:y`, as
    /// `SanEntry::parse_arg` reads them).
    pub san: Vec<String>,
    pub lifetime: Option<Duration>,
    /// Who issues it (audited).
    pub created_by: String,
}

/// A code just issued: the secret is shown this once.
#[derive(Debug, Clone)]
pub struct IssuedCode {
    pub id: i64,
    pub secret: zeroize::Zeroizing<String>,
    pub expires_at: String,
}

/// Why a code was not issued.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Does the template take codes: over SCEP (`scep`), or over EST (`auth` has `code`)?
pub fn takes_codes(template: &Template) -> bool {
    template.scep || template.auth.contains(&AuthScheme::Code)
}

/// Issues one code for `template`. A template whose CN must match the user's name takes
/// only codes bound to a CN: nobody's name is the code's.
pub async fn issue(
    store: &dyn Store,
    template: &Template,
    new: NewCode,
) -> Result<IssuedCode, CodeError> {
    let mut issued = issue_many(store, template, new, 1).await?;
    issued
        .pop()
        .ok_or_else(|| CodeError::Invalid("no code was issued".into()))
}

/// Issues `count` codes alike, in one transaction. Several codes are bound to no CN or SAN
/// (a binding is one device's).
pub async fn issue_many(
    store: &dyn Store,
    template: &Template,
    new: NewCode,
    count: u32,
) -> Result<Vec<IssuedCode>, CodeError> {
    if !takes_codes(template) {
        return Err(CodeError::Invalid(format!(
            "the certificate template {} takes no enrollment codes (scep = false and auth has no \"code\")",
            template.name
        )));
    }
    if count == 0 || count > MAX_BATCH {
        return Err(CodeError::Invalid(format!(
            "1 to {MAX_BATCH} codes at a time"
        )));
    }
    if new.created_by.is_empty()
        || new.created_by.len() > 64
        || crate::fields::has_control(&new.created_by)
    {
        return Err(CodeError::Invalid(
            "who issues it: 1 to 64 characters without control characters".into(),
        ));
    }
    let lifetime = new.lifetime.unwrap_or(DEFAULT_LIFETIME);
    if lifetime.is_zero() || lifetime > MAX_LIFETIME {
        return Err(CodeError::Invalid(
            "a code expires after 1 second to 90 days".into(),
        ));
    }
    let cn = new
        .cn
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if let Some(c) = &cn
        && (c.len() > 64 || crate::fields::has_control(c))
    {
        return Err(CodeError::Invalid(
            "the CN is 1 to 64 characters without control characters".into(),
        ));
    }
    if count > 1 && (cn.is_some() || !new.san.is_empty()) {
        return Err(CodeError::Invalid(
            "codes issued together are bound to no CN or SAN: issue bound ones one at a time"
                .into(),
        ));
    }
    if template.cn_must_match_user && cn.is_none() {
        return Err(CodeError::Invalid(format!(
            "the certificate template {} requires the CN to match the user name: bind the code to a CN (--cn)",
            template.name
        )));
    }
    let mut san = Vec::new();
    for s in &new.san {
        let entry = crate::est::SanEntry::parse_arg(s).map_err(CodeError::Invalid)?;
        san.push(entry.to_string());
    }
    san.sort();
    let now = SystemTime::now();
    let expires_at = timestamp(now + lifetime);
    let mut secrets = Vec::with_capacity(count as usize);
    let mut records = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| CodeError::Invalid("no randomness available".into()))?;
        let secret = zeroize::Zeroizing::new(crate::est::hex(&bytes));
        records.push(ChallengeRecord {
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
        });
        secrets.push(secret);
    }
    let ids = store.create_challenges(&records).await?;
    tracing::info!(
        count,
        first = ids.first().copied().unwrap_or_default(),
        template = %template.name,
        cn = %crate::model::printable(cn.as_deref().unwrap_or("-")),
        expires_at = %expires_at,
        created_by = %crate::model::printable(&new.created_by),
        "enrollment codes issued"
    );
    Ok(ids
        .into_iter()
        .zip(secrets)
        .map(|(id, secret)| IssuedCode {
            id,
            secret,
            expires_at: expires_at.clone(),
        })
        .collect())
}

/// What an EST request that used a code is recorded as (`used_by`): `est:<request id>`.
pub const EST_USE: &str = "est:";
/// What a SCEP transaction that used a code is recorded as: `scep:<transactionID>`. The
/// two protocols' markers never meet: a transactionID a client chooses cannot name an EST
/// request's use (nor release it).
pub fn scep_use(transaction_id: &str) -> String {
    format!("scep:{transaction_id}")
}

/// Issued codes as CSV, as `estd code issue --csv` writes them and the portal downloads
/// them: `id,code,template,cn,san,expires_at` (SANs space-separated).
pub fn csv(
    template: &str,
    cn: Option<&str>,
    san: &[String],
    issued: &[IssuedCode],
) -> zeroize::Zeroizing<String> {
    let mut text = zeroize::Zeroizing::new(String::from("id,code,template,cn,san,expires_at\n"));
    let (cn, san) = (csv_field(cn.unwrap_or("")), csv_field(&san.join(" ")));
    for c in issued {
        text.push_str(&format!(
            "{},{},{template},{cn},{san},{}\n",
            c.id,
            c.secret.as_str(),
            c.expires_at
        ));
    }
    text
}

/// A CSV field as a spreadsheet reads it safely: quoted when it holds a comma, quote or line
/// break; a leading `=`, `+`, `-` or `@` (a formula) escaped with `'`.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// A code a request presented, used up by it.
#[derive(Debug, Clone)]
pub struct Redeemed {
    pub id: i64,
    /// The template to apply when it differs from the request's: a code bound to a CN is
    /// that CN's permission (the CN-must-match-user rule is met by the binding).
    pub effective: Option<Template>,
}

/// Why a presented code does not do. `Display` is the reason without the code's id; the
/// caller names it ("challenge 7: …", "code 7: …").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No code has this secret.
    Unknown,
    /// Used, expired, for another template, or presented under another user name.
    Invalid { id: i64, why: String },
    /// Valid, but bound to another CN or SAN than the request carries.
    Binding { id: i64, why: String },
}

/// Checks a presented secret against the codes of `template` and the request's CSR, and
/// uses it up by `used_by` (a SCEP transactionID, or `est:<request id>`; the same
/// `used_by` may present it again, e.g. after a lost answer). With `claimed`, the Basic user
/// name it came with must be the code's id (`7` or `code-7`) or its CN.
pub async fn redeem(
    store: &dyn Store,
    template: &Template,
    secret: &str,
    csr: &Csr,
    used_by: &str,
    claimed: Option<&str>,
) -> Result<Result<Redeemed, Refused>, StoreError> {
    let Some(c) = store.find_challenge(&hash(secret)).await? else {
        return Ok(Err(Refused::Unknown));
    };
    let invalid = |why: String| Ok(Err(Refused::Invalid { id: c.id, why }));
    let now = timestamp(SystemTime::now());
    if c.template != template.name {
        return invalid(format!(
            "issued for the template {}, not {}",
            c.template, template.name
        ));
    }
    if let Some(user) = claimed {
        let by_id = user == c.id.to_string() || user == format!("code-{}", c.id);
        if !by_id && c.cn.as_deref() != Some(user) {
            return invalid(format!(
                "the user name must be the code's id ({}){}",
                c.id,
                if c.cn.is_some() { " or its CN" } else { "" }
            ));
        }
    }
    let ours = c.used_at.is_some() && c.used_by.as_deref() == Some(used_by);
    if c.used_at.is_some() && !ours {
        return invalid(format!(
            "already used{}",
            // a SCEP client is told its own protocol's transaction (it holds the code);
            // an EST request's id is not echoed
            c.used_by
                .as_deref()
                .and_then(|t| t.strip_prefix("scep:"))
                .map(|t| format!(" by the transaction {}", crate::model::printable(t)))
                .unwrap_or_default()
        ));
    }
    if c.expires_at <= now && !ours {
        return invalid(format!("expired at {}", c.expires_at));
    }
    let binding = |why: String| Ok(Err(Refused::Binding { id: c.id, why }));
    if let Some(cn) = &c.cn
        && csr.common_name().as_deref() != Some(cn.as_str())
    {
        return binding(format!(
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
            return binding(format!("bound to the SubjectAltName {want}"));
        }
    }
    if !ours && !store.use_challenge(c.id, &now, used_by).await? {
        return invalid("already used".into());
    }
    let effective = c.cn.is_some().then(|| {
        let mut t = template.clone();
        t.cn_must_match_user = false;
        t
    });
    Ok(Ok(Redeemed {
        id: c.id,
        effective,
    }))
}

/// Wrong codes count as failed log-ins of this user (from the client's address): a guesser
/// is slowed (429), over EST and SCEP alike.
pub fn throttle_key(template: &Template) -> String {
    format!("codes:{}", template.name)
}

impl EnrollService {
    /// An EST request's enrollment code (the Basic password, with its user name as
    /// `claimed`, or the CSR's challengePassword): the principal `code:<id>` and the
    /// template to apply (see `Redeemed`), the code used up by `used_by`. Unknown, used,
    /// expired or misnamed codes are 401, a code bound to other names 403 (each counted by
    /// the throttle); `Ok(None)`: no code has this secret and, with `password_next`, the
    /// caller tries it as a user's password (which counts its own failures).
    #[allow(clippy::too_many_arguments)]
    pub async fn authenticate_code(
        &self,
        template: &Template,
        secret: &str,
        csr: &Csr,
        used_by: &str,
        claimed: Option<&str>,
        password_next: bool,
        peer: &str,
    ) -> Result<Option<(Principal, Option<Template>)>, EnrollError> {
        let user = throttle_key(template);
        if let Some(retry_after) = self.throttle.take_check(&user, peer) {
            tracing::warn!(%peer, template = %template.name, retry_after, "slowed: repeated wrong enrollment codes from this address");
            return Err(EnrollError::Throttled { retry_after });
        }
        let refused =
            match redeem(self.store.as_ref(), template, secret, csr, used_by, claimed).await? {
                Ok(r) => {
                    tracing::info!(code = r.id, template = %template.name, "enrollment code used");
                    return Ok(Some((
                        Principal {
                            name: crate::auth::code_requester(r.id),
                            groups: Vec::new(),
                            method: AuthMethod::Code {
                                template: template.name.clone(),
                                id: Some(r.id),
                            },
                        },
                        r.effective,
                    )));
                }
                Err(Refused::Unknown) if password_next => return Ok(None),
                Err(r) => r,
            };
        self.throttle.failed(&user, peer);
        tracing::warn!(%peer, template = %template.name, refused = ?refused, "refused: enrollment code");
        Err(match refused {
            Refused::Unknown => EnrollError::Unauthorized(
                "the enrollment code is not one this server issued".into(),
            ),
            Refused::Invalid { id, why } => EnrollError::Unauthorized(format!("code {id}: {why}")),
            Refused::Binding { id, why } => EnrollError::CodeBinding(format!("code {id}: {why}")),
        })
    }

    /// Leaves a code an EST request used unused again: the request was refused (by the
    /// policy, or estd could not finish it), and the code may be sent again.
    pub async fn release_code(&self, id: i64, used_by: &str) {
        match self.store.release_challenge(id, used_by).await {
            Ok(_) => tracing::info!(
                code = id,
                "enrollment code left unused: the request was refused"
            ),
            Err(e) => {
                tracing::warn!(code = id, error = %e, "could not leave the enrollment code unused")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Fixed inputs.
    use super::*;

    #[test]
    fn csv_fields_stay_in_their_column_and_are_no_formulas() {
        assert_eq!(csv_field("kiosk-1"), "kiosk-1");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("@x,y"), "\"'@x,y\"");
    }
}
