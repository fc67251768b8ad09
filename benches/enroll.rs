//! A whole enrollment in-process: HTTP request through the router (audit layer, Basic
//! authentication with remembered credentials, CSR parse and verify, policy, signing,
//! certs-only encoding, the certificate and audit rows through SQLite's group commit) —
//! everything but TLS and the socket. Run: `cargo bench -p estd-benches --bench enroll`.

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, header};
use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use figment::Figment;
use figment::providers::{Format, Toml};
use tower::ServiceExt;

fn whole_enrollment(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf/templates");
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[est]\ntemplates_dir = {templates:?}\n[database]\nsynchronous = \"normal\"\n[log]\nfilter = \"off\"\n[revocation]\nlisten = \"\"\n[metrics]\nlisten = \"\"\n",
        dir.path().display().to_string()
    );
    let config =
        estd::config::Config::from_figment(Figment::new().merge(Toml::string(&toml))).unwrap();
    let built = rt.block_on(estd::app::build(&config)).unwrap();
    let router = estd::api::router(built.state.clone());
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("admin:{}", built.admin_password.unwrap()))
    );
    // CSRs made before the clock starts
    let bodies: Vec<Vec<u8>> = (0..512)
        .map(|_| {
            let kp = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::default();
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "admin");
            estd::est::encode_body(p.serialize_request(&kp).unwrap().der())
        })
        .collect();
    let mut n = 0usize;
    c.bench_function("enroll/whole-in-process-p256", |b| {
        b.iter(|| {
            n += 1;
            let req = Request::post("/.well-known/est/simpleenroll")
                .header(header::AUTHORIZATION, &auth)
                .header(header::CONTENT_TYPE, "application/pkcs10")
                .body(Body::from(bodies[n % bodies.len()].clone()))
                .unwrap();
            let resp = rt.block_on(router.clone().oneshot(req)).unwrap();
            assert_eq!(resp.status(), 200);
            black_box(resp)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = whole_enrollment
}
criterion_main!(benches);
