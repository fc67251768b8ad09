//! Running the CA: metrics that move, health and readiness (readyz fails when PostgreSQL is
//! gone), TLS certificate rotation on SIGHUP, `estd ca import`, and `estd cert` on the
//! command line against a running server.

mod common;

use std::process::{Command, Stdio};

use common::pg::Pg;
use common::*;

/// The value of one metric line (exact series).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn scrape(s: &TestServer) -> String {
    let r = reqwest::get(s.metrics_url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_after_requests() {
    let mut s = start().await;
    let password = s.admin_password.clone();
    let before = scrape(&s).await;
    let ok = "estd_requests_total{operation=\"simpleenroll\",label=\"\",status=\"200\"}";
    let denied = "estd_requests_total{operation=\"simpleenroll\",label=\"\",status=\"401\"}";
    let labelled =
        "estd_requests_total{operation=\"simpleenroll\",label=\"devices\",status=\"200\"}";
    let c = client(&s.root_pem(), None, false);
    let kp = key(Key::P256);
    for path in [
        "/.well-known/est/simpleenroll",
        "/.well-known/est/simpleenroll",
        "/.well-known/est/devices/simpleenroll",
    ] {
        let r = post_pkcs10(
            &c,
            s.url(path),
            Some(("admin", &password)),
            b64(&csr(&kp, "admin", &[])),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let r = post_pkcs10(
        &c,
        s.url("/.well-known/est/simpleenroll"),
        Some(("admin", "wrong")),
        b64(&csr(&kp, "admin", &[])),
    )
    .await;
    assert_eq!(r.status(), 401);
    // a label nobody configured is counted as "unknown", never under its own name
    let r = c
        .get(s.url("/.well-known/est/no-such-label/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // a failed TLS handshake: plain text to the TLS port
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = s.running.as_ref().unwrap().addr;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tcp.read_to_end(&mut buf).await;
    }
    let after = scrape(&s).await;
    assert_eq!(metric(&after, ok) - metric(&before, ok), 2.0, "{after}");
    assert_eq!(metric(&after, labelled) - metric(&before, labelled), 1.0);
    assert_eq!(metric(&after, denied) - metric(&before, denied), 1.0);
    assert!(!after.contains("no-such-label"), "{after}");
    assert_eq!(
        metric(&after, "estd_certificates_issued_total")
            - metric(&before, "estd_certificates_issued_total"),
        3.0
    );
    assert!(
        metric(&after, "estd_auth_failures_total") - metric(&before, "estd_auth_failures_total")
            >= 1.0
    );
    assert!(
        metric(&after, "estd_tls_handshake_failures_total")
            - metric(&before, "estd_tls_handshake_failures_total")
            >= 1.0,
        "{after}"
    );
    let hist = "estd_enrollment_duration_seconds_count";
    assert_eq!(metric(&after, hist) - metric(&before, hist), 4.0);
    let inf = "estd_enrollment_duration_seconds_bucket{le=\"+Inf\"}";
    assert_eq!(metric(&after, inf), metric(&after, hist));
    assert!(
        after.contains("estd_bulk_jobs{state=\"running\"} 0"),
        "{after}"
    );

    // revoking counts
    let serial = s
        .state()
        .store
        .list_certificates(&estd::store::CertFilter {
            now: estd::model::timestamp(std::time::SystemTime::now()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .0
        .serial
        .clone();
    let r = c
        .post(s.url(&format!("/api/v1/certificates/{serial}/revoke")))
        .basic_auth("admin", Some(&password))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let last = scrape(&s).await;
    assert_eq!(
        metric(&last, "estd_certificates_revoked_total")
            - metric(&after, "estd_certificates_revoked_total"),
        1.0
    );
    // health
    let r = reqwest::get(s.metrics_url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::get(s.metrics_url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ready\n");
    // the operator endpoints are not on the EST port
    let r = c.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_when_the_database_is_gone() {
    let pg = Pg::start();
    let url = pg.create_db("ready");
    let mut s = start_with(&format!("[database]\nurl = \"{url}\"\n")).await;
    let r = reqwest::get(s.metrics_url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    drop(pg); // stops PostgreSQL ("immediate")
    let r = reqwest::get(s.metrics_url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    assert!(text.starts_with("not ready\ndatabase: "), "{text}");
    // the process is still up
    let r = reqwest::get(s.metrics_url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// The SHA-256 fingerprint of the certificate `openssl s_client` is served on `port`.
fn served_fingerprint(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(text.contains("Fingerprint="), "{text}");
    text
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}:\n{text}");
    text
}

/// `estd client enroll` as admin: `{out}.pem` and `{out}.key`.
fn client_enroll(port: u16, cacert: &str, password: &str, out: &str) {
    run(Command::new(env!("CARGO_BIN_EXE_estd"))
        .args([
            "client",
            "enroll",
            "--server",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(["--cacert", cacert, "--user", "admin", "--cn", "admin"])
        .args([
            "--out",
            &format!("{out}.pem"),
            "--key-out",
            &format!("{out}.key"),
        ])
        .env("EST_CLIENT_PASSWORD", password)
        .env_remove("ESTD_CONFIG"));
}

fn estd(data: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_estd"));
    c.env("ESTD_DATA_DIR", data)
        .env(
            "ESTD_EST_TEMPLATES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/conf/templates"),
        )
        .env_remove("ESTD_CONFIG");
    c
}

#[test]
fn sighup_reloads_the_tls_certificate() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, port) = spawn_estd(data.path(), &[], Stdio::null());
    let first = served_fingerprint(port);
    // a new certificate for the same names, from the same CA (what a rotation looks like)
    let certs = data.path().join("certs");
    let d = certs.display();
    run(Command::new("sh").arg("-c").arg(format!(
        "set -e; cd {d}; openssl ecparam -name prime256v1 -genkey -noout -out new.key; \
         openssl req -new -key new.key -subj /CN=estd-rotated -out new.csr; \
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > ext; \
         openssl x509 -req -in new.csr -CA issuing-ca.pem -CAkey issuing-ca.key -days 30 -extfile ext -out new.pem; \
         cat new.pem issuing-ca.pem > tls.pem.new; openssl pkcs8 -topk8 -nocrypt -in new.key -out tls.key.new; \
         mv tls.pem.new tls.pem; mv tls.key.new tls.key"
    )));
    // not before the signal
    assert_eq!(served_fingerprint(port), first);
    run(Command::new("kill").args(["-HUP", &child.id().to_string()]));
    let mut now = String::new();
    for _ in 0..50 {
        now = served_fingerprint(port);
        if now != first {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_ne!(now, first, "the new certificate is served after SIGHUP");
    let expected = run(Command::new("openssl").args([
        "x509",
        "-in",
        &certs.join("new.pem").display().to_string(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]));
    assert_eq!(now, expected.trim());
    // a broken pair is refused and the current certificate stays
    std::fs::write(certs.join("tls.key"), "not a key").unwrap();
    run(Command::new("kill").args(["-HUP", &child.id().to_string()]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(served_fingerprint(port), now);
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_imported_ca_issues_and_a_bad_import_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display();
    // an existing PKI made with openssl: a root and an intermediate (P-384)
    run(Command::new("sh").arg("-c").arg(format!(
        "set -e; cd {w}; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout root.key -subj '/CN=Example Root/O=Example' -days 3650 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out root.pem; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout int.key -subj '/CN=Example Issuing CA/O=Example' -out int.csr; \
         printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\nkeyUsage=critical,keyCertSign,cRLSign\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > ca.ext; \
         openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -days 1000 -extfile ca.ext -out int.pem; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -subj /CN=leaf -out leaf.csr; \
         printf 'basicConstraints=critical,CA:FALSE\\n' > leaf.ext; \
         openssl x509 -req -in leaf.csr -CA root.pem -CAkey root.key -days 30 -extfile leaf.ext -out leaf.pem"
    )));
    let f = |n: &str| work.path().join(n).display().to_string();
    let data = tempfile::tempdir().unwrap();
    // refused: not a CA; the key of another certificate; an intermediate without its chain
    for (cert, key, chain, why) in [
        ("leaf.pem", "leaf.key", None, "not a CA certificate"),
        ("int.pem", "root.key", Some("root.pem"), "does not belong"),
        (
            "int.pem",
            "int.key",
            None,
            "give the certificates above it with --chain",
        ),
    ] {
        let mut cmd = estd(data.path());
        cmd.args(["ca", "import", "--cert", &f(cert), "--key", &f(key)]);
        if let Some(c) = chain {
            cmd.args(["--chain", &f(c)]);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cert}");
        assert!(text.contains(why), "{cert}: {text}");
    }
    // a server ran here first on a generated development CA (and its OCSP responder)
    let (mut dev, _) = spawn_estd(data.path(), &[], Stdio::null());
    let _ = dev.kill();
    let _ = dev.wait();
    assert!(data.path().join("certs/ocsp-responder.pem").exists());
    // replacing it needs --force, and keeps the old files
    let (int_pem, int_key, root_pem) = (f("int.pem"), f("int.key"), f("root.pem"));
    let import = [
        "ca", "import", "--cert", &int_pem, "--key", &int_key, "--chain", &root_pem,
    ];
    let out = estd(data.path()).args(import).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let text = run(estd(data.path()).args(import).arg("--force"));
    assert!(
        text.contains("imported the issuing CA O=Example,CN=Example Issuing CA"),
        "{text}"
    );
    assert!(text.contains("kept the previous"), "{text}");
    assert!(
        text.contains("was not issued by this CA"),
        "the old TLS certificate is reported: {text}"
    );
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.path().join("certs/issuing-ca.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    // the development TLS certificate goes: the next start issues one from the imported CA
    std::fs::remove_file(data.path().join("certs/tls.pem")).unwrap();
    std::fs::remove_file(data.path().join("certs/tls.key")).unwrap();

    // the server runs on it: /cacerts is the imported chain, certificates verify against
    // the imported root, the OCSP responder is the imported CA's
    let (mut child, ports) = spawn_estd_ports(data.path(), &[], Stdio::null());
    let port = ports.est;
    let password = std::fs::read_to_string(data.path().join("admin-password")).unwrap();
    client_enroll(port, &f("root.pem"), password.trim(), &f("issued"));
    let issued = work.path().join("issued.pem");
    let text = run(Command::new("openssl").args([
        "verify",
        "-CAfile",
        &f("root.pem"),
        "-untrusted",
        &f("int.pem"),
        &issued.display().to_string(),
    ]));
    assert!(text.contains(": OK"), "{text}");
    // OCSP answers are signed by a responder the imported CA issued
    let text = run(Command::new("openssl").args([
        "ocsp",
        "-issuer",
        &f("int.pem"),
        "-cert",
        &issued.display().to_string(),
        "-url",
        &format!(
            "http://127.0.0.1:{}/ocsp",
            ports.revocation.expect("revocation port")
        ),
        "-CAfile",
        &f("root.pem"),
    ]));
    assert!(
        text.contains(": good") && text.contains("Response verify OK"),
        "{text}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_cert_command_lists_shows_and_revokes_for_a_running_server() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, ports) = spawn_estd_ports(data.path(), &[], Stdio::null());
    let port = ports.est;
    let password = std::fs::read_to_string(data.path().join("admin-password")).unwrap();
    let d = |n: &str| data.path().join(n).display().to_string();
    client_enroll(port, &d("certs/root-ca.pem"), password.trim(), &d("c"));
    let serial =
        run(Command::new("openssl").args(["x509", "-in", &d("c.pem"), "-noout", "-serial"]))
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase();
    let list = run(estd(data.path()).args(["cert", "list", "--user", "admin"]));
    let line = list
        .lines()
        .find(|l| l.starts_with(&serial))
        .expect("listed");
    assert!(
        line.contains("\tvalid\tdefault\tadmin\tCN=admin\t"),
        "{line}"
    );
    let show = run(estd(data.path()).args(["cert", "show", &serial.to_uppercase()]));
    assert!(show.contains("status:      valid"), "{show}");
    assert!(show.contains("-----BEGIN CERTIFICATE-----"), "{show}");
    let bad = estd(data.path())
        .args(["cert", "revoke", &serial, "--reason", "whatever"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("expected one of unspecified, keyCompromise")
    );
    let out = run(estd(data.path()).args([
        "cert",
        "revoke",
        &serial,
        "--reason",
        "key-compromise",
        "--by",
        "ops",
    ]));
    assert!(out.contains(&format!("revoked {serial}")), "{out}");
    let again = estd(data.path())
        .args(["cert", "revoke", &serial])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
    let list = run(estd(data.path()).args(["cert", "list", "--status", "revoked"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with(&serial) && l.contains("\trevoked\t")),
        "{list}"
    );
    assert_eq!(
        run(estd(data.path()).args(["cert", "list", "--status", "valid"])).trim(),
        "no certificates"
    );
    let show = run(estd(data.path()).args(["cert", "show", &serial]));
    assert!(
        show.contains("revoked:") && show.contains("by ops (keyCompromise)"),
        "{show}"
    );
    // the running server's OCSP responder knows at once (it reads the store)
    let rport = ports.revocation.expect("revocation port");
    let text = run(Command::new("openssl").args([
        "ocsp",
        "-issuer",
        &d("certs/issuing-ca.pem"),
        "-cert",
        &d("c.pem"),
        "-url",
        &format!("http://127.0.0.1:{rport}/ocsp"),
        "-CAfile",
        &d("certs/root-ca.pem"),
    ]));
    assert!(text.contains(": revoked"), "{text}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_production_sample_configuration_loads() {
    use figment::Figment;
    use figment::providers::{Format, Toml};
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/estd.production.toml");
    let c = estd::config::Config::from_figment(Figment::new().merge(Toml::file_exact(file)))
        .expect("conf/estd.production.toml");
    assert_eq!(c.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(c.revocation_listen.unwrap().to_string(), "0.0.0.0:8080");
    assert_eq!(
        c.revocation_base_url.as_deref(),
        Some("http://pki.example.com:8080")
    );
    assert_eq!(c.metrics_listen.unwrap().to_string(), "127.0.0.1:9187");
    assert!(c.log_json);
    // and the shipped one, with its defaults
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/estd.toml");
    let c = estd::config::Config::from_figment(Figment::new().merge(Toml::file_exact(file)))
        .expect("conf/estd.toml");
    assert_eq!(c.revocation_listen.unwrap().to_string(), "127.0.0.1:8081");
    assert_eq!(c.crl_validity, std::time::Duration::from_secs(24 * 3600));
}

#[tokio::test]
async fn readyz_fails_when_the_ca_certificate_has_expired() {
    use tower::ServiceExt;
    let env = common::inproc::env_in(expired_issuing_ca(), &[]).await;
    let r = estd::api::health::routes(env.state.clone())
        .oneshot(
            axum::http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.starts_with(
            "not ready\nCA key: signing failed: the issuing CA certificate expired at "
        ),
        "{text}"
    );
}
