//! `estd client` against an EST server that is not estd: a TLS 1.2-only server on
//! 127.0.0.1 whose answers are the odd ones real servers send — base64 with CRLF lines and
//! no Content-Transfer-Encoding, base64 without line breaks, upper-case media type
//! parameters, trailing NUL bytes, an unusual multipart boundary with a quoted, spaced
//! Content-Type, and a PKCS#1 RSA key in the `application/pkcs8` part.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use der::Decode;
use estd::client::{Endpoint, Enrolled, EstClient, Trust, tls_config};
use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

struct Fake {
    ca_der: Vec<u8>,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn crlf_lines(s: &str, width: usize) -> String {
    s.as_bytes()
        .chunks(width)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect()
}

/// A requester's public key, as rcgen wants it.
struct Public {
    raw: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl rcgen::PublicKeyData for Public {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

impl Fake {
    fn issue(&self, key: &Public, cn: &str) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        p.signed_by(key, &issuer).unwrap().der().to_vec()
    }
}

fn answer(ct: &str, body: impl Into<Bytes>) -> Response {
    let mut r = body.into().into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
    r
}

fn csr_key(body: &[u8]) -> Public {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .unwrap();
    let req = x509_cert::request::CertReq::from_der(&der).unwrap();
    let spki = &req.info.public_key;
    assert_eq!(
        spki.algorithm.oid.to_string(),
        "1.2.840.10045.2.1",
        "the client sends P-256 CSRs here"
    );
    Public {
        raw: spki.subject_public_key.raw_bytes().to_vec(),
        alg: &rcgen::PKCS_ECDSA_P256_SHA256,
    }
}

/// Starts the odd server; returns its port and the CA certificate (PEM trust anchor).
async fn start_fake() -> (u16, Vec<u8>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Odd EST Root");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let tls_key = KeyPair::generate().unwrap();
    let mut tls_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    tls_params
        .distinguished_name
        .push(DnType::CommonName, "odd-est");
    let tls_cert = tls_params
        .signed_by(&tls_key, &Issuer::from_params(&ca_params, &ca_key))
        .unwrap();
    let fake = Arc::new(Fake {
        ca_der: ca.der().to_vec(),
        ca_params,
        ca_key,
    });

    let f = fake.clone();
    let cacerts = move || {
        let f = f.clone();
        async move {
            let p7 = estd::est::certs_only(&[&f.ca_der]).unwrap();
            // CRLF lines of 76, a trailing NUL, no Content-Transfer-Encoding
            answer(
                "application/pkcs7-mime",
                format!("{}\0", crlf_lines(&b64(&p7), 76)),
            )
        }
    };
    let f = fake.clone();
    let enroll = move |body: Bytes| {
        let f = f.clone();
        async move {
            let cert = f.issue(&csr_key(&body), "enrolled");
            let p7 = estd::est::certs_only(&[&cert]).unwrap();
            // one long base64 line, upper-case parameter value, NUL at the end
            answer(
                "Application/PKCS7-MIME; smime-type=CERTS-ONLY",
                format!("{}\0", b64(&p7)),
            )
        }
    };
    let f = fake.clone();
    let keygen = move |_body: Bytes| {
        let f = f.clone();
        async move {
            let kp = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
            let cert = f.issue(
                &Public {
                    raw: kp.public_key_raw().to_vec(),
                    alg: &rcgen::PKCS_RSA_SHA256,
                },
                "server-generated",
            );
            let p8 = kp.serialize_der();
            let pkcs1 = pkcs8::PrivateKeyInfoRef::from_der(&p8)
                .unwrap()
                .private_key
                .as_bytes()
                .to_vec();
            let p7 = estd::est::certs_only(&[&cert]).unwrap();
            let boundary = "----=_NextPart_000_0012_01D9";
            let body = format!(
                "--{boundary}\nContent-Type: application/pkcs8\n\n{}\n--{boundary}\nContent-Type: application/pkcs7-mime; smime-type=certs-only\nContent-Transfer-Encoding: base64\n\n{}\n--{boundary}--\n\0",
                b64(&pkcs1),
                crlf_lines(&b64(&p7), 64),
            );
            answer(&format!("multipart/mixed ; boundary=\"{boundary}\""), body)
        }
    };
    let app = Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/csrattrs", get(|| async { "" }))
        .route("/.well-known/est/simpleenroll", post(enroll))
        .route("/.well-known/est/serverkeygen", post(keygen));

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![
                CertificateDer::from(tls_cert.der().to_vec()),
                CertificateDer::from(fake.ca_der.clone()),
            ],
            PrivateKeyDer::try_from(tls_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                assert_eq!(
                    tls.get_ref().1.protocol_version(),
                    Some(rustls::ProtocolVersion::TLSv1_2)
                );
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, ca.pem().into_bytes())
}

#[tokio::test]
async fn copes_with_what_other_servers_send() {
    let (port, ca_pem) = start_fake().await;
    let roots: Vec<CertificateDer<'static>> = {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::pem_slice_iter(&ca_pem)
            .map(|c| c.unwrap())
            .collect()
    };
    let endpoint = Endpoint::parse(&format!("https://127.0.0.1:{port}/"), None, None).unwrap();
    let client = EstClient::new(
        endpoint.clone(),
        tls_config(Trust::Roots(roots.clone()), None).unwrap(),
        Some(("user".into(), zeroize::Zeroizing::new("pw".into()))),
        Duration::from_secs(10),
    );

