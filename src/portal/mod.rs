//! The certificate provisioning portal (`/portal/`): log in, change password, a single
//! certificate from attributes or from a CSR. Server-rendered HTML, no JavaScript; the same
//! enrollment service, rules and audit as EST.

mod pages;

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
use pages::{CertForm, Errors, RequestFilter, TestForm, Viewer};

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

async fn login_page(State(_state): State<Arc<AppState>>) -> Response {
    login_form(StatusCode::OK, "", &Vec::new(), None)
}

/// The log-in form with a fresh double-submit CSRF token (cookie + hidden field).
fn login_form(status: StatusCode, user: &str, errors: &Errors, banner: Option<&str>) -> Response {
    let token = match session::new_token() {
        Ok(t) => t,
        Err(e) => return internal(e),
    };
    let mut resp = page(status, pages::login(&token, user, errors, banner));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={token}; Path=/portal/login; HttpOnly; Secure; SameSite=Strict"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

async fn login_submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let mut note = AuditNote {
        operation: "portal-login".into(),
        ..AuditNote::default()
    };
    let user = form.username.trim().to_string();
    note.principal = (!user.is_empty())
        .then(|| crate::model::printable(&user.chars().take(64).collect::<String>()).into_owned());
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::csrf_ok(&expected, Some(&form.csrf)) {
        note.reason = Some("log-in form without a valid CSRF token".into());
        return with_note(
            login_form(
                StatusCode::FORBIDDEN,
                &user,
                &Vec::new(),
                Some(EXPIRED_FORM),
            ),
            note,
        );
    }
    let peer = peer_of(&conn);
    if crate::policy::rules::has_control(&user) || user.chars().count() > auth::MAX_USER {
        note.reason = Some("a user name with control characters, or too long".into());
        return with_note(
            login_form(
                StatusCode::BAD_REQUEST,
                "",
                &Vec::new(),
                Some("The user name is invalid."),
            ),
            note,
        );
    }
    let principal = match state
        .enroll
        .authenticate_basic(&user, &form.password, &peer)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            note.reason = Some(e.to_string());
            let (status, banner, retry) = match &e {
                crate::enroll::EnrollError::Throttled { retry_after } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Too many failed log-ins. Try again in {retry_after} seconds."),
                    Some(*retry_after),
                ),
                crate::enroll::EnrollError::Busy { retry_after } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("The server is busy. Try again in {retry_after} seconds."),
                    Some(*retry_after),
                ),
                _ => (StatusCode::UNAUTHORIZED, BAD_LOGIN.to_string(), None),
            };
            let mut resp = login_form(status, &user, &Vec::new(), Some(&banner));
            if let Some(secs) = retry {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return with_note(resp, note);
        }
    };
    if !principal.in_group(state.enroll.est_group()) {
        note.reason = Some(format!(
            "{} is not in the group {}",
            principal.name,
            state.enroll.est_group()
        ));
        return with_note(
            login_form(
                StatusCode::FORBIDDEN,
                &user,
                &Vec::new(),
                Some(NOT_A_MEMBER),
            ),
            note,
        );
    }
    // a new session id at every log-in (no fixation); the old one, if any, ends
    if let Some(old) = session::cookie(&headers, session::COOKIE) {
        let _ = state.store.delete_session(&session::hash(&old)).await;
    }
    let (id, _) = match session::create(&state, &principal.name).await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    tracing::info!(user = %principal.name, %peer, "portal log-in");
    // a bulk request still open (running, or not confirmed downloaded): its status page
    let landing = match state.jobs.open_job_of(&principal.name).await {
        Ok(Some(_)) => "/portal/bulk/status",
        _ => "/portal/single",
    };
    let mut resp = redirect(landing);
    resp.headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(Some(&id)));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}=; Path=/portal/login; HttpOnly; Secure; SameSite=Strict; Max-Age=0"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    with_note(resp, note)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !session::csrf_ok(&s.csrf, Some(&form.csrf)) {
        return page(
            StatusCode::FORBIDDEN,
            pages::message(
                "Log out",
                None,
                EXPIRED_FORM,
                Some(("/portal/", "Back to the portal")),
            ),
        );
    }
    if let Err(e) = state.store.delete_session(&s.id_hash).await {
        return internal(e);
    }
    tracing::info!(user = %s.principal.name, "portal log-out");
    let mut resp = redirect("/portal/login");
    resp.headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(None));
    resp
}

