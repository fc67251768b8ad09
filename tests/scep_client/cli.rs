//! `estd client scep` (the binary) against a small SCEP server in this process.

use der::Decode;
use estd::scep_wire::{self as scep, FailInfo, MessageType, Payload, Status};
use rcgen::KeyPair;
use x509_cert::Certificate;

use super::Pki;

/// A small SCEP server: caps, the RA and the CA, and PKIOperation by POST or GET. A
/// PKCSReq with the challenge `s3cret` waits (PENDING) until polled; one signed by a
/// certificate of this CA is a renewal, issued at once, as is a RenewalReq.
struct Fake {
    pki: Pki,
    waiting: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
    issued: std::sync::Mutex<Vec<Vec<u8>>>,
    methods: std::sync::Mutex<Vec<String>>,
}

impl Fake {
    fn answer(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let msg = scep::parse(body).map_err(|e| e.reason)?;
        let (plain, cipher) =
            scep::open(&msg.envelope, &[self.pki.recipient()]).map_err(|e| e.reason)?;
        let signer = Certificate::from_der(&msg.signer_cert).unwrap();
        let ca = Certificate::from_der(&self.pki.ca_der).unwrap();
        let renewal = signer.tbs_certificate().issuer() == ca.tbs_certificate().subject();
        let issue = |csr: &[u8]| {
            let c = self.pki.issue(csr);
            self.issued.lock().unwrap().push(c.clone());
            Payload::Cert(c)
        };
        let payload = match msg.message_type {
            MessageType::PkcsReq if !renewal => {
                let csr = estd::est::Csr::parse(&plain).map_err(|e| e.to_string())?;
                if csr.challenge_password.as_deref() != Some("s3cret") {
                    None
                } else {
                    self.waiting
                        .lock()
                        .unwrap()
                        .insert(msg.transaction_id.clone(), plain);
                    let rep = scep::cert_rep(&msg.echo, &Status::Pending, &self.pki.signer());
                    return rep.map_err(|e| e.to_string());
                }
            }
            MessageType::PkcsReq | MessageType::RenewalReq => Some(issue(&plain)),
            MessageType::CertPoll => {
                let csr = self.waiting.lock().unwrap().remove(&msg.transaction_id);
                csr.map(|c| issue(&c))
            }
            MessageType::GetCert => {
                let ias = cms::cert::IssuerAndSerialNumber::from_der(&plain)
                    .map_err(|e| e.to_string())?;
                self.issued
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|c| {
                        Certificate::from_der(c)
                            .unwrap()
                            .tbs_certificate()
                            .serial_number()
                            == &ias.serial_number
                    })
                    .map(|c| Payload::Cert(c.clone()))
            }
            MessageType::GetCrl => Some(Payload::Crl(self.pki.crl())),
            MessageType::CertRep => None,
        };
        let status = match payload {
            Some(payload) => Status::Success {
                payload,
                recipient: msg.signer_cert.clone(),
                cipher,
            },
            None => Status::Failure(FailInfo::BadRequest),
        };
        scep::cert_rep(&msg.echo, &status, &self.pki.signer()).map_err(|e| e.to_string())
    }
}

