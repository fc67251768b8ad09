//! The portal and the JSON API over real TLS: sessions, CSRF, throttling, the forms and
//! their messages, downloads.

mod common;

use std::io::Read;

use common::*;
use reqwest::header;

const EAP: &str = "name = \"eap\"\ndescription = \"EAP-TLS\"\nkey_types = [\"ec-p256\"]\nserver_keygen_key = \"ec-p256\"\nvalidity_days = 30\nsan_style = \"mac\"\n";
const POS: &str = "name = \"pos\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"mac\"\n[required_rdns]\nOU = \"POS terminals\"\nO = \"Example\"\n";

const MDM: &str = "name = \"mdm\"\ndescription = \"MDM connector\"\nkey_types = [\"ec-p256\"]\nvalidity_days = 30\nsan_style = \"upn+email\"\nupn_names = [\"*\"]\nemail_names = [\"*\"]\ncn_must_match_user = false\n";

/// A client that keeps no cookies by itself: the tests handle them, to see their attributes.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(s: &TestServer) -> Self {
        Self {
            http: no_redirect_client(&s.root_pem()),
            base: s.url(""),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, r: &reqwest::Response) -> Vec<String> {
        let set: Vec<String> = r
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for c in &set {
            let (kv, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
        set
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// Logs in; returns the log-in response.
    async fn login(&mut self, user: &str, password: &str) -> reqwest::Response {
        let (_, html) = self.get("/portal/login").await;
        let token = csrf_in(&html);
        self.post(
            "/portal/login",
            &[("csrf", &token), ("username", user), ("password", password)],
        )
        .await
    }
}

fn alert(html: &str) -> String {
    let at = html.find("role=\"alert\">").map(|i| i + 13).unwrap_or(0);
    html[at..]
        .split('<')
        .next()
        .unwrap_or("")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn zip_names(bytes: &[u8]) -> Vec<String> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut names: Vec<String> = (0..z.len())
        .map(|i| z.by_index(i).unwrap().name().to_string())
        .collect();
    names.sort();
    names
}

async fn setup() -> TestServer {
    let s = start_with_templates("", &[EAP, POS, MDM]).await;
    for (name, groups) in [
        ("joe", vec!["est-users"]),
        ("outsider", vec!["contractors"]),
    ] {
        let hash = estd::auth::hash_password("Joe-password-1").unwrap();
        s.state()
            .store
            .add_user(
                name,
                &hash,
                &groups.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
            )
            .await
            .unwrap();
    }
    s
}

#[tokio::test]
async fn log_in_sets_a_strict_session_cookie_with_a_new_id() {
    let mut s = setup().await;
    let mut b = Browser::new(&s);
    // a planted session id is not adopted
    b.cookies.push((
        "__Host-estd_session".into(),
        "planted-by-an-attacker".into(),
    ));
    let r = b.login("joe", "Joe-password-1").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[header::LOCATION], "/portal/single");
    let set: Vec<String> = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = set
        .iter()
        .find(|c| c.starts_with("__Host-estd_session="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attr), "{attr} in {session}");
    }
    let id = b.cookie("__Host-estd_session").unwrap();
    assert_ne!(id, "planted-by-an-attacker");
    let (status, html) = b.get("/portal/single").await;
    assert_eq!(status, 200);
    assert!(html.contains("Signed in as <strong>joe</strong>"));
    assert!(
        html.contains("value=\"joe\""),
        "the CN is prefilled with the user name"
    );
    // a second log-in gets another id
    b.login("joe", "Joe-password-1").await;
    assert_ne!(b.cookie("__Host-estd_session").unwrap(), id);
    // the store keeps only hashes of ids
    assert!(s.state().store.get_session(&id).await.unwrap().is_none());
    s.stop().await;
}

