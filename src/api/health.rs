//! The operator's endpoints, on their own plain-HTTP listener (`metrics.listen`, loopback by
//! default): `/metrics` (Prometheus text), `/healthz` (the process answers) and `/readyz`
//! (the database answers and the CA key signs).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

fn text(status: StatusCode, body: String, ct: &'static str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let jobs = match tokio::time::timeout(READY_TIMEOUT, state.store.job_states()).await {
        Ok(Ok(j)) => j,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: bulk job counts unavailable");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("metrics: bulk job counts timed out");
            Vec::new()
        }
    };
    text(
        StatusCode::OK,
        crate::metrics::metrics().render(&jobs),
        "text/plain; version=0.0.4; charset=utf-8",
    )
}

async fn healthz() -> Response {
    text(StatusCode::OK, "ok\n".into(), "text/plain; charset=utf-8")
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut problems = Vec::new();
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("database: {e}")),
        Err(_) => problems.push(format!(
            "database: no answer within {} s",
            READY_TIMEOUT.as_secs()
        )),
    }
    // A key in a token is checked on the blocking pool, and reconnected when it was lost.
    let check = crate::ca::signing(state.enroll.issuer(), |ca| ca.check_key());
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("CA key: {e}")),
        Err(_) => problems.push(format!(
            "CA key: no signature within {} s",
            READY_TIMEOUT.as_secs()
        )),
    }
    for up in state.enroll.upstreams() {
        if let Some(problem) = up.health() {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        text(
            StatusCode::OK,
            "ready\n".into(),
            "text/plain; charset=utf-8",
        )
    } else {
        tracing::warn!(problems = %problems.join("; "), "not ready");
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{}\n", problems.join("\n")),
            "text/plain; charset=utf-8",
        )
    }
}