async fn password_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let viewer = viewer(&state, &s);
    page(StatusCode::OK, pages::password(&viewer, &Vec::new(), false))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    repeat: String,
}

async fn password_submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    Form(form): Form<PasswordForm>,
) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut note = AuditNote {
        operation: "portal-password".into(),
        principal: Some(s.principal.name.clone()),
        ..AuditNote::default()
    };
    let viewer = viewer(&state, &s);
    if !session::csrf_ok(&s.csrf, Some(&form.csrf)) {
        note.reason = Some("form without a valid CSRF token".into());
        return with_note(
            page(
                StatusCode::FORBIDDEN,
                pages::password(&viewer, &vec![("general", EXPIRED_FORM.to_string())], false),
            ),
            note,
        );
    }
    let mut errors: Errors = Vec::new();
    // the current password is checked like a log-in: throttled
    match state
        .enroll
        .authenticate_basic(&s.principal.name, &form.current, &peer_of(&conn))
        .await
    {
        Ok(_) => {}
        Err(
            e @ (crate::enroll::EnrollError::Throttled { .. }
            | crate::enroll::EnrollError::Busy { .. }),
        ) => errors.push(("current", e.to_string())),
        Err(_) => errors.push(("current", "The current password is wrong.".into())),
    }
    if form.new.chars().count() < 8 {
        errors.push((
            "new",
            "The new password must have at least 8 characters.".into(),
        ));
    } else if form.new.len() > auth::MAX_PASSWORD {
        errors.push((
            "new",
            format!(
                "The new password must have at most {} bytes.",
                auth::MAX_PASSWORD
            ),
        ));
    }
    if form.new != form.repeat {
        errors.push(("repeat", "The two new passwords differ.".into()));
    }
    if !errors.is_empty() {
        note.reason = Some(
            errors
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
        return with_note(
            page(
                StatusCode::BAD_REQUEST,
                pages::password(&viewer, &errors, false),
            ),
            note,
        );
    }
    let hash = match state.enroll.hash_password(&form.new).await {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    match state.store.set_password(&s.principal.name, &hash).await {
        Ok(true) => state.enroll.forget_user(&s.principal.name),
        Ok(false) => return internal("the user disappeared"),
        Err(e) => return internal(e),
    }
    // every other session of this user ends; this browser gets a new one
    if let Err(e) = state.store.delete_user_sessions(&s.principal.name).await {
        return internal(e);
    }
    let (id, record) = match session::create(&state, &s.principal.name).await {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    tracing::info!(user = %s.principal.name, "portal password changed; other sessions ended");
    let viewer = Viewer {
        name: &s.principal.name,
        csrf: &record.csrf,
        admin: state.enroll.is_admin(&s.principal),
    };
    let mut resp = page(StatusCode::OK, pages::password(&viewer, &Vec::new(), true));
    resp.headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(Some(&id)));
    with_note(resp, note)
}

/// Templates for the drop-down: MAC templates first (the portal's usual case).
/// The templates for a form's choice, name and description, sorted by name with those
/// the form suits best (`preferred`) first.
fn template_choices(
    state: &AppState,
    who: &Principal,
    preferred: impl Fn(&SanStyle) -> bool,
) -> Vec<(String, String)> {
    let mut list: Vec<(bool, String, String)> = state
        .templates
        .iter()
        // only the templates this user may use
        .filter(|t| t.may_use(&who.name, &who.groups, state.enroll.est_group()))
        .map(|t| {
            (
                !preferred(&t.san_style),
                t.name.clone(),
                t.description.clone(),
            )
        })
        .collect();
    list.sort();
    list.into_iter().map(|(_, n, d)| (n, d)).collect()
}

/// Certificate forms: MAC-address templates first (the portal's devices).
fn device_choices(state: &AppState, who: &Principal) -> Vec<(String, String)> {
    template_choices(state, who, |s| *s == SanStyle::Mac)
}

async fn single_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    show_form(&state, &headers, false).await
}

async fn csr_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    show_form(&state, &headers, true).await
}

