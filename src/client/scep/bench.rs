//! `estd client scep bench`: N concurrent workers send PKCSReq enrollments (the template's
//! static challenge) for T seconds, each reading and verifying its CertRep (the RA's
//! signature, our transactionID and nonce, the envelope opened, a certificate for our
//! key). RSA-2048 keys, their CSRs and self-signed signer certificates are made before the
//! clock starts and used in turn, each request with a fresh random transactionID (the
//! server binds a transactionID to its first key). Reports enrollments per second, latency
//! percentiles, errors, and, given the server's process id, its CPU time per enrollment
//! (from `/proc/PID/stat`), as `estd client bench` does for EST.
//!
//! The latency is that of the HTTP exchange (sending the pkiMessage, receiving the
//! CertRep); building the request and reading the reply are the client's own work,
//! counted in the throughput and in the client CPU line, not in the latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Ra, Session, csr_subject};
use crate::client::bench::{cpu_now, finish, process_cpu};
use crate::client::cli::{Stop, local, subject_cn};
use crate::scep_wire::envelope::Cipher;
use crate::scep_wire::request::{self, Reply, Requester};

#[derive(clap::Args)]
pub(super) struct BenchArgs {
    #[command(flatten)]
    ra: Ra,
    /// The template's static challenge password (`scep_challenge`; better: the
    /// SCEP_CHALLENGE environment variable)
    #[arg(long, env = "SCEP_CHALLENGE", hide_env_values = true)]
    challenge: String,
    /// Concurrent workers, each one enrollment at a time (a new connection each)
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// How long to run, seconds (1 to 3600)
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// RSA-2048 keys (each with its CSR and self-signed signer certificate) made before the
    /// clock starts and used in turn (1 to 1000)
    #[arg(long, default_value_t = 8)]
    keys: usize,
    /// Common Name of the requests
    #[arg(long, default_value = "scep-bench")]
    cn: String,
    /// A server's process id: its CPU time per enrollment is reported; repeatable
    #[arg(long)]
    pid: Vec<u32>,
}

impl BenchArgs {
    fn check(&self) -> Result<(), Stop> {
        if !(1..=3600).contains(&self.duration)
            || !(1..=10_000).contains(&self.connections)
            || !(1..=1000).contains(&self.keys)
        {
            return Err(Stop::Local(
                "--duration 1 to 3600, --connections 1 to 10000, --keys 1 to 1000".into(),
            ));
        }
        Ok(())
    }
}

/// A key made before the clock: what signs the requests and opens the replies.
struct Key {
    who: Requester,
    /// The PKCS#10 request (DER), with the challenge password.
    csr: Vec<u8>,
    /// Its subjectPublicKey bits: the issued certificate must carry them.
    public_key: Vec<u8>,
}

fn make_key(cn: &str, challenge: &str) -> Result<Key, Stop> {
    let g = crate::est::generate_key(crate::est::KeyType::Rsa(2048)).map_err(Stop::Local)?;
    let kp = rcgen::KeyPair::try_from(g.pkcs8.as_slice()).map_err(local("the new key"))?;
    let csr = request::csr(&kp, subject_cn(cn), &[], Some(challenge)).map_err(super::fail)?;
    let who = Requester::self_signed(&g.pkcs8, &csr_subject(&csr)?).map_err(super::fail)?;
    Ok(Key {
        who,
        csr,
        public_key: g.public_key,
    })
}

/// `count` keys, made on the blocking pool side by side.
async fn make_keys(count: usize, cn: &str, challenge: &str) -> Result<Vec<Key>, Stop> {
    let jobs: Vec<_> = (0..count)
        .map(|_| {
            let (cn, challenge) = (cn.to_string(), challenge.to_string());
            tokio::task::spawn_blocking(move || make_key(&cn, &challenge))
        })
        .collect();
    let mut keys = Vec::with_capacity(count);
    for j in jobs {
        keys.push(j.await.map_err(local("key generation"))??);
    }
    Ok(keys)
}

/// A fresh transactionID: 128 random bits in hex (a PrintableString).
fn transaction_id() -> Result<String, String> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| "no randomness".to_string())?;
    Ok(crate::est::hex(&b))
}

/// One PKCSReq and its CertRep: the exchange's latency, or why it failed.
async fn enroll_once(
    session: &Session,
    key: &Key,
    signers: &[Vec<u8>],
) -> Result<Duration, String> {
    let txid = transaction_id()?;
    let sent = request::pkcs_req(
        &key.csr,
        &key.who,
        &session.ca.encryption,
        session.cipher,
        Some(&txid),
    )
    .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let body = session
        .client
        .pki_operation(&sent.der, session.post)
        .await
        .map_err(|e| e.to_string())?;
    let latency = t0.elapsed();
    match request::read_reply(&body, &sent, signers, &key.who).map_err(|e| e.to_string())? {
        Reply::Success { certs, .. } => {
            super::issued_for(&certs, &key.public_key)
                .map_err(|_| "the reply holds no certificate for the key".to_string())?;
            Ok(latency)
        }
        Reply::Pending => Err("PENDING (does the template want manual approval?)".into()),
        Reply::Failure(f) => Err(format!(
            "FAILURE {}",
            f.map_or("(no failInfo)", request::fail_name)
        )),
    }
}

