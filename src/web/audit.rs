//! Every request gets an id; after its handler has run, one log line, the metrics and the
//! audit row (bounded for unauthenticated failures).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use super::{AppState, AuditNote, RequestId, truncate};
use crate::model::ConnInfo;
use crate::store::{AuditEvent, timestamp};

fn new_request_id() -> String {
    let mut b = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return format!("{t:016x}");
    }
    crate::est::hex(&b)
}

/// Gives every request an id, and after the handler has run writes the audit row (unless
/// the enrollment service already did) and one log line with the outcome.
pub async fn audit_layer(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = new_request_id();
    let started = Instant::now();
    req.extensions_mut().insert(RequestId(id.clone()));
    let peer = req
        .extensions()
        .get::<ConnInfo>()
        .map_or_else(|| "unknown".to_string(), |c| c.peer.to_string());
    let method = req.method().clone();
    let path = truncate(req.uri().path(), 200).to_string();

    let mut resp = next.run(req).await;
    if resp.status().is_client_error() || resp.status().is_server_error() {
        resp = with_request_id(resp, &id).await;
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    // every HTTPS answer: browsers keep to HTTPS for this host, and never guess a type
    h.insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let status = resp.status();
    let note = resp.extensions().get::<AuditNote>().cloned();
    let took = started.elapsed();
    let elapsed_us = took.as_micros() as u64;
    {
        // series names from fixed sets only: a path cannot make new ones
        let (op, label) = match &note {
            Some(n) if !n.operation.is_empty() => (
                n.operation.as_str(),
                match n.label.as_deref() {
                    None | Some("") => "",
                    Some(l) if state.templates.get(Some(l)).is_some() => l,
                    Some(_) => "unknown",
                },
            ),
            _ => ("other", ""),
        };
        crate::metrics::metrics().request(op, label, status.as_u16(), took);
    }
    // what came from the client is escaped on its way to the log
    let printable = crate::model::printable;
    match &note {
        Some(n) => tracing::info!(
            request_id = %id,
            %peer,
            %method,
            path = %printable(&path),
            op = %printable(&n.operation),
            label = %printable(n.label.as_deref().unwrap_or("-")),
            principal = %printable(n.principal.as_deref().unwrap_or("-")),
            status = status.as_u16(),
            reason = %printable(n.reason.as_deref().unwrap_or("-")),
            elapsed_us,
            "request"
        ),
        None => {
            tracing::info!(request_id = %id, %peer, %method, path = %printable(&path), status = status.as_u16(), elapsed_us, "request")
        }
    }
    // Unauthenticated failures (no or wrong credentials, unknown paths, throttled) are
    // recorded one by one up to a rate per address; beyond it they are counted (metrics,
    // the log line above) and summed up in one row the next minute.
    let failed = note.as_ref().is_some_and(|n| n.failed);
    let unauthenticated = (status.is_client_error()
        && (matches!(status.as_u16(), 401 | 404 | 429)
            || note.as_ref().is_none_or(|n| n.principal.is_none())))
        || (failed && note.as_ref().is_some_and(|n| n.principal.is_none()));
    let mut summary = None;
    if unauthenticated {
        match state.audit_limiter.admit(&peer) {
            AuditAdmit::Write => {}
            AuditAdmit::WriteAfter(n) => summary = Some(n),
            AuditAdmit::Skip => {
                crate::metrics::metrics().audit_suppressed();
                return resp;
            }
        }
    }
    if let Some(n) = summary {
        let event = AuditEvent {
            at: timestamp(SystemTime::now()),
            request_id: id.clone(),
            operation: "suppressed".into(),
            label: None,
            principal: None,
            peer: peer.clone(),
            outcome: "error".into(),
            status: 429,
            reason: Some(format!(
                "{n} more unauthenticated failures from this address in the minute before were counted and logged, not recorded one by one"
            )),
            serial: None,
        };
        if let Err(e) = state.store.record_audit(&event).await {
            tracing::error!(request_id = %id, error = %e, "could not write the audit event");
        }
    }
    if let Some(n) = note
        && !n.recorded
        && !n.operation.is_empty()
    {
        let event = AuditEvent {
            at: timestamp(SystemTime::now()),
            request_id: id.clone(),
            // stored bounded and printable: whatever a client sent, `estd requests` and the
            // portal show it as one line
            operation: printable(truncate(&n.operation, 64)).into_owned(),
            label: n.label.map(|l| printable(truncate(&l, 64)).into_owned()),
            principal: n
                .principal
                .map(|p| printable(truncate(&p, 64)).into_owned()),
            peer,
            outcome: if status.is_success() && !n.failed {
                "ok"
            } else {
                "error"
            }
            .into(),
            status: status.as_u16(),
            reason: n.reason.map(|r| printable(truncate(&r, 1000)).into_owned()),
            serial: n.serial,
        };
        if let Err(e) = state.store.record_audit(&event).await {
            tracing::error!(request_id = %id, error = %e, "could not write the audit event");
        }
    }
    resp
}

/// Audit rows for unauthenticated failures, per client address and minute, at most.
pub struct AuditLimiter {
    per_minute: u32,
    /// Address → (the minute, rows written in it, rows left out of it).
    seen: std::sync::Mutex<HashMap<std::net::IpAddr, (u64, u32, u32)>>,
}

/// What the audit layer does with one unauthenticated failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAdmit {
    Write,
    /// Write it, after a row that sums up this many left out in the minute before.
    WriteAfter(u32),
    Skip,
}

