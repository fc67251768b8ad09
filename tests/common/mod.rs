//! Test harness: a real estd on 127.0.0.1:0 with its own data directory, templates and dev
//! PKI, plus CSR and client helpers. Every fixture is generated; nothing is committed.
#![allow(dead_code)]

pub mod inproc;
pub mod pg;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use estd::app::{self, Running};
use estd::config::Config;
use figment::Figment;
use figment::providers::{Format, Toml};
use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub const DEFAULT_TEMPLATE: &str = r#"
name = "default"
key_types = ["ec-p256", "rsa-2048"]
validity_days = 365
san_style = "dns"
san_optional = true
dns_names = ["admin.example", "joe.example", "alice.example", "bob.example", "dev.example", "a.example", "b.example", "alt.example", "x.example", "*.devices.example"]
"#;

/// Any key type, optional DNS SANs: asks nothing in /csrattrs (an empty SEQUENCE).
pub const DEVICES_TEMPLATE: &str = r#"
name = "devices"
key_types = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"]
validity_days = 30
extended_key_usage = ["client_auth", "server_auth"]
san_style = "dns"
san_optional = true
dns_names = ["admin.example", "joe.example", "alice.example", "bob.example", "dev.example", "a.example", "b.example", "alt.example", "x.example", "*.devices.example"]
"#;

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub running: Option<Running>,
    pub admin_password: String,
}

impl TestServer {
    pub fn data(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn url(&self, path: &str) -> String {
        let addr = self.running.as_ref().map(|r| r.addr).expect("running");
        format!("https://localhost:{}{path}", addr.port())
    }

    /// On the plain-HTTP CRL and OCSP listener.
    pub fn revocation_url(&self, path: &str) -> String {
        let addr = self.running.as_ref().and_then(|r| r.revocation_addr);
        format!("http://{}{path}", addr.expect("revocation listener"))
    }

    /// On the plain-HTTP metrics and health listener.
    pub fn metrics_url(&self, path: &str) -> String {
        let addr = self.running.as_ref().and_then(|r| r.metrics_addr);
        format!("http://{}{path}", addr.expect("metrics listener"))
    }

    pub fn root_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("certs/root-ca.pem")).expect("root")
    }

    pub fn state(&self) -> Arc<estd::web::AppState> {
        self.running.as_ref().expect("running").state.clone()
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("stop");
        }
    }
}

/// The configuration of a test server in `dir` (listening on a free port).
pub fn test_config(dir: &std::path::Path, extra: &str) -> Config {
    test_config_with(dir, extra, &[])
}

/// With further templates (TOML texts) beside the default and devices ones.
pub fn test_config_with(dir: &std::path::Path, extra: &str, more: &[&str]) -> Config {
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("default.toml"), DEFAULT_TEMPLATE).unwrap();
    std::fs::write(templates.join("devices.toml"), DEVICES_TEMPLATE).unwrap();
    config_for(dir, extra, more)
}

/// The shipped templates (conf/templates/), as an operator starts with them, and further
/// ones (TOML texts).
pub fn shipped_config(dir: &std::path::Path, extra: &str, more: &[&str]) -> Config {
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/templates");
    for f in std::fs::read_dir(shipped).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&f, templates.join(f.file_name().unwrap())).unwrap();
        }
    }
    config_for(dir, extra, more)
}

/// A server with the shipped templates (and `more`).
pub async fn start_shipped(more: &[&str]) -> TestServer {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path(), "", more);
    let running = app::start(&config).await.expect("start");
    let admin_password = running.admin_password.clone().expect("admin created");
    TestServer {
        dir,
        config,
        running: Some(running),
        admin_password,
    }
}

fn config_for(dir: &std::path::Path, extra: &str, more: &[&str]) -> Config {
    let templates = dir.join("templates");
    for (i, t) in more.iter().enumerate() {
        std::fs::write(templates.join(format!("extra-{i}.toml")), t).unwrap();
    }
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[est]\ntemplates_dir = {:?}\n{limits}[log]\nfilter = \"warn\"\n{extra}",
        dir.display().to_string(),
        templates.display().to_string(),
        // a test that sets limits of its own writes the whole [limits] table (the same for
        // [revocation] and [metrics]: by default both listen on free ports)
        limits = [
            ("[limits]", "[limits]\nshutdown_grace_secs = 2\n"),
            ("[revocation]", "[revocation]\nlisten = \"127.0.0.1:0\"\n"),
            ("[metrics]", "[metrics]\nlisten = \"127.0.0.1:0\"\n"),
        ]
        .iter()
        .filter(|(table, _)| !extra.contains(table))
        .map(|(_, text)| *text)
        .collect::<String>()
    );
    Config::from_figment(Figment::new().merge(Toml::string(&toml))).expect("config")
}

pub async fn start() -> TestServer {
    start_with("").await
}

pub async fn start_with(extra: &str) -> TestServer {
    start_with_templates(extra, &[]).await
}

