//! The HTTP adapter for devices and programs: EST under `/.well-known/est/` and the JSON API
//! under `/api/v1/`, behind the shared request-id and audit layer (`web`). Parses a
//! request, calls `enroll` or a service, renders the answer; `error.rs` turns errors into
//! statuses.

pub mod bulk;
pub mod certs;
mod challenges;
mod devices;
mod error;
mod est;
pub mod health;
mod json;
pub mod revocation;
pub mod scep;

pub use error::EstError;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::web::{AppState, AuditNote, audit_layer, truncate};

pub fn router(state: Arc<AppState>) -> Router {
    router_with(state, Router::new())
}

/// The EST and API routes plus `extra` (the portal), all behind the request-id and audit
/// layer.
pub fn router_with(state: Arc<AppState>, extra: Router<Arc<AppState>>) -> Router {
    Router::new()
        .merge(extra)
        .merge(scep::routes())
        .route("/.well-known/est/{op}", any(est::without_label))
        .route("/.well-known/est/{label}/{op}", any(est::with_label))
        .route(
            "/api/v1/certificates",
            axum::routing::post(json::certificates).get(certs::list),
        )
        .route(
            "/api/v1/certificates/{serial}",
            axum::routing::get(certs::show),
        )
        .route(
            "/api/v1/certificates/{serial}/revoke",
            axum::routing::post(certs::revoke),
        )
        .route(
            "/api/v1/certificates/csr",
            axum::routing::post(json::certificates_csr),
        )
        .route(
            "/api/v1/scep/challenges",
            axum::routing::post(challenges::issue).get(challenges::list),
        )
        .route(
            "/api/v1/scep/challenges/{id}/revoke",
            axum::routing::post(challenges::revoke),
        )
        .route(
            "/api/v1/codes",
            axum::routing::post(challenges::issue_codes).get(challenges::list),
        )
        .route(
            "/api/v1/codes/{id}/revoke",
            axum::routing::post(challenges::revoke),
        )
        .route(
            "/api/v1/devices",
            axum::routing::post(devices::put).get(devices::list),
        )
        .route(
            "/api/v1/devices/{template}/{serial}/remove",
            axum::routing::post(devices::remove),
        )
        .route(
            "/api/v1/test-certificate",
            axum::routing::post(json::test_certificate),
        )
        .route(
            "/api/v1/bulk/template.csv",
            axum::routing::get(bulk::template_csv),
        )
        .route(
            "/api/v1/bulk",
            axum::routing::post(bulk::submit)
                .layer(axum::extract::DefaultBodyLimit::max(crate::web::MAX_UPLOAD)),
        )
        .route("/api/v1/bulk/{id}", axum::routing::get(bulk::status))
        .route(
            "/api/v1/bulk/{id}/cancel",
            axum::routing::post(bulk::cancel),
        )
        .route(
            "/api/v1/bulk/{id}/download",
            axum::routing::get(bulk::download),
        )
        .route(
            "/api/v1/bulk/{id}/confirm",
            axum::routing::post(bulk::confirm),
        )
        // a person typing the host expects the portal
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/portal/") }),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), audit_layer))
        .with_state(state)
}

/// The SCEP paths alone, behind the request-id and audit layer: the plain-HTTP listener
/// (`scep.listen`).
pub fn scep_router(state: Arc<AppState>) -> Router {
    scep::routes()
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), audit_layer))
        .with_state(state)
}

async fn not_found(req: Request) -> Response {
    let path = req.uri().path();
    let mut note = AuditNote::default();
    if path.starts_with("/.well-known/est/") || path == "/.well-known/est" {
        note.operation = "unknown".into();
    }
    let err = EstError::NotFound(format!("no such path: {}", truncate(path, 200)));
    note.reason = Some(err.to_string());
    let mut resp = err.into_response();
    resp.extensions_mut().insert(note);
    resp
}

/// A plain response with a body already encoded.
pub(crate) fn body_response(content_type: &'static str, body: Bytes) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    h.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    resp
}
