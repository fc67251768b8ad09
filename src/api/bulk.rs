//! The bulk calls of the JSON API (DESIGN.md §5): the CSV template, submit (multipart),
//! status, cancel, download, confirm. HTTP Basic or the portal's session cookie.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::json::{authenticate, json_error, json_response, zip_response};
use super::{AppState, AuditNote};
use crate::auth::Principal;
use crate::jobs::{BulkError, JobStatus, Submission};
use crate::model::ConnInfo;

/// Largest bulk upload: 500 rows are far below it.
pub const MAX_UPLOAD: usize = 1024 * 1024;

pub(super) async fn template_csv() -> Response {
    let mut resp = crate::jobs::csv::TEMPLATE.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"bulk-template.csv\""),
    );
    resp
}

/// The HTTP status and code of a bulk error.
pub fn status_of(e: &BulkError) -> (StatusCode, &'static str) {
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

fn bulk_error(e: &BulkError) -> Response {
    let (status, code) = status_of(e);
    let rows: Vec<serde_json::Value> = match e {
        BulkError::Rows(rows) => rows
            .iter()
            .map(|(r, m)| serde_json::json!({"row": r, "message": m}))
            .collect(),
        BulkError::Csv(crate::jobs::csv::CsvError::Columns { row }) => {
            vec![serde_json::json!({"row": row, "message": e.to_string()})]
        }
        _ => Vec::new(),
    };
    let message = match e {
        BulkError::Internal(_) => "internal error".to_string(),
        other => other.to_string(),
    };
    let mut resp = json_response(
        status,
        &serde_json::json!({"error": code, "message": message, "errors": rows}),
    );
    if let BulkError::Busy503(secs) | BulkError::StoreUnavailable(secs) = e {
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(*secs),
        );
    }
    resp
}

/// The status as JSON (also what the portal's progress bar polls).
pub fn status_json(s: &JobStatus) -> serde_json::Value {
    let percent = if s.job.total > 0 {
        s.processed() * 100 / s.job.total
    } else {
        100
    };
    serde_json::json!({
        "id": s.job.id,
        "state": s.job.state,
        "template": s.job.template,
        "total": s.job.total,
        "done": s.counts.done,
        "failed": s.counts.failed,
        "cancelled": s.counts.cancelled,
        "pending": s.counts.pending + s.counts.running,
        "processed": s.processed(),
        "percent": percent,
        "confirmed": s.job.confirmed_at.is_some(),
        "errors": s.errors.iter().map(|(r, m)| serde_json::json!({"row": r, "message": m})).collect::<Vec<_>>(),
    })
}

/// The request's headers and peer, taken before any await (a request body is not Sync).
fn facts(req: &Request) -> (axum::http::HeaderMap, String, axum::http::Method) {
    let peer = req
        .extensions()
        .get::<ConnInfo>()
        .map_or_else(|| "unknown".to_string(), |c| c.peer.to_string());
    (req.headers().clone(), peer, req.method().clone())
}

async fn who(
    state: &AppState,
    (headers, peer, method): (axum::http::HeaderMap, String, axum::http::Method),
) -> Result<Principal, Response> {
    authenticate(state, &headers, &peer, &method)
        .await
        .map_err(|(status, code, message, _)| json_error(status, &code, &message))
}

fn noted(mut resp: Response, op: &str, principal: Option<&str>) -> Response {
    let reason = (!resp.status().is_success()).then(|| format!("HTTP {}", resp.status().as_u16()));
    resp.extensions_mut().insert(AuditNote {
        operation: op.into(),
        principal: principal.map(str::to_string),
        reason,
        ..AuditNote::default()
    });
    resp
}

pub(super) async fn submit(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let principal = match who(&state, facts(&req)).await {
        Ok(p) => p,
        Err(r) => return noted(r, "bulk-submit", None),
    };
    let resp = match read_submission(req).await {
        Ok((sub, _)) => match state.jobs.submit(&principal, sub).await {
            Ok(id) => {
                let mut r = json_response(StatusCode::ACCEPTED, &serde_json::json!({"id": id}));
                if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/bulk/{id}")) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            Err(e) => bulk_error(&e),
        },
        Err(r) => r,
    };
    noted(resp, "bulk-submit", Some(&principal.name))
}

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

pub(super) async fn status(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    let principal = match who(&state, facts(&req)).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match state.jobs.status(&principal, id).await {
        Ok(s) => json_response(StatusCode::OK, &status_json(&s)),
        Err(e) => bulk_error(&e),
    }
}

pub(super) async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    let principal = match who(&state, facts(&req)).await {
        Ok(p) => p,
        Err(r) => return noted(r, "bulk-cancel", None),
    };
    let resp = match state.jobs.cancel(&principal, id).await {
        Ok(()) => json_response(
            StatusCode::OK,
            &serde_json::json!({"id": id, "state": "cancelled"}),
        ),
        Err(e) => bulk_error(&e),
    };
    noted(resp, "bulk-cancel", Some(&principal.name))
}

pub(super) async fn download(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    let principal = match who(&state, facts(&req)).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match state.jobs.zip(&principal, id).await {
        Ok((name, zip)) => noted(
            zip_response(&name, zip),
            "bulk-download",
            Some(&principal.name),
        ),
        Err(e) => noted(bulk_error(&e), "bulk-download", Some(&principal.name)),
    }
}

pub(super) async fn confirm(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    let principal = match who(&state, facts(&req)).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let resp = match state.jobs.confirm(&principal, id).await {
        Ok(()) => json_response(
            StatusCode::OK,
            &serde_json::json!({"id": id, "confirmed": true}),
        ),
        Err(e) => bulk_error(&e),
    };
    noted(resp, "bulk-confirm", Some(&principal.name))
}
