//! The plain-HTTP routes of revocation: the CRL and the OCSP responder (GET and POST),
//! served on `revocation.listen`. The answers are made by `revocation::RevocationService`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::ca::ocsp::{self, Refusal};
use crate::revocation::{CA_NAME, MAX_OCSP_REQUEST, RevocationService};

/// The routes, with the service as their state.
pub fn routes(service: Arc<RevocationService>) -> Router {
    Router::new()
        .route("/crl/{file}", get(crl))
        .route("/ocsp", axum::routing::post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .layer(DefaultBodyLimit::max(MAX_OCSP_REQUEST))
        .with_state(service)
}

async fn crl(State(s): State<Arc<RevocationService>>, UrlPath(file): UrlPath<String>) -> Response {
    if file != format!("{CA_NAME}.crl") {
        return (StatusCode::NOT_FOUND, "no such CRL\n").into_response();
    }
    match s.crl().await {
        Ok(der) => der_response("application/pkix-crl", der),
        Err(e) => {
            tracing::error!(error = %e, "cannot serve the CRL");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the CRL cannot be signed right now\n",
            )
                .into_response()
        }
    }
}

/// A DER body with its media type (no Content-Transfer-Encoding: these are not EST).
fn der_response(content_type: &'static str, der: impl Into<Bytes>) -> Response {
    let mut r = der.into().into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn ocsp_response(der: Vec<u8>) -> Response {
    der_response(ocsp::CT_RESPONSE, der)
}

async fn ocsp_post(
    State(s): State<Arc<RevocationService>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !crate::web::media_type_is(&headers, ocsp::CT_REQUEST) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {}\n", ocsp::CT_REQUEST),
        )
            .into_response();
    }
    ocsp_response(s.ocsp(&body).await)
}

/// RFC 6960 appendix A.1: GET `{url}/{url-encoding of base-64 encoding of the DER request}`.
async fn ocsp_get(
    State(s): State<Arc<RevocationService>>,
    UrlPath(request): UrlPath<String>,
) -> Response {
    use base64::Engine;
    if request.len() > MAX_OCSP_REQUEST * 2 {
        return ocsp_response(ocsp::refusal(Refusal::MalformedRequest));
    }
    // the path is already percent-decoded; some clients send '+' and '/' unencoded
    let b64: String = request.chars().filter(|c| !c.is_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
        Ok(der) => ocsp_response(s.ocsp(&der).await),
        Err(_) => ocsp_response(ocsp::refusal(Refusal::MalformedRequest)),
    }
}
