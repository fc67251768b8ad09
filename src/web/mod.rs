//! The HTTP plumbing the adapters share (the EST and JSON API in `api/`, the portal in
//! `portal/`): their state, the request id and audit layer, sessions, the multipart bulk
//! upload, and the one mapping of a service's kind of refusal to an HTTP status. Neither
//! adapter imports the other; both import this.

mod audit;
pub mod session;

pub use audit::{AuditAdmit, AuditLimiter, audit_layer};

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::enroll::EnrollService;
use crate::jobs::{BulkError, Submission};
use crate::policy::Templates;
use crate::service::Kind;
use crate::store::Store;

/// Everything the handlers share. Bodies that never change are encoded once, here.
pub struct AppState {
    pub enroll: Arc<EnrollService>,
    pub templates: Arc<Templates>,
    pub store: Arc<dyn Store>,
    /// `/cacerts` body: base64 of the certs-only chain.
    pub cacerts_body: Bytes,
    /// `/csrattrs` body per template name (an empty SEQUENCE when it asks nothing).
    pub csrattrs_bodies: HashMap<String, Bytes>,
    pub max_body: usize,
    /// The CA chain and EAP trust file every download bundle carries.
    pub bundle: Arc<crate::pack::BundleAssets>,
    /// Portal sessions end after this long without a request.
    pub session_idle: std::time::Duration,
    /// A session ends this long after log-in, however active.
    pub session_max: std::time::Duration,
    /// How many unauthenticated failures per address and minute get an audit row.
    pub audit_limiter: AuditLimiter,
    /// Bulk requests and their workers.
    pub jobs: Arc<crate::jobs::JobService>,
    /// Revocation, the CRL and OCSP (when `revocation.listen` is set).
    pub revocation: Option<Arc<crate::revocation::RevocationService>>,
    /// SCEP (none: not served, 404).
    pub scep: Option<Arc<crate::service::scep::ScepService>>,
}

/// What a handler learned, for the audit layer (a response extension).
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub operation: String,
    pub label: Option<String>,
    pub principal: Option<String>,
    pub reason: Option<String>,
    pub serial: Option<String>,
    /// The enrollment service already wrote the audit row (with the certificate).
    pub recorded: bool,
    /// Refused although the HTTP status is 200 (a SCEP FAILURE: its status is in the
    /// message): audited as an error.
    pub failed: bool,
}

/// The id of one request, echoed in `X-Request-Id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl AppState {
    /// What the services work with.
    pub fn ctx(&self) -> crate::service::Context<'_> {
        crate::service::Context {
            enroll: &self.enroll,
            templates: &self.templates,
            store: self.store.as_ref(),
            bundle: &self.bundle,
        }
    }
}

/// Whether the request's Content-Type is `expected` (any case, parameters ignored).
pub(crate) fn media_type_is(headers: &axum::http::HeaderMap, expected: &str) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(expected))
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The user name a request's Basic credentials claim (not verified), for the audit log: a
/// failed or refused request is still found under the name it was made with.
pub fn claimed_user(headers: &axum::http::HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?;
    let (user, _password) = crate::auth::parse_basic(v.as_bytes()).ok()??;
    // bounded, and escaped: it is stored and shown before anything checked it
    Some(crate::model::printable(&user.chars().take(64).collect::<String>()).into_owned())
}

/// The HTTP status of a service's kind of refusal, for the JSON API and the portal alike.
pub fn status_of(kind: Kind) -> StatusCode {
    match kind {
        Kind::Invalid => StatusCode::BAD_REQUEST,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::Pending => StatusCode::ACCEPTED,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::Throttled => StatusCode::TOO_MANY_REQUESTS,
        Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The HTTP status and code of a bulk error.
pub fn status_of_bulk(e: &BulkError) -> (StatusCode, &'static str) {
    match e {
        BulkError::Busy(_) => (StatusCode::CONFLICT, "busy"),
        BulkError::Csv(_) => (StatusCode::BAD_REQUEST, "csv"),
        BulkError::Rows(_) => (StatusCode::BAD_REQUEST, "rows"),
        BulkError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
        BulkError::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
        BulkError::Busy503(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        BulkError::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        BulkError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        BulkError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// A JSON error body `{"error": code, "message": …}` with its status, and the headers that
/// status calls for (`WWW-Authenticate` on 401, `Retry-After` on 429 and 503).
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"estd\""),
        );
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        // our own messages say "try again in N seconds"
        let secs = message
            .split("try again in ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(1);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// A zip download.
pub fn zip_response(file_name: &str, zip: Vec<u8>) -> Response {
    let mut resp = Bytes::from(zip).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    // file_name is made of [A-Za-z0-9._-] (fields::safe_name): a valid header value
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Largest bulk upload: 500 rows are far below it.
pub const MAX_UPLOAD: usize = 1024 * 1024;

/// Reads the multipart form: `csv` (the file), `template`, `description`, `format`,
/// `password` (and `csrf`, which the portal's form carries).
pub async fn read_submission(req: Request) -> Result<(Submission, String), Response> {
    let bad = |m: String| json_error(StatusCode::BAD_REQUEST, "invalid", &m);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD) {
        return Err(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("the upload is larger than {MAX_UPLOAD} bytes"),
        ));
    }
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| bad(format!("expected multipart/form-data: {e}")))?;
    let mut sub = Submission {
        template: String::new(),
        description: String::new(),
        format: String::new(),
        password: zeroize::Zeroizing::new(String::new()),
        csv: Vec::new(),
    };
    let mut csrf = String::new();
    let mut total = 0usize;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad(format!("unreadable form: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let data: Bytes = field
            .bytes()
            .await
            .map_err(|e| bad(format!("unreadable field {name}: {e}")))?;
        total += data.len();
        if total > MAX_UPLOAD {
            return Err(json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("the upload is larger than {MAX_UPLOAD} bytes"),
            ));
        }
        let text = || String::from_utf8_lossy(&data).trim().to_string();
        match name.as_str() {
            "csv" => sub.csv = data.to_vec(),
            "template" => sub.template = text(),
            "description" => sub.description = text(),
            "format" => sub.format = text(),
            "password" => {
                sub.password = zeroize::Zeroizing::new(String::from_utf8_lossy(&data).to_string())
            }
            "csrf" => csrf = text(),
            _ => {}
        }
    }
    if sub.csv.is_empty() {
        return Err(bad("Choose a CSV file".into()));
    }
    Ok((sub, csrf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_refusal_has_its_status() {
        // the statuses the JSON API and the portal answered with before `Kind` existed
        for (kind, status) in [
            (Kind::Invalid, 400),
            (Kind::Forbidden, 403),
            (Kind::Pending, 202),
            (Kind::Conflict, 409),
            (Kind::Throttled, 429),
            (Kind::Unavailable, 503),
            (Kind::Internal, 500),
        ] {
            assert_eq!(status_of(kind).as_u16(), status, "{kind:?}");
        }
    }
}
