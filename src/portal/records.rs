//! What was asked and what was issued: the requests (audit) page, the certificates page
//! and revoking from it.

use super::*;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RequestsQuery {
    since: String,
    user: String,
    failed: String,
}

pub(super) const MAX_REQUESTS_SHOWN: u32 = 500;

pub(super) async fn requests_page(
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
pub(super) struct RevokeForm {
    csrf: String,
    reason: String,
}

pub(super) async fn certificates_page(
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
pub(super) async fn certificates_view(
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

pub(super) async fn certificate_revoke(
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
