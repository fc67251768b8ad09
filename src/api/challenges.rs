//! SCEP one-time challenges in the JSON API, for administrators: issue one (the secret is in
//! that answer only), list them, withdraw an unused one.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::json::{ApiError, err, finish, json_response, parse_json, prelude};
use super::{AppState, AuditNote};
use crate::model::{ConnInfo, timestamp};
use crate::service::scep::challenge::{self, ChallengeError, NewChallenge};
use crate::store::ChallengeRecord;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    template: String,
    #[serde(default)]
    cn: Option<String>,
    #[serde(default)]
    san: Vec<String>,
    /// `30m`, `24h`, `7d`; default 24h.
    #[serde(default)]
    expires: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    all: bool,
}

fn forbidden() -> ApiError {
    err(
        StatusCode::FORBIDDEN,
        "forbidden",
        "only administrators manage SCEP challenges",
    )
}

pub(super) async fn issue(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let mut note = AuditNote {
        operation: "scep-challenge".into(),
        ..AuditNote::default()
    };
    let result = issue_inner(&state, req, &mut note).await;
    finish(result, note)
}

async fn issue_inner(
    state: &Arc<AppState>,
    req: Request,
    note: &mut AuditNote,
) -> Result<Response, ApiError> {
    let p = prelude(state, req, note).await?;
    if !state.enroll.is_admin(&p.principal) {
        return Err(forbidden());
    }
    let body: IssueBody = parse_json(&p.body)?;
    note.label = Some(super::truncate(&body.template, 64).to_string());
    let template = state.templates.get(Some(&body.template)).ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "unknown certificate template {:?}",
                super::truncate(&body.template, 64)
            ),
        )
    })?;
    let lifetime = match body.expires.as_deref() {
        Some(e) => Some(
            crate::model::parse_since(e)
                .map_err(|m| err(StatusCode::BAD_REQUEST, "expires", format!("expires: {m}")))?,
        ),
        None => None,
    };
    let issued = challenge::issue(
        state.store.as_ref(),
        &template,
        NewChallenge {
            template: template.name.clone(),
            cn: body.cn.clone(),
            san: body.san.clone(),
            lifetime,
            created_by: p.principal.name.clone(),
        },
    )
    .await
    .map_err(|e| match e {
        ChallengeError::Invalid(m) => err(StatusCode::BAD_REQUEST, "bad_request", m),
        ChallengeError::Store(s) => super::json::store_error(&s),
    })?;
    // the audit row names the challenge by its id, never its value
    note.reason = Some(format!("challenge {} issued", issued.id));
    let mut resp = json_response(
        StatusCode::CREATED,
        &serde_json::json!({
            "id": issued.id,
            "challenge": issued.secret.as_str(),
            "template": template.name,
            "cn": body.cn,
            "san": body.san,
            "expires_at": issued.expires_at,
        }),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn challenge_json(c: &ChallengeRecord, now: &str) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "template": c.template,
        "cn": c.cn,
        "san": c.san,
        "created_by": c.created_by,
        "created_at": c.created_at,
        "expires_at": c.expires_at,
        "used_at": c.used_at,
        "state": match (&c.used_at, c.expires_at.as_str() <= now) {
            (Some(_), _) => "used",
            (None, true) => "expired",
            (None, false) => "open",
        },
    })
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
    req: Request,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnInfo>()
        .map_or_else(|| "unknown".to_string(), |c| c.peer.to_string());
    let (parts, _) = req.into_parts();
    let result = async {
        let principal =
            super::json::authenticate(&state, &parts.headers, &peer, &parts.method).await?;
        if !state.enroll.is_admin(&principal) {
            return Err(forbidden());
        }
        let now = timestamp(std::time::SystemTime::now());
        let list = state
            .store
            .list_challenges(&now, !q.all, 1000)
            .await
            .map_err(|e| super::json::store_error(&e))?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({
                "challenges": list.iter().map(|c| challenge_json(c, &now)).collect::<Vec<_>>()
            }),
        ))
    }
    .await;
    match result {
        Ok(r) => r,
        Err((status, code, message, _)) => crate::web::json_error(status, &code, &message),
    }
}

pub(super) async fn revoke(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    let mut note = AuditNote {
        operation: "scep-challenge-revoke".into(),
        ..AuditNote::default()
    };
    let result = async {
        let p = prelude(&state, req, &mut note).await?;
        if !state.enroll.is_admin(&p.principal) {
            return Err(forbidden());
        }
        note.reason = Some(format!("challenge {id}"));
        if state
            .store
            .revoke_challenge(id)
            .await
            .map_err(|e| super::json::store_error(&e))?
        {
            tracing::info!(challenge = id, by = %p.principal.name, "SCEP challenge withdrawn");
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "id": id, "state": "withdrawn" }),
            ))
        } else {
            Err(err(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no unused challenge {id}"),
            ))
        }
    }
    .await;
    finish(result, note)
}
