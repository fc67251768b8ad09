//! The certificate provisioning portal (`/portal/`), an HTTP adapter beside `api/`: log in
//! and account (`account.rs`), the certificate forms (`forms.rs`), requests and certificates
//! (`records.rs`), bulk requests (`bulk.rs`); the pages themselves in `pages/`.
//! Server-rendered HTML; the same services, rules and audit as the JSON API and EST.

mod account;
mod bulk;
mod forms;
mod pages;
mod records;
mod scep;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::Deserialize;

use crate::auth::{self, Principal};
use crate::model::{ConnInfo, RequestMeta};
use crate::policy::SanStyle;
use crate::service::single::{self, SingleError, SingleRequest};
use crate::service::{certs, testcert};
use crate::web::{AppState, AuditNote, RequestId, session};
use account::*;
use bulk::*;
use forms::*;
use pages::{CertForm, Errors, RequestFilter, TestForm, Viewer};
use records::*;
use scep::*;

/// What a user outside the portal's identity group is told.
pub const NOT_A_MEMBER: &str = "Your account may not use the Certificate provisioning portal: it must belong to the identity group configured by your administrator. Contact your administrator for support.";
const BAD_LOGIN: &str = "The user name or password is incorrect.";
const EXPIRED_FORM: &str =
    "This form has expired or was not sent by the portal. Reload the page and try again.";
const LOGIN_COOKIE: &str = "estd_login";
const MAX_FORM: usize = 64 * 1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/portal", get(home))
        .route("/portal/", get(home))
        .route("/portal/style.css", get(css))
        .route("/portal/login", get(login_page).post(login_submit))
        .route("/portal/logout", post(logout))
        .route("/portal/password", get(password_page).post(password_submit))
        .route("/portal/single", get(single_page).post(single_submit))
        .route("/portal/csr", get(csr_page).post(csr_submit))
        .route("/portal/test", get(test_page).post(test_submit))
        .route("/portal/requests", get(requests_page))
        .route("/portal/certificates", get(certificates_page))
        .route(
            "/portal/certificates/{serial}/revoke",
            post(certificate_revoke),
        )
        .route("/portal/scep", get(scep_page).post(scep_submit))
        .route("/portal/scep/{id}/revoke", post(scep_revoke))
        .route("/portal/codes", post(codes_submit))
        .route("/portal/bulk.js", get(bulk_js))
        .route("/portal/bulk/status", get(bulk_status))
        .route("/portal/bulk/{id}/cancel", post(bulk_cancel))
        .route("/portal/bulk/{id}/download", get(bulk_download))
        .route("/portal/bulk/{id}/confirm", post(bulk_confirm))
        .layer(DefaultBodyLimit::max(MAX_FORM))
        // the CSV upload may be larger than a form
        .route(
            "/portal/bulk",
            get(bulk_page)
                .post(bulk_submit)
                .layer(DefaultBodyLimit::max(crate::web::MAX_UPLOAD)),
        )
}

/// A form that carries nothing but its CSRF token (log out, cancel, confirm).
#[derive(Deserialize, Default)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

/// A form sent without the session's CSRF token: 403 with `markup` (the form again, saying
/// `EXPIRED_FORM`), audited with that reason.
fn expired_form(mut note: AuditNote, markup: Markup) -> Response {
    note.reason = Some("form without a valid CSRF token".into());
    with_note(page(StatusCode::FORBIDDEN, markup), note)
}

/// The form's errors when its CSRF token is missing or wrong.
fn expired_errors() -> Errors {
    vec![("general", EXPIRED_FORM.to_string())]
}

/// An HTML page with the portal's security headers.
fn page(status: StatusCode, markup: Markup) -> Response {
    let mut resp = (status, markup.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn redirect(to: &'static str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    resp
}

/// The signed-in user as the page header shows them.
fn viewer<'a>(state: &AppState, s: &'a session::Session) -> Viewer<'a> {
    Viewer {
        name: &s.principal.name,
        csrf: &s.csrf,
        admin: state.enroll.is_admin(&s.principal),
    }
}

/// The audit note of a form submission.
fn form_note(operation: &str, s: &session::Session, template: &str) -> AuditNote {
    AuditNote {
        operation: operation.into(),
        principal: Some(s.principal.name.clone()),
        label: Some(template.chars().take(64).collect()),
        ..AuditNote::default()
    }
}

/// A refused form: the reason for the audit log (with the detail), the status and the
/// message beside its field for the page.
fn refused(note: &mut AuditNote, e: SingleError) -> (StatusCode, Errors) {
    note.reason = Some(match &e.detail {
        Some(d) => format!("{} ({d})", e.message),
        None => e.message.clone(),
    });
    let status = crate::web::status_of(e.kind);
    (status, vec![(e.field.as_str(), e.message)])
}

fn with_note(mut resp: Response, note: AuditNote) -> Response {
    resp.extensions_mut().insert(note);
    resp
}

fn internal(detail: impl std::fmt::Display) -> Response {
    tracing::error!(error = %detail, "portal internal error");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::message(
            "Error",
            None,
            "Internal error. Try again; if it keeps failing, contact your administrator.",
            Some(("/portal/", "Back to the portal")),
        ),
    )
}

fn peer_of(conn: &Option<Extension<ConnInfo>>) -> String {
    conn.as_ref()
        .map_or_else(|| "unknown".to_string(), |c| c.peer.to_string())
}

async fn css() -> Response {
    let mut resp = pages::css().0.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600"),
    );
    resp
}

async fn home(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match session::load(&state, &headers).await {
        Ok(Some(_)) => redirect("/portal/single"),
        Ok(None) => redirect("/portal/login"),
        Err(e) => internal(e),
    }
}

/// The live session, or the response to send instead (a redirect to the log-in page).
async fn require_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<session::Session, Response> {
    match session::load(state, headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(redirect("/portal/login")),
        Err(e) => Err(internal(e)),
    }
}
