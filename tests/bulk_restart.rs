//! kill -9 of a real estd in the middle of a 500-row bulk job, then a restart: the job goes on
//! with the rows not yet done and completes with 500 distinct serials, each recorded once.

mod common;

use std::collections::HashSet;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

const RSA: &str = "name = \"posrsa\"\nkey_types = [\"rsa-2048\"]\nserver_keygen_key = \"rsa-2048\"\nvalidity_days = 30\nsan_style = \"mac\"\n";

/// Starts `estd serve` on a free port; returns the process and the port.
fn spawn(data: &std::path::Path, templates: &std::path::Path) -> (Child, u16) {
    spawn_estd(
        data,
        &[("ESTD_EST_TEMPLATES_DIR", templates.to_str().unwrap())],
        Stdio::null(),
    )
}

#[tokio::test]
async fn kill_9_mid_job_then_restart_completes_with_500_distinct_serials() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("default.toml"), DEFAULT_TEMPLATE).unwrap();
    std::fs::write(templates.join("posrsa.toml"), RSA).unwrap();

    let (mut first, port) = spawn(dir.path(), &templates);
    let password = std::fs::read_to_string(dir.path().join("admin-password"))
        .unwrap()
        .trim()
        .to_string();
    let root = std::fs::read(dir.path().join("certs/root-ca.pem")).unwrap();
    let http = client(&root, None, false);
    let url = |p: &str, port: u16| format!("https://localhost:{port}{p}");

    let mut csv = String::from("CN,SAN\n");
    for i in 0..500 {
        csv.push_str(&format!(
            "dev-{i},00-11-22-33-{:02X}-{:02X}\n",
            i / 256,
            i % 256
        ));
    }
    let form = reqwest::multipart::Form::new()
        .part(
            "csv",
            reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("d.csv"),
        )
        .text("template", "posrsa")
        .text("format", "pkcs12")
        .text("password", "Secret_#42");
    let r = http
        .post(url("/api/v1/bulk", port))
        .basic_auth("admin", Some(&password))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();

    // let it issue some rows, then kill -9
    let mut done_before = 0;
    for _ in 0..600 {
        let st: serde_json::Value = http
            .get(url(&format!("/api/v1/bulk/{id}"), port))
            .basic_auth("admin", Some(&password))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        done_before = st["done"].as_i64().unwrap();
        if done_before >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        (20..500).contains(&done_before),
        "killed mid-job after {done_before} rows"
    );
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let (mut second, port) = spawn(dir.path(), &templates);
    let mut st = serde_json::Value::Null;
    for _ in 0..1200 {
        st = http
            .get(url(&format!("/api/v1/bulk/{id}"), port))
            .basic_auth("admin", Some(&password))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if st["state"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        (
            st["state"].as_str(),
            st["done"].as_i64(),
            st["failed"].as_i64()
        ),
        (Some("completed"), Some(500), Some(0)),
        "{st}"
    );
    second.kill().unwrap();
    second.wait().unwrap();

    // the database after both processes: 500 rows done, 500 distinct serials, 500 certificates
    let store =
        estd::store::SqliteStore::open(&dir.path().join("estd.db"), estd::store::Synchronous::Full)
            .await
            .unwrap();
    use estd::store::Store;
    let items = store.job_items(id).await.unwrap();
    assert!(items.iter().all(|i| i.state == "done"));
    let serials: HashSet<String> = items.iter().map(|i| i.serial.clone().unwrap()).collect();
    assert_eq!(serials.len(), 500);
    assert_eq!(
        store.certificate_count().await.unwrap(),
        500,
        "no row was issued twice"
    );
}
