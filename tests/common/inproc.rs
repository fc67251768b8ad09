//! The router in-process: requests go through `oneshot` with the connection facts a TLS
//! listener would have attached.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use estd::model::ConnInfo;
use tower::ServiceExt;

use super::test_config_with;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub router: Router,
    pub state: Arc<estd::web::AppState>,
    pub password: String,
}

pub async fn env() -> Env {
    env_with(&[]).await
}

/// A server with the default and devices templates plus `templates` (TOML texts).
pub async fn env_with(templates: &[&str]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    env_in(dir, templates).await
}

/// The same, in a data directory prepared by the caller (a CA of its own, say).
pub async fn env_in(dir: tempfile::TempDir, templates: &[&str]) -> Env {
    let config = test_config_with(dir.path(), "", templates);
    let built = estd::app::build(&config).await.expect("build");
    Env {
        router: estd::api::router(built.state.clone()),
        state: built.state,
        password: built.admin_password.expect("admin"),
        dir,
    }
}

impl Env {
    /// Adds a user with a password and groups.
    pub async fn add_user(&self, name: &str, password: &str, groups: &[&str]) {
        let hash = estd::auth::hash_password(password).unwrap();
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        self.state
            .store
            .add_user(name, &hash, &groups)
            .await
            .unwrap();
    }
}

/// The tls-exporter value in-process requests pretend their connection has.
pub const EXPORTER: [u8; 32] = [0x5a; 32];

pub fn peer() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body without the `Request ID: …` line every error body ends with (checked on
    /// its own by `est_inprocess::every_error_body_names_its_request_id`).
    pub fn text(&self) -> String {
        let t = self.raw_text();
        match t.rfind("Request ID: ") {
            Some(at) if at == 0 || t[..at].ends_with('\n') => t[..at].to_string(),
            _ => t,
        }
    }
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn ct(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

pub async fn send(env: &Env, req: Request<Body>, client_cert: Option<Vec<u8>>) -> Resp {
    let mut req = req;
    req.extensions_mut().insert(ConnInfo {
        peer: peer(),
        client_chain: client_cert.map(|c| Arc::new(vec![c])),
        exporter: Some(EXPORTER),
    });
    let resp = env.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

pub fn post(path: &str, auth: Option<&str>, ct: &str, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post(path).header(header::CONTENT_TYPE, ct);
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    b.body(body.into()).unwrap()
}