/// The fake over plain HTTP, or over TLS with a certificate for 127.0.0.1 from its CA.
async fn fake_server(tls: bool) -> (String, std::sync::Arc<Fake>) {
    use axum::extract::{Query, State};
    use axum::http::{Method, header};
    use axum::response::IntoResponse;
    use base64::Engine;
    type Params = Query<std::collections::HashMap<String, String>>;
    async fn handle(
        State(fake): State<std::sync::Arc<Fake>>,
        method: Method,
        Query(q): Params,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        let op = q.get("operation").cloned().unwrap_or_default();
        match op.as_str() {
            "GetCACaps" => {
                "POSTPKIOperation\nSHA-256\nAES\nSCEPStandard\nRenewal\n".into_response()
            }
            "GetCACert" => {
                let p7 =
                    scep::reply::degenerate(&[&fake.pki.ra_der, &fake.pki.ca_der], &[]).unwrap();
                (
                    [(header::CONTENT_TYPE, "application/x-x509-ca-ra-cert")],
                    p7,
                )
                    .into_response()
            }
            "PKIOperation" => {
                fake.methods.lock().unwrap().push(method.to_string());
                let msg = if method == Method::GET {
                    let m = q.get("message").cloned().unwrap_or_default();
                    base64::engine::general_purpose::STANDARD
                        .decode(m)
                        .unwrap_or_default()
                } else {
                    body.to_vec()
                };
                match fake.answer(&msg) {
                    Ok(rep) => {
                        ([(header::CONTENT_TYPE, "application/x-pki-message")], rep).into_response()
                    }
                    Err(e) => (axum::http::StatusCode::BAD_REQUEST, e).into_response(),
                }
            }
            _ => (axum::http::StatusCode::BAD_REQUEST, "operation?").into_response(),
        }
    }
    let fake = std::sync::Arc::new(Fake {
        pki: Pki::new(),
        waiting: Default::default(),
        issued: Default::default(),
        methods: Default::default(),
    });
    let app = axum::Router::new()
        .route("/scep/mdm", axum::routing::get(handle).post(handle))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    if !tls {
        tokio::spawn(async move { axum::serve(listener, app).await });
        return (format!("http://127.0.0.1:{port}/scep/mdm"), fake);
    }
    let key = KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.subject_alt_names = vec![rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let issuer = rcgen::Issuer::from_params(&fake.pki.ca_params, &fake.pki.ca_key);
    let cert = p.signed_by(&key, &issuer).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (format!("https://127.0.0.1:{port}/scep/mdm"), fake)
}

/// `estd client scep ARGS` in `dir`, off the runtime: (exit status, stdout + stderr).
async fn client(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["client".to_string(), "scep".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_estd"))
            .args(&all)
            .current_dir(dir)
            .env_remove("SCEP_CHALLENGE")
            .env_remove("SCEP_CLIENT_URL")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    })
    .await
    .unwrap()
}

