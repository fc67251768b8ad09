//! Enrollment codes (SCEP challenges) in the portal, for administrators (the same service as
//! `estd code`, `estd scep challenge` and the JSON API): one bound code shown once, or a
//! batch downloaded as CSV.

use super::*;
use crate::service::scep::challenge::{self, ChallengeError, NewChallenge};
use pages::{ChallengeForm, Shown};

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct IssueForm {
    csrf: String,
    template: String,
    cn: String,
    san: String,
    expires: String,
}

/// A batch of codes: how many, downloaded as CSV.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct BatchForm {
    csrf: String,
    template: String,
    count: String,
    expires: String,
}

fn scep_templates(state: &AppState) -> Vec<(String, String)> {
    state
        .templates
        .iter()
        .filter(|t| crate::enroll::codes::takes_codes(t))
        .map(|t| (t.name.clone(), t.description.clone()))
        .collect()
}

/// The page with the open challenges; `shown` after one was issued.
async fn view(
    state: &AppState,
    s: &session::Session,
    status: StatusCode,
    form: &ChallengeForm,
    errors: &Errors,
    shown: Option<&Shown<'_>>,
) -> Response {
    let now = crate::model::timestamp(std::time::SystemTime::now());
    let open = match state.store.list_challenges(&now, true, 500).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    page(
        status,
        pages::scep_challenges(
            &viewer(state, s),
            &scep_templates(state),
            form,
            errors,
            shown,
            &open,
        ),
    )
}

/// A form sent without the session's CSRF token: the page again, 403, audited so.
async fn expired(
    state: &AppState,
    s: &session::Session,
    form: &ChallengeForm,
    mut note: AuditNote,
) -> Response {
    note.reason = Some("form without a valid CSRF token".into());
    let resp = view(
        state,
        s,
        StatusCode::FORBIDDEN,
        form,
        &expired_errors(),
        None,
    )
    .await;
    with_note(resp, note)
}

/// An empty form, valid for a day.
fn blank() -> ChallengeForm {
    ChallengeForm {
        expires: "24h".into(),
        ..ChallengeForm::default()
    }
}

/// The signed-in administrator, or the answer to give instead.
async fn admin_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<session::Session, Response> {
    let s = require_session(state, headers).await?;
    if !state.enroll.is_admin(&s.principal) {
        return Err(page(
            StatusCode::FORBIDDEN,
            pages::message(
                "SCEP challenges",
                Some(&viewer(state, &s)),
                "Only administrators issue SCEP challenges and enrollment codes.",
                Some(("/portal/", "Back to the portal")),
            ),
        ));
    }
    Ok(s)
}

pub(super) async fn scep_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let s = match admin_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = blank();
    view(&state, &s, StatusCode::OK, &form, &Vec::new(), None).await
}

pub(super) async fn scep_submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(f): Form<IssueForm>,
) -> Response {
    let s = match admin_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut note = form_note("scep-challenge", &s, &f.template);
    let form = ChallengeForm {
        template: f.template.clone(),
        cn: f.cn.clone(),
        san: f.san.clone(),
        expires: f.expires.clone(),
        ..ChallengeForm::default()
    };
    if !session::csrf_ok(&s.csrf, Some(&f.csrf)) {
        return expired(&state, &s, &form, note).await;
    }
    let refuse = |field: &'static str, m: String| (StatusCode::BAD_REQUEST, vec![(field, m)]);
    let result = async {
        let t = state
            .templates
            .get(Some(&f.template))
            .ok_or_else(|| refuse("template", "Choose a template from the list.".into()))?;
        let lifetime = crate::model::parse_since(if f.expires.trim().is_empty() {
            "24h"
        } else {
            &f.expires
        })
        .map_err(|m| refuse("expires", format!("Valid for: {m}")))?;
        let san: Vec<String> = f
            .san
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect();
        challenge::issue(
            state.store.as_ref(),
            &t,
            NewChallenge {
                template: t.name.clone(),
                cn: Some(f.cn.clone()),
                san,
                lifetime: Some(lifetime),
                created_by: s.principal.name.clone(),
            },
        )
        .await
        .map_err(|e| match e {
            ChallengeError::Invalid(m) => refuse("general", m),
            ChallengeError::Store(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![("general", format!("The store is unavailable: {e}"))],
            ),
        })
    }
    .await;
    match result {
        Ok(issued) => {
            note.reason = Some(format!("challenge {} issued", issued.id));
            let shown = Shown {
                id: issued.id,
                secret: issued.secret.as_str(),
                template: &f.template,
                expires_at: &issued.expires_at,
            };
            let form = ChallengeForm {
                template: f.template.clone(),
                expires: f.expires.clone(),
                ..ChallengeForm::default()
            };
            let resp = view(&state, &s, StatusCode::OK, &form, &Vec::new(), Some(&shown)).await;
            with_note(resp, note)
        }
        Err((status, errors)) => {
            note.reason = errors.first().map(|(_, m)| m.clone());
            let resp = view(&state, &s, status, &form, &errors, None).await;
            with_note(resp, note)
        }
    }
}

