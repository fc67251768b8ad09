//! The portal's forms, through the real router (form decoding, CSRF, the field checks, the
//! issuance behind them, the page rendering): the first byte picks the form, the second whether
//! the session's CSRF token is put in front of the fuzzed body; the rest is the body
//! (`application/x-www-form-urlencoded`, or the query string of the requests page).
//! An answer of 500 or more is a defect for these client-made inputs, so it aborts the run.
//!
//! The certificates page's search and its revoke form are included; the revoke form's
//! serial (in the path) is the body's first field.
//!
//! Set-up, once per process: a data directory with a generated CA and SQLite file, the admin
//! logged in through `/portal/login`, the CSRF token read from `/portal/single`. Log-out and
//! the bulk upload are left out (the first would end the session; the second starts
//! background jobs; its CSV and multipart parsers have their own targets).
#![no_main]
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, header};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Harness {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    cookie: String,
    csrf: String,
    _dir: tempfile::TempDir,
}

const FORMS: [(&str, &str); 8] = [
    ("POST", "/portal/single"),
    ("POST", "/portal/csr"),
    ("POST", "/portal/test"),
    ("POST", "/portal/password"),
    ("POST", "/portal/login"),
    ("GET", "/portal/requests"),
    ("GET", "/portal/certificates"),
    // the serial in the path is the fuzzed body's first field, the rest the form
    ("POST", "/portal/certificates/{serial}/revoke"),
];

/// Bytes as they may stand in a URL (query string or path segment).
fn url_encoded(bytes: &[u8], keep: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || keep.contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("estd.toml");
        std::fs::write(
            &file,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[revocation]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"\"\n[database]\nsynchronous = \"normal\"\n[log]\nfilter = \"off\"\n",
                dir.path().display().to_string()
            ),
        )
        .expect("config file");
        let config = estd::config::Config::load(Some(&file)).expect("config");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let built = rt.block_on(estd::app::build(&config)).expect("build");
        let password = built.admin_password.clone().expect("admin created");
        let router = estd::api::router_with(built.state.clone(), estd::portal::routes());
        let (cookie, csrf) = rt.block_on(log_in(&router, &password));
        Harness {
            rt,
            router,
            cookie,
            csrf,
            _dir: dir,
        }
    })
}

async fn call(router: &axum::Router, req: Request<Body>) -> (u16, Vec<String>, String) {
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status().as_u16();
    let cookies = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .map(str::to_string)
        .collect();
    let body = axum::body::to_bytes(resp.into_body(), 4 << 20)
        .await
        .expect("body");
    (status, cookies, String::from_utf8_lossy(&body).into_owned())
}

fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[at..].split('"').next().expect("csrf value").to_string()
}

async fn log_in(router: &axum::Router, password: &str) -> (String, String) {
    let get = |uri: &str, cookie: &str| {
        Request::get(uri)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .expect("request")
    };
    let (_, cookies, html) = call(router, get("/portal/login", "")).await;
    let login_cookie = cookies.first().expect("log-in cookie").clone();
    let form = format!("csrf={}&username=admin&password={password}", csrf_in(&html));
    let req = Request::post("/portal/login")
        .header(header::COOKIE, &login_cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .expect("request");
    let (status, cookies, _) = call(router, req).await;
    assert_eq!(status, 303, "log-in");
    let session = cookies
        .into_iter()
        .find(|c| c.starts_with("estd_session="))
        .expect("session cookie");
    let (_, _, html) = call(router, get("/portal/single", &session)).await;
    (session, csrf_in(&html))
}

fuzz_target!(|data: &[u8]| {
    let [pick, flags, body @ ..] = data else {
        return;
    };
    let h = harness();
    let (method, path) = FORMS[usize::from(*pick) % FORMS.len()];
    let (path, body) = match path.split_once("{serial}") {
        Some((before, after)) => {
            let cut = body.iter().position(|b| *b == b'&').unwrap_or(body.len());
            let serial = url_encoded(&body[..cut.min(64)], b"._-");
            (format!("{before}{serial}{after}"), &body[cut..])
        }
        None => (path.to_string(), body),
    };
    let mut fields = Vec::with_capacity(body.len() + 64);
    if flags & 1 == 1 {
        fields.extend_from_slice(format!("csrf={}&", h.csrf).as_bytes());
    }
    fields.extend_from_slice(body);
    let req = if method == "GET" {
        Request::get(format!("{path}?{}", url_encoded(&fields, b"&=%._-")))
            .header(header::COOKIE, &h.cookie)
            .body(Body::empty())
    } else {
        Request::post(path.as_str())
            .header(header::COOKIE, &h.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(fields))
    }
    .expect("request");
    let (status, _, text) = h.rt.block_on(call(&h.router, req));
    assert!(status < 500, "{method} {path}: {status}: {text}");
});
