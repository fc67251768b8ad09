//! Enrollment codes in the JSON API, for administrators: issue them (the secrets are in that
//! answer only), list them, withdraw an unused one. `/api/v1/codes` issues up to 10,000 at
//! once; `/api/v1/scep/challenges` is the same with one code under its SCEP name.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::json::{ApiError, err, finish, json_response, parse_json, prelude};
use super::{AppState, AuditNote};
use crate::enroll::codes::{self, CodeError, NewCode};
use crate::model::{ConnInfo, timestamp};
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
    /// How many codes (`/api/v1/codes` only; default 1).
    #[serde(default)]
    count: Option<u32>,
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
        "only administrators manage enrollment codes",
    )
}

/// `POST /api/v1/scep/challenges`: one code, answered as a SCEP challenge.
pub(super) async fn issue(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let mut note = AuditNote {
        operation: "scep-challenge".into(),
        ..AuditNote::default()
    };
    let result = issue_inner(&state, req, &mut note, false).await;
    finish(result, note)
}

/// `POST /api/v1/codes`: `count` codes (default 1).
pub(super) async fn issue_codes(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let mut note = AuditNote {
        operation: "code-issue".into(),
        ..AuditNote::default()
    };
    let result = issue_inner(&state, req, &mut note, true).await;
    finish(result, note)
}

async fn issue_inner(
    state: &Arc<AppState>,
    req: Request,
    note: &mut AuditNote,
    many: bool,
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
    let count = match (many, body.count) {
        (true, n) => n.unwrap_or(1),
        (false, None | Some(1)) => 1,
        (false, Some(_)) => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "count",
                "one challenge at a time here: POST /api/v1/codes issues several",
            ));
        }
    };
    let issued = codes::issue_many(
        state.store.as_ref(),
        &template,
        NewCode {
            template: template.name.clone(),
            cn: body.cn.clone(),
            san: body.san.clone(),
            lifetime,
            created_by: p.principal.name.clone(),
        },
        count,
    )
    .await
    .map_err(|e| match e {
        CodeError::Invalid(m) => err(StatusCode::BAD_REQUEST, "bad_request", m),
        CodeError::Store(s) => super::json::store_error(&s),
    })?;
    let (Some(first), Some(last)) = (issued.first(), issued.last()) else {
        return Err(err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no code was issued",
        ));
    };
    // the audit row names the codes by their ids, never their values
    note.reason = Some(if many {
        format!("codes {}–{} issued", first.id, last.id)
    } else {
        format!("challenge {} issued", first.id)
    });
    let body_json = if many {
        serde_json::json!({
            "template": template.name,
            "cn": body.cn,
            "san": body.san,
            "expires_at": first.expires_at,
            "codes": issued
                .iter()
                .map(|c| serde_json::json!({ "id": c.id, "code": c.secret.as_str() }))
                .collect::<Vec<_>>(),
        })
    } else {
        serde_json::json!({
            "id": first.id,
            "challenge": first.secret.as_str(),
            "template": template.name,
            "cn": body.cn,
            "san": body.san,
            "expires_at": first.expires_at,
        })
    };
    let mut resp = json_response(StatusCode::CREATED, &body_json);
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
    // the same list, named as the route names it
    let key = if parts.uri.path().starts_with("/api/v1/codes") {
        "codes"
    } else {
        "challenges"
    };
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
                key: list.iter().map(|c| challenge_json(c, &now)).collect::<Vec<_>>()
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
