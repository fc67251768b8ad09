//! Bulk requests: the upload form, the progress page and its script, cancel, confirm and
//! download.

use super::*;

pub(super) async fn bulk_js() -> Response {
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

pub(super) fn bulk_values(template: String, description: String, format: String) -> CertForm {
    CertForm {
        template,
        description,
        format,
        ..CertForm::default()
    }
}

pub(super) async fn bulk_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
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

pub(super) async fn bulk_submit(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
) -> Response {
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
        let values = bulk_values(sub.template, sub.description, sub.format);
        let markup = pages::bulk_form(&viewer, &choices, &values, &[EXPIRED_FORM.to_string()]);
        return expired_form(note, markup);
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

pub(super) async fn bulk_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
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
pub(super) enum BulkAction {
    Cancel,
    Confirm,
}

pub(super) async fn bulk_cancel(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    bulk_action(&state, &headers, &form, id, BulkAction::Cancel).await
}

pub(super) async fn bulk_confirm(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<i64>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    bulk_action(&state, &headers, &form, id, BulkAction::Confirm).await
}

/// A bulk request's error as a page, with its status.
pub(super) fn bulk_error_page(
    state: &AppState,
    s: &session::Session,
    e: &crate::jobs::BulkError,
) -> Response {
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

pub(super) async fn bulk_action(
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
        let markup = pages::message(
            "Bulk request",
            None,
            EXPIRED_FORM,
            Some(("/portal/bulk/status", "Back to the status page")),
        );
        return expired_form(note, markup);
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

pub(super) async fn bulk_download(
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