#[tokio::test]
async fn bad_log_ins_non_members_and_slowing() {
    let mut s = setup().await;
    let mut b = Browser::new(&s);
    let r = b.login("outsider", "Joe-password-1").await;
    assert_eq!(r.status(), 403);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let html = r.text().await.unwrap();
    assert_eq!(alert(&html), estd::portal::NOT_A_MEMBER);
    assert!(
        html.contains(&format!("Request ID: <code>{rid}</code></p></main>")),
        "diagnostics: the page names the request id"
    );
    assert!(b.cookie("__Host-estd_session").is_none());
    for _ in 0..5 {
        let r = b.login("joe", "wrong").await;
        assert_eq!(r.status(), 401);
        assert_eq!(
            alert(&r.text().await.unwrap()),
            "The user name or password is incorrect."
        );
    }
    // slowed, not locked out: one check now, and the right password logs in …
    let r = b.login("joe", "Joe-password-1").await;
    assert_eq!(r.status(), 303, "the right password is not refused");
    // … but the next guess must wait
    let r = b.login("joe", "wrong").await;
    assert_eq!(r.status(), 429, "the next guess waits");
    assert!(
        r.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    // another user is not locked out
    let mut other = Browser::new(&s);
    assert_eq!(other.login("admin", &s.admin_password).await.status(), 303);
    // a log-in form post without its CSRF cookie is refused
    let r = Browser::new(&s)
        .post(
            "/portal/login",
            &[
                ("csrf", "x"),
                ("username", "admin"),
                ("password", &s.admin_password),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    s.stop().await;
}

#[tokio::test]
async fn certificate_forms_download_zips_and_show_the_faq_messages() {
    let mut s = setup().await;
    let mut b = Browser::new(&s);
    b.login("joe", "Joe-password-1").await;
    let (_, html) = b.get("/portal/single").await;
    let csrf = csrf_in(&html);
    let form = |cn: &'static str, san: &'static str, pw: &'static str| {
        vec![
            ("common_name", cn),
            ("san", san),
            ("template", "eap"),
            ("format", "pkcs12-chain"),
            ("password", pw),
            ("description", "till 3"),
        ]
    };
    let post = |mut f: Vec<(&'static str, &'static str)>, token: Option<&str>| {
        let token = token.map(str::to_string);
        if let Some(t) = &token {
            f.push(("csrf", Box::leak(t.clone().into_boxed_str())))
        }
        f
    };
    let r = b
        .post(
            "/portal/single",
            &post(form("joe", "11:22:33:44:55:66", "Secret_#42"), Some(&csrf)),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()[header::CONTENT_DISPOSITION],
        "attachment; filename=\"joe_11-22-33-44-55-66.zip\""
    );
    let names = zip_names(&r.bytes().await.unwrap());
    assert_eq!(
        names,
        [
            "eap-server.cer",
            "issuing-ca.cer",
            "joe_11-22-33-44-55-66.cer",
            "joe_11-22-33-44-55-66.p12",
            "root-ca.cer"
        ]
    );

    for (f, want, status) in [
        (form("joe", "11:22:33", "Secret_#42"), "Invalid MAC address".to_string(), 400),
        (form("joe", "11:22:33:44:55:66", "secret"), "The certificate password does not follow the password rules: Includes at least one uppercase letter, one lowercase letter, and one number; Length: 8 to 15 characters".into(), 400),
        (form("bob", "11:22:33:44:55:66", "Secret_#42"), "Invalid request - The given CSR has a CN that does not match the provided user name, and that user does not have ERS Admin".into(), 403),
        (form("joe;x", "11:22:33:44:55:66", "Secret_#42"), "The given CN is invalid. Cannot contain [ ] \" ; | = , + * ? < > characters".into(), 400),
    ] {
        let r = b.post("/portal/single", &post(f, Some(&csrf))).await;
        assert_eq!(r.status().as_u16(), status, "{want}");
        let html = r.text().await.unwrap();
        assert_eq!(alert(&html), want);
        assert!(html.contains("aria-invalid=\"true\""), "the field is marked");
        assert!(!html.contains("Secret_#42"), "the password is never echoed");
    }
    // without the CSRF token: refused, nothing issued
    let before = s.state().store.certificate_count().await.unwrap();
    let r = b
        .post(
            "/portal/single",
            &post(form("joe", "11:22:33:44:55:66", "Secret_#42"), None),
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = b
        .post(
            "/portal/single",
            &post(
                form("joe", "11:22:33:44:55:66", "Secret_#42"),
                Some("forged"),
            ),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(s.state().store.certificate_count().await.unwrap(), before);

    // from a CSR: the zip holds no key
    let kp = key(Key::P256);
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, "joe");
    p.subject_alt_names = vec![rcgen::SanType::DnsName(
        "0011.2233.4455".try_into().unwrap(),
    )];
    let pem = p.serialize_request(&kp).unwrap().pem().unwrap();
    let r = b
        .post(
            "/portal/csr",
            &[
                ("csrf", &csrf),
                ("csr_pem", &pem),
                ("template", "eap"),
                ("format", "pem"),
                ("password", "Secret_#42"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let names = zip_names(&r.bytes().await.unwrap());
    assert_eq!(
        names,
        [
            "eap-server.cer",
            "issuing-ca.cer",
            "joe_00-11-22-33-44-55.cer",
            "root-ca.cer"
        ]
    );
    let r = b
        .post(
            "/portal/csr",
            &[
                ("csrf", &csrf),
                ("csr_pem", "not a CSR"),
                ("template", "eap"),
                ("format", "pem"),
                ("password", "Secret_#42"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        alert(&r.text().await.unwrap()),
        "ISE server error - The given CSR text is malformed"
    );

    // the admin may name another user; the description is recorded
    let mut admin = Browser::new(&s);
    admin.login("admin", &s.admin_password).await;
    let (_, html) = admin.get("/portal/single").await;
    let csrf = csrf_in(&html);
    let r = admin
        .post(
            "/portal/single",
            &post(form("bob", "001122334455", "Secret_#42"), Some(&csrf)),
        )
        .await;
    assert_eq!(r.status(), 200);
    let audit = s.state().store.recent_audit(20).await.unwrap();
    let issued = audit
        .iter()
        .find(|a| {
            a.operation == "portal-single"
                && a.principal.as_deref() == Some("admin")
                && a.status == 200
        })
        .expect("audited");
    let rec = s
        .state()
        .store
        .find_certificate(issued.serial.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rec.requester.as_str(), rec.description.as_str()),
        ("admin", "till 3")
    );
    assert!(audit.iter().any(|a| a.operation == "portal-single"
        && a.status == 400
        && a.reason.as_deref() == Some("Invalid MAC address")));
    s.stop().await;
}

#[tokio::test]
async fn change_password_ends_other_sessions() {
    let mut s = setup().await;
    let mut b = Browser::new(&s);
    let mut elsewhere = Browser::new(&s);
    b.login("joe", "Joe-password-1").await;
    elsewhere.login("joe", "Joe-password-1").await;
    let (_, html) = b.get("/portal/password").await;
    let csrf = csrf_in(&html);
    let r = b
        .post(
            "/portal/password",
            &[
                ("csrf", &csrf),
                ("current", "nope"),
                ("new", "New-password-2"),
                ("repeat", "New-password-2"),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        alert(&r.text().await.unwrap()),
        "The current password is wrong."
    );
    let r = b
        .post(
            "/portal/password",
            &[
                ("csrf", &csrf),
                ("current", "Joe-password-1"),
                ("new", "New-password-2"),
                ("repeat", "New-password-2"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Your password was changed.")
    );
    assert_eq!(
        b.get("/portal/single").await.0,
        200,
        "this browser stays logged in"
    );
    assert_eq!(
        elsewhere.get("/portal/single").await.0,
        303,
        "the other session ended"
    );
    assert_eq!(
        Browser::new(&s)
            .login("joe", "Joe-password-1")
            .await
            .status(),
        401
    );
    assert_eq!(
        Browser::new(&s)
            .login("joe", "New-password-2")
            .await
            .status(),
        303
    );
    s.stop().await;
}

#[tokio::test]
async fn idle_sessions_end() {
    let mut s = start_with_templates("[portal]\nidle_timeout_secs = 1\n", &[EAP]).await;
    let mut b = Browser::new(&s);
    b.login("admin", &s.admin_password).await;
    assert_eq!(b.get("/portal/single").await.0, 200);
    // an abandoned session (never presented again) is swept from the store
    let mut abandoned = Browser::new(&s);
    abandoned.login("admin", &s.admin_password).await;
    let hash = estd::web::session::hash(&abandoned.cookie("__Host-estd_session").unwrap());
    assert!(s.state().store.get_session(&hash).await.unwrap().is_some());
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(
        s.state().store.get_session(&hash).await.unwrap().is_none(),
        "swept"
    );
    assert_eq!(b.get("/portal/single").await.0, 303);
    s.stop().await;
}

const RSA_POS: &str = "name = \"slow\"\nkey_types = [\"rsa-2048\"]\nserver_keygen_key = \"rsa-2048\"\nvalidity_days = 30\nsan_style = \"mac\"\n";

#[tokio::test]
async fn portal_bulk_upload_needs_csrf_and_cancel_stops_the_job() {
    let mut s = start_with_templates("", &[EAP, RSA_POS]).await;
    let mut b = Browser::new(&s);
    b.login("admin", &s.admin_password).await;
    let (status, html) = b.get("/portal/bulk").await;
    assert_eq!(status, 200);
    assert!(html.contains("Download CSV template here"));
    let csrf = csrf_in(&html);
    let mut csv = String::from("CN,SAN\n");
    for i in 0..100 {
        csv.push_str(&format!("dev{i},00-11-22-33-44-{i:02X}\n"));
    }
    let upload = |token: &str| {
        reqwest::multipart::Form::new()
            .text("csrf", token.to_string())
            .part(
                "csv",
                reqwest::multipart::Part::bytes(csv.clone().into_bytes()).file_name("d.csv"),
            )
            .text("template", "slow")
            .text("description", "d")
            .text("format", "pem")
            .text("password", "Secret_#42")
    };
    let post = |form: reqwest::multipart::Form, cookies: String| {
        b.http
            .post(format!("{}/portal/bulk", b.base))
            .header(header::COOKIE, cookies)
            .multipart(form)
            .send()
    };
    let r = post(upload("forged"), b.cookie_header()).await.unwrap();
    assert_eq!(r.status(), 403, "no upload without the CSRF token");
    assert!(
        s.state()
            .store
            .open_job_of("admin")
            .await
            .unwrap()
            .is_none()
    );
    let r = post(upload(&csrf), b.cookie_header()).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[header::LOCATION], "/portal/bulk/status");
    let (status, html) = b.get("/portal/bulk/status").await;
    assert_eq!(status, 200);
    assert!(html.contains("Certificate Generation Status") && html.contains("<progress"));
    // the upload page now sends the user to the status page (one request at a time)
    assert_eq!(b.get("/portal/bulk").await.0, 303);
    let id = s
        .state()
        .store
        .open_job_of("admin")
        .await
        .unwrap()
        .unwrap()
        .id;
    let r = b
        .post(&format!("/portal/bulk/{id}/cancel"), &[("csrf", "forged")])
        .await;
    assert_eq!(r.status(), 403);
    let r = b
        .post(&format!("/portal/bulk/{id}/cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), 303);
    let (_, html) = b.get("/portal/bulk/status").await;
    assert!(
        html.contains("Summary") && html.contains("Cancelled"),
        "{html}"
    );
    assert_eq!(
        s.state().store.get_job(id).await.unwrap().unwrap().state,
        "cancelled"
    );
    let r = b
        .post(&format!("/portal/bulk/{id}/confirm"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.headers()[header::LOCATION], "/portal/bulk");
    s.stop().await;
}

#[tokio::test]
async fn attribute_requests_get_the_templates_fixed_rdns() {
    let mut s = setup().await;
    let http = no_redirect_client(&s.root_pem());
    let body = serde_json::json!({"template": "pos", "common_name": "joe", "san": "11-22-33-44-55-66", "format": "pem", "password": "Secret_#42"});
    let r = http
        .post(s.url("/api/v1/certificates"))
        .basic_auth("joe", Some("Joe-password-1"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(r.bytes().await.unwrap())).unwrap();
    let mut pem = String::new();
    z.by_name("joe_11-22-33-44-55-66.cer")
        .unwrap()
        .read_to_string(&mut pem)
        .unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&der).unwrap();
    let subject = cert.tbs_certificate().subject().to_string();
    assert!(
        subject.contains("OU=POS terminals")
            && subject.contains("O=Example")
            && subject.contains("CN=joe"),
        "{subject}"
    );
    s.stop().await;
}

#[tokio::test]
async fn json_api_single_certificates() {
    let mut s = setup().await;
    let http = no_redirect_client(&s.root_pem());
    let url = s.url("/api/v1/certificates");
    let body = serde_json::json!({"template": "eap", "common_name": "joe", "san": "11-22-33-44-55-66", "description": "lab", "format": "pem", "password": "Secret_#42"});
    let r = http
        .post(&url)
        .basic_auth("joe", Some("Joe-password-1"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/zip");
    assert!(
        zip_names(&r.bytes().await.unwrap()).contains(&"joe_11-22-33-44-55-66.key".to_string())
    );
    // errors are JSON with the FAQ's text
    let mut bad = body.clone();
    bad["san"] = "11-22".into();
    let r = http
        .post(&url)
        .basic_auth("joe", Some("Joe-password-1"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (e["error"].as_str(), e["message"].as_str()),
        (Some("san"), Some("Invalid MAC address"))
    );
    assert_eq!(e["request_id"].as_str(), Some(rid.as_str()), "diagnostics");
    let r = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()[header::WWW_AUTHENTICATE],
        "Basic realm=\"estd\""
    );
    let r = http
        .post(&url)
        .basic_auth("joe", Some("Joe-password-1"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // the portal's session cookie authenticates too; a CSR call
    let mut b = Browser::new(&s);
    b.login("joe", "Joe-password-1").await;
    let kp = key(Key::P256);
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, "joe");
    p.subject_alt_names = vec![rcgen::SanType::DnsName("001122334455".try_into().unwrap())];
    let csr = serde_json::json!({"template": "eap", "csr_pem": p.serialize_request(&kp).unwrap().pem().unwrap(), "format": "pkcs12", "password": "Secret_#42"});
    // a write with the cookie alone (what another page could make a browser send): 403
    let r = http
        .post(s.url("/api/v1/certificates/csr"))
        .header(header::COOKIE, b.cookie_header())
        .json(&csr)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "csrf", "{v}");
    let r = http
        .post(s.url("/api/v1/certificates/csr"))
        .header(header::COOKIE, b.cookie_header())
        .header("x-csrf-token", "forged")
        .json(&csr)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // with the session's token (every portal page carries it)
    let (_, page) = b.get("/portal/single").await;
    let r = http
        .post(s.url("/api/v1/certificates/csr"))
        .header(header::COOKIE, b.cookie_header())
        .header("x-csrf-token", csrf_in(&page))
        .json(&csr)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(r.bytes().await.unwrap())).unwrap();
    let mut cer = String::new();
    z.by_name("joe_00-11-22-33-44-55.cer")
        .unwrap()
        .read_to_string(&mut cer)
        .unwrap();
    assert!(cer.starts_with("-----BEGIN CERTIFICATE-----"));
    let audit = s.state().store.recent_audit(10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.operation == "api-csr" && a.status == 200)
    );
    assert!(audit.iter().any(|a| a.operation == "api-single"
        && a.status == 400
        && a.reason.as_deref() == Some("Invalid MAC address")));
    s.stop().await;
}

/// The MDM connector's test from the portal: PASS with the certificate, FAIL with the
/// reason beside the field; then the Requests page answers "was it received, and why did it
/// fail" — users see their own requests, administrators everyone's.
#[tokio::test]
async fn test_certificate_page_and_requests_page() {
    let s = setup().await;
    let mut b = Browser::new(&s);
    assert_eq!(b.login("joe", "Joe-password-1").await.status(), 303);
    let (status, html) = b.get("/portal/test").await;
    assert_eq!(status, 200);
    assert!(html.contains("Save and Test") && html.contains("<option value=\"mdm\" selected"));
    let token = csrf_in(&html);
    let form = |name: &'static str| {
        vec![
            ("template", "mdm"),
            ("cert_name", name),
            ("user_name", "jdoe"),
            ("domain", "corp.example.com"),
            ("email", "jdoe@example.com"),
        ]
    };
    let mut fields = form("TestCert");
    fields.push(("csrf", &token));
    let r = b.post("/portal/test", &fields).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("PASS: the test certificate was issued."),
        "{html}"
    );
    assert!(
        html.contains("otherName:1.3.6.1.4.1.311.20.2.3;jdoe@corp.example.com"),
        "{html}"
    );
    assert!(html.contains("email:jdoe@example.com"), "{html}");
    assert!(
        html.contains("-----BEGIN CERTIFICATE-----")
            && html.contains("-----BEGIN PRIVATE KEY-----")
    );
    let serial = html
        .split("id=\"serial\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let rec = s
        .state()
        .store
        .find_certificate(&serial)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rec.operation.as_str(), rec.subject.as_str()),
        ("test-certificate", "CN=TestCert")
    );

    // a name with a space: FAIL, beside the field, with the request id on the page
    let mut fields = form("Test Cert");
    fields.push(("csrf", &token));
    let r = b.post("/portal/test", &fields).await;
    assert_eq!(r.status(), 400);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let html = r.text().await.unwrap();
    assert_eq!(alert(&html), estd::fields::NAME_HAS_SPACES);
    assert!(
        html.contains(
            "id=\"cert_name\" name=\"cert_name\" value=\"Test Cert\" aria-invalid=\"true\""
        ),
        "{html}"
    );
    assert!(html.contains(&format!("Request ID: <code>{rid}</code>")));
    // without the CSRF token nothing is issued
    let r = b.post("/portal/test", &form("Other")).await;
    assert_eq!(r.status(), 403);

    // an EST request by the admin, which joe must not see
    let est = client(&s.root_pem(), None, false)
        .post(s.url("/.well-known/est/simpleenroll"))
        .basic_auth("admin", Some("wrong password"))
        .header(header::CONTENT_TYPE, "application/pkcs10")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(est.status(), 401);
    let admin_rid = est.headers()["x-request-id"].to_str().unwrap().to_string();

    let (status, html) = b.get("/portal/requests?since=10m&failed=1").await;
    assert_eq!(status, 200);
    assert!(html.contains(&rid), "joe sees his failed request");
    assert!(html.contains(estd::fields::NAME_HAS_SPACES));
    assert!(!html.contains(&serial), "only failures: {html}");
    assert!(!html.contains(&admin_rid), "not the admin's");
    assert!(
        !html.contains("name=\"user\""),
        "no user filter for non-admins"
    );
    let (_, html) = b.get("/portal/requests?since=10m&user=admin").await;
    assert!(
        html.contains(&serial) && !html.contains(&admin_rid),
        "the user filter is ignored: {html}"
    );
    let (status, html) = b.get("/portal/requests?since=lots").await;
    assert_eq!(status, 400);
    assert!(html.contains("expected a number and a unit"), "{html}");

    let mut a = Browser::new(&s);
    assert_eq!(a.login("admin", &s.admin_password).await.status(), 303);
    let (_, html) = a.get("/portal/requests?since=10m").await;
    assert!(html.contains(&rid) && html.contains(&admin_rid) && html.contains(&serial));
    let (_, html) = a
        .get("/portal/requests?since=10m&user=admin&failed=1")
        .await;
    assert!(html.contains(&admin_rid) && !html.contains(&rid), "{html}");
    assert!(html.contains("the user name or password is wrong"));
}

/// Enrolls over EST as `user`; returns the serial.
async fn enrolled(s: &TestServer, user: &str, password: &str) -> String {
    let r = post_pkcs10(
        &client(&s.root_pem(), None, false),
        s.url("/.well-known/est/simpleenroll"),
        Some((user, password)),
        b64(&csr(&key(Key::P256), user, &[])),
    )
    .await;
    assert_eq!(r.status(), 200);
    estd::enroll::serial_of(&der_of(&certs_of(&r.bytes().await.unwrap())[0])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_page_searches_and_revokes() {
    let mut s = setup().await;
    let admin_password = s.admin_password.clone();
    let joes = enrolled(&s, "joe", "Joe-password-1").await;
    let admins = enrolled(&s, "admin", &admin_password).await;

    // joe sees his own certificate only, and may revoke it
    let mut b = Browser::new(&s);
    assert_eq!(b.login("joe", "Joe-password-1").await.status(), 303);
    let (status, html) = b.get("/portal/certificates").await;
    assert_eq!(status, 200);
    assert!(html.contains("see and revoke my certificates"), "{html}");
    assert!(html.contains(&format!("data-serial=\"{joes}\"")), "{html}");
    assert!(
        !html.contains(&admins),
        "joe must not see the admin's certificate"
    );
    // nor can he revoke the admin's: as if it did not exist
    let token = csrf_in(&html);
    let r = b
        .post(
            &format!("/portal/certificates/{admins}/revoke"),
            &[("csrf", &token), ("reason", "keyCompromise")],
        )
        .await;
    assert_eq!(r.status(), 404);
    // without the CSRF token: refused, nothing revoked
    let r = b
        .post(
            &format!("/portal/certificates/{joes}/revoke"),
            &[("csrf", "forged"), ("reason", "keyCompromise")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(
        s.state()
            .store
            .find_revocation(&joes)
            .await
            .unwrap()
            .is_none()
    );
    let r = b
        .post(
            &format!("/portal/certificates/{joes}/revoke"),
            &[("csrf", &token), ("reason", "superseded")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("Certificate {joes} (CN=joe) revoked: superseded.")),
        "{html}"
    );
    assert!(html.contains("revoked (superseded)"), "{html}");
    let rev = s
        .state()
        .store
        .find_revocation(&joes)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rev.reason, rev.revoked_by.as_str()), (4, "joe"));
    // again: 409 with the time it was revoked
    let r = b
        .post(
            &format!("/portal/certificates/{joes}/revoke"),
            &[("csrf", &token), ("reason", "superseded")],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert!(alert(&r.text().await.unwrap()).contains("already revoked"));

    // the admin sees everyone's, and searches
    let mut a = Browser::new(&s);
    assert_eq!(a.login("admin", &admin_password).await.status(), 303);
    let (_, html) = a.get("/portal/certificates").await;
    assert!(html.contains(&joes) && html.contains(&admins), "{html}");
    let (_, html) = a.get("/portal/certificates?status=revoked").await;
    assert!(html.contains(&joes) && !html.contains(&admins), "{html}");
    let (_, html) = a.get("/portal/certificates?user=admin&status=valid").await;
    assert!(!html.contains(&joes) && html.contains(&admins), "{html}");
    let (_, html) = a
        // (the end of the serial: serials begin with the time, so two made together share
        // their first bytes)
        .get(&format!(
            "/portal/certificates?q={}",
            &admins[admins.len() - 10..]
        ))
        .await;
    assert!(!html.contains(&joes) && html.contains(&admins), "{html}");
    let (status, html) = a.get("/portal/certificates?status=nonsense").await;
    assert_eq!(status, 400);
    assert!(
        alert(&html).contains("expected valid, revoked or expired"),
        "{html}"
    );
    // a hostile search string is just text
    let (status, html) = a
        .get("/portal/certificates?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%27%25_")
        .await;
    assert_eq!(status, 200);
    assert!(
        html.contains("No certificates match.") && !html.contains("<script>alert"),
        "{html}"
    );
    // the admin revokes another user's certificate
    let token = csrf_in(&html);
    let other = enrolled(&s, "joe", "Joe-password-1").await;
    let r = a
        .post(
            &format!("/portal/certificates/{other}/revoke"),
            &[("csrf", &token), ("reason", "affiliationChanged")],
        )
        .await;
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// A control character (NUL, CR, LF, TAB, ESC, DEL, C1) inside a subject attribute or a SAN
/// value is refused on every surface with a message naming the field; nothing is issued.
#[tokio::test]
async fn control_characters_are_refused_on_every_surface() {
    let mut s = setup().await;
    let before = s.state().store.certificate_count().await.unwrap();
    let cn_msg = "The given CN is invalid. Cannot contain control characters";
    let san_msg =
        "The given Subject alternative name is invalid. Cannot contain control characters";

    // EST: the CSR's CN, another attribute, a SAN (as an ordinary user, and as an admin)
    let http = client(&s.root_pem(), None, false);
    let kp = key(Key::P256);
    for (who, pw) in [
        ("joe", "Joe-password-1"),
        ("admin", s.admin_password.as_str()),
    ] {
        for (der, want) in [
            (csr(&kp, &format!("{who}\ncn"), &[]), cn_msg),
            (csr(&kp, &format!("{who}\0"), &[]), cn_msg),
            (csr(&kp, who, &["a\r\nb.example"]), san_msg),
        ] {
            let r = post_pkcs10(
                &http,
                s.url("/.well-known/est/simpleenroll"),
                Some((who, pw)),
                b64(&der),
            )
            .await;
            assert_eq!(r.status(), 400, "{who} {want}");
            assert_eq!(r.text().await.unwrap().lines().next(), Some(want));
        }
    }
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "joe");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Ex\u{1b}[2Jample");
    let der = params.serialize_request(&kp).unwrap().der().to_vec();
    let r = post_pkcs10(
        &http,
        s.url("/.well-known/est/simpleenroll"),
        Some(("joe", "Joe-password-1")),
        b64(&der),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap().lines().next(),
        Some("The given O is invalid. Cannot contain control characters")
    );

    // the JSON API: attributes and CSR
    let api = |path: &'static str, body: serde_json::Value| {
        let http = http.clone();
        let url = s.url(path);
        async move {
            let r = http
                .post(url)
                .basic_auth("joe", Some("Joe-password-1"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    for (cn, san, field, msg) in [
        ("jo\u{0}e", "11:22:33:44:55:66", "common_name", cn_msg),
        ("joe\u{7f}", "11:22:33:44:55:66", "common_name", cn_msg),
        ("joe", "11:22:33:44\u{85}:55:66", "san", san_msg),
    ] {
        let (status, v) = api(
            "/api/v1/certificates",
            serde_json::json!({"template": "eap", "common_name": cn, "san": san,
                               "format": "pem", "password": "Secret_#42"}),
        )
        .await;
        assert_eq!((status, v["error"].as_str()), (400, Some(field)), "{v}");
        assert_eq!(v["message"], msg);
    }
    let pem = {
        let der = csr(&kp, "joe\tx", &[]);
        estd::est::pem("CERTIFICATE REQUEST", &der)
    };
    let (status, v) = api(
        "/api/v1/certificates/csr",
        serde_json::json!({"template": "default", "csr_pem": pem, "format": "pem",
                           "password": "Secret_#42"}),
    )
    .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("csr_pem")), "{v}");
    assert_eq!(v["message"], cn_msg);

    // the MDM connector's test certificate: each field by its own name
    for (body, field, what) in [
        (
            serde_json::json!({"template": "mdm", "cert_name": "Test\u{0}Cert"}),
            "cert_name",
            "certificate name",
        ),
        (
            serde_json::json!({"template": "mdm", "cert_name": "TestCert", "user_name": "jo\re"}),
            "user_name",
            "user name",
        ),
        (
            serde_json::json!({"template": "mdm", "cert_name": "TestCert",
                               "email": "joe@exa\u{1b}mple.com"}),
            "email",
            "email address",
        ),
    ] {
        let (status, v) = api("/api/v1/test-certificate", body).await;
        assert_eq!((status, v["error"].as_str()), (400, Some(field)), "{v}");
        assert_eq!(
            v["message"],
            format!("The given {what} is invalid. Cannot contain control characters")
        );
    }

    // the bulk CSV: a quoted CN with a TAB, another with a line break
    let csv = "CN,SAN\r\n\"jo\te\",11:22:33:44:55:66\r\n\"jo\ne\",11:22:33:44:55:67\r\njoe,11:22:33:44:55:68\r\n";
    let form = reqwest::multipart::Form::new()
        .part(
            "csv",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("devices.csv"),
        )
        .text("template", "eap")
        .text("format", "pem")
        .text("password", "Secret_#42");
    let r = http
        .post(s.url("/api/v1/bulk"))
        .basic_auth("joe", Some("Joe-password-1"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "rows", "{v}");
    let rows: Vec<(i64, String)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_i64().unwrap(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rows, [(2, cn_msg.to_string()), (3, cn_msg.to_string())]);

    // the portal's form: the message in the alert, the field marked
    let mut b = Browser::new(&s);
    b.login("joe", "Joe-password-1").await;
    let (_, html) = b.get("/portal/single").await;
    let csrf = csrf_in(&html);
    for (cn, san, want) in [
        ("jo\re", "11:22:33:44:55:66", cn_msg),
        ("joe", "11:22:33:\u{0}44:55:66", san_msg),
    ] {
        let r = b
            .post(
                "/portal/single",
                &[
                    ("csrf", csrf.as_str()),
                    ("common_name", cn),
                    ("san", san),
                    ("template", "eap"),
                    ("format", "pem"),
                    ("password", "Secret_#42"),
                ],
            )
            .await;
        assert_eq!(r.status(), 400, "{want}");
        let html = r.text().await.unwrap();
        assert_eq!(alert(&html), want);
        assert!(
            html.contains("aria-invalid=\"true\""),
            "the field is marked"
        );
    }

    assert_eq!(s.state().store.certificate_count().await.unwrap(), before);
    s.stop().await;
}

#[tokio::test]
async fn the_bare_host_leads_to_the_portal() {
    let mut s = setup().await;
    let http = no_redirect_client(&s.root_pem());
    let r = http.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[header::LOCATION], "/portal/");
    // only GET: a write to / is not a portal action
    let r = http.post(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // other unknown paths stay 404
    let r = http.get(s.url("/portal-x")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn scep_challenges_page_issues_shows_once_and_withdraws() {
    let mut s = setup().await;
    // a user who is not an administrator: no page, no challenge
    let mut joe = Browser::new(&s);
    joe.login("joe", "Joe-password-1").await;
    let (status, html) = joe.get("/portal/scep").await;
    assert_eq!(status, 403);
    assert!(html.contains("Only administrators issue SCEP challenges"));
    let (_, page) = joe.get("/portal/single").await;
    assert!(!page.contains("/portal/scep"), "no menu entry for a user");
    let csrf = csrf_in(&page);
    let r = joe
        .post(
            "/portal/scep",
            &[
                ("csrf", &csrf),
                ("template", "mdm"),
                ("cn", "x"),
                ("expires", "1h"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);

    let mut admin = Browser::new(&s);
    admin.login("admin", &s.admin_password).await;
    let (status, html) = admin.get("/portal/scep").await;
    assert_eq!(status, 200);
    assert!(html.contains("No open challenges."));
    let csrf = csrf_in(&html);
    // without the CSRF token: refused, nothing issued
    let r = admin
        .post("/portal/scep", &[("template", "mdm"), ("expires", "1h")])
        .await;
    assert_eq!(r.status(), 403);
    // the default template wants the CN to match a user: a challenge must name one
    let r = admin
        .post(
            "/portal/scep",
            &[("csrf", &csrf), ("template", "default"), ("expires", "1h")],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(alert(&r.text().await.unwrap()).contains("bind the code to a CN"));
    let r = admin
        .post(
            "/portal/scep",
            &[
                ("csrf", &csrf),
                ("template", "mdm"),
                ("cn", "phone-7"),
                ("san", "dns:phone-7.example.com"),
                ("expires", "2h"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let secret = html
        .split("id=\"challenge-secret\">")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .unwrap()
        .to_string();
    assert_eq!(secret.len(), 32, "{html}");
    assert!(html.contains("phone-7"), "listed as open");
    // shown once: the list never carries it, nor the store, nor the audit
    let (_, again) = admin.get("/portal/scep").await;
    assert!(!again.contains(&secret));
    let now = estd::model::timestamp(std::time::SystemTime::now());
    let open = s
        .state()
        .store
        .list_challenges(&now, true, 10)
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_ne!(open[0].secret_hash, secret);
    assert_eq!(open[0].cn.as_deref(), Some("phone-7"));
    assert_eq!(open[0].san.as_deref(), Some("DNS:phone-7.example.com"));
    assert_eq!(open[0].created_by, "admin");
    let audit = s.state().store.recent_audit(20).await.unwrap();
    let row = audit
        .iter()
        .find(|a| a.operation == "scep-challenge" && a.outcome == "ok")
        .expect("audited");
    assert_eq!(
        row.reason.as_deref(),
        Some(format!("challenge {} issued", open[0].id).as_str())
    );
    assert!(
        audit
            .iter()
            .all(|a| !a.reason.as_deref().unwrap_or("").contains(&secret))
    );
    // withdrawn: gone from the open list; a second time: 404
    let path = format!("/portal/scep/{}/revoke", open[0].id);
    let r = admin.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);
    assert!(
        s.state()
            .store
            .list_challenges(&now, true, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let r = admin.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 404);
    s.stop().await;
}