async fn show_form(state: &AppState, headers: &HeaderMap, with_csr: bool) -> Response {
    let s = match require_session(state, headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let choices = device_choices(state, &s.principal);
    let values = CertForm {
        common_name: s.principal.name.clone(),
        template: choices.first().map(|(n, _)| n.clone()).unwrap_or_default(),
        format: "pkcs12-chain".into(),
        ..CertForm::default()
    };
    let viewer = viewer(state, &s);
    page(
        StatusCode::OK,
        pages::single(&viewer, with_csr, &choices, &values, &Vec::new()),
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CertFormIn {
    csrf: String,
    common_name: String,
    san: String,
    template: String,
    description: String,
    format: String,
    password: String,
    csr_pem: String,
}

async fn single_submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    rid: Option<Extension<RequestId>>,
    Form(form): Form<CertFormIn>,
) -> Response {
    submit(state, headers, conn, rid, form, false).await
}

async fn csr_submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    rid: Option<Extension<RequestId>>,
    Form(form): Form<CertFormIn>,
) -> Response {
    submit(state, headers, conn, rid, form, true).await
}

async fn submit(
    state: Arc<AppState>,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    rid: Option<Extension<RequestId>>,
    form: CertFormIn,
    with_csr: bool,
) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let op = if with_csr {
        "portal-csr"
    } else {
        "portal-single"
    };
    let mut note = form_note(op, &s, &form.template);
    let viewer = viewer(&state, &s);
    let choices = device_choices(&state, &s.principal);
    let values = CertForm {
        common_name: form.common_name.clone(),
        san: form.san.clone(),
        template: form.template.clone(),
        description: form.description.clone(),
        format: form.format.clone(),
        csr_pem: form.csr_pem.clone(),
    };
    if !session::csrf_ok(&s.csrf, Some(&form.csrf)) {
        note.reason = Some("form without a valid CSRF token".into());
        let errors = vec![("general", EXPIRED_FORM.to_string())];
        return with_note(
            page(
                StatusCode::FORBIDDEN,
                pages::single(&viewer, with_csr, &choices, &values, &errors),
            ),
            note,
        );
    }
    let meta = RequestMeta {
        request_id: rid.map(|r| r.0.0.clone()).unwrap_or_default(),
        peer: peer_of(&conn),
        label: Some(form.template.clone()),
    };
    let request = SingleRequest {
        template: form.template,
        common_name: form.common_name,
        san: form.san,
        csr_pem: with_csr.then_some(form.csr_pem),
        description: form.description,
        format: form.format,
        password: form.password,
    };
    match single::issue_single(&state.ctx(), &meta, &s.principal, &request, op).await {
        Ok(z) => {
            note.serial = Some(z.serial);
            note.recorded = true;
            with_note(crate::web::zip_response(&z.file_name, z.zip), note)
        }
        Err(e) => {
            let (status, errors) = refused(&mut note, e);
            with_note(
                page(
                    status,
                    pages::single(&viewer, with_csr, &choices, &values, &errors),
                ),
                note,
            )
        }
    }
}

async fn test_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let choices = test_choices(&state, &s.principal);
    let values = TestForm {
        template: choices.first().map(|(n, _)| n.clone()).unwrap_or_default(),
        user_name: s.principal.name.clone(),
        ..TestForm::default()
    };
    let viewer = viewer(&state, &s);
    page(
        StatusCode::OK,
        pages::test_form(&viewer, &choices, &values, &Vec::new()),
    )
}

