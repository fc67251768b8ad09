//! A 500-row bulk job end to end (validation, queue, workers, key generation, signing,
//! sealing, store; then the zip), with P-256 and with RSA-2048 keys, against the median time
//! of one RSA-2048 key generation measured in the same run.
//! Run: `cargo bench -p estd-benches --bench bulk`.

use std::time::{Duration, Instant};

use estd::auth::{AuthMethod, Principal};
use estd::est::KeyType;
use estd::jobs::Submission;
use figment::Figment;
use figment::providers::{Format, Toml};

const RUNS: usize = 3;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn csv(run: usize) -> Vec<u8> {
    let mut s = String::from("CN,SAN\r\n");
    for i in 0..500 {
        s.push_str(&format!(
            "pos-{run}-{i},00-11-22-{run:02X}-{:02X}-{:02X}\r\n",
            i / 256,
            i % 256
        ));
    }
    s.into_bytes()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join("templates");
        std::fs::create_dir_all(&templates).unwrap();
        for (name, key) in [("default", "ec-p256"), ("bulk-p256", "ec-p256"), ("bulk-rsa2048", "rsa-2048")] {
            let style = if name == "default" { "none" } else { "mac" };
            std::fs::write(
                templates.join(format!("{name}.toml")),
                format!("name = \"{name}\"\nkey_types = [\"{key}\"]\nserver_keygen_key = \"{key}\"\nvalidity_days = 30\nsan_style = \"{style}\"\n"),
            )
            .unwrap();
        }
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[est]\ntemplates_dir = {:?}\n[log]\nfilter = \"error\"\n[revocation]\nlisten = \"\"\n[metrics]\nlisten = \"\"\n",
            dir.path().display().to_string(),
            templates.display().to_string()
        );
        let config = estd::config::Config::from_figment(Figment::new().merge(Toml::string(&toml))).unwrap();
        let built = estd::app::build(&config).await.unwrap();
        let jobs = built.state.jobs.clone();
        let store = built.state.store.clone();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

        // one RSA-2048 key generation, 31 times
        let mut keygen = Vec::new();
        for _ in 0..31 {
            let t = Instant::now();
            std::hint::black_box(estd::ca::generate_key(KeyType::Rsa(2048)).unwrap());
            keygen.push(t.elapsed());
        }
        let keygen_median = median(keygen);

        let admin = Principal {
            name: "admin".into(),
            groups: vec!["est-users".into(), "Super Admin".into()],
            method: AuthMethod::Session,
        };
        let mut results = Vec::new();
        for template in ["bulk-p256", "bulk-rsa2048"] {
            let (mut job_times, mut zip_times) = (Vec::new(), Vec::new());
            for run in 0..RUNS {
                let t = Instant::now();
                let id = jobs
                    .submit(
                        &admin,
                        Submission {
                            template: template.into(),
                            description: "bench".into(),
                            format: "pkcs12".into(),
                            password: zeroize::Zeroizing::new("Secret_#42".into()),
                            csv: csv(run),
                        },
                    )
                    .await
                    .unwrap();
                loop {
                    let job = store.get_job(id).await.unwrap().unwrap();
                    if job.state == "completed" {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                job_times.push(t.elapsed());
                let counts = store.job_counts(id).await.unwrap();
                assert_eq!(counts.done, 500, "{template}: {counts:?}");
                let t = Instant::now();
                let (_, zip) = jobs.zip(&admin, id).await.unwrap();
                zip_times.push(t.elapsed());
                std::hint::black_box(zip);
                jobs.confirm(&admin, id).await.unwrap();
            }
            results.push((template, job_times, zip_times));
        }

        println!("cores: {cores}; runs per figure: {RUNS}; figures are medians");
        println!("RSA-2048 key generation (31 samples): median {:.1} ms", keygen_median.as_secs_f64() * 1e3);
        for (template, job_times, zip_times) in results {
            let job = median(job_times.clone());
            let zip = median(zip_times.clone());
            println!(
                "{template}: 500 rows submit→completed median {:.2} s (runs: {}); zip (PKCS#12) median {:.2} s; end to end {:.2} s",
                job.as_secs_f64(),
                job_times.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect::<Vec<_>>().join(", "),
                zip.as_secs_f64(),
                (job + zip).as_secs_f64()
            );
            if template == "bulk-p256" {
                println!("  target P-256 < 2 s end to end: {}", if (job + zip).as_secs_f64() < 2.0 { "met" } else { "NOT met" });
            } else {
                let ideal = keygen_median.as_secs_f64() * 500.0 / cores as f64;
                let ratio = job.as_secs_f64() / ideal;
                println!(
                    "  ideal (500 × median key generation ÷ {cores} cores) {:.2} s; job / ideal = {:.2} (target ≤ 1.5: {})",
                    ideal,
                    ratio,
                    if ratio <= 1.5 { "met" } else { "NOT met" }
                );
            }
        }
    });
}
