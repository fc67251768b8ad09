//! Security checks on a real `estd serve` (its log captured at `debug` for every crate):
//! after a run that sends passwords, certificate passwords and Authorization headers and
//! gets private keys back, none of them appears in the log; key and database files are
//! 0600; script and SQL injection strings in a user name are stored and shown harmlessly.

mod common;

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use common::*;

const CERT_PASSWORD: &str = "Secret_#42";
/// The MDM connector's account (the shipped `mdm` template is for `mdm-connectors` only).
const CONNECTOR_PASSWORD: &str = "Connector-pw-7";
const EVIL_USER: &str = "<img src=x onerror=alert(1)>'; DROP TABLE users; --";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_logs_private_files_and_harmless_injection() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("estd.log");
    let (mut child, port) = spawn_estd(
        dir.path(),
        &[("ESTD_LOG_FILTER", "debug")],
        std::fs::File::create(&log).unwrap().into(),
    );
    estd_user_add(
        dir.path(),
        "connector",
        &["mdm-connectors"],
        CONNECTOR_PASSWORD,
    );
    let password = std::fs::read_to_string(dir.path().join("admin-password"))
        .unwrap()
        .trim()
        .to_string();
    let root = std::fs::read(dir.path().join("certs/root-ca.pem")).unwrap();
    let http = client(&root, None, false);
    let url = |p: &str| format!("https://localhost:{port}{p}");
    let kp = key(Key::P256);

    // EST with the right and a wrong password
    let r = post_pkcs10(
        &http,
        url("/.well-known/est/simpleenroll"),
        Some(("admin", &password)),
        b64(&csr(&kp, "admin", &[])),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post_pkcs10(
        &http,
        url("/.well-known/est/simpleenroll"),
        Some(("admin", "Wrong-password-9")),
        b64(&csr(&kp, "admin", &[])),
    )
    .await;
    assert_eq!(r.status(), 401);
    // a server-generated key comes back
    let r = post_pkcs10(
        &http,
        url("/.well-known/est/devices/serverkeygen"),
        Some(("admin", &password)),
        b64(&csr(&kp, "admin", &[])),
    )
    .await;
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let body = r.bytes().await.unwrap();
    let parts = estd::est::multipart::parse_multipart(
        &body,
        &estd::est::multipart::boundary_of(&ct).unwrap(),
    )
    .unwrap();
    let key_b64: String = String::from_utf8_lossy(&parts[0].body)
        .split_whitespace()
        .collect();
    assert!(key_b64.len() > 100);
    // a zip with a certificate password; the test certificate with its key in JSON
    let r = http
        .post(url("/api/v1/certificates"))
        .basic_auth("admin", Some(&password))
        .json(&serde_json::json!({
            "template": "eap-tls", "common_name": "admin", "san": "11:22:33:44:55:66",
            "format": "pkcs12-chain", "password": CERT_PASSWORD,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(url("/api/v1/test-certificate"))
        .basic_auth("connector", Some(CONNECTOR_PASSWORD))
        .json(&serde_json::json!({
            "template": "mdm", "cert_name": "TestCert", "user_name": "jdoe",
            "domain": "example.com", "email": "jdoe@example.com",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let test_key: String = r.json::<serde_json::Value>().await.unwrap()["private_key_pem"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    // injection strings as a user name (Basic) — refused, audited, shown escaped
    let r = post_pkcs10(
        &http,
        url("/.well-known/est/simpleenroll"),
        Some((EVIL_USER, "x")),
        b64(&csr(&kp, "admin", &[])),
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = http
        .post(url("/api/v1/certificates"))
        .basic_auth("admin", Some(&password))
        .json(&serde_json::json!({
            "template": "eap-tls", "common_name": "admin", "san": "11:22:33:44:55:67",
            "description": EVIL_USER, "format": "pem", "password": CERT_PASSWORD,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "an injection string is just a description");
    // the portal: log in (a password in a form), then the requests page
    let browser = no_redirect_client(&root);
    let session = portal_login(&browser, &url(""), "admin", &password).await;
    let html = browser
        .get(url("/portal/requests?since=10m&failed=1"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;'; DROP TABLE users; --"),
        "shown escaped"
    );
    assert!(!html.contains("<img src=x"), "never as markup");
    // the users table is still there: admin enrolls again
    let r = post_pkcs10(
        &http,
        url("/.well-known/est/simpleenroll"),
        Some(("admin", &password)),
        b64(&csr(&kp, "admin", &[])),
    )
    .await;
    assert_eq!(r.status(), 200);

    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().count() > 20,
        "a debug log was written ({} lines)",
        text.lines().count()
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"));
    for (what, secret) in [
        ("the admin password", password.as_str()),
        ("a wrong password", "Wrong-password-9"),
        ("the connector's password", CONNECTOR_PASSWORD),
        ("the certificate password", CERT_PASSWORD),
        ("the Basic credentials", basic.as_str()),
        ("a server-generated key", &key_b64[..64]),
        ("the test certificate's key", &test_key[..64]),
        ("a PEM private key", "PRIVATE KEY"),
        ("an Authorization header", "authorization: Basic"),
        ("an Authorization header", "Authorization: Basic"),
    ] {
        assert!(!text.contains(secret), "{what} is in the log");
    }
    assert!(text.contains("request"), "the log has the request lines");

    // key and database files are private
    for f in [
        "certs/root-ca.key",
        "certs/issuing-ca.key",
        "certs/tls.key",
        "certs/jobs.key",
        "certs/ocsp-responder.key",
        "estd.db",
        "admin-password",
    ] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let mode = std::fs::metadata(dir.path().join("certs"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "certs/ is private");
}
