//! Issued certificates in the JSON API: list and search, show, revoke. Administrators see and
//! revoke every certificate; others only those they requested (another's is "not found").

use std::sync::Arc;

use super::json::{ApiError, err, finish, json_response, parse_json, prelude};
use super::{AppState, AuditNote};
use crate::model::{ConnInfo, RequestMeta, timestamp};
use crate::revocation::{RevokeError, normalize_serial, reason_name};
use crate::service::certs::{ListQuery, filter_of, status_text};
use crate::store::{CertRecord, RevocationRecord};
use crate::web::json_error;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

pub fn cert_json(c: &CertRecord, r: Option<&RevocationRecord>, now: &str) -> serde_json::Value {
    serde_json::json!({
        "serial": c.serial,
        "status": status_text(c, r, now),
        "subject": c.subject,
        "san": c.san,
        "template": c.template,
        "requester": c.requester,
        "operation": c.operation,
        "not_before": c.not_before,
        "not_after": c.not_after,
        "issued_at": c.issued_at,
        "description": c.description,
        "revocation": r.map(|r| serde_json::json!({
            "revoked_at": r.revoked_at,
            "reason": reason_name(r.reason),
            "reason_code": r.reason,
            "revoked_by": r.revoked_by,
        })),
    })
}

/// The caller (Basic or the portal session), or the JSON error to answer.
async fn who(state: &AppState, req: Request) -> Result<crate::auth::Principal, Response> {
    let peer = req
        .extensions()
        .get::<ConnInfo>()
        .map_or_else(|| "unknown".to_string(), |c| c.peer.to_string());
    let (parts, _) = req.into_parts();
    super::json::authenticate(state, &parts.headers, &peer, &parts.method)
        .await
        .map_err(|(status, code, message, _)| json_error(status, &code, &message))
}

fn store_err(e: &crate::store::StoreError) -> ApiError {
    super::json::store_error(e)
}

/// A store failure as the answer (503 while the database is out of reach, else 500).
fn store_failure(e: &crate::store::StoreError, what: &str) -> Response {
    tracing::error!(error = %e, "{what}");
    let (status, code, message, _) = store_err(e);
    json_error(status, &code, &message)
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
    req: Request,
) -> Response {
    let principal = match who(&state, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let admin = state.enroll.is_admin(&principal);
    let filter = match filter_of(&q, &principal.name, admin) {
        Ok(f) => f,
        Err(m) => return json_error(StatusCode::BAD_REQUEST, "bad_request", &m),
    };
    match state.store.list_certificates(&filter).await {
        Ok(list) => json_response(
            StatusCode::OK,
            &serde_json::json!({
                "certificates": list
                    .iter()
                    .map(|(c, r)| cert_json(c, r.as_ref(), &filter.now))
                    .collect::<Vec<_>>(),
            }),
        ),
        Err(e) => store_failure(&e, "listing certificates"),
    }
}

pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    Path(serial): Path<String>,
    req: Request,
) -> Response {
    let principal = match who(&state, req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let serial = normalize_serial(&serial);
    let not_found = || {
        json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no certificate with serial number {serial}"),
        )
    };
    let found = match state.store.find_certificate(&serial).await {
        Ok(f) => f,
        Err(e) => return store_failure(&e, "reading a certificate"),
    };
    let Some(c) =
        found.filter(|c| state.enroll.is_admin(&principal) || c.requester == principal.name)
    else {
        return not_found();
    };
    let r = state.store.find_revocation(&serial).await.ok().flatten();
    let now = timestamp(std::time::SystemTime::now());
    let mut v = cert_json(&c, r.as_ref(), &now);
    v["pem"] = serde_json::Value::String(crate::est::pem("CERTIFICATE", &c.der));
    json_response(StatusCode::OK, &v)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn revoke(
    State(state): State<Arc<AppState>>,
    Path(serial): Path<String>,
    req: Request,
) -> Response {
    let mut note = AuditNote {
        operation: "revoke".into(),
        ..AuditNote::default()
    };
    let result = revoke_inner(&state, &normalize_serial(&serial), req, &mut note).await;
    finish(result, note)
}

async fn revoke_inner(
    state: &Arc<AppState>,
    serial: &str,
    req: Request,
    note: &mut AuditNote,
) -> Result<Response, ApiError> {
    let p = prelude(state, req, note).await?;
    note.serial = Some(serial.to_string());
    let body: RevokeBody = if p.body.iter().all(u8::is_ascii_whitespace) {
        RevokeBody { reason: None }
    } else {
        parse_json(&p.body)?
    };
    let reason = match body.reason.as_deref() {
        None => 0,
        Some(r) => crate::revocation::parse_reason(r).ok_or_else(|| {
            err(
                StatusCode::BAD_REQUEST,
                "reason",
                format!(
                    "unknown reason {r:?}: expected one of {}",
                    crate::revocation::REASONS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?,
    };
    let service = state.revocation.as_ref().ok_or_else(|| {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "revocation_off",
            "revocation is not enabled on this server (revocation.listen is empty)",
        )
    })?;
    let meta = RequestMeta {
        request_id: p.request_id.clone(),
        peer: p.peer.clone(),
        label: None,
    };
    let admin = state.enroll.is_admin(&p.principal);
    match service
        .revoke(&meta, serial, reason, &p.principal.name, admin)
        .await
    {
        Ok((c, r)) => {
            // the revocation wrote its own audit row
            note.recorded = true;
            note.label = Some(c.template.clone());
            let now = timestamp(std::time::SystemTime::now());
            Ok(json_response(
                StatusCode::OK,
                &cert_json(&c, Some(&r), &now),
            ))
        }
        Err(e) => Err(revoke_error(e)),
    }
}

pub fn revoke_error(e: RevokeError) -> ApiError {
    match e {
        e @ RevokeError::NotFound(_) => err(StatusCode::NOT_FOUND, "not_found", e.to_string()),
        e @ RevokeError::AlreadyRevoked { .. } => {
            err(StatusCode::CONFLICT, "already_revoked", e.to_string())
        }
        e @ RevokeError::Forbidden(_) => err(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
        RevokeError::Store(e) => store_err(&e),
    }
}
