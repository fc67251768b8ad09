//! Several instances: two real `estd serve` processes on different ports sharing one
//! PostgreSQL (started by the test) and one data directory (CA, TLS certificate, job key).
//! Enrollments split between them, a bulk job worked by both and steered through either,
//! a portal session made on one used on the other, and one killed mid-job. And one instance
//! through a PostgreSQL outage (503, then enrollments again).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::pg::Pg;
use common::*;

const RSA: &str = "name = \"posrsa\"\nkey_types = [\"rsa-2048\"]\nserver_keygen_key = \"rsa-2048\"\nvalidity_days = 30\nsan_style = \"mac\"\ncn_must_match_user = false\n";

struct Instance {
    child: Child,
    port: u16,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    pg: Pg,
    dir: tempfile::TempDir,
    a: Option<Instance>,
    b: Instance,
    password: String,
    http: reqwest::Client,
}

fn spawn(data: &Path, templates: &Path, db: &str) -> Instance {
    let (child, port) = spawn_estd(
        data,
        &[
            ("ESTD_EST_TEMPLATES_DIR", templates.to_str().unwrap()),
            ("ESTD_DATABASE_URL", db),
            ("ESTD_DATABASE_MAX_CONNECTIONS", "24"),
            ("ESTD_JOBS_LEASE_SECS", "2"),
            ("ESTD_LIMITS_SHUTDOWN_GRACE_SECS", "1"),
        ],
        Stdio::null(),
    );
    Instance { child, port }
}

/// PostgreSQL, then instance A (which creates the CA, the schema and the admin), then B.
fn cluster() -> Cluster {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pg = Pg::start();
    let url = pg.url("estd");
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for f in ["default.toml", "eap-tls.toml"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("conf/templates")
                .join(f),
            templates.join(f),
        )
        .unwrap();
    }
    std::fs::write(templates.join("posrsa.toml"), RSA).unwrap();
    let a = spawn(dir.path(), &templates, &url);
    let b = spawn(dir.path(), &templates, &url);
    let password = std::fs::read_to_string(dir.path().join("admin-password"))
        .unwrap()
        .trim()
        .to_string();
    let root = std::fs::read(dir.path().join("certs/root-ca.pem")).unwrap();
    Cluster {
        pg,
        dir,
        a: Some(a),
        b,
        password,
        http: client(&root, None, false),
    }
}

impl Cluster {
    fn a(&self) -> u16 {
        self.a.as_ref().unwrap().port
    }
    fn url(port: u16, path: &str) -> String {
        format!("https://localhost:{port}{path}")
    }
    fn sql(&self, q: &str) -> String {
        self.pg.psql("estd", q)
    }

    async fn submit(&self, port: u16, template: &str, rows: usize) -> i64 {
        let mut csv = String::from("CN,SAN\n");
        for i in 0..rows {
            csv.push_str(&format!(
                "pos-{i},00-11-22-{:02X}-{:02X}-01\n",
                i / 256,
                i % 256
            ));
        }
        let form = reqwest::multipart::Form::new()
            .part(
                "csv",
                reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("devices.csv"),
            )
            .text("template", template.to_string())
            .text("description", "shared")
            .text("format", "pem")
            .text("password", "Secret_#42");
        let r = self
            .http
            .post(Self::url(port, "/api/v1/bulk"))
            .basic_auth("admin", Some(&self.password))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap()
    }

