//! The EST operations (RFC 7030 §4) over HTTP.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::body_response;
use super::error::EstError;
use crate::auth::{self, AuthMethod, Principal};
use crate::enroll::{EnrollError, EnrollRequest, Outcome, Renewing};
use crate::est::{self, Csr, Operation};
use crate::model::{ConnInfo, RequestMeta};
use crate::policy::{AuthScheme, Template};
use crate::web::{AppState, AuditNote, RequestId};

pub(super) async fn without_label(
    State(state): State<Arc<AppState>>,
    Path(op): Path<String>,
    req: Request,
) -> Response {
    handle(state, None, op, req).await
}

pub(super) async fn with_label(
    State(state): State<Arc<AppState>>,
    Path((label, op)): Path<(String, String)>,
    req: Request,
) -> Response {
    handle(state, Some(label), op, req).await
}

async fn handle(state: Arc<AppState>, label: Option<String>, op: String, req: Request) -> Response {
    let mut note = AuditNote {
        operation: match Operation::from_segment(&op) {
            Some(o) => o.as_str().to_string(),
            None => "unknown".to_string(),
        },
        // stored bounded (a label is at most 64 characters; more is not a label)
        label: label.as_deref().map(|l| super::truncate(l, 64).to_string()),
        principal: crate::web::claimed_user(req.headers()),
        ..AuditNote::default()
    };
    // identifiers are refused at the door when they hold control characters
    let bad_label = label.as_deref().is_some_and(crate::fields::has_control);
    let bad_user = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| auth::parse_basic(v.as_bytes()).ok().flatten())
        .is_some_and(|(u, _)| crate::fields::has_control(&u));
    let checked = if bad_label {
        Err(EstError::BadRequest(
            "The CA label is invalid. Cannot contain control characters".into(),
        ))
    } else if bad_user {
        Err(EstError::BadRequest(
            "The user name is invalid. Cannot contain control characters".into(),
        ))
    } else {
        Ok(())
    };
    let template = state.templates.get(label.as_deref());
    let result = match checked {
        Ok(()) => dispatch(&state, label, &op, req, &mut note).await,
        Err(e) => Err(e),
    };
    let mut resp = match result {
        Ok(resp) => resp,
        Err(err) => {
            note.reason = Some(err.to_string());
            err.into_response()
        }
    };
    if resp.status() == StatusCode::UNAUTHORIZED
        && let Some(t) = template
    {
        challenge(&t, resp.headers_mut());
    }
    resp.extensions_mut().insert(note);
    resp
}

/// A 401's `WWW-Authenticate` headers, one per scheme the template takes, in its `auth`
/// order: libest answers the first (`Bearer` first makes it send its token).
fn challenge(template: &Template, headers: &mut axum::http::HeaderMap) {
    headers.remove(header::WWW_AUTHENTICATE);
    let mut basic = false;
    for a in &template.auth {
        let value = match a {
            AuthScheme::Basic | AuthScheme::Code if !basic => {
                basic = true;
                "Basic realm=\"estd\""
            }
            AuthScheme::Bearer => "Bearer realm=\"estd\"",
            _ => continue,
        };
        headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::WWW_AUTHENTICATE) {
        // (a template for IDevIDs only: still a challenge, as HTTP wants one on a 401)
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"estd\""),
        );
    }
}