fn cipher_name(c: Cipher) -> &'static str {
    match c {
        Cipher::Aes128Cbc => "AES-128",
        Cipher::Aes192Cbc => "AES-192",
        Cipher::Aes256Cbc => "AES-256",
        Cipher::DesEde3Cbc => "3DES",
        Cipher::DesCbc => "DES",
    }
}

/// Per-enrollment microseconds of a CPU time.
fn per_enrollment_us(cpu: Duration, ok: u64) -> Option<f64> {
    (ok > 0).then(|| cpu.as_secs_f64() * 1e6 / ok as f64)
}

pub(super) async fn run(args: &BenchArgs, timeout: Duration) -> Result<(), Stop> {
    args.check()?;
    let session = Arc::new(Session::open(&args.ra, timeout).await?);
    eprintln!(
        "making {} RSA-2048 keys, CSRs and signer certificates before the clock starts…",
        args.keys
    );
    let keys = Arc::new(make_keys(args.keys, &args.cn, &args.challenge).await?);
    let signers = Arc::new(session.ca.reply_signers());
    let stop = Arc::new(AtomicBool::new(false));
    let me = std::process::id();
    let server_before = cpu_now(&args.pid).map_err(Stop::Local)?;
    let client_before = process_cpu(me).map_err(Stop::Local)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.connections);
    for n in 0..args.connections {
        let (session, keys, signers, stop) =
            (session.clone(), keys.clone(), signers.clone(), stop.clone());
        let step = args.connections;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut errors, mut first_error) = (0u64, None::<String>);
            let mut i = n;
            while !stop.load(Ordering::Relaxed) {
                let key = &keys[i % keys.len()];
                i += step;
                match enroll_once(&session, key, &signers).await {
                    Ok(l) => lat.push(l.as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let report = finish(
        tasks,
        &stop,
        Duration::from_secs(args.duration),
        started,
        &args.pid,
        server_before,
    )
    .await
    .map_err(Stop::Local)?;
    let client_cpu = process_cpu(me)
        .map_err(Stop::Local)?
        .saturating_sub(client_before);

    crate::outln!(
        "{} connections, {:.1} s, SCEP PKCSReq over {} ({}, a new connection per enrollment), RSA-2048 keys ({}), {}",
        args.connections,
        report.elapsed.as_secs_f64(),
        if session.client.url.https {
            "https"
        } else {
            "http"
        },
        if session.post { "POST" } else { "GET" },
        args.keys,
        cipher_name(session.cipher)
    );
    report.print_figures(&args.pid);
    if let Some(per) = per_enrollment_us(client_cpu, report.ok) {
        crate::outln!(
            "client CPU: {:.2} s → {:.0} µs per enrollment (this process; its workers share one thread)",
            client_cpu.as_secs_f64(),
            per
        );
    }
    if let Some(e) = report.first_error {
        crate::outln!("first error: {e}");
    }
    if report.ok == 0 {
        return Err(Stop::Fail("no enrollment succeeded".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    // Tests only: each unwrap asserts that a fixed, valid input is handled (a key made
    // here, a literal URL or code); its panic is the test failing, nothing the network sends.
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn arguments_and_their_bounds() {
        let a = Cli::try_parse_from([
            "bench",
            "--url",
            "http://127.0.0.1:8080/scep/scep",
            "--cacert",
            "ra.pem",
            "--challenge",
            "Static-Secret-1",
        ])
        .unwrap()
        .bench;
        assert_eq!((a.connections, a.duration, a.keys), (8, 10, 8));
        assert_eq!(a.cn, "scep-bench");
        assert!(a.pid.is_empty());
        assert!(a.check().is_ok());
        let a = Cli::try_parse_from([
            "bench",
            "--url",
            "https://localhost:8443/scep/scep",
            "--cacert",
            "ra.pem",
            "--challenge",
            "Static-Secret-1",
            "--connections",
            "32",
            "--duration",
            "6",
            "--keys",
            "4",
            "--pid",
            "17",
            "--pid",
            "18",
        ])
        .unwrap()
        .bench;
        assert_eq!((a.connections, a.duration, a.keys), (32, 6, 4));
        assert_eq!(a.pid, [17, 18]);
        for (flag, bad) in [
            ("--connections", "0"),
            ("--duration", "0"),
            ("--keys", "1001"),
        ] {
            let a = Cli::try_parse_from([
                "bench",
                "--url",
                "http://x/",
                "--cacert",
                "ra.pem",
                "--challenge",
                "Static-Secret-1",
                flag,
                bad,
            ])
            .unwrap()
            .bench;
            assert!(matches!(a.check(), Err(Stop::Local(_))), "{flag} {bad}");
        }
    }

    #[test]
    fn transaction_ids_are_fresh_printable_hex() {
        let a = transaction_id().unwrap();
        let b = transaction_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn cpu_per_enrollment() {
        assert_eq!(
            per_enrollment_us(Duration::from_millis(300), 100),
            Some(3000.0)
        );
        assert_eq!(per_enrollment_us(Duration::from_secs(1), 0), None);
    }
}