    // CRLF base64 + NUL, no Content-Transfer-Encoding
    let cacerts = client.cacerts().await.unwrap();
    assert_eq!(cacerts.len(), 1);
    assert!(
        estd::client::fingerprint_matches(
            &estd::client::fingerprint(&cacerts[0]),
            roots[0].as_ref()
        ),
        "the CA certificate, byte for byte"
    );

    // an empty 200 to /csrattrs: nothing asked
    assert!(client.csrattrs().await.unwrap().is_empty());

    // unbroken base64, upper-case smime-type, NUL
    let kp = KeyPair::generate().unwrap();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CommonName, "device-1");
    let csr = estd::client::build_csr(&kp, dn.clone(), &[]).unwrap();
    let Enrolled::Issued(certs) = client.enroll("simpleenroll", &csr).await.unwrap() else {
        panic!("pending?")
    };
    let cert = x509_cert::Certificate::from_der(&certs[0]).unwrap();
    assert_eq!(
        cert.tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
        kp.public_key_raw()
    );

    // multipart with an odd boundary, a PKCS#1 key in the pkcs8 part, LF line ends, NUL
    let got = client.serverkeygen(&csr).await.unwrap();
    let key = KeyPair::try_from(got.pkcs8.as_slice()).expect("PKCS#8 now");
    let cert = x509_cert::Certificate::from_der(&got.certs[0]).unwrap();
    assert_eq!(
        cert.tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
        key.public_key_raw(),
        "the key is the certificate's"
    );
    assert!(
        pkcs8::PrivateKeyInfoRef::from_der(&got.pkcs8).is_ok(),
        "wrapped as PrivateKeyInfo"
    );

    // bootstrap: the provisional connection reads /cacerts from an untrusted server, and
    // a client trusting another CA cannot talk to it at all
    let provisional = EstClient::new(
        endpoint.clone(),
        tls_config(Trust::Provisional, None).unwrap(),
        None,
        Duration::from_secs(10),
    );
    assert_eq!(provisional.cacerts().await.unwrap(), cacerts);
    let other = KeyPair::generate().unwrap();
    let mut op = CertificateParams::default();
    op.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = op.self_signed(&other).unwrap();
    let stranger = EstClient::new(
        endpoint,
        tls_config(
            Trust::Roots(vec![CertificateDer::from(other_ca.der().to_vec())]),
            None,
        )
        .unwrap(),
        None,
        Duration::from_secs(10),
    );
    let err = stranger.cacerts().await.unwrap_err();
    assert!(matches!(err, estd::client::ClientError::Tls(_)), "{err}");
}