async fn dispatch(
    state: &AppState,
    label: Option<String>,
    op: &str,
    req: Request,
    note: &mut AuditNote,
) -> Result<Response, EstError> {
    let operation = Operation::from_segment(op).ok_or_else(|| {
        EstError::NotFound(format!(
            "unknown EST operation {:?}",
            super::truncate(op, 64)
        ))
    })?;
    let template = state.templates.get(label.as_deref()).ok_or_else(|| {
        EstError::NotFound(format!(
            "unknown CA label {:?}",
            super::truncate(label.as_deref().unwrap_or_default(), 64)
        ))
    })?;
    let want = match operation.method() {
        "GET" => Method::GET,
        _ => Method::POST,
    };
    // HEAD is GET without a body (hyper drops the body for us).
    if req.method() != want && !(want == Method::GET && req.method() == Method::HEAD) {
        return Err(EstError::MethodNotAllowed {
            method: req.method().to_string(),
            allow: operation.method(),
        });
    }
    match operation {
        Operation::CaCerts => match state.enroll.upstream_of(&template)? {
            // the CA that signs this label's certificates is the upstream's
            Some(up) => {
                let chain = up.chain();
                if chain.is_empty() {
                    return Err(EstError::UpstreamUnavailable {
                        retry_after: 30,
                        detail: format!(
                            "the CA certificates of the upstream {} are not loaded yet",
                            up.name()
                        ),
                    });
                }
                let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
                let der = est::certs_only(&refs)?;
                Ok(body_response(
                    est::CT_CACERTS,
                    Bytes::from(est::encode_body(&der)),
                ))
            }
            None => Ok(body_response(est::CT_CACERTS, state.cacerts_body.clone())),
        },
        Operation::CsrAttrs => Ok(body_response(
            est::CT_CSRATTRS,
            state
                .csrattrs_bodies
                .get(&template.name)
                .cloned()
                .unwrap_or_default(),
        )),
        Operation::FullCmc => Err(EstError::NotImplemented(
            "fullcmc is not supported by this server".into(),
        )),
        Operation::SimpleEnroll | Operation::SimpleReenroll | Operation::ServerKeygen => {
            enroll(state, label, operation, &template, req, note).await
        }
    }
}

/// HTTP Basic, throttled by the enrollment service (429 for a (user, address) pair with
/// repeated failures or a slowed address's early check; 503 at the bound on password
/// checks).
async fn basic_auth(
    state: &AppState,
    user: &str,
    password: &str,
    peer: &str,
) -> Result<Principal, EstError> {
    Ok(state
        .enroll
        .authenticate_basic(user, password, peer)
        .await?)
}

async fn enroll(
    state: &AppState,
    label: Option<String>,
    operation: Operation,
    template: &Template,
    req: Request,
    note: &mut AuditNote,
) -> Result<Response, EstError> {
    let (parts, body) = req.into_parts();
    let (meta, conn, client_leaf, who) =
        match admit(state, label, operation, template, &parts, note).await {
            Ok(a) => a,
            Err(e) => {
                // answered before the body was read: take it first (see `drain`)
                drain(body).await;
                return Err(e);
            }
        };
    let body = read_body(body, &parts.headers, state.max_body).await?;
    let der = est::decode_body(&body)?;
    let csr = Csr::parse(&der)?;
    let used_by = code_use(&meta);
    let (principal, effective) = identify(state, template, who, &csr, &used_by, &meta).await?;
    note.principal = Some(principal.name.clone());
    let template = effective.as_ref().unwrap_or(template);
    let renewing = match operation {
        Operation::SimpleReenroll => client_leaf.as_deref().map(|cert_der| Renewing { cert_der }),
        _ => None,
    };
    let outcome = state
        .enroll
        .enroll(EnrollRequest {
            meta: &meta,
            op: operation.as_str(),
            description: "",
            principal: &principal,
            template,
            csr: &csr,
            renewing,
            exporter: conn
                .as_ref()
                .and_then(|c| c.exporter.as_ref())
                .map(|e| &e[..]),
            server_keygen: operation == Operation::ServerKeygen,
            job_item: None,
            vars: None,
        })
        .await;
    // a refused request leaves its enrollment code unused, to be sent again
    if let (Err(_), AuthMethod::Code { id: Some(id), .. }) = (&outcome, &principal.method) {
        state.enroll.release_code(*id, &used_by).await;
    }
    match outcome? {
        Outcome::Issued(issued) => {
            note.serial = Some(issued.serial);
            note.recorded = issued.fresh;
            let pkcs7 = est::certs_only(&[&issued.der])?;
            if operation != Operation::ServerKeygen {
                return Ok(body_response(
                    est::CT_CERTS_ONLY,
                    Bytes::from(est::encode_body(&pkcs7)),
                ));
            }
            let key = issued.key_pkcs8.ok_or_else(|| EstError::Internal {
                public: "internal error: no generated key".into(),
                detail: "serverkeygen issued a certificate without a generated key".into(),
            })?;
            let boundary = est::multipart::new_boundary()?;
            let body = est::multipart::serverkeygen_body(&boundary, &key, &pkcs7);
            let ct =
                HeaderValue::from_str(&est::multipart::content_type(&boundary)).map_err(|e| {
                    EstError::Internal {
                        public: "internal error encoding the response".into(),
                        detail: e.to_string(),
                    }
                })?;
            let mut resp = Bytes::from(body).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            Ok(resp)
        }
        Outcome::Pending { id, retry_after } => {
            let secs = retry_after.as_secs().max(1);
            note.reason = Some(format!("request {id} waits for manual approval"));
            let mut resp = (
                StatusCode::ACCEPTED,
                format!(
                    "The certificate request {id} is waiting for approval; repeat it after {secs} seconds\n"
                ),
            )
                .into_response();
            let h = resp.headers_mut();
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(resp)
        }
    }
}