/// Addresses tracked at most (each stands for failures in the current minute).
const AUDIT_LIMITER_MAX: usize = 10_000;

impl AuditLimiter {
    /// `per_minute` 0: every row is written.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            seen: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn admit(&self, peer: &str) -> AuditAdmit {
        if self.per_minute == 0 {
            return AuditAdmit::Write;
        }
        let Some(ip) = crate::auth::throttle::address_of(peer) else {
            return AuditAdmit::Write;
        };
        let minute = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 60);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= AUDIT_LIMITER_MAX && !seen.contains_key(&ip) {
            seen.retain(|_, (m, _, left_out)| *m == minute || *left_out > 0);
            if seen.len() >= AUDIT_LIMITER_MAX {
                // more addresses failing at once than can be tracked: each row still counts
                return AuditAdmit::Write;
            }
        }
        let entry = seen.entry(ip).or_insert((minute, 0, 0));
        if entry.0 != minute {
            let left_out = entry.2;
            *entry = (minute, 1, 0);
            return if left_out > 0 {
                AuditAdmit::WriteAfter(left_out)
            } else {
                AuditAdmit::Write
            };
        }
        if entry.1 < self.per_minute {
            entry.1 += 1;
            AuditAdmit::Write
        } else {
            entry.2 += 1;
            AuditAdmit::Skip
        }
    }
}

/// Error bodies are small; anything larger is passed on untouched.
const MAX_DECORATED_BODY: usize = 256 * 1024;

/// Puts the request id into an error body, so that whoever reads the error can quote it:
/// a last line `Request ID: …` in plain text (the first line stays the message, word for
/// word), a `request_id` member in a JSON object, a line before `</main>` in a portal page.
async fn with_request_id(resp: Response, id: &str) -> Response {
    let ct = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let kind = if ct.starts_with("text/plain") {
        0
    } else if ct.starts_with("application/json") {
        1
    } else if ct.starts_with("text/html") {
        2
    } else {
        return resp;
    };
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_DECORATED_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(request_id = %id, error = %e, "error body not decorated");
            return Response::from_parts(parts, axum::body::Body::empty());
        }
    };
    let decorated: Option<Vec<u8>> = match kind {
        0 => {
            let mut b = bytes.to_vec();
            if !b.is_empty() && !b.ends_with(b"\n") {
                b.push(b'\n');
            }
            b.extend_from_slice(format!("Request ID: {id}\n").as_bytes());
            Some(b)
        }
        1 => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(mut m)) => {
                m.insert("request_id".into(), serde_json::Value::String(id.into()));
                serde_json::to_vec(&m).ok()
            }
            _ => None,
        },
        _ => std::str::from_utf8(&bytes).ok().and_then(|html| {
            html.rfind("</main>").map(|at| {
                format!(
                    "{}<p class=\"request-id\">Request ID: <code>{id}</code></p>{}",
                    &html[..at],
                    &html[at..]
                )
                .into_bytes()
            })
        }),
    };
    let body = decorated.unwrap_or_else(|| bytes.to_vec());
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
