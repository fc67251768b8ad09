//! The JSON API's single-certificate calls (DESIGN.md §5). Authenticated by HTTP Basic or
//! the portal's session cookie; errors are `{"error": <field or code>, "message": <text>}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::{self, Principal};
use crate::model::{ConnInfo, RequestMeta};
use crate::service::single::{self, SingleRequest};
use crate::service::testcert;
use crate::web::{AppState, AuditNote, RequestId, json_error, session, zip_response};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributesBody {
    template: String,
    common_name: String,
    #[serde(default)]
    san: String,
    #[serde(default)]
    description: String,
    format: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CsrBody {
    template: String,
    csr_pem: String,
    #[serde(default)]
    description: String,
    format: String,
    password: String,
}

pub(super) async fn certificates(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, req, false).await
}

pub(super) async fn certificates_csr(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, req, true).await
}

async fn handle(state: Arc<AppState>, req: Request, csr: bool) -> Response {
    let op = if csr { "api-csr" } else { "api-single" };
    let mut note = AuditNote {
        operation: op.to_string(),
        ..AuditNote::default()
    };
    let result = inner(&state, req, csr, op, &mut note).await;
    finish(result, note)
}

/// The response, or the JSON error with its reason in the audit note.
pub(super) fn finish(result: Result<Response, ApiError>, mut note: AuditNote) -> Response {
    let mut resp = match result {
        Ok(r) => r,
        Err((status, code, message, detail)) => {
            note.reason = Some(match detail {
                Some(d) => format!("{message} ({d})"),
                None => message.clone(),
            });
            json_error(status, &code, &message)
        }
    };
    resp.extensions_mut().insert(note);
    resp
}

pub(crate) type ApiError = (StatusCode, String, String, Option<String>);

/// The header a cookie-authenticated write carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub(super) fn err(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
    (status, code.to_string(), message.into(), None)
}

/// A store failure: 503 (`Retry-After` from the message) while the database is out of reach
/// for a moment, else 500; the error itself only as the detail for the log and audit.
pub(crate) fn store_error(e: &crate::store::StoreError) -> ApiError {
    if e.is_unavailable() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable".into(),
            crate::store::StoreError::unavailable_message(),
            Some(e.to_string()),
        )
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal".into(),
            "internal error: the certificate store is unavailable".into(),
            Some(e.to_string()),
        )
    }
}

/// Basic credentials, a bearer token or a session cookie → the principal.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    peer: &str,
    method: &axum::http::Method,
) -> Result<Principal, ApiError> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        if let Some(token) = auth::parse_bearer(v.as_bytes()) {
            return state
                .enroll
                .authenticate_bearer(token)
                .map_err(|e| err(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()));
        }
        let Some((user, password)) = auth::parse_basic(v.as_bytes())
            .map_err(|e| err(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))?
        else {
            return Err(err(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "use HTTP Basic, a bearer token or the portal's session",
            ));
        };
        if crate::fields::has_control(&user) {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The user name is invalid. Cannot contain control characters",
            ));
        }
        return match state
            .enroll
            .authenticate_basic(&user, &password, peer)
            .await
        {
            Ok(p) => Ok(p),
            Err(e @ crate::enroll::EnrollError::Throttled { .. }) => Err(err(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                e.to_string(),
            )),
            Err(e @ crate::enroll::EnrollError::Busy { .. }) => {
                Err(err(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()))
            }
            // the user could not be looked up: not a wrong password
            Err(crate::enroll::EnrollError::Store(e)) => Err(store_error(&e)),
            Err(e) => Err(err(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())),
        };
    }
    match session::load(state, headers).await {
        // A write with the portal's cookie must carry the session's CSRF token: the cookie
        // alone is sent by a browser to any page that posts here (SameSite=Strict stops other
        // sites, not a sibling sub-domain).
        Ok(Some(s))
            if !matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD)
                && !session::csrf_ok(
                    &s.csrf,
                    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()),
                ) =>
        {
            Err(err(
                StatusCode::FORBIDDEN,
                "csrf",
                "A request authenticated by the portal's session must carry its CSRF token in the X-CSRF-Token header",
            ))
        }
        Ok(Some(s)) => Ok(s.principal),
        Ok(None) => Err(err(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "HTTP Basic credentials or a portal session are needed",
        )),
        Err(e) => Err(store_error(&e)),
    }
}