/// Who is asking, as far as it is known before the body is read.
enum Who {
    Known(Principal),
    /// A Basic password on a template that takes enrollment codes: a code (its user name
    /// the code's id or CN) or, when the template takes passwords too, a user's password.
    CodeOrPassword {
        user: String,
        password: zeroize::Zeroizing<String>,
    },
    /// No credentials on a template that takes codes: the CSR's challengePassword.
    CsrCode,
}

/// What a request that uses an enrollment code is recorded as: `est:<request id>`.
fn code_use(meta: &RequestMeta) -> String {
    let id = if meta.request_id.is_empty() {
        // (the request-id layer always sets one; never share an empty one)
        let mut b = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut b);
        est::hex(&b)
    } else {
        meta.request_id.clone()
    };
    format!("{}{id}", crate::enroll::codes::EST_USE)
}

/// The principal once the CSR is read: a code is checked against the names it is bound to.
/// Also the template to apply when a code's binding stands for its CN rule.
async fn identify(
    state: &AppState,
    template: &Template,
    who: Who,
    csr: &Csr,
    used_by: &str,
    meta: &RequestMeta,
) -> Result<(Principal, Option<Template>), EstError> {
    let takes_passwords = template.auth.contains(&AuthScheme::Basic);
    let code = |secret: String, claimed: Option<String>| async move {
        state
            .enroll
            .authenticate_code(
                template,
                &secret,
                csr,
                used_by,
                claimed.as_deref(),
                claimed.is_some() && takes_passwords,
                &meta.peer,
            )
            .await
    };
    match who {
        Who::Known(p) => Ok((p, None)),
        Who::CodeOrPassword { user, password } => {
            match code(password.to_string(), Some(user.clone())).await? {
                Some(found) => Ok(found),
                None => Ok((basic_auth(state, &user, &password, &meta.peer).await?, None)),
            }
        }
        Who::CsrCode => match csr.challenge_password.clone() {
            Some(secret) => code(secret, None).await?.ok_or_else(|| {
                EstError::Unauthorized("the enrollment code is not one this server issued".into())
            }),
            None => Err(EstError::Unauthorized(no_credentials(template))),
        },
    }
}

/// The 401's text for a request without credentials: what this template takes.
fn no_credentials(template: &Template) -> String {
    let mut ways: Vec<&str> = template
        .auth
        .iter()
        .map(|a| match a {
            AuthScheme::Basic => "HTTP Basic credentials",
            AuthScheme::Code => {
                "an enrollment code (the Basic password, or the CSR's challengePassword)"
            }
            AuthScheme::Bearer => "a bearer token",
        })
        .collect();
    if template.vendor.is_some() {
        ways.push("the device's manufacturer certificate (IDevID) as the TLS client certificate");
    }
    format!("this operation needs {}", ways.join(", or "))
}