pub async fn start_with_templates(extra: &str, templates: &[&str]) -> TestServer {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config_with(dir.path(), extra, templates);
    let running = app::start(&config).await.expect("start");
    let admin_password = running.admin_password.clone().expect("admin created");
    TestServer {
        dir,
        config,
        running: Some(running),
        admin_password,
    }
}

/// Which key a test CSR has.
#[derive(Clone, Copy, Debug)]
pub enum Key {
    P256,
    P384,
    Ed25519,
    Rsa2048,
}

pub fn key(k: Key) -> KeyPair {
    match k {
        Key::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        Key::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        Key::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        Key::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap()
        }
    }
}

/// A DER CSR for `cn` with DNS SANs, signed by `kp`.
pub fn csr(kp: &KeyPair, cn: &str, dns: &[&str]) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = dns
        .iter()
        .map(|d| SanType::DnsName((*d).try_into().unwrap()))
        .collect();
    params.serialize_request(kp).unwrap().der().to_vec()
}

pub fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// base64 in 64-character lines with CRLF, as some clients send.
pub fn b64_lines(der: &[u8], eol: &str) -> String {
    let one = b64(der);
    one.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(eol)
        + eol
}

pub fn unb64(body: &[u8]) -> Vec<u8> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .expect("base64 body")
}

/// The certificates of a base64 certs-only body.
pub fn certs_of(body: &[u8]) -> Vec<x509_cert::Certificate> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    use der::Decode;
    let der = unb64(body);
    let info = ContentInfo::from_der(&der).expect("ContentInfo");
    let sd: SignedData = info.content.decode_as().expect("SignedData");
    assert!(sd.signer_infos.0.is_empty(), "certs-only has no signers");
    sd.certificates
        .expect("certificates")
        .0
        .iter()
        .map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c) => c.clone(),
            _ => panic!("not a certificate"),
        })
        .collect()
}

pub fn der_of(cert: &x509_cert::Certificate) -> Vec<u8> {
    use der::Encode;
    cert.to_der().unwrap()
}

/// A reqwest client trusting the test root, optionally with a client certificate, and
/// limited to one TLS version when asked.
pub fn client(
    root_pem: &[u8],
    identity: Option<(Vec<u8>, &KeyPair)>,
    tls12_only: bool,
) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(client_config(root_pem, identity, tls12_only))
        .build()
        .unwrap()
}

/// The rustls side of `client`, offering ALPN h2 and http/1.1.
pub fn client_config(
    root_pem: &[u8],
    identity: Option<(Vec<u8>, &KeyPair)>,
    tls12_only: bool,
) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(root_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert_der, kp)) => {
            let key = PrivateKeyDer::try_from(kp.serialize_der()).unwrap();
            builder
                .with_client_auth_cert(vec![CertificateDer::from(cert_der)], key)
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// POSTs a base64 body as `application/pkcs10`, with Basic credentials when given.
pub async fn post_pkcs10(
    client: &reqwest::Client,
    url: String,
    basic: Option<(&str, &str)>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = client
        .post(url)
        .header("content-type", "application/pkcs10")
        .body(body);
    if let Some((user, password)) = basic {
        req = req.basic_auth(user, Some(password));
    }
    req.send().await.unwrap()
}

/// A base64 CsrAttrs body as text: a bare OID, or `attribute=value,value` (values that are
/// OIDs or INTEGERs).
pub fn csrattrs_of(body: &[u8]) -> Vec<String> {
    use der::{Decode, Tag, Tagged};
    let items = Vec::<der::Any>::from_der(&unb64(body)).expect("CsrAttrs");
    items
        .iter()
        .map(|item| match item.tag() {
            Tag::ObjectIdentifier => item
                .decode_as::<der::asn1::ObjectIdentifier>()
                .unwrap()
                .to_string(),
            Tag::Sequence => {
                let attr: x509_cert::attr::Attribute = item.decode_as().unwrap();
                let values: Vec<String> = attr
                    .values
                    .iter()
                    .map(|v| match v.tag() {
                        Tag::ObjectIdentifier => v
                            .decode_as::<der::asn1::ObjectIdentifier>()
                            .unwrap()
                            .to_string(),
                        Tag::Integer => v.decode_as::<u32>().unwrap().to_string(),
                        other => format!("{other}"),
                    })
                    .collect();
                format!("{}={}", attr.oid, values.join(","))
            }
            other => panic!("unexpected {other} in CsrAttrs"),
        })
        .collect()
}

/// A data directory whose issuing CA certificate has expired: the key is there, but the CA
/// cannot sign with it (a real operator failure).
#[allow(dead_code)]
pub fn expired_issuing_ca() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    let ca = |cn: &str, from, to| {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = from;
        p.not_after = to;
        p
    };
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca(
        "old root",
        (now - 10 * day).into(),
        (now + 1000 * day).into(),
    );
    let root = root_params.self_signed(&root_key).unwrap();
    let issuing_key = KeyPair::generate().unwrap();
    let issuing = ca(
        "expired issuing CA",
        (now - 10 * day).into(),
        (now - day).into(),
    )
    .signed_by(
        &issuing_key,
        &rcgen::Issuer::from_params(&root_params, &root_key),
    )
    .unwrap();
    std::fs::write(certs.join("root-ca.pem"), root.pem()).unwrap();
    std::fs::write(certs.join("root-ca.key"), root_key.serialize_pem()).unwrap();
    std::fs::write(certs.join("issuing-ca.pem"), issuing.pem()).unwrap();
    std::fs::write(certs.join("issuing-ca.key"), issuing_key.serialize_pem()).unwrap();

    dir
}

