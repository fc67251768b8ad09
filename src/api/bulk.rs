//! The bulk calls of the JSON API (DESIGN.md §5): the CSV template, submit (multipart),
//! status, cancel, download, confirm. HTTP Basic or the portal's session cookie.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::json::{authenticate, json_response};
use super::{AppState, AuditNote};
use crate::auth::Principal;
use crate::jobs::{BulkError, JobStatus};
use crate::model::ConnInfo;
use crate::web::{json_error, read_submission, status_of_bulk, zip_response};

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

fn bulk_error(e: &BulkError) -> Response {
    let (status, code) = status_of_bulk(e);
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
    // a job runs later as its owner's account, which a bearer token's user does not have
    if principal.method == crate::auth::AuthMethod::Bearer {
        let r = crate::web::json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "bulk jobs run as a local account: a bearer token's user has none (use Basic or the portal)",
        );
        return noted(r, "bulk-submit", Some(&principal.name));
    }
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
