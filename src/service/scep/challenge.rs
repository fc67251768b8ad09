//! SCEP challenge passwords: the enrollment codes of `enroll::codes` (one mechanism for SCEP
//! and EST: issued by `estd scep challenge`, `estd code issue`, the JSON API, the portal),
//! and the template's static `scep_challenge`.

use super::Fail;
use crate::auth::{AuthMethod, Principal};
use crate::enroll::codes::{self, Refused};
use crate::est::Csr;
use crate::policy::Template;
use crate::store::{Store, StoreError};

pub use crate::enroll::codes::{
    CodeError as ChallengeError, DEFAULT_LIFETIME, IssuedCode as IssuedChallenge, MAX_LIFETIME,
    NewCode as NewChallenge, hash, issue,
};

/// Checks a PKCSReq's challenge password: the principal it stands for, and the template
/// to apply when it differs from `template` (a challenge bound to a CN is that CN's
/// permission: the CN-must-match-user rule is met by the binding). A one-time challenge is
/// used up here, by `txid` (which may present it again). Wrong challenges count as failed log-ins of the user
/// `codes:<template>` from `peer` (`auth::throttle`): a guesser is slowed (429).
pub(super) async fn check(
    store: &dyn Store,
    enroll: &crate::enroll::EnrollService,
    peer: &str,
    template: &Template,
    csr: &Csr,
    txid: &str,
) -> Result<Result<(Principal, Option<Template>), Fail>, super::Refusal> {
    let user = codes::throttle_key(template);
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
        method: AuthMethod::Code {
            template: template.name.clone(),
            id,
        },
    };
    if fixed_matches {
        return Ok(Ok((principal("scep:static".into(), None), None)));
    }
    Ok(
        match codes::redeem(store, template, password, csr, &codes::scep_use(txid), None).await? {
            Ok(r) => Ok((
                principal(format!("scep:challenge-{}", r.id), Some(r.id)),
                r.effective,
            )),
            Err(Refused::Unknown) => Err(Fail::bad_request(
                "the challenge password is not one this server issued",
            )),
            Err(Refused::Invalid { id, why } | Refused::Binding { id, why }) => {
                Err(Fail::bad_request(format!("challenge {id}: {why}")))
            }
        },
    )
}