    async fn status(&self, port: u16, id: i64) -> serde_json::Value {
        let r = self
            .http
            .get(Self::url(port, &format!("/api/v1/bulk/{id}")))
            .basic_auth("admin", Some(&self.password))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn wait_state(&self, port: u16, id: i64, state: &str, secs: u64) -> serde_json::Value {
        for _ in 0..secs * 10 {
            let s = self.status(port, id).await;
            if s["state"] == state {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {id} not {state}: {}", self.status(port, id).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_concurrent_enrollments_split_between_two_instances() {
    let c = cluster();
    let kp = key(Key::P256);
    let ports = [c.a(), c.b.port];
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let http = c.http.clone();
    let mut tasks = Vec::new();
    for i in 0..2000usize {
        let body = b64(&csr(&kp, "admin", &["admin.example.com"]));
        let url = Cluster::url(ports[i % 2], "/.well-known/est/simpleenroll");
        let (http, gate, password) = (http.clone(), gate.clone(), c.password.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let r = post_pkcs10(&http, url, Some(("admin", &password)), body).await;
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
            let cert = &certs_of(&bytes)[0];
            hex_serial(cert)
        }));
    }
    // requests alternate between the instances: each answered 1,000 of them
    let mut serials = HashSet::new();
    for t in tasks {
        assert!(serials.insert(t.await.unwrap()), "a serial issued twice");
    }
    assert_eq!(serials.len(), 2000);
    assert_eq!(c.sql("SELECT count(*) FROM certificates"), "2000");
    assert_eq!(
        c.sql(
            "SELECT count(*) FROM audit_events WHERE operation = 'simpleenroll' AND status = 200"
        ),
        "2000"
    );
    assert_eq!(
        c.sql("SELECT count(*) FROM audit_events WHERE status >= 400"),
        "0"
    );
}

fn hex_serial(cert: &x509_cert::Certificate) -> String {
    cert.tbs_certificate()
        .serial_number()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bulk_job_is_worked_by_both_and_steered_through_either() {
    let c = cluster();
    // submitted through A, seen progressing through B
    let id = c.submit(c.a(), "posrsa", 120).await;
    let mut seen = Vec::new();
    for _ in 0..600 {
        let s = c.status(c.b.port, id).await;
        seen.push(s["done"].as_i64().unwrap());
        if s["state"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(*seen.last().unwrap(), 120, "{seen:?}");
    assert!(
        seen.iter().any(|d| *d > 0 && *d < 120),
        "B saw it in progress: {seen:?}"
    );
    // both instances claimed rows; each row was claimed and recorded once
    assert_eq!(
        c.sql("SELECT count(DISTINCT split_part(claim, '/', 1)) FROM job_items"),
        "2",
        "rows per instance: {}",
        c.sql("SELECT split_part(claim, '/', 1), count(*) FROM job_items GROUP BY 1")
    );
    assert_eq!(
        c.sql("SELECT count(DISTINCT serial) FROM job_items WHERE state = 'done'"),
        "120"
    );
    assert_eq!(
        c.sql("SELECT count(*) FROM certificates WHERE operation = 'bulk'"),
        "120"
    );
    // the zip through B, confirmed through A
    let r = c
        .http
        .get(Cluster::url(
            c.b.port,
            &format!("/api/v1/bulk/{id}/download"),
        ))
        .basic_auth("admin", Some(&c.password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().len() > 120 * 1000);
    let r = c
        .http
        .post(Cluster::url(c.a(), &format!("/api/v1/bulk/{id}/confirm")))
        .basic_auth("admin", Some(&c.password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // submitted through B, cancelled through A
    let id2 = c.submit(c.b.port, "posrsa", 300).await;
    for _ in 0..200 {
        if c.status(c.a(), id2).await["done"].as_i64().unwrap() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c
        .http
        .post(Cluster::url(c.a(), &format!("/api/v1/bulk/{id2}/cancel")))
        .basic_auth("admin", Some(&c.password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s = c.wait_state(c.b.port, id2, "cancelled", 10).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let done: i64 = c
        .sql(&format!(
            "SELECT count(*) FROM job_items WHERE job_id = {id2} AND state = 'done'"
        ))
        .parse()
        .unwrap();
    assert!(done < 300, "cancelled before the end: {s}");
    assert_eq!(
        c.sql(&format!(
            "SELECT count(*) FROM job_items WHERE job_id = {id2} AND state IN ('pending', 'running')"
        )),
        "0"
    );
    assert_eq!(
        c.sql("SELECT count(*) FROM certificates WHERE operation = 'bulk'"),
        (120 + done).to_string(),
        "every certificate recorded belongs to a done row"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_portal_session_made_on_one_instance_is_valid_on_the_other() {
    let c = cluster();
    let http = no_redirect_client(&std::fs::read(c.dir.path().join("certs/root-ca.pem")).unwrap());
    let session = portal_login(&http, &Cluster::url(c.a(), ""), "admin", &c.password).await;
    for port in [c.b.port, c.a()] {
        let r = http
            .get(Cluster::url(port, "/portal/single"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "port {port}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("Signed in as <strong>admin</strong>")
        );
    }
    // logging out on B ends the session on A too
    let r = http
        .get(Cluster::url(c.b.port, "/portal/single"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    let csrf = csrf_in(&r.text().await.unwrap());
    let r = http
        .post(Cluster::url(c.b.port, "/portal/logout"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = http
        .get(Cluster::url(c.a(), "/portal/single"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "back to the log-in page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_one_instance_mid_job_lets_the_other_finish_it() {
    let mut c = cluster();
    let id = c.submit(c.a(), "posrsa", 150).await;
    // wait until A holds rows
    for _ in 0..400 {
        let a_rows: i64 = c
            .sql(&format!(
                "SELECT count(*) FROM job_items WHERE job_id = {id} AND state = 'done'"
            ))
            .parse()
            .unwrap();
        if a_rows >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // the rows running right now, with the instance holding each
    let running = c.sql(&format!(
        "SELECT id || ' ' || split_part(claim, '/', 1) FROM job_items WHERE job_id = {id} AND state = 'running'"
    ));
    drop(c.a.take()); // SIGKILL
    let s = c.wait_state(c.b.port, id, "completed", 60).await;
    assert_eq!(
        (s["done"].as_i64(), s["failed"].as_i64()),
        (Some(150), Some(0)),
        "{s}"
    );
    assert_eq!(
        c.sql(&format!(
            "SELECT count(DISTINCT serial) FROM job_items WHERE job_id = {id} AND state = 'done'"
        )),
        "150"
    );
    assert_eq!(
        c.sql("SELECT count(*) FROM certificates WHERE operation = 'bulk'"),
        "150",
        "no row recorded twice, not even the ones A was signing when it died"
    );
    // the last row claimed was B's; the rows A held when it died were finished by B
    let b = c.sql(&format!(
        "SELECT split_part(claim, '/', 1) FROM job_items WHERE job_id = {id} ORDER BY claimed_at DESC LIMIT 1"
    ));
    let held_by_a: Vec<&str> = running
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, inst)| *inst != b)
        .map(|(row, _)| row)
        .collect();
    assert!(
        !held_by_a.is_empty(),
        "A was signing rows when it died: {running}"
    );
    let taken_over: i64 = c
        .sql(&format!(
            "SELECT count(*) FROM job_items WHERE id IN ({}) AND claim LIKE '{b}/%' AND state = 'done'",
            held_by_a.join(",")
        ))
        .parse()
        .unwrap();
    assert!(
        taken_over >= 1,
        "B finished A's rows after the lease: {running}"
    );
}

/// PostgreSQL stops under a running instance: EST and the JSON API answer 503 with
/// `Retry-After` (not a 500, not a 401 for a user that could not be looked up) within
/// `database.acquire_timeout_secs`, and enrollments work again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_then_recovers() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pg = Pg::start();
    let url = pg.url("estd");
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = spawn_estd(
        dir.path(),
        &[
            ("ESTD_DATABASE_URL", &url),
            ("ESTD_DATABASE_ACQUIRE_TIMEOUT_SECS", "2"),
            ("ESTD_LIMITS_SHUTDOWN_GRACE_SECS", "1"),
        ],
        Stdio::null(),
    );
    let _instance = Instance { child, port };
    let password = std::fs::read_to_string(dir.path().join("admin-password"))
        .unwrap()
        .trim()
        .to_string();
    let http = client(
        &std::fs::read(dir.path().join("certs/root-ca.pem")).unwrap(),
        None,
        false,
    );
    let enroll = || async {
        http.post(Cluster::url(port, "/.well-known/est/simpleenroll"))
            .basic_auth("admin", Some(&password))
            .header("content-type", "application/pkcs10")
            .body(b64(&csr(&key(Key::P256), "admin", &[])))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(enroll().await.status(), 200);

    pg.stop();
    let r = enroll().await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let text = r.text().await.unwrap();
    assert!(
        text.starts_with("The certificate store is unavailable; try again in 5 seconds"),
        "{text}"
    );
    assert!(
        !text.contains("database"),
        "no detail for the client: {text}"
    );
    // the JSON API: authentication needs the user row
    let r = http
        .get(Cluster::url(port, "/api/v1/certificates"))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");

    pg.start_again();
    let mut back = false;
    for _ in 0..30 {
        if enroll().await.status() == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(back, "enrollments work again after the database is back");
}
