//! Logging in and out, and changing one's own password.

use super::*;

pub(super) async fn login_page(State(_state): State<Arc<AppState>>) -> Response {
    login_form(StatusCode::OK, "", &Vec::new(), None)
}

/// The log-in form with a fresh double-submit CSRF token (cookie + hidden field).
pub(super) fn login_form(
    status: StatusCode,
    user: &str,
    errors: &Errors,
    banner: Option<&str>,
) -> Response {
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
pub(super) struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

pub(super) async fn login_submit(
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
    if crate::fields::has_control(&user) || user.chars().count() > auth::MAX_USER {
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

pub(super) async fn logout(
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

pub(super) async fn password_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let s = match require_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let viewer = viewer(&state, &s);
    page(StatusCode::OK, pages::password(&viewer, &Vec::new(), false))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    repeat: String,
}

pub(super) async fn password_submit(
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
        return expired_form(note, pages::password(&viewer, &expired_errors(), false));
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