/// What every JSON call starts with: a JSON content type, an authenticated principal, a
/// bounded body, and the request's id and peer.
pub(super) struct Prelude {
    pub(super) principal: Principal,
    pub(super) body: Bytes,
    pub(super) request_id: String,
    pub(super) peer: String,
}

pub(super) async fn prelude(
    state: &Arc<AppState>,
    req: Request,
    note: &mut AuditNote,
) -> Result<Prelude, ApiError> {
    let (parts, body) = req.into_parts();
    if !crate::web::media_type_is(&parts.headers, "application/json") {
        return Err(err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ));
    }
    let peer = parts
        .extensions
        .get::<ConnInfo>()
        .map_or_else(|| "unknown".to_string(), |c| c.peer.to_string());
    note.principal = crate::web::claimed_user(&parts.headers);
    let principal = authenticate(state, &parts.headers, &peer, &parts.method).await?;
    note.principal = Some(principal.name.clone());
    let body = super::est::read_body(body, &parts.headers, state.max_body)
        .await
        .map_err(|e| err(e.status(), "bad_request", e.public_message()))?;
    Ok(Prelude {
        principal,
        body,
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        peer,
    })
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid JSON body: {e}"),
        )
    })
}

async fn inner(
    state: &Arc<AppState>,
    req: Request,
    csr: bool,
    op: &'static str,
    note: &mut AuditNote,
) -> Result<Response, ApiError> {
    let Prelude {
        principal,
        body,
        request_id,
        peer,
    } = prelude(state, req, note).await?;
    let request = if csr {
        let b: CsrBody = parse_json(&body)?;
        SingleRequest {
            template: b.template,
            csr_pem: Some(b.csr_pem),
            description: b.description,
            format: b.format,
            password: b.password,
            ..SingleRequest::default()
        }
    } else {
        let b: AttributesBody = parse_json(&body)?;
        SingleRequest {
            template: b.template,
            common_name: b.common_name,
            san: b.san,
            description: b.description,
            format: b.format,
            password: b.password,
            csr_pem: None,
        }
    };
    let meta = RequestMeta {
        request_id,
        peer,
        label: Some(request.template.clone()),
    };
    note.label = meta.label.clone();
    match single::issue_single(&state.ctx(), &meta, &principal, &request, op).await {
        Ok(z) => {
            note.serial = Some(z.serial);
            note.recorded = true;
            Ok(zip_response(&z.file_name, z.zip))
        }
        Err(e) => Err(super::error::single_error(e)),
    }
}

/// `POST /api/v1/test-certificate`: the MDM connector's test (see `testcert`). The answer is
/// JSON: the certificate, its key and the CA chain in PEM, or the usual JSON error.
pub(super) async fn test_certificate(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let mut note = AuditNote {
        operation: testcert::OPERATION.to_string(),
        ..AuditNote::default()
    };
    let result = async {
        let Prelude {
            principal,
            body,
            request_id,
            peer,
        } = prelude(&state, req, &mut note).await?;
        let request: testcert::TestRequest = parse_json(&body)?;
        let meta = RequestMeta {
            request_id,
            peer,
            label: Some(request.template.chars().take(64).collect()),
        };
        note.label = meta.label.clone();
        let t = testcert::issue_test(&state.ctx(), &meta, &principal, &request)
            .await
            .map_err(super::error::single_error)?;
        note.serial = Some(t.serial.clone());
        note.recorded = true;
        let value = serde_json::to_value(&t).map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal".to_string(),
                "internal error encoding the answer".to_string(),
                Some(e.to_string()),
            )
        })?;
        let resp = json_response(StatusCode::OK, &value);
        Ok::<_, ApiError>(resp)
    }
    .await;
    finish(result, note)
}

/// A JSON body with its `Content-Type`, not cached.
pub(super) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut resp = (status, value.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
