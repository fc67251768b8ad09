//! Device lists in the JSON API, for administrators: list devices (by their IDevID serial
//! number) on a template's allow-list or deny-list, from JSON or CSV text; show them; take
//! one off.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::json::{ApiError, err, finish, json_response, parse_json, prelude};
use super::{AppState, AuditNote};
use crate::model::ConnInfo;
use crate::service::devices::{self, DeviceError, NewDevice};
use crate::store::{DeviceRecord, DeviceState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    template: String,
    #[serde(default)]
    devices: Vec<DeviceBody>,
    /// `serial[,allow|deny[,note]]` lines, as `estd device import` reads them.
    #[serde(default)]
    csv: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceBody {
    serial: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    template: Option<String>,
}

fn forbidden() -> ApiError {
    err(
        StatusCode::FORBIDDEN,
        "forbidden",
        "only administrators manage device lists",
    )
}

fn device_json(d: &DeviceRecord) -> serde_json::Value {
    serde_json::json!({
        "template": d.template,
        "serial": d.serial,
        "state": d.state.as_str(),
        "note": d.note,
        "added_by": d.added_by,
        "added_at": d.added_at,
    })
}

fn device_error(e: DeviceError) -> ApiError {
    match e {
        DeviceError::Invalid(m) => err(StatusCode::BAD_REQUEST, "bad_request", m),
        DeviceError::Store(s) => super::json::store_error(&s),
    }
}

pub(super) async fn put(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let mut note = AuditNote {
        operation: "devices-put".into(),
        ..AuditNote::default()
    };
    let result = async {
        let p = prelude(&state, req, &mut note).await?;
        if !state.enroll.is_admin(&p.principal) {
            return Err(forbidden());
        }
        let body: PutBody = parse_json(&p.body)?;
        note.label = Some(super::truncate(&body.template, 64).to_string());
        let mut list = Vec::with_capacity(body.devices.len());
        for d in body.devices {
            let state = match d.state.as_deref() {
                None => DeviceState::Allow,
                Some(s) => DeviceState::parse(s).ok_or_else(|| {
                    err(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("state {:?}: allow or deny", super::truncate(s, 16)),
                    )
                })?,
            };
            list.push(NewDevice {
                serial: d.serial,
                state,
                note: d.note,
            });
        }
        if let Some(csv) = &body.csv {
            list.extend(devices::parse_csv(csv).map_err(device_error)?);
        }
        let n = devices::put(
            state.store.as_ref(),
            &state.templates,
            &body.template,
            &list,
            &p.principal.name,
        )
        .await
        .map_err(device_error)?;
        note.reason = Some(format!("{n} devices listed"));
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "template": body.template, "written": n }),
        ))
    }
    .await;
    finish(result, note)
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
        let list = state
            .store
            .list_devices(q.template.as_deref(), 10_000)
            .await
            .map_err(|e| super::json::store_error(&e))?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "devices": list.iter().map(device_json).collect::<Vec<_>>() }),
        ))
    }
    .await;
    match result {
        Ok(r) => r,
        Err((status, code, message, _)) => crate::web::json_error(status, &code, &message),
    }
}

pub(super) async fn remove(
    State(state): State<Arc<AppState>>,
    Path((template, serial)): Path<(String, String)>,
    req: Request,
) -> Response {
    let mut note = AuditNote {
        operation: "devices-remove".into(),
        label: Some(super::truncate(&template, 64).to_string()),
        ..AuditNote::default()
    };
    let result = async {
        let p = prelude(&state, req, &mut note).await?;
        if !state.enroll.is_admin(&p.principal) {
            return Err(forbidden());
        }
        note.reason = Some(format!(
            "device {}",
            crate::model::printable(super::truncate(&serial, 64))
        ));
        if state
            .store
            .remove_device(&template, &serial)
            .await
            .map_err(|e| super::json::store_error(&e))?
        {
            tracing::info!(serial = %crate::model::printable(&serial), %template, by = %p.principal.name, "device taken off the list");
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "template": template, "serial": serial, "state": "removed" }),
            ))
        } else {
            Err(err(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "the device {} is not on a list of the template {}",
                    crate::model::printable(super::truncate(&serial, 64)),
                    crate::model::printable(super::truncate(&template, 64))
                ),
            ))
        }
    }
    .await;
    finish(result, note)
}
