//! SCEP (RFC 8894) over HTTP: `/scep/<template>`, `/scep` (the default template) and
//! `/cgi-bin/pkiclient.exe` (which many devices hard-code), with `?operation=GetCACaps`,
//! `GetCACert` or `PKIOperation` (GET with `message=` in base64, or POST with the DER
//! body, whatever its Content-Type). The message itself is `service::scep`'s.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::error::EstError;
use crate::model::{ConnInfo, RequestMeta};
use crate::service::scep::{CAPS, Refusal};
use crate::web::{AppState, AuditNote, RequestId};

pub const CT_CACAPS: &str = "text/plain";
pub const CT_CA_RA_CERT: &str = "application/x-x509-ca-ra-cert";
pub use crate::scep_wire::operations::CT_PKI_MESSAGE;

/// The SCEP paths, for the TLS router and the plain-HTTP listener.
pub fn routes() -> axum::Router<Arc<AppState>> {
    use axum::routing::any;
    axum::Router::new()
        .route("/scep", any(default_template))
        .route("/cgi-bin/pkiclient.exe", any(default_template))
        .route("/scep/{template}", any(with_template))
        .route("/scep/{template}/pkiclient.exe", any(with_template))
        .route("/scep/{template}/cgi-bin/pkiclient.exe", any(with_template))
}

async fn default_template(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, None, req).await
}

async fn with_template(
    State(state): State<Arc<AppState>>,
    Path(template): Path<String>,
    req: Request,
) -> Response {
    handle(state, Some(template), req).await
}

async fn handle(state: Arc<AppState>, template: Option<String>, req: Request) -> Response {
    let params: HashMap<String, String> =
        axum::extract::Query::try_from_uri(req.uri()).map_or_else(|_| HashMap::new(), |q| q.0);
    let operation = params.get("operation").cloned().unwrap_or_default();
    let mut note = AuditNote {
        operation: match operation.to_ascii_lowercase().as_str() {
            "getcacaps" => "scep-getcacaps",
            "getcacert" => "scep-getcacert",
            "pkioperation" => "scep",
            _ => "scep-unknown",
        }
        .to_string(),
        label: template
            .as_deref()
            .map(|t| super::truncate(t, 64).to_string()),
        ..AuditNote::default()
    };
    let mut resp = match dispatch(&state, template, &operation, params, req, &mut note).await {
        Ok(r) => r,
        Err(e) => {
            note.reason = Some(e.to_string());
            e.into_response()
        }
    };
    resp.extensions_mut().insert(note);
    resp
}

async fn dispatch(
    state: &AppState,
    template: Option<String>,
    operation: &str,
    params: HashMap<String, String>,
    req: Request,
    note: &mut AuditNote,
) -> Result<Response, EstError> {
    let Some(scep) = &state.scep else {
        return Err(EstError::NotFound("SCEP is not served here".into()));
    };
    if template.as_deref().is_some_and(crate::fields::has_control) {
        return Err(EstError::BadRequest(
            "The template name is invalid. Cannot contain control characters".into(),
        ));
    }
    let Some(t) = state.templates.get(template.as_deref()) else {
        return Err(EstError::NotFound(format!(
            "unknown certificate template {:?}",
            super::truncate(template.as_deref().unwrap_or_default(), 64)
        )));
    };
    if !t.scep {
        return Err(EstError::NotFound(format!(
            "the certificate template {} does not serve SCEP",
            t.name
        )));
    }
    let meta = RequestMeta {
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        peer: req
            .extensions()
            .get::<ConnInfo>()
            .map_or_else(|| "unknown".into(), |c| c.peer.to_string()),
        label: Some(t.name.clone()),
    };
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    if !get && method != Method::POST {
        return Err(EstError::MethodNotAllowed {
            method: method.to_string(),
            allow: "GET, POST",
        });
    }
    match operation.to_ascii_lowercase().as_str() {
        "getcacaps" => Ok(typed(CT_CACAPS, Bytes::from_static(CAPS.as_bytes()))),
        "getcacert" => Ok(typed(
            CT_CA_RA_CERT,
            Bytes::copy_from_slice(scep.ca_certs()),
        )),
        "getnextcacert" => Err(EstError::NotFound(
            "no CA rollover is configured (GetNextCACert)".into(),
        )),
        "pkioperation" => {
            let msg = if get {
                let Some(m) = params.get("message") else {
                    return Err(EstError::BadRequest(
                        "PKIOperation by GET needs the message parameter".into(),
                    ));
                };
                lenient_base64(m).ok_or_else(|| {
                    EstError::BadRequest("the message parameter is not base64".into())
                })?
            } else {
                let (parts, body) = req.into_parts();
                super::est::read_body(body, &parts.headers, state.max_body)
                    .await?
                    .to_vec()
            };
            pki_operation(scep, meta, &t, &msg, note).await
        }
        "" => Err(EstError::BadRequest(
            "the operation parameter is missing (GetCACaps, GetCACert, PKIOperation)".into(),
        )),
        other => Err(EstError::BadRequest(format!(
            "unknown SCEP operation {:?}",
            super::truncate(other, 64)
        ))),
    }
}

async fn pki_operation(
    scep: &crate::service::scep::ScepService,
    meta: RequestMeta,
    template: &crate::policy::Template,
    msg: &[u8],
    note: &mut AuditNote,
) -> Result<Response, EstError> {
    match scep.operation(&meta, template, msg).await {
        Ok(reply) => {
            let a = reply.audit;
            note.operation = a.operation.to_string();
            note.principal = a.principal;
            note.reason = a.reason;
            note.serial = a.serial;
            note.recorded = a.recorded;
            note.failed = a.failed;
            Ok(typed(CT_PKI_MESSAGE, Bytes::from(reply.cert_rep)))
        }
        Err(Refusal::Malformed(reason)) => Err(EstError::BadRequest(format!(
            "not a SCEP message: {reason}"
        ))),
        Err(Refusal::Unavailable {
            reason,
            retry_after,
        }) => {
            note.reason = Some(reason.clone());
            let mut resp = (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            Ok(resp)
        }
        Err(Refusal::Throttled { retry_after }) => {
            note.reason = Some(format!(
                "too many wrong challenges; retry after {retry_after} s"
            ));
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many wrong challenge passwords; try again in {retry_after} seconds\n"),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            Ok(resp)
        }
        Err(Refusal::Internal(detail)) => Err(EstError::Internal {
            public: "internal error answering the SCEP message".into(),
            detail,
        }),
    }
}

/// A body with its exact media type (SCEP clients compare them).
fn typed(content_type: &'static str, body: Bytes) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The `message` of a GET, as clients write it: standard or URL-safe base64, with or
/// without padding, with line breaks, `+` turned into a space by a form decoder.
pub fn lenient_base64(m: &str) -> Option<Vec<u8>> {
    let mut s: String = m
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('+'),
            '-' => Some('+'),
            '_' => Some('/'),
            '\r' | '\n' | '\t' => None,
            c => Some(c),
        })
        .collect();
    let s_trim = s.trim_end_matches('=').len();
    s.truncate(s_trim);
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.as_bytes())
        .ok()
        .filter(|d| !d.is_empty())
}
