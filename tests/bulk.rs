//! Bulk requests through the JSON API over real TLS: the CSV template, each message, 500 rows
//! accepted and 501 refused, one job per user, cancel, the zip (checked with openssl), confirm.

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::time::Duration;

use common::*;

const P256: &str = "name = \"pos\"\nkey_types = [\"ec-p256\"]\nserver_keygen_key = \"ec-p256\"\nvalidity_days = 30\nsan_style = \"mac\"\n";
const RSA: &str = "name = \"posrsa\"\nkey_types = [\"rsa-2048\"]\nserver_keygen_key = \"rsa-2048\"\nvalidity_days = 30\nsan_style = \"mac\"\n";

fn http(s: &TestServer) -> reqwest::Client {
    client(&s.root_pem(), None, false)
}

fn csv(rows: usize, cn: &str) -> String {
    let mut out = String::from("CN,SAN\r\n");
    for i in 0..rows {
        out.push_str(&format!(
            "{cn},00-11-22-{:02X}-{:02X}-{:02X}\r\n",
            i / 65536,
            (i / 256) % 256,
            i % 256
        ));
    }
    out
}

async fn submit(
    s: &TestServer,
    user: (&str, &str),
    template: &str,
    csv: String,
    password: &str,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .part(
            "csv",
            reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("devices.csv"),
        )
        .text("template", template.to_string())
        .text("description", "store 12")
        .text("format", "pem")
        .text("password", password.to_string());
    http(s)
        .post(s.url("/api/v1/bulk"))
        .basic_auth(user.0, Some(user.1))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn status(s: &TestServer, user: (&str, &str), id: i64) -> serde_json::Value {
    http(s)
        .get(s.url(&format!("/api/v1/bulk/{id}")))
        .basic_auth(user.0, Some(user.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_finished(s: &TestServer, user: (&str, &str), id: i64) -> serde_json::Value {
    for _ in 0..600 {
        let st = status(s, user, id).await;
        if st["state"] == "completed" || st["state"] == "cancelled" || st["state"] == "failed" {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish");
}

async fn setup() -> TestServer {
    let s = start_with_templates("", &[P256, RSA]).await;
    let hash = estd::auth::hash_password("Joe-password-1").unwrap();
    s.state()
        .store
        .add_user("joe", &hash, &["est-users".to_string()])
        .await
        .unwrap();
    s
}

#[tokio::test]
async fn the_csv_template_and_each_message() {
    let mut s = setup().await;
    let joe = ("joe", "Joe-password-1");
    let r = http(&s)
        .get(s.url("/api/v1/bulk/template.csv"))
        .basic_auth("joe", Some("Joe-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.text().await.unwrap(), "CN,SAN\r\n");

    let message = |v: serde_json::Value| v["message"].as_str().unwrap().to_string();
    let r = submit(&s, joe, "pos", csv(501, "joe"), "Secret_#42").await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        message(r.json().await.unwrap()),
        "There are more than the maximum allowed entries in this CSV. Maximum is 500"
    );
    let r = submit(
        &s,
        joe,
        "pos",
        "CN,SAN\njoe,00-11-22-33-44-55\njoe\n".into(),
        "Secret_#42",
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        message(v.clone()),
        "There are either missing or extra columns in the CSV file. Please stick to the template"
    );
    assert_eq!(v["errors"][0]["row"], 3);
    let r = submit(&s, joe, "pos", "CN,SAN\njoe,00-11-22-33-44-55\njoe,00-11-22-33\nbob,00-11-22-33-44-56\njoe;x,00-11-22-33-44-57\n".into(), "Secret_#42").await;
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
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
    assert_eq!(
        rows,
        vec![
            (3, "Invalid MAC address".to_string()),
            (4, "Invalid request - The given CSR has a CN that does not match the provided user name, and that user does not have ERS Admin".to_string()),
            (5, "The given CN is invalid. Cannot contain [ ] \" ; | = , + * ? < > characters".to_string()),
        ]
    );
    let r = submit(&s, joe, "pos", csv(2, "joe"), "weak").await;
    assert_eq!(r.status(), 400);
    assert!(
        message(r.json().await.unwrap())
            .starts_with("The certificate password does not follow the password rules")
    );
    // nothing was queued or issued by any of these
    assert!(s.state().store.open_job_of("joe").await.unwrap().is_none());
    assert_eq!(s.state().store.certificate_count().await.unwrap(), 0);
    s.stop().await;
}

#[tokio::test]
async fn five_hundred_rows_one_job_per_user_zip_and_confirm() {
    let mut s = setup().await;
    let admin_pw = s.admin_password.clone();
    let admin = ("admin", admin_pw.as_str());
    // an admin may name other users; 500 rows are accepted
    let r = submit(&s, admin, "pos", csv(500, "pos-terminal"), "Secret_#42").await;
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    // one request at a time
    let r = submit(&s, admin, "pos", csv(1, "x"), "Secret_#42").await;
    assert_eq!(r.status(), 409);
    assert!(
        r.json::<serde_json::Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .starts_with("You can submit only one request at a time")
    );
    // another user's view of it: not found
    let r = http(&s)
        .get(s.url(&format!("/api/v1/bulk/{id}")))
        .basic_auth("joe", Some("Joe-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // nor can another user download, cancel or confirm it
    for (get, path) in [
        (true, format!("/api/v1/bulk/{id}/download")),
        (false, format!("/api/v1/bulk/{id}/cancel")),
        (false, format!("/api/v1/bulk/{id}/confirm")),
    ] {
        let req = if get {
            http(&s).get(s.url(&path))
        } else {
            http(&s).post(s.url(&path))
        };
        let r = req
            .basic_auth("joe", Some("Joe-password-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }

    let st = wait_finished(&s, admin, id).await;
    assert_eq!(
        (
            st["state"].as_str(),
            st["done"].as_i64(),
            st["failed"].as_i64(),
            st["percent"].as_i64()
        ),
        (Some("completed"), Some(500), Some(0), Some(100))
    );
    let items = s.state().store.job_items(id).await.unwrap();
    let serials: HashSet<String> = items.iter().map(|i| i.serial.clone().unwrap()).collect();
    assert_eq!(serials.len(), 500, "500 distinct serials");
    assert_eq!(s.state().store.certificate_count().await.unwrap(), 500);

    // still busy until the download is confirmed
    assert_eq!(
        submit(&s, admin, "pos", csv(1, "x"), "Secret_#42")
            .await
            .status(),
        409
    );
    let r = http(&s)
        .get(s.url(&format!("/api/v1/bulk/{id}/download")))
        .basic_auth("admin", Some(&admin_pw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let zip = r.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).unwrap();
    let names: HashSet<String> = (0..archive.len())
        .map(|i| archive.by_index(i).unwrap().name().to_string())
        .collect();
    assert_eq!(
        names.len(),
        500 * 2 + 3,
        "a .cer and a .key per row, the chain and the EAP file"
    );
    for f in [
        "pos-terminal_00-11-22-00-00-00.cer",
        "pos-terminal_00-11-22-00-01-F3.key",
        "root-ca.cer",
        "issuing-ca.cer",
        "eap-server.cer",
    ] {
        assert!(names.contains(f), "{f}");
    }
    for f in [
        "pos-terminal_00-11-22-00-01-F3.cer",
        "pos-terminal_00-11-22-00-01-F3.key",
        "root-ca.cer",
        "issuing-ca.cer",
    ] {
        let mut data = Vec::new();
        archive.by_name(f).unwrap().read_to_end(&mut data).unwrap();
        std::fs::write(dir.path().join(f), data).unwrap();
    }
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run(&[
        "verify",
        "-CAfile",
        "root-ca.cer",
        "-untrusted",
        "issuing-ca.cer",
        "pos-terminal_00-11-22-00-01-F3.cer",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "pkcs8",
        "-in",
        "pos-terminal_00-11-22-00-01-F3.key",
        "-passin",
        "pass:Secret_#42",
        "-out",
        "k.pem",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_pub = run(&["pkey", "-in", "k.pem", "-pubout"]).stdout;
    let cert_pub = run(&[
        "x509",
        "-in",
        "pos-terminal_00-11-22-00-01-F3.cer",
        "-noout",
        "-pubkey",
    ])
    .stdout;
    assert_eq!(key_pub, cert_pub);

    // confirm: keys deleted, the user free again
    let r = http(&s)
        .post(s.url(&format!("/api/v1/bulk/{id}/confirm")))
        .basic_auth("admin", Some(&admin_pw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(
        s.state()
            .store
            .job_items(id)
            .await
            .unwrap()
            .iter()
            .all(|i| i.key_sealed.is_none())
    );
    let r = http(&s)
        .get(s.url(&format!("/api/v1/bulk/{id}/download")))
        .basic_auth("admin", Some(&admin_pw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "no keys after confirmation");
    assert_eq!(
        submit(&s, admin, "pos", csv(1, "x"), "Secret_#42")
            .await
            .status(),
        202
    );
    s.stop().await;
}

#[tokio::test]
async fn cancel_in_the_middle_issues_nothing_after() {
    let mut s = setup().await;
    let admin_pw = s.admin_password.clone();
    let admin = ("admin", admin_pw.as_str());
    let r = submit(&s, admin, "posrsa", csv(200, "dev"), "Secret_#42").await;
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    // wait until some rows are done, then cancel
    loop {
        let st = status(&s, admin, id).await;
        if st["done"].as_i64().unwrap() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http(&s)
        .post(s.url(&format!("/api/v1/bulk/{id}/cancel")))
        .basic_auth("admin", Some(&admin_pw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["state"],
        "cancelled"
    );
    let at_cancel = s.state().store.certificate_count().await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await; // longer than two RSA key generations
    let st = status(&s, admin, id).await;
    assert_eq!(st["state"], "cancelled");
    let done = st["done"].as_i64().unwrap();
    assert_eq!(
        s.state().store.certificate_count().await.unwrap() as i64,
        done,
        "every issued certificate is a done row"
    );
    assert_eq!(
        s.state().store.certificate_count().await.unwrap(),
        at_cancel,
        "no row issued after the cancel"
    );
    assert_eq!(done + st["cancelled"].as_i64().unwrap(), 200);
    assert!(done < 200);
    // a cancelled job can be downloaded (what was issued) and confirmed
    let r = http(&s)
        .get(s.url(&format!("/api/v1/bulk/{id}/download")))
        .basic_auth("admin", Some(&admin_pw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http(&s)
        .post(s.url(&format!("/api/v1/bulk/{id}/confirm")))
        .basic_auth("admin", Some(&admin_pw))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}
