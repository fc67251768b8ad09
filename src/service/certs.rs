//! Listing certificates: who sees which, and what a stored certificate's status is.

use serde::Deserialize;

use crate::model::timestamp;
use crate::store::{CertFilter, CertRecord, CertStatus, RevocationRecord};

/// At most this many certificates in one listing.
pub const MAX_LISTED: u32 = 1000;

/// `valid`, `revoked` or `expired` at `now` (a stored timestamp).
pub fn status_text(c: &CertRecord, r: Option<&RevocationRecord>, now: &str) -> &'static str {
    if r.is_some() {
        CertStatus::Revoked.as_str()
    } else if c.not_after.as_str() <= now {
        CertStatus::Expired.as_str()
    } else {
        CertStatus::Valid.as_str()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ListQuery {
    pub user: String,
    pub template: String,
    pub status: String,
    /// Part of the subject, SAN or serial.
    pub q: String,
    pub limit: Option<u32>,
}

/// The store filter a listing asks for; others than admins see their own only.
pub fn filter_of(q: &ListQuery, viewer: &str, admin: bool) -> Result<CertFilter, String> {
    let nonempty = |s: &str, max: usize| {
        let t = s.trim();
        (!t.is_empty()).then(|| t.chars().take(max).collect::<String>())
    };
    let status = match nonempty(&q.status, 16) {
        None => None,
        Some(s) => Some(
            CertStatus::parse(&s)
                .ok_or_else(|| format!("status {s:?}: expected valid, revoked or expired"))?,
        ),
    };
    Ok(CertFilter {
        requester: if admin {
            nonempty(&q.user, 128)
        } else {
            Some(viewer.to_string())
        },
        template: nonempty(&q.template, 64),
        status,
        text: nonempty(&q.q, 128),
        now: timestamp(std::time::SystemTime::now()),
        limit: q.limit.unwrap_or(200).clamp(1, MAX_LISTED),
    })
}
