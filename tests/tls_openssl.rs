//! TLS as `openssl s_client` sees it: only TLS 1.2 (with extended master secret) and 1.3, no
//! weak suites; client certificates that are expired or from another CA are refused at the
//! handshake, a valid one is accepted.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `s_client` with a request on stdin; its exit success and everything it printed.
fn s_client(dir: &Path, port: u16, extra: &[&str]) -> (bool, String) {
    use std::io::Write;
    let connect = format!("127.0.0.1:{port}");
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "localhost",
            "-CAfile",
            "certs/root-ca.pem",
            "-ign_eof",
        ])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /.well-known/est/cacerts HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_openssl_s_client_sees() {
    let mut s = start().await;
    let port: u16 = s.url("").rsplit(':').next().unwrap().parse().unwrap();
    let dir = s.data();
    let run = |extra: &[&str]| s_client(&dir, port, extra);

    let (ok, out) = run(&["-tls1_3"]);
    assert!(
        ok && out.contains(" 200 OK") && out.contains("TLSv1.3"),
        "{out}"
    );
    let (ok, out) = run(&["-tls1_2"]);
    assert!(ok && out.contains(" 200 OK"), "{out}");
    assert!(out.contains("Extended master secret: yes"), "{out}");
    for old in ["-tls1_1", "-tls1"] {
        let (ok, out) = run(&[old]);
        assert!(!ok && !out.contains(" 200 OK"), "{old}: {out}");
    }
    // weak TLS 1.2 suites: RSA key exchange, CBC, 3DES
    for weak in [
        "AES128-SHA",
        "AES256-SHA256",
        "ECDHE-RSA-AES128-SHA",
        "DES-CBC3-SHA",
    ] {
        let (ok, out) = run(&["-tls1_2", "-cipher", weak]);
        assert!(!ok && !out.contains(" 200 OK"), "{weak}: {out}");
    }

    // client certificates: a valid one, an expired one from this CA, one from another CA
    let ca_conf = "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n[client]\nkeyUsage = digitalSignature\nextendedKeyUsage = clientAuth\n";
    std::fs::write(dir.join("ca.cnf"), ca_conf).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    for name in ["good", "expired", "stranger"] {
        openssl(
            &dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-subj",
                "/CN=admin",
                "-out",
                &format!("{name}.csr"),
            ],
        );
    }
    let sign = |name: &str, start: &str, end: &str, cert: &str, key: &str| {
        openssl(
            &dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-notext",
                "-startdate",
                start,
                "-enddate",
                end,
                "-cert",
                cert,
                "-keyfile",
                key,
                "-extensions",
                "client",
                "-extfile",
                "ca.cnf",
                "-in",
                &format!("{name}.csr"),
                "-out",
                &format!("{name}.pem"),
            ],
        )
    };
    sign(
        "good",
        "20250101000000Z",
        "20350101000000Z",
        "certs/issuing-ca.pem",
        "certs/issuing-ca.key",
    );
    sign(
        "expired",
        "20200101000000Z",
        "20200201000000Z",
        "certs/issuing-ca.pem",
        "certs/issuing-ca.key",
    );
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other-ca.key",
            "-subj",
            "/CN=Other CA",
            "-days",
            "30",
            "-out",
            "other-ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=keyCertSign",
        ],
    );
    sign(
        "stranger",
        "20250101000000Z",
        "20350101000000Z",
        "other-ca.pem",
        "other-ca.key",
    );
    for v in ["-tls1_2", "-tls1_3"] {
        let (ok, out) = run(&[v, "-cert", "good.pem", "-key", "good.key"]);
        assert!(ok && out.contains(" 200 OK"), "{v} good: {out}");
        let (_, out) = run(&[v, "-cert", "expired.pem", "-key", "expired.key"]);
        assert!(!out.contains(" 200 OK"), "{v} expired: {out}");
        assert!(out.contains("certificate expired"), "{v} expired: {out}");
        let (_, out) = run(&[v, "-cert", "stranger.pem", "-key", "stranger.key"]);
        assert!(!out.contains(" 200 OK"), "{v} other CA: {out}");
        assert!(out.contains("unknown ca"), "{v} other CA: {out}");
    }
    s.stop().await;
}