fn pem_certs(path: &std::path::Path) -> Vec<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(|c| c.unwrap().to_vec())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estd_client_scep_against_a_scep_server() {
    use std::os::unix::fs::PermissionsExt;
    let (url, fake) = fake_server(false).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out) = client(d, &["caps", "--url", &url]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("POSTPKIOperation") && out.contains("SCEPStandard"),
        "{out}"
    );

    // GetCACert over http: trusted only with the CA's fingerprint
    let ca_fp = estd::client::fingerprint(&fake.pki.ca_der);
    let ra_fp = estd::client::fingerprint(&fake.pki.ra_der);
    let (code, out) = client(d, &["cacert", "--url", &url, "--out", "ca.pem"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(&ca_fp) && out.contains("NOT TRUSTED"), "{out}");
    assert!(!d.join("ca.pem").exists());
    let (code, out) = client(
        d,
        &[
            "cacert",
            "--url",
            &url,
            "--out",
            "ca.pem",
            "--fingerprint",
            ra_fp.as_str(),
        ],
    )
    .await;
    assert_eq!(code, 3, "the RA's fingerprint is not the CA's: {out}");
    let (code, out) = client(
        d,
        &[
            "cacert",
            "--url",
            &url,
            "--out",
            "ca.pem",
            "--fingerprint",
            ca_fp.as_str(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        pem_certs(&d.join("ca.pem")),
        vec![fake.pki.ra_der.clone(), fake.pki.ca_der.clone()]
    );

    // enroll: PENDING (exit 4) with the transaction ID, the key saved 0600; then poll
    let ra = ["--url", url.as_str(), "--cacert", "ca.pem"];
    let enroll = |extra: &[&str]| {
        let mut a = vec!["enroll"];
        a.extend(ra);
        a.extend(["--cn", "dev1", "--san", "dns:dev1.example"]);
        a.extend(extra.iter().copied());
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let args = enroll(&[
        "--challenge",
        "s3cret",
        "--key-out",
        "k.pem",
        "--out",
        "c.pem",
    ]);
    let (code, out) = client(d, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("PENDING"), "{out}");
    let txid = fake.waiting.lock().unwrap().keys().next().unwrap().clone();
    assert!(out.contains(&format!("--txid {txid}")), "{out}");
    let mode = std::fs::metadata(d.join("k.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!d.join("c.pem").exists());
    let mut poll = vec!["poll"];
    poll.extend(ra);
    poll.extend([
        "--key",
        "k.pem",
        "--cn",
        "dev1",
        "--txid",
        txid.as_str(),
        "--out",
        "c.pem",
    ]);
    let (code, out) = client(d, &poll).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("issued: CN=dev1"), "{out}");
    let cert = pem_certs(&d.join("c.pem")).remove(0);
    let key_pem = std::fs::read_to_string(d.join("k.pem")).unwrap();
    let key = KeyPair::from_pem(&key_pem).unwrap();
    let parsed = Certificate::from_der(&cert).unwrap();
    assert_eq!(
        parsed
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
        key.public_key_raw()
    );
    // polled for again: nothing waits any more, badRequest (exit 1)
    let (code, out) = client(d, &poll).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("badRequest"), "{out}");

    // a wrong challenge: FAILURE badRequest, exit 1
    let args = enroll(&[
        "--challenge",
        "wrong",
        "--key-out",
        "k2.pem",
        "--out",
        "c2.pem",
    ]);
    let (code, out) = client(d, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("badRequest"), "{out}");

    // --wait: the client polls by itself; by GET this time
    let args = enroll(&[
        "--challenge",
        "s3cret",
        "--key-out",
        "k3.pem",
        "--out",
        "c3.pem",
        "--wait",
        "5",
        "--poll-interval",
        "1",
        "--method",
        "get",
        "--cipher",
        "3des",
    ]);
    let (code, out) = client(d, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, 0, "{out}");
    assert!(d.join("c3.pem").exists());
    let methods = fake.methods.lock().unwrap().clone();
    assert!(
        methods.contains(&"GET".to_string()) && methods.contains(&"POST".to_string()),
        "{methods:?}"
    );

    // renew: RenewalReq with a new key; PKCSReq signed by the old certificate
    let mut renew = vec!["renew"];
    renew.extend(ra);
    renew.extend([
        "--cert",
        "c.pem",
        "--key",
        "k.pem",
        "--out",
        "r.pem",
        "--key-out",
        "rk.pem",
    ]);
    let (code, out) = client(d, &renew).await;
    assert_eq!(code, 0, "{out}");
    let renewed = Certificate::from_der(&pem_certs(&d.join("r.pem"))[0]).unwrap();
    assert_eq!(
        renewed.tbs_certificate().subject(),
        parsed.tbs_certificate().subject()
    );
    assert_ne!(
        renewed.tbs_certificate().subject_public_key_info(),
        parsed.tbs_certificate().subject_public_key_info(),
        "a new key"
    );
    let mut renew = vec!["renew"];
    renew.extend(ra);
    renew.extend([
        "--cert",
        "c.pem",
        "--key",
        "k.pem",
        "--out",
        "r2.pem",
        "--pkcsreq",
    ]);
    let (code, out) = client(d, &renew).await;
    assert_eq!(code, 0, "{out}");

    // getcert by serial, getcrl
    let serial = estd::est::hex(parsed.tbs_certificate().serial_number().as_bytes());
    let mut getcert = vec!["getcert"];
    getcert.extend(ra);
    getcert.extend([
        "--cert",
        "c.pem",
        "--key",
        "k.pem",
        "--serial",
        serial.as_str(),
        "--out",
        "x.pem",
    ]);
    let (code, out) = client(d, &getcert).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(pem_certs(&d.join("x.pem")), vec![cert.clone()]);
    let mut getcrl = vec!["getcrl"];
    getcrl.extend(ra);
    getcrl.extend(["--cert", "c.pem", "--key", "k.pem", "--out", "crl.pem"]);
    let (code, out) = client(d, &getcrl).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        std::fs::read_to_string(d.join("crl.pem"))
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_tls_connection_is_verified() {
    let (url, fake) = fake_server(true).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("tls-ca.pem"),
        estd::est::pem("CERTIFICATE", &fake.pki.ca_der),
    )
    .unwrap();
    let other = Pki::new();
    std::fs::write(
        d.join("wrong-ca.pem"),
        estd::est::pem("CERTIFICATE", &other.ca_der),
    )
    .unwrap();
    // a TLS server nobody vouched for: GetCACert is not trusted without the fingerprint
    let (code, out) = client(d, &["cacert", "--url", &url, "--out", "ca.pem"]).await;
    assert_eq!(code, 3, "{out}");
    // the TLS server's CA given: GetCACert is trusted as it comes
    let (code, out) = client(
        d,
        &[
            "cacert",
            "--url",
            &url,
            "--tls-cacert",
            "wrong-ca.pem",
            "--out",
            "ca.pem",
        ],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TLS"), "{out}");
    let (code, out) = client(
        d,
        &[
            "cacert",
            "--url",
            &url,
            "--tls-cacert",
            "tls-ca.pem",
            "--out",
            "ca.pem",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    // then the CA file is the TLS trust too: enroll and wait for the certificate
    let (code, out) = client(
        d,
        &[
            "enroll",
            "--url",
            &url,
            "--cacert",
            "ca.pem",
            "--cn",
            "dev9",
            "--challenge",
            "s3cret",
            "--key-out",
            "k.pem",
            "--out",
            "c.pem",
            "--wait",
            "5",
            "--poll-interval",
            "1",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("issued: CN=dev9"), "{out}");
}