/// A real `estd serve` process (this package's binary) on a free local port, with `data` as
/// its data directory, the shipped templates and log level `warn` unless `env` says
/// otherwise, further `ESTD_*` settings from `env`, and its stderr sent to `stderr`.
/// Returns once it listens; its stdout is drained from then on.
pub fn spawn_estd(
    data: &std::path::Path,
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> (std::process::Child, u16) {
    let (child, ports) = spawn_estd_ports(data, env, stderr);
    (child, ports.est)
}

/// `estd user add NAME --group G… --password-stdin` on the data directory `data` (beside a
/// running `spawn_estd` or not).
pub fn estd_user_add(data: &std::path::Path, name: &str, groups: &[&str], password: &str) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_estd"));
    cmd.args(["user", "add", name, "--password-stdin"])
        .env("ESTD_DATA_DIR", data)
        .env_remove("ESTD_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    for g in groups {
        cmd.args(["--group", g]);
    }
    let mut child = cmd.spawn().expect("estd user add");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "estd user add {name}");
}

/// Where a spawned estd listens.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub est: u16,
    pub revocation: Option<u16>,
    pub metrics: Option<u16>,
}

/// `spawn_estd`, with the plain-HTTP listeners' ports too.
pub fn spawn_estd_ports(
    data: &std::path::Path,
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> (std::process::Child, Ports) {
    use std::io::{BufRead, BufReader};
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_estd"));
    cmd.arg("serve")
        .env("ESTD_DATA_DIR", data)
        .env("ESTD_LISTEN", "127.0.0.1:0")
        .env("ESTD_REVOCATION_LISTEN", "127.0.0.1:0")
        .env("ESTD_METRICS_LISTEN", "127.0.0.1:0")
        .env(
            "ESTD_EST_TEMPLATES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/conf/templates"),
        )
        .env("ESTD_LOG_FILTER", "warn")
        .env_remove("ESTD_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("estd");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port_after = |line: &str, prefix: &str| -> Option<u16> {
        let rest = line.strip_prefix(prefix)?;
        rest.split('/').next()?.parse().ok()
    };
    let (mut revocation, mut metrics) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        revocation = revocation.or(port_after(&line, "estd revocation on http://127.0.0.1:"));
        metrics = metrics.or(port_after(&line, "estd metrics on http://127.0.0.1:"));
        // the EST line comes last
        if let Some(est) = port_after(&line, "estd listening on https://127.0.0.1:") {
            // keep reading stdout so that the process never blocks on a full pipe
            std::thread::spawn(move || for _ in lines {});
            return (
                child,
                Ports {
                    est,
                    revocation,
                    metrics,
                },
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("estd did not start");
}

/// A client trusting `root_pem` that does not follow redirects (to see the portal's).
pub fn no_redirect_client(root_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(client_config(root_pem, None, false))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` parts of a response's `Set-Cookie` headers.
pub fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect()
}

/// The CSRF token of the first form in a page.
pub fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

/// Logs in through the portal's form at `base` (its CSRF cookie and token included) with a
/// `no_redirect_client`; the session cookie, `__Host-estd_session=…`.
pub async fn portal_login(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> String {
    let r = http
        .get(format!("{base}/portal/login"))
        .send()
        .await
        .unwrap();
    let cookie = set_cookies(&r).join("; ");
    let token = csrf_in(&r.text().await.unwrap());
    let r = http
        .post(format!("{base}/portal/login"))
        .header("cookie", cookie)
        .form(&[
            ("csrf", token.as_str()),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "logged in");
    set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("__Host-estd_session="))
        .expect("a session cookie")
}

/// Waits (up to 20 s) while the waiting request `id` of `s` is in `state`; its state then.
pub async fn pending_state_after(
    s: &TestServer,
    id: i64,
    state: estd::store::PendingState,
) -> estd::store::PendingState {
    for _ in 0..100 {
        let now = s
            .state()
            .store
            .get_pending(id)
            .await
            .unwrap()
            .unwrap()
            .state;
        if now != state {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    state
}

/// A certificate's subjectPublicKey bits.
pub fn spki_bits(c: &x509_cert::Certificate) -> Vec<u8> {
    c.tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec()
}
