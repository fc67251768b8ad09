//! Portal sessions, kept in the store (only the SHA-256 of the id), shared by the portal
//! pages and the JSON API. Cookie: `HttpOnly; Secure; SameSite=Strict`, a new id at log-in,
//! ended after `idle` without a request.

use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;

use super::AppState;
use crate::auth::{AuthMethod, Principal};
use crate::model::timestamp;
use crate::store::{SessionRecord, StoreError};

/// `__Host-`: the browser takes it only from this host, over HTTPS, for the whole site; a
/// sibling sub-domain can neither set nor shadow it.
pub const COOKIE: &str = "__Host-estd_session";

/// A live session and its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub csrf: String,
    pub principal: Principal,
}

/// 32 random bytes, base64url without padding.
pub fn new_token() -> Result<String, StoreError> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| StoreError::Db("no randomness".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

pub fn hash(id: &str) -> String {
    crate::est::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes()).as_ref())
}

/// The value of cookie `name` in the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// `Set-Cookie` for a session id (or, with `None`, one that deletes it).
pub fn set_cookie(id: Option<&str>) -> HeaderValue {
    let v = match id {
        Some(id) => format!("{COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Strict"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"),
    };
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Starts a session for `user` with a fresh id; returns the id (for the cookie).
pub async fn create(state: &AppState, user: &str) -> Result<(String, SessionRecord), StoreError> {
    let id = new_token()?;
    let now = timestamp(SystemTime::now());
    let record = SessionRecord {
        id_hash: hash(&id),
        user_name: user.to_string(),
        csrf: new_token()?,
        created_at: now.clone(),
        last_seen: now,
    };
    state.store.create_session(&record).await?;
    Ok((id, record))
}

/// The session the request's cookie names, if it is live; refreshes its idle timer.
pub async fn load(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, StoreError> {
    let Some(id) = cookie(headers, COOKIE) else {
        return Ok(None);
    };
    let id_hash = hash(&id);
    let Some(record) = state.store.get_session(&id_hash).await? else {
        return Ok(None);
    };
    let now = SystemTime::now();
    let idle_since = timestamp(now - state.session_idle);
    if record.last_seen < idle_since {
        state.store.delete_session(&id_hash).await?;
        tracing::info!(user = %record.user_name, "portal session ended: idle timeout");
        return Ok(None);
    }
    // one write a minute at most
    if record.last_seen < timestamp(now - Duration::from_secs(60)) {
        state.store.touch_session(&id_hash, &timestamp(now)).await?;
    }
    if record.created_at < timestamp(now - state.session_max) {
        state.store.delete_session(&id_hash).await?;
        tracing::info!(user = %record.user_name, "portal session ended: its absolute lifetime passed");
        return Ok(None);
    }
    let Some(user) = state
        .store
        .find_user(&record.user_name)
        .await?
        .filter(|u| !u.disabled)
    else {
        state.store.delete_session(&id_hash).await?;
        return Ok(None);
    };
    Ok(Some(Session {
        id_hash,
        csrf: record.csrf,
        principal: Principal {
            name: user.name,
            groups: user.groups,
            method: AuthMethod::Session,
        },
    }))
}

/// Constant-time comparison of a submitted CSRF token with the session's.
pub fn csrf_ok(expected: &str, got: Option<&str>) -> bool {
    match got {
        Some(g) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), g.as_bytes())
                .is_ok()
        }
        None => false,
    }
}