pub(super) async fn scep_revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match admin_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut note = form_note("scep-challenge-revoke", &s, "");
    note.label = None;
    note.reason = Some(format!("challenge {id}"));
    let form = blank();
    if !session::csrf_ok(&s.csrf, Some(&f.csrf)) {
        return expired(&state, &s, &form, note).await;
    }
    match state.store.revoke_challenge(id).await {
        Ok(true) => {
            tracing::info!(challenge = id, by = %s.principal.name, "SCEP challenge withdrawn");
            with_note(redirect("/portal/scep"), note)
        }
        Ok(false) => {
            let errors = vec![("general", format!("There is no unused challenge {id}."))];
            let resp = view(&state, &s, StatusCode::NOT_FOUND, &form, &errors, None).await;
            with_note(resp, note)
        }
        Err(e) => internal(e),
    }
}

/// A batch of codes, downloaded at once as CSV (shown nowhere else).
pub(super) async fn codes_submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(f): Form<BatchForm>,
) -> Response {
    let s = match admin_session(&state, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut note = form_note("code-issue", &s, &f.template);
    let form = ChallengeForm {
        template: f.template.clone(),
        count: f.count.clone(),
        expires: f.expires.clone(),
        ..ChallengeForm::default()
    };
    if !session::csrf_ok(&s.csrf, Some(&f.csrf)) {
        return expired(&state, &s, &form, note).await;
    }
    let refuse = |field: &'static str, m: String| (StatusCode::BAD_REQUEST, vec![(field, m)]);
    let result = async {
        let t = state
            .templates
            .get(Some(&f.template))
            .ok_or_else(|| refuse("batch-template", "Choose a template from the list.".into()))?;
        let count: u32 = f.count.trim().parse().map_err(|_| {
            refuse(
                "count",
                format!(
                    "How many: a number from 1 to {}",
                    crate::enroll::codes::MAX_BATCH
                ),
            )
        })?;
        let lifetime = crate::model::parse_since(if f.expires.trim().is_empty() {
            "24h"
        } else {
            &f.expires
        })
        .map_err(|m| refuse("batch-expires", format!("Valid for: {m}")))?;
        let issued = crate::enroll::codes::issue_many(
            state.store.as_ref(),
            &t,
            crate::enroll::codes::NewCode {
                template: t.name.clone(),
                lifetime: Some(lifetime),
                created_by: s.principal.name.clone(),
                ..Default::default()
            },
            count,
        )
        .await
        .map_err(|e| match e {
            ChallengeError::Invalid(m) => refuse("count", m),
            ChallengeError::Store(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![("general", format!("The store is unavailable: {e}"))],
            ),
        })?;
        Ok((t, issued))
    }
    .await;
    match result {
        Ok((t, issued)) => {
            let (first, last) = (
                issued.first().map(|c| c.id).unwrap_or_default(),
                issued.last().map(|c| c.id).unwrap_or_default(),
            );
            note.reason = Some(format!("codes {first}–{last} issued"));
            let text = crate::enroll::codes::csv(&t.name, None, &[], &issued);
            let mut resp = axum::body::Bytes::from(text.as_bytes().to_vec()).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            // a template's name is an EST label ([A-Za-z0-9_-]): a valid header value
            if let Ok(v) = HeaderValue::from_str(&format!(
                "attachment; filename=\"codes-{}-{first}-{last}.csv\"",
                t.name
            )) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            with_note(resp, note)
        }
        Err((status, errors)) => {
            note.reason = errors.first().map(|(_, m)| m.clone());
            let resp = view(&state, &s, status, &form, &errors, None).await;
            with_note(resp, note)
        }
    }
}