/// Templates for the test form: those whose SAN a connector's fields can fill come first.
fn test_choices(state: &AppState, who: &Principal) -> Vec<(String, String)> {
    template_choices(state, who, |s| {
        matches!(s, SanStyle::Upn | SanStyle::UpnEmail | SanStyle::Other(_))
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TestFormIn {
    csrf: String,
    template: String,
    cert_name: String,
    user_name: String,
    domain: String,
    email: String,
}

async fn test_submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    rid: Option<Extension<RequestId>>,
    Form(form): Form<TestFormIn>,
) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut note = form_note(testcert::OPERATION, &s, &form.template);
    let viewer = viewer(&state, &s);
    let choices = test_choices(&state, &s.principal);
    let values = TestForm {
        template: form.template.clone(),
        cert_name: form.cert_name.clone(),
        user_name: form.user_name.clone(),
        domain: form.domain.clone(),
        email: form.email.clone(),
    };
    if !session::csrf_ok(&s.csrf, Some(&form.csrf)) {
        note.reason = Some("form without a valid CSRF token".into());
        let errors = vec![("general", EXPIRED_FORM.to_string())];
        return with_note(
            page(
                StatusCode::FORBIDDEN,
                pages::test_form(&viewer, &choices, &values, &errors),
            ),
            note,
        );
    }
    let meta = RequestMeta {
        request_id: rid.map(|r| r.0.0.clone()).unwrap_or_default(),
        peer: peer_of(&conn),
        label: note.label.clone(),
    };
    let request = testcert::TestRequest {
        template: form.template,
        cert_name: form.cert_name,
        user_name: form.user_name,
        domain: form.domain,
        email: form.email,
    };
    match testcert::issue_test(&state.ctx(), &meta, &s.principal, &request).await {
        Ok(t) => {
            note.serial = Some(t.serial.clone());
            note.recorded = true;
            with_note(page(StatusCode::OK, pages::test_result(&viewer, &t)), note)
        }
        Err(e) => {
            let (status, errors) = refused(&mut note, e);
            with_note(
                page(
                    status,
                    pages::test_form(&viewer, &choices, &values, &errors),
                ),
                note,
            )
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RequestsQuery {
    since: String,
    user: String,
    failed: String,
}

const MAX_REQUESTS_SHOWN: u32 = 500;

async fn requests_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<RequestsQuery>,
) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let admin = state.enroll.is_admin(&s.principal);
    let viewer = Viewer {
        name: &s.principal.name,
        csrf: &s.csrf,
        admin,
    };
    let filter = RequestFilter {
        since: if q.since.trim().is_empty() {
            "1h".into()
        } else {
            q.since.trim().chars().take(32).collect()
        },
        // Others see only their own requests.
        user: if admin {
            q.user.trim().chars().take(128).collect()
        } else {
            s.principal.name.clone()
        },
        failed: !q.failed.is_empty(),
    };
    let since = match crate::model::parse_since(&filter.since) {
        Ok(d) => d,
        Err(e) => {
            return page(
                StatusCode::BAD_REQUEST,
                pages::requests(&viewer, &filter, &[], Some(&format!("Since: {e}"))),
            );
        }
    };
    let since = std::time::SystemTime::now()
        .checked_sub(since)
        .unwrap_or(std::time::UNIX_EPOCH);
    let user = (!filter.user.is_empty()).then_some(filter.user.as_str());
    match state
        .store
        .find_audit(
            &crate::model::timestamp(since),
            user,
            filter.failed,
            MAX_REQUESTS_SHOWN,
        )
        .await
    {
        Ok(events) => page(
            StatusCode::OK,
            pages::requests(&viewer, &filter, &events, None),
        ),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RevokeForm {
    csrf: String,
    reason: String,
}

async fn certificates_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<certs::ListQuery>,
) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    certificates_view(&state, &s, q, StatusCode::OK, None).await
}

/// The certificates page for `s`, with a banner (`true`: success).
async fn certificates_view(
    state: &AppState,
    s: &session::Session,
    mut q: certs::ListQuery,
    status: StatusCode,
    banner: Option<(bool, String)>,
) -> Response {
    let viewer = viewer(state, s);
    let filter = match certs::filter_of(&q, &s.principal.name, viewer.admin) {
        Ok(f) => f,
        Err(e) => {
            q.status.clear();
            return page(
                StatusCode::BAD_REQUEST,
                pages::certificates(&viewer, &q, &[], "", Some((false, &e))),
            );
        }
    };
    match state.store.list_certificates(&filter).await {
        Ok(list) => page(
            status,
            pages::certificates(
                &viewer,
                &q,
                &list,
                &filter.now,
                banner.as_ref().map(|(ok, t)| (*ok, t.as_str())),
            ),
        ),
        Err(e) => internal(e),
    }
}

async fn certificate_revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    conn: Option<Extension<ConnInfo>>,
    rid: Option<Extension<RequestId>>,
    axum::extract::Path(serial): axum::extract::Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let serial = crate::revocation::normalize_serial(&serial);
    let mut note = AuditNote {
        operation: "revoke".into(),
        principal: Some(s.principal.name.clone()),
        serial: Some(serial.clone()),
        ..AuditNote::default()
    };
    let q = certs::ListQuery::default();
    if !session::csrf_ok(&s.csrf, Some(&form.csrf)) {
        note.reason = Some("form without a valid CSRF token".into());
        let resp = certificates_view(
            &state,
            &s,
            q,
            StatusCode::FORBIDDEN,
            Some((false, EXPIRED_FORM.to_string())),
        )
        .await;
        return with_note(resp, note);
    }
    let Some(reason) = crate::revocation::parse_reason(&form.reason) else {
        note.reason = Some(format!(
            "unknown reason {:?}",
            crate::web::truncate(&form.reason, 40)
        ));
        let resp = certificates_view(
            &state,
            &s,
            q,
            StatusCode::BAD_REQUEST,
            Some((false, "Choose a reason from the list.".to_string())),
        )
        .await;
        return with_note(resp, note);
    };
    let Some(service) = state.revocation.clone() else {
        note.reason = Some("revocation is not enabled".into());
        let resp = certificates_view(
            &state,
            &s,
            q,
            StatusCode::SERVICE_UNAVAILABLE,
            Some((
                false,
                "Revocation is not enabled on this server.".to_string(),
            )),
        )
        .await;
        return with_note(resp, note);
    };
    let meta = RequestMeta {
        request_id: rid.map(|r| r.0.0.clone()).unwrap_or_default(),
        peer: peer_of(&conn),
        label: None,
    };
    let admin = state.enroll.is_admin(&s.principal);
    let (status, banner) = match service
        .revoke(&meta, &serial, reason, &s.principal.name, admin)
        .await
    {
        Ok((c, _)) => {
            note.recorded = true;
            note.label = Some(c.template);
            (
                StatusCode::OK,
                (
                    true,
                    format!(
                        "Certificate {serial} ({}) revoked: {}.",
                        c.subject,
                        crate::revocation::reason_name(reason)
                    ),
                ),
            )
        }
        Err(e) => {
            note.reason = Some(e.to_string());
            let status = match &e {
                crate::revocation::RevokeError::NotFound(_) => StatusCode::NOT_FOUND,
                crate::revocation::RevokeError::AlreadyRevoked { .. } => StatusCode::CONFLICT,
                crate::revocation::RevokeError::Forbidden(_) => StatusCode::FORBIDDEN,
                crate::revocation::RevokeError::Store(_) => {
                    tracing::error!(error = %e, "revocation failed");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            let text = match &e {
                crate::revocation::RevokeError::Store(_) => {
                    "Internal error: the certificate store is unavailable.".to_string()
                }
                other => other.to_string(),
            };
            (status, (false, text))
        }
    };
    with_note(
        certificates_view(&state, &s, q, status, Some(banner)).await,
        note,
    )
}

async fn bulk_js() -> Response {
    let mut resp = pages::BULK_JS.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600"),
    );
    resp
}

fn bulk_values(template: String, description: String, format: String) -> CertForm {
    CertForm {
        template,
        description,
        format,
        ..CertForm::default()
    }
}

async fn bulk_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state.jobs.open_job_of(&s.principal.name).await {
        Ok(Some(_)) => return redirect("/portal/bulk/status"),
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    let choices = device_choices(&state, &s.principal);
    let values = bulk_values(
        choices.first().map(|(n, _)| n.clone()).unwrap_or_default(),
        String::new(),
        "pkcs12-chain".into(),
    );
    page(
        StatusCode::OK,
        pages::bulk_form(&viewer(&state, &s), &choices, &values, &[]),
    )
}

async fn bulk_submit(State(state): State<Arc<AppState>>, req: axum::extract::Request) -> Response {
    let headers = req.headers().clone();
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut note = AuditNote {
        operation: "portal-bulk".into(),
        principal: Some(s.principal.name.clone()),
        ..AuditNote::default()
    };
    let viewer = viewer(&state, &s);
    let choices = device_choices(&state, &s.principal);
    let (sub, csrf) = match crate::web::read_submission(req).await {
        Ok(x) => x,
        Err(resp) => {
            let status = resp.status();
            let msg = match axum::body::to_bytes(resp.into_body(), 4096).await {
                Ok(b) => serde_json::from_slice::<serde_json::Value>(&b)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_string))
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            note.reason = Some(msg.clone());
            let values = bulk_values(String::new(), String::new(), "pkcs12-chain".into());
            return with_note(
                page(status, pages::bulk_form(&viewer, &choices, &values, &[msg])),
                note,
            );
        }
    };
    if !session::csrf_ok(&s.csrf, Some(&csrf)) {
        note.reason = Some("form without a valid CSRF token".into());
        let values = bulk_values(sub.template, sub.description, sub.format);
        return with_note(
            page(
                StatusCode::FORBIDDEN,
                pages::bulk_form(&viewer, &choices, &values, &[EXPIRED_FORM.to_string()]),
            ),
            note,
        );
    }
    let values = bulk_values(
        sub.template.clone(),
        sub.description.clone(),
        sub.format.clone(),
    );
    match state.jobs.submit(&s.principal, sub).await {
        Ok(id) => {
            note.reason = Some(format!("bulk request {id} queued"));
            with_note(redirect("/portal/bulk/status"), note)
        }
        Err(e) => {
            let (status, _) = crate::web::status_of_bulk(&e);
            let messages: Vec<String> = match &e {
                crate::jobs::BulkError::Rows(rows) => {
                    rows.iter().map(|(r, m)| format!("Row {r}: {m}")).collect()
                }
                crate::jobs::BulkError::Internal(_) => vec![
                    "Internal error. Try again; if it keeps failing, contact your administrator."
                        .into(),
                ],
                other => vec![other.to_string()],
            };
            note.reason = Some(e.to_string());
            with_note(
                page(
                    status,
                    pages::bulk_form(&viewer, &choices, &values, &messages),
                ),
                note,
            )
        }
    }
}

async fn bulk_status(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let job = match state.jobs.open_job_of(&s.principal.name).await {
        Ok(Some(j)) => j,
        Ok(None) => return redirect("/portal/bulk"),
        Err(e) => return internal(e),
    };
    let st = match state.jobs.status(&s.principal, job.id).await {
        Ok(st) => st,
        Err(e) => return internal(e),
    };
    let percent = if st.job.total > 0 {
        st.processed() * 100 / st.job.total
    } else {
        100
    };
    let view = pages::StatusView {
        id: st.job.id,
        template: &st.job.template,
        state: &st.job.state,
        total: st.job.total,
        processed: st.processed(),
        percent,
        done: st.counts.done,
        failed: st.counts.failed,
        cancelled: st.counts.cancelled,
        errors: &st.errors,
    };
    page(
        StatusCode::OK,
        pages::bulk_status(&viewer(&state, &s), &view),
    )
}

#[derive(Clone, Copy)]
enum BulkAction {
    Cancel,
    Confirm,
}

async fn bulk_cancel(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    bulk_action(&state, &headers, &form, id, BulkAction::Cancel).await
}

async fn bulk_confirm(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    bulk_action(&state, &headers, &form, id, BulkAction::Confirm).await
}

/// A bulk request's error as a page, with its status.
fn bulk_error_page(state: &AppState, s: &session::Session, e: &crate::jobs::BulkError) -> Response {
    let (status, _) = crate::web::status_of_bulk(e);
    let viewer = viewer(state, s);
    page(
        status,
        pages::message(
            "Bulk request",
            Some(&viewer),
            &e.to_string(),
            Some(("/portal/bulk/status", "Back to the status page")),
        ),
    )
}

async fn bulk_action(
    state: &AppState,
    headers: &HeaderMap,
    form: &CsrfForm,
    id: i64,
    action: BulkAction,
) -> Response {
    let s = match require_session(state, headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let op = match action {
        BulkAction::Cancel => "portal-bulk-cancel",
        BulkAction::Confirm => "portal-bulk-confirm",
    };
    let mut note = AuditNote {
        operation: op.into(),
        principal: Some(s.principal.name.clone()),
        ..AuditNote::default()
    };
    if !session::csrf_ok(&s.csrf, Some(&form.csrf)) {
        note.reason = Some("form without a valid CSRF token".into());
        let page = page(
            StatusCode::FORBIDDEN,
            pages::message(
                "Bulk request",
                None,
                EXPIRED_FORM,
                Some(("/portal/bulk/status", "Back to the status page")),
            ),
        );
        return with_note(page, note);
    }
    let (result, next) = match action {
        BulkAction::Cancel => (
            state.jobs.cancel(&s.principal, id).await,
            "/portal/bulk/status",
        ),
        BulkAction::Confirm => (state.jobs.confirm(&s.principal, id).await, "/portal/bulk"),
    };
    match result {
        Ok(()) => with_note(redirect(next), note),
        Err(e) => {
            note.reason = Some(e.to_string());
            with_note(bulk_error_page(state, &s, &e), note)
        }
    }
}

async fn bulk_download(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    headers: HeaderMap,
) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state.jobs.zip(&s.principal, id).await {
        Ok((name, zip)) => crate::web::zip_response(&name, zip),
        Err(e) => bulk_error_page(&state, &s, &e),
    }
}