/// What an enrollment must pass before its body is read: the media type and the
/// authentication (Basic; the TLS client certificate for a renewal; a manufacturer
/// certificate on a template that trusts its vendor), or what the body must bring (an
/// enrollment code).
async fn admit(
    state: &AppState,
    label: Option<String>,
    operation: Operation,
    template: &Template,
    parts: &axum::http::request::Parts,
    note: &mut AuditNote,
) -> Result<(RequestMeta, Option<ConnInfo>, Option<Vec<u8>>, Who), EstError> {
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !est::is_pkcs10(ct) {
        return Err(EstError::UnsupportedMediaType(format!(
            "Content-Type must be {} (got {:?})",
            est::CT_PKCS10,
            super::truncate(ct, 100)
        )));
    }
    let conn = parts.extensions.get::<ConnInfo>().cloned();
    let meta = RequestMeta {
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        peer: conn
            .as_ref()
            .map_or_else(|| "unknown".into(), |c| c.peer.to_string()),
        label,
    };
    let authorization = parts.headers.get(header::AUTHORIZATION);
    let basic = match authorization {
        Some(v) => {
            auth::parse_basic(v.as_bytes()).map_err(|e| EstError::Unauthorized(e.to_string()))?
        }
        None => None,
    };
    let bearer = authorization.and_then(|v| auth::parse_bearer(v.as_bytes()));
    let client_leaf = conn
        .as_ref()
        .and_then(|c| c.client_chain.as_ref())
        .and_then(|chain| chain.first().cloned());

    let takes_basic = template.auth.contains(&AuthScheme::Basic);
    let takes_codes = template.auth.contains(&AuthScheme::Code);
    let principal: Principal = match operation {
        Operation::SimpleReenroll => {
            let Some(leaf) = client_leaf.as_deref() else {
                return Err(EstError::Unauthorized(
                    "re-enrollment needs the certificate being renewed as the TLS client certificate".into(),
                ));
            };
            if let Some((user, password)) = &basic
                && takes_basic
            {
                // libest sends Basic credentials too: when present they must be right.
                basic_auth(state, user, password, &meta.peer).await?;
            }
            match state.enroll.authenticate_certificate(leaf).await {
                Ok(p) => p,
                Err(e) => {
                    // audited like every renewal, under the certificate's owner; under its
                    // subject when the store does not know it (the reason names it anyway)
                    note.principal =
                        match crate::enroll::certificate_owner(state.store.as_ref(), leaf).await {
                            Some(owner) => Some(owner),
                            None => crate::enroll::subject_of(leaf),
                        };
                    return Err(e.into());
                }
            }
        }
        _ if bearer.is_some() => match bearer {
            Some(token) if template.auth.contains(&AuthScheme::Bearer) => {
                state.enroll.authenticate_bearer(token)?
            }
            _ => {
                return Err(EstError::Unauthorized(format!(
                    "the certificate template {} takes no bearer tokens: {}",
                    template.name,
                    no_credentials(template)
                )));
            }
        },
        _ => match (&basic, conn.as_ref().and_then(|c| c.client_chain.as_ref())) {
            (Some((user, password)), _) if takes_codes => {
                return Ok((
                    meta,
                    conn,
                    client_leaf,
                    Who::CodeOrPassword {
                        user: user.clone(),
                        password: zeroize::Zeroizing::new(password.clone()),
                    },
                ));
            }
            (Some((user, password)), _) if takes_basic => {
                basic_auth(state, user, password, &meta.peer).await?
            }
            (Some(_), _) => {
                return Err(EstError::Unauthorized(format!(
                    "the certificate template {} takes no passwords: {}",
                    template.name,
                    no_credentials(template)
                )));
            }
            (None, Some(chain)) if template.vendor.is_some() => {
                match state.enroll.authenticate_device(chain, template).await {
                    Ok(p) => p,
                    Err(e) => {
                        // audited under the device's serial, or the certificate's subject
                        note.principal = match &e {
                            EnrollError::DeviceRefused(r) => r.serial().map(auth::device_requester),
                            _ => None,
                        }
                        .or_else(|| client_leaf.as_deref().and_then(crate::enroll::subject_of));
                        return Err(e.into());
                    }
                }
            }
            (None, _) if takes_codes => return Ok((meta, conn, client_leaf, Who::CsrCode)),
            (None, _) => return Err(EstError::Unauthorized(no_credentials(template))),
        },
    };
    note.principal = Some(principal.name.clone());

    Ok((meta, conn, client_leaf, Who::Known(principal)))
}

/// At most this much of a refused request's body is read and thrown away.
const DRAIN_MAX: usize = 1024 * 1024;

/// Reads and discards what the client is still sending (at most `DRAIN_MAX`, for at most
/// 2 s) before an early error answer: a client that writes its whole body before reading
/// (curl over HTTP/2) otherwise sees the stream reset instead of the answer.
async fn drain(mut body: Body) {
    use http_body_util::BodyExt;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > DRAIN_MAX {
                break;
            }
        }
    })
    .await;
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub(super) async fn read_body(
    body: Body,
    headers: &axum::http::HeaderMap,
    limit: usize,
) -> Result<Bytes, EstError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        drain(body).await;
        return Err(EstError::PayloadTooLarge { limit });
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let source = std::error::Error::source(&e);
            let too_large = source.is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_large {
                Err(EstError::PayloadTooLarge { limit })
            } else {
                Err(EstError::BadRequest(format!(
                    "could not read the request body: {e}"
                )))
            }
        }
    }
}
