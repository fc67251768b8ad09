//! The identity provider's keys for bearer tokens: a JWKS file read at start, or a JWKS URL
//! fetched at start and every `refresh_secs` (through the `Transport` `app` hands in). A
//! failed fetch keeps the keys there are, and is tried again in 30 s.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::jwt::{KeySet, Verifier};
use crate::ca::upstream::{Method, OutboundRequest, Transport};

/// How soon a failed fetch is tried again.
const RETRY: Duration = Duration::from_secs(30);

pub fn load_file(path: &std::path::Path) -> Result<KeySet, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("tokens.jwks_file: {}: {e}", path.display()))?;
    KeySet::from_jwks(&bytes).map_err(|e| format!("tokens.jwks_file: {}: {e}", path.display()))
}

pub async fn fetch(transport: &dyn Transport, path: &str) -> Result<KeySet, String> {
    let answer = transport
        .send(OutboundRequest {
            method: Method::Get,
            path: path.to_string(),
            headers: vec![("Accept".into(), "application/json".into())],
            body: Vec::new(),
        })
        .await
        .map_err(|e| e.to_string())?;
    if answer.status != 200 {
        return Err(format!("HTTP status {}", answer.status));
    }
    KeySet::from_jwks(&answer.body)
}

/// Fetches the key set now and then every `refresh`, for as long as the process runs.
pub fn spawn_refresh(
    verifier: Arc<Verifier>,
    transport: Arc<dyn Transport>,
    path: String,
    refresh: Duration,
) {
    tokio::spawn(async move {
        loop {
            let wait = match fetch(transport.as_ref(), &path).await {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), from = %transport.endpoint(), "bearer token keys (JWKS) loaded");
                    verifier.set_keys(keys);
                    refresh
                }
                Err(e) => {
                    tracing::warn!(error = %e, from = %transport.endpoint(), kept = verifier.keys().len(), "bearer token keys (JWKS) not fetched: the keys there are stay");
                    RETRY.min(refresh)
                }
            };
            tokio::time::sleep(wait).await;
        }
    });
}
