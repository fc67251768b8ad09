//! 10,000 mutated requests against a live server (real TLS, keep-alive): CSR bodies with
//! flipped, cut and inserted bytes, garbage, every encoding; wrong and mangled media types,
//! methods, paths and Authorization headers; mutated JSON and forms. None may get a 5xx,
//! (except the deliberate 501 of the optional `/fullcmc`), and the server must still answer
//! afterwards. The mutations come from a fixed
//! seed, so a failure can be replayed.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use common::*;

/// xorshift64*: small, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..=rng.below(4) {
        if d.is_empty() {
            d = rng.bytes(8);
        }
        match rng.below(6) {
            0 => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 => d.truncate(rng.below(d.len())),
            2 => {
                let i = rng.below(d.len() + 1);
                let len = 1 + rng.below(16);
                let extra = rng.bytes(len);
                d.splice(i..i, extra);
            }
            3 => {
                let i = rng.below(d.len());
                d[i] = *rng.pick(&[0x00, 0xff, 0x30, 0x80, 0x81, 0x82, b'=', b'\n', b'-']);
            }
            4 => {
                let i = rng.below(d.len());
                let j = rng.below(d.len());
                d.swap(i, j);
            }
            _ => {
                let i = rng.below(d.len());
                let len = rng.below(d.len() - i + 1);
                let copy = d[i..i + len].to_vec();
                d.extend(copy);
            }
        }
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mutated_requests_and_no_5xx() {
    let mut s = start().await;
    let c = client(&s.root_pem(), None, false);
    let pw = s.admin_password.clone();
    let kp = key(Key::P256);
    let der = csr(&kp, "admin", &["a.example"]);
    let b64_csr = b64(&der);
    let pem_csr = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}-----END CERTIFICATE REQUEST-----\n",
        b64_lines(&der, "\n")
    );
    let json = serde_json::json!({
        "template": "eap-tls", "common_name": "admin", "san": "11:22:33:44:55:66",
        "format": "pkcs12-chain", "password": "Secret_#42",
    })
    .to_string();
    let test_json = serde_json::json!({
        "template": "mdm", "cert_name": "TestCert", "user_name": "jdoe",
        "domain": "example.com", "email": "jdoe@example.com",
    })
    .to_string();
    let basic_ok = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{pw}"))
    );
    let paths = [
        "/.well-known/est/simpleenroll",
        "/.well-known/est/simplereenroll",
        "/.well-known/est/serverkeygen",
        "/.well-known/est/devices/simpleenroll",
        "/.well-known/est/eap-tls/serverkeygen",
        "/.well-known/est/mdm/simpleenroll",
        "/.well-known/est/cacerts",
        "/.well-known/est/csrattrs",
        "/.well-known/est/eap-tls/csrattrs",
        "/.well-known/est/fullcmc",
        "/.well-known/est/%2e%2e/cacerts",
        "/.well-known/est/a/b/c",
        "/.well-known/est/",
        "/api/v1/certificates",
        "/api/v1/certificates/csr",
        "/api/v1/test-certificate",
        "/api/v1/bulk/1",
        "/api/v1/bulk/x/cancel",
        "/portal/login",
        "/portal/single",
        "/portal/test",
        "/portal/requests?since=%ff",
    ];
    let types = [
        "application/pkcs10",
        "application/pkcs10; charset=utf-8",
        "APPLICATION/PKCS10",
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "",
        "\u{0}",
    ];
    let mut rng = Rng(0x5eed_0000_e57d);
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    for n in 0..10_000u32 {
        // most requests are well aimed (the right method, path and media type for their
        // body), so that the mutations reach the parsers; the rest are random
        let coherent = rng.below(10) < 7;
        let kind = rng.below(7);
        let base: Vec<u8> = match kind {
            0 | 1 => b64_csr.clone().into_bytes(),
            2 => der.clone(),
            3 => pem_csr.clone().into_bytes(),
            4 => json.clone().into_bytes(),
            5 => test_json.clone().into_bytes(),
            _ => {
                let len = rng.below(300);
                rng.bytes(len)
            }
        };
        let (path, method, ct) = if coherent {
            match kind {
                4 => ("/api/v1/certificates", "POST", "application/json"),
                5 => ("/api/v1/test-certificate", "POST", "application/json"),
                _ => (*rng.pick(&paths[..6]), "POST", *rng.pick(&types[..3])),
            }
        } else {
            (
                *rng.pick(&paths),
                *rng.pick(&["POST", "GET", "PUT", "DELETE", "HEAD"]),
                *rng.pick(&types),
            )
        };
        let body = if rng.below(5) == 0 {
            base
        } else {
            mutate(&mut rng, &base)
        };
        let body = if rng.below(200) == 0 {
            vec![b'A'; 70_000]
        } else {
            body
        };
        let auth: Option<String> = match rng.below(10) {
            0 => None,
            1 => Some(String::from_utf8_lossy(&mutate(&mut rng, basic_ok.as_bytes())).into()),
            2 => Some("Basic !!!".into()),
            3 => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(rng.bytes(20))
            )),
            _ => Some(basic_ok.clone()),
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = c.request(method, s.url(path)).body(body);
        if !ct.is_empty()
            && let Ok(v) = reqwest::header::HeaderValue::from_str(ct)
        {
            req = req.header("content-type", v);
        }
        if let Some(a) = auth
            && let Ok(v) = reqwest::header::HeaderValue::from_str(&a)
        {
            req = req.header("authorization", v);
        }
        if rng.below(4) == 0 {
            req = req.header(
                "content-transfer-encoding",
                *rng.pick(&["base64", "binary", "7bit", "BASE64", "x"]),
            );
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {n} ({path}): {e}"));
        let status = r.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        // 501 for /fullcmc is the server saying it does not offer that operation (RFC 7030
        // §4.3 is optional), not a failure
        let declined = status == 501 && path.ends_with("/fullcmc");
        assert!(
            status < 500 || declined,
            "request {n}: {path} answered {status}: {}",
            r.text().await.unwrap_or_default()
        );
    }
    println!("statuses over 10,000 mutated requests: {statuses:?}");
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 100,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 1000,
        "{statuses:?}"
    );
    // still healthy (the mangled credentials counted as failed log-ins: this address was
    // slowed, which is the throttle doing its job)
    assert!(statuses.contains_key(&429), "{statuses:?}");
    let r = c
        .get(s.url("/.well-known/est/cacerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post_pkcs10(
        &c,
        s.url("/.well-known/est/simpleenroll"),
        Some(("admin", &pw)),
        b64_csr,
    )
    .await;
    // slowed, never locked out: the right (remembered) password still enrolls
    assert_eq!(r.status(), 200);
    s.stop().await;
}
