//! The `estd client` command line. Exit status: 0 done (PASS), 1 the server refused or its
//! answer was unusable (FAIL), 2 a local problem (arguments, files), 3 the server is not
//! trusted yet (bootstrap without a matching fingerprint), 4 the request waits for approval.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use der::Decode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use super::{ClientError, Endpoint, Enrolled, EstClient, SanStyleArg, Trust};

#[derive(clap::Args)]
pub struct ClientArgs {
    /// EST server: host name, IP address, host:port or https://host:port URL
    #[arg(
        long,
        global = true,
        help_heading = "EST options",
        env = "EST_CLIENT_SERVER",
        default_value = "127.0.0.1"
    )]
    server: String,
    /// Port [default: the one in --server, else 443]
    #[arg(long, global = true, help_heading = "EST options")]
    port: Option<u16>,
    /// CA label (estd: the template name), as in /.well-known/est/LABEL/…
    #[arg(long, global = true, help_heading = "EST options")]
    label: Option<String>,
    /// HTTP Basic user name
    #[arg(
        long,
        global = true,
        help_heading = "EST options",
        env = "EST_CLIENT_USER"
    )]
    user: Option<String>,
    /// HTTP Basic password (better: the EST_CLIENT_PASSWORD environment variable)
    #[arg(
        long,
        global = true,
        help_heading = "EST options",
        env = "EST_CLIENT_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// CA certificates (PEM) to trust for the server's TLS certificate
    #[arg(long, global = true, help_heading = "EST options")]
    cacert: Option<PathBuf>,
    /// Without --cacert: trust the /cacerts answer only if one of its certificates has this
    /// SHA-256 fingerprint (RFC 7030 §4.1.1 bootstrap)
    #[arg(long, global = true, help_heading = "EST options")]
    trust_fingerprint: Option<String>,
    /// Seconds to wait for each step (connect, handshake, answer)
    #[arg(long, global = true, default_value_t = 30)]
    timeout: u64,
    #[command(subcommand)]
    op: ClientOp,
}

#[derive(clap::Args)]
struct CsrArgs {
    /// Common Name of the requested certificate
    #[arg(long)]
    cn: String,
    /// Subject alternative name, KIND:VALUE (dns, email, upn, uri, ip); repeatable
    #[arg(long = "san")]
    san: Vec<String>,
}

/// A TLS client certificate that authenticates instead of --user: a device's manufacturer
/// certificate (IDevID) on a template that trusts its vendor.
#[derive(clap::Args)]
struct TlsIdentity {
    /// The certificate (PEM, leaf first, then its chain)
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM)
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl TlsIdentity {
    fn load(&self) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, Stop> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Ok(Some((read_certs(c)?, read_key(k)?))),
            _ => Ok(None),
        }
    }
}

#[derive(clap::Args)]
struct OutArgs {
    /// Where to save the certificate (PEM)
    #[arg(long, default_value = "cert.pem")]
    out: PathBuf,
    /// Where to save a new private key (PEM, PKCS#8, mode 0600)
    #[arg(long, default_value = "key.pem")]
    key_out: PathBuf,
}

#[derive(clap::Subcommand)]
enum ClientOp {
    /// Fetch the CA certificates (/cacerts) and save them as PEM
    Cacerts {
        #[arg(long, default_value = "cacerts.pem")]
        out: PathBuf,
    },
    /// Show what the server wants CSRs to contain (/csrattrs)
    Csrattrs,
    /// Enroll (/simpleenroll): a new key (or --key) and a CSR with --cn and --san
    Enroll {
        #[command(flatten)]
        csr: CsrArgs,
        /// Use this private key (PEM) instead of generating one
        #[arg(long)]
        key: Option<PathBuf>,
        /// Type of a generated key: ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519
        #[arg(long, default_value = "ec-p256")]
        key_type: String,
        #[command(flatten)]
        identity: TlsIdentity,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Renew (/simplereenroll): the current certificate is the TLS client certificate, and
    /// the request repeats its subject and SAN
    Reenroll {
        /// The certificate being renewed (PEM)
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1)
        #[arg(long)]
        key: PathBuf,
        /// Generate a new key for the renewed certificate (default: keep the key)
        #[arg(long)]
        new_key: bool,
        #[arg(long, default_value = "ec-p256")]
        key_type: String,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Let the server generate the key (/serverkeygen)
    Serverkeygen {
        #[command(flatten)]
        csr: CsrArgs,
        #[command(flatten)]
        identity: TlsIdentity,
        #[command(flatten)]
        out: OutArgs,
    },
    /// Load: concurrent clients enroll for a while; enrollments per second, latency
    /// percentiles, errors, and the servers' CPU time per enrollment
    Bench {
        /// Concurrent clients
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// How long to run, seconds (1 to 3600)
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// One kept-alive connection per client (default: a new TLS connection per enrollment)
        #[arg(long)]
        keep_alive: bool,
        /// CSRs made before the clock starts, used in turn
        #[arg(long, default_value_t = 1000)]
        csrs: usize,
        /// Common Name of the CSRs (with Basic auth: the user's name, or the user is an admin)
        #[arg(long, default_value = "bench")]
        cn: String,
        #[arg(long, default_value = "ec-p256")]
        key_type: String,
        /// More servers (host:port) to spread the clients over, round robin
        #[arg(long)]
        also: Vec<String>,
        /// A server's process id: its CPU time per enrollment is reported; repeatable
        #[arg(long)]
        pid: Vec<u32>,
    },
    /// Memory: opens idle TLS connections (handshake done, no request) and reports the
    /// server's resident memory before and with them open
    Idle {
        /// Connections to open and hold
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Seconds to hold them before the measurement
        #[arg(long, default_value_t = 2)]
        hold: u64,
        /// The server's process id (its VmRSS is read from /proc)
        #[arg(long)]
        pid: u32,
    },
    /// The MDM connector's test certificate: what a connector configured with this server,
    /// port, user, password and template (--label) sends; prints PASS or FAIL with the reason
    Test {
        /// The certificate name (no spaces): the Common Name
        #[arg(long)]
        cert_name: String,
        /// The user name in the SAN [default: --user]
        #[arg(long)]
        user_name: Option<String>,
        /// The domain (a fully qualified domain name)
        #[arg(long)]
        domain: Option<String>,
        /// The email address
        #[arg(long)]
        email: Option<String>,
        /// The connector's Subject Alternative Name choice
        #[arg(long, value_enum, default_value = "none")]
        san_style: SanStyleArg,
        /// For --san-style other: KIND:TEXT with %uname% %email% %domain% %cn%; repeatable
        #[arg(long)]
        san_pattern: Vec<String>,
        /// What a value not given becomes ("" leaves its SAN entry out)
        #[arg(long, default_value = "Test")]
        fill: String,
        #[arg(long, default_value = "ec-p256")]
        key_type: String,
        /// Directory for CERT_NAME.pem and CERT_NAME.key
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
    /// SCEP (RFC 8894) over http:// or https://: caps, cacert, enroll, poll, renew,
    /// getcert, getcrl (--url replaces --server, --port and --label)
    Scep(super::scep::ScepArgs),
}

/// Why the command stops, and its exit status.
pub(super) enum Stop {
    Fail(String),
    Local(String),
    Untrusted,
    Pending(Option<String>),
    /// A SCEP request waits: how to poll for it.
    ScepPending(String),
}

impl From<ClientError> for Stop {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Local(m) => Stop::Local(m),
            other => Stop::Fail(other.to_string()),
        }
    }
}

pub async fn run(args: ClientArgs) -> ExitCode {
    match run_inner(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stop::Fail(m)) => {
            crate::outln!("FAIL: {m}");
            ExitCode::from(1)
        }
        Err(Stop::Local(m)) => {
            eprintln!("estd client: {m}");
            ExitCode::from(2)
        }
        Err(Stop::Untrusted) => ExitCode::from(3),
        Err(Stop::ScepPending(how)) => {
            crate::outln!("PENDING: {how}");
            ExitCode::from(4)
        }
        Err(Stop::Pending(after)) => {
            crate::outln!(
                "PENDING: the request waits for approval; send it again{}",
                after
                    .map(|s| format!(" in {s} seconds"))
                    .unwrap_or_default()
            );
            ExitCode::from(4)
        }
    }
}

pub(super) fn local<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Stop + '_ {
    move |e| Stop::Local(format!("{what}: {e}"))
}

pub(super) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Stop> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(local(&path.display().to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(local(&path.display().to_string()))?;
    if certs.is_empty() {
        return Err(Stop::Local(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

pub(super) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Stop> {
    PrivateKeyDer::from_pem_file(path).map_err(local(&path.display().to_string()))
}

/// Writes a file; keys get mode 0600 from the start.
pub(super) fn save(path: &Path, text: &str, secret: bool) -> Result<(), Stop> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(local(&path.display().to_string()))?;
    f.write_all(text.as_bytes())
        .map_err(local(&path.display().to_string()))
}

pub(super) fn pem_chain(certs: &[Vec<u8>]) -> String {
    certs
        .iter()
        .map(|c| crate::est::pem("CERTIFICATE", c))
        .collect()
}

/// Subject, issuer, serial and expiry of a certificate, for people.
pub(super) struct Shown {
    pub(super) subject: String,
    pub(super) issuer: String,
    pub(super) serial: String,
    pub(super) not_after: String,
    pub(super) san: Vec<String>,
}

pub(super) fn show(der: &[u8]) -> Result<Shown, Stop> {
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| Stop::Fail(format!("the certificate cannot be read: {e}")))?;
    let tbs = cert.tbs_certificate();
    let san = crate::est::cert_identity(der)
        .map(|(_, s)| s.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    Ok(Shown {
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        serial: crate::est::hex(tbs.serial_number().as_bytes()),
        not_after: tbs.validity().not_after.to_string(),
        san,
    })
}

fn generate(key_type: &str) -> Result<rcgen::KeyPair, Stop> {
    let key_type = crate::est::KeyType::parse(key_type).ok_or_else(|| {
        Stop::Local(format!(
            "--key-type {key_type:?}: use ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519"
        ))
    })?;
    let g = crate::est::generate_key(key_type).map_err(Stop::Local)?;
    rcgen::KeyPair::try_from(g.pkcs8.as_slice()).map_err(local("key generation"))
}

pub(super) fn subject_cn(cn: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, cn);
    dn
}

pub(super) fn sans(args: &[String]) -> Result<Vec<crate::est::SanEntry>, Stop> {
    args.iter()
        .map(|s| super::parse_san(s).map_err(Stop::Local))
        .collect()
}

/// The issued certificate must carry the key the request was made with.
fn check_key(cert_der: &[u8], key: &rcgen::KeyPair) -> Result<(), Stop> {
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| Stop::Fail(format!("the certificate cannot be read: {e}")))?;
    let got = cert
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    if got != key.public_key_raw() {
        return Err(Stop::Fail(
            "the server issued a certificate for another key".into(),
        ));
    }
    Ok(())
}

/// The trust anchors: the --cacert file, or the /cacerts answer when a certificate in it
/// has the --trust-fingerprint. Also returns the /cacerts answer when it was fetched.
async fn establish_trust(
    args: &ClientArgs,
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<(Vec<CertificateDer<'static>>, Option<Vec<Vec<u8>>>), Stop> {
    if let Some(path) = &args.cacert {
        return Ok((read_certs(path)?, None));
    }
    let provisional = EstClient::new(
        endpoint.clone(),
        super::tls_config(Trust::Provisional, None)?,
        None,
        timeout,
    );
    let certs = provisional.cacerts().await?;
    eprintln!(
        "Bootstrap (RFC 7030 §4.1.1): {} sent {} CA certificate(s):",
        endpoint.authority(),
        certs.len()
    );
    for c in &certs {
        let subject = show(c).map(|s| s.subject).unwrap_or_default();
        eprintln!("  {subject}\n    SHA-256 {}", super::fingerprint(c));
    }
    match &args.trust_fingerprint {
        Some(fp) if certs.iter().any(|c| super::fingerprint_matches(fp, c)) => {
            eprintln!("Trusted: the fingerprint matches.");
            let roots = certs
                .iter()
                .map(|c| CertificateDer::from(c.clone()))
                .collect();
            Ok((roots, Some(certs)))
        }
        Some(_) => {
            eprintln!(
                "NOT TRUSTED: no certificate has the fingerprint given with --trust-fingerprint."
            );
            Err(Stop::Untrusted)
        }
        None => {
            eprintln!(
                "NOT TRUSTED yet: compare a fingerprint above with one obtained out of band, then run again with --trust-fingerprint FINGERPRINT (or give --cacert FILE)."
            );
            Err(Stop::Untrusted)
        }
    }
}

async fn run_inner(args: ClientArgs) -> Result<(), Stop> {
    if let ClientOp::Scep(scep) = &args.op {
        let timeout = Duration::from_secs(args.timeout.max(1));
        return super::scep::run(scep, timeout, args.trust_fingerprint.as_deref()).await;
    }
    let endpoint =
        Endpoint::parse(&args.server, args.port, args.label.as_deref()).map_err(Stop::Local)?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    let basic = match (&args.user, &args.password) {
        (Some(u), Some(p)) => Some((u.clone(), Zeroizing::new(p.clone()))),
        (Some(_), None) => {
            return Err(Stop::Local(
                "--user needs --password (or EST_CLIENT_PASSWORD)".into(),
            ));
        }
        _ => None,
    };
    let needs_basic = match &args.op {
        ClientOp::Enroll { identity, .. } | ClientOp::Serverkeygen { identity, .. } => {
            identity.tls_cert.is_none()
        }
        ClientOp::Test { .. } | ClientOp::Bench { .. } => true,
        _ => false,
    };
    if needs_basic && basic.is_none() {
        return Err(Stop::Local(
            "this operation needs --user and --password (or --tls-cert and --tls-key)".into(),
        ));
    }
    let (roots, fetched) = establish_trust(&args, &endpoint, timeout).await?;
    let client = |identity| -> Result<EstClient, Stop> {
        Ok(EstClient::new(
            endpoint.clone(),
            super::tls_config(Trust::Roots(roots.clone()), identity)?,
            basic.clone(),
            timeout,
        ))
    };
    match &args.op {
        ClientOp::Cacerts { out } => {
            // fetched again over a verified connection unless bootstrap just fetched them
            let certs = match fetched {
                Some(c) => c,
                None => client(None)?.cacerts().await?,
            };
            save(out, &pem_chain(&certs), false)?;
            for c in &certs {
                let s = show(c)?;
                crate::outln!("{}  SHA-256 {}", s.subject, super::fingerprint(c));
            }
            crate::outln!(
                "saved {} CA certificate(s) to {}",
                certs.len(),
                out.display()
            );
        }
        ClientOp::Csrattrs => {
            let items = client(None)?.csrattrs().await?;
            if items.is_empty() {
                crate::outln!("the server asks for no particular attributes");
            }
            for i in items {
                crate::outln!("{i}");
            }
        }
        ClientOp::Enroll {
            csr,
            key,
            key_type,
            identity,
            out,
        } => {
            let (kp, new) = match key {
                Some(path) => (
                    rcgen::KeyPair::try_from(&read_key(path)?)
                        .map_err(local(&path.display().to_string()))?,
                    false,
                ),
                None => (generate(key_type)?, true),
            };
            let der = super::build_csr(&kp, subject_cn(&csr.cn), &sans(&csr.san)?)
                .map_err(Stop::Local)?;
            let certs = issued(
                client(identity.load()?)?
                    .enroll("simpleenroll", &der)
                    .await?,
            )?;
            check_key(&certs[0], &kp)?;
            finish(&certs[0], out, new.then_some(&kp))?;
        }
        ClientOp::Reenroll {
            cert,
            key,
            new_key,
            key_type,
            out,
        } => {
            let chain = read_certs(cert)?;
            let current = read_key(key)?;
            let old = x509_cert::Certificate::from_der(&chain[0])
                .map_err(local(&cert.display().to_string()))?;
            let subject = crate::est::dn_from_name(old.tbs_certificate().subject())
                .map_err(|e| Stop::Local(format!("{}: {e}", cert.display())))?;
            let san = crate::est::cert_identity(&chain[0])
                .map_err(local(&cert.display().to_string()))?
                .1;
            let kp = if *new_key {
                generate(key_type)?
            } else {
                rcgen::KeyPair::try_from(&current).map_err(local(&key.display().to_string()))?
            };
            let der = super::build_csr(&kp, subject, &san).map_err(Stop::Local)?;
            let c = client(Some((chain, current)))?;
            let certs = issued(c.enroll("simplereenroll", &der).await?)?;
            check_key(&certs[0], &kp)?;
            finish(&certs[0], out, new_key.then_some(&kp))?;
        }
        ClientOp::Serverkeygen { csr, identity, out } => {
            // the CSR's key only signs the request; the server generates the real one
            let throwaway = generate("ec-p256")?;
            let der = super::build_csr(&throwaway, subject_cn(&csr.cn), &sans(&csr.san)?)
                .map_err(Stop::Local)?;
            let got = client(identity.load()?)?.serverkeygen(&der).await?;
            let kp = rcgen::KeyPair::try_from(got.pkcs8.as_slice())
                .map_err(|e| Stop::Fail(format!("the key the server sent is unusable: {e}")))?;
            check_key(&got.certs[0], &kp)?;
            finish(&got.certs[0], out, Some(&kp))?;
        }
        ClientOp::Bench {
            clients,
            seconds,
            keep_alive,
            csrs,
            cn,
            key_type,
            also,
            pid,
        } => {
            if !(1..=3600).contains(seconds) || !(1..=10_000).contains(clients) || *csrs == 0 {
                return Err(Stop::Local(
                    "--seconds 1 to 3600, --clients 1 to 10000, --csrs at least 1".into(),
                ));
            }
            let mut targets = vec![std::sync::Arc::new(client(None)?)];
            for other in also {
                let e = Endpoint::parse(other, None, args.label.as_deref()).map_err(Stop::Local)?;
                targets.push(std::sync::Arc::new(EstClient::new(
                    e,
                    super::tls_config(Trust::Roots(roots.clone()), None)?,
                    basic.clone(),
                    timeout,
                )));
            }
            eprintln!("making {csrs} CSRs ({key_type}) before the clock starts…");
            let mut made = Vec::with_capacity(*csrs);
            for _ in 0..*csrs {
                let kp = generate(key_type)?;
                made.push(super::build_csr(&kp, subject_cn(cn), &[]).map_err(Stop::Local)?);
            }
            let report = super::bench::run(
                targets.clone(),
                std::sync::Arc::new(made),
                *clients,
                Duration::from_secs(*seconds),
                *keep_alive,
                pid,
            )
            .await
            .map_err(Stop::Local)?;
            crate::outln!(
                "{} clients, {:.1} s, {}, {} server(s)",
                clients,
                report.elapsed.as_secs_f64(),
                if *keep_alive {
                    "keep-alive"
                } else {
                    "a new TLS connection per enrollment"
                },
                targets.len()
            );
            report.print_figures(pid);
            if let Some(e) = report.first_error {
                crate::outln!("first error: {e}");
            }
            if report.ok == 0 {
                return Err(Stop::Fail("no enrollment succeeded".into()));
            }
        }
        ClientOp::Idle {
            connections,
            hold,
            pid,
        } => {
            let before = super::bench::resident_kib(*pid).map_err(Stop::Local)?;
            let c = std::sync::Arc::new(client(None)?);
            let mut open = Vec::with_capacity(*connections);
            // a few at a time, so the server's handshake timeout is never the limit
            for chunk in (0..*connections).collect::<Vec<_>>().chunks(50) {
                let mut set = tokio::task::JoinSet::new();
                for _ in chunk {
                    let c = c.clone();
                    set.spawn(async move { c.connect().await });
                }
                while let Some(r) = set.join_next().await {
                    open.push(
                        r.map_err(|e| Stop::Local(e.to_string()))?
                            .map_err(Stop::from)?,
                    );
                }
            }
            tokio::time::sleep(Duration::from_secs(*hold)).await;
            let with = super::bench::resident_kib(*pid).map_err(Stop::Local)?;
            crate::outln!(
                "server RSS: {:.1} MB before, {:.1} MB with {} idle TLS connections open ({:.1} KB each)",
                before as f64 / 1024.0,
                with as f64 / 1024.0,
                open.len(),
                (with.saturating_sub(before)) as f64 / open.len().max(1) as f64
            );
            drop(open);
        }
        // answered at the top, before anything of EST
        ClientOp::Scep(_) => {}
        ClientOp::Test {
            cert_name,
            user_name,
            domain,
            email,
            san_style,
            san_pattern,
            fill,
            key_type,
            out_dir,
        } => {
            let fields = crate::fields::TestRequest {
                template: args.label.clone().unwrap_or_default(),
                cert_name: cert_name.clone(),
                user_name: user_name
                    .clone()
                    .or_else(|| args.user.clone())
                    .unwrap_or_default(),
                domain: domain.clone().unwrap_or_default(),
                email: email.clone().unwrap_or_default(),
            };
            // the connector's own checks, with estd's words
            let vars = crate::fields::check_fields(&fields).map_err(|e| Stop::Fail(e.message))?;
            let san =
                super::connector_san(*san_style, san_pattern, &vars, fill).map_err(Stop::Local)?;
            let kp = generate(key_type)?;
            let der =
                super::build_csr(&kp, subject_cn(cert_name.trim()), &san).map_err(Stop::Local)?;
            let asked: Vec<String> = san.iter().map(ToString::to_string).collect();
            eprintln!(
                "Test certificate: CN={} SAN=[{}] template {} at {}",
                cert_name.trim(),
                asked.join(", "),
                args.label.as_deref().unwrap_or("(default)"),
                endpoint.authority()
            );
            let certs = issued(client(None)?.enroll("simpleenroll", &der).await?)?;
            check_key(&certs[0], &kp)?;
            let name = crate::fields::safe_name(cert_name.trim());
            let cert_path = out_dir.join(format!("{name}.pem"));
            let key_path = out_dir.join(format!("{name}.key"));
            save(&cert_path, &pem_chain(&certs[..1]), false)?;
            save(&key_path, &kp.serialize_pem(), true)?;
            let s = show(&certs[0])?;
            crate::outln!("PASS: test certificate issued");
            crate::outln!("  subject:  {}", s.subject);
            crate::outln!("  SAN:      {}", s.san.join(", "));
            crate::outln!("  issuer:   {}", s.issuer);
            crate::outln!("  serial:   {}", s.serial);
            crate::outln!("  expires:  {}", s.not_after);
            crate::outln!(
                "  saved:    {} and {}",
                cert_path.display(),
                key_path.display()
            );
        }
    }
    Ok(())
}

fn issued(e: Enrolled) -> Result<Vec<Vec<u8>>, Stop> {
    match e {
        Enrolled::Issued(certs) => Ok(certs),
        Enrolled::Pending { retry_after } => Err(Stop::Pending(retry_after)),
    }
}

/// Saves the certificate (and a new key) and says what was issued.
fn finish(cert: &[u8], out: &OutArgs, new_key: Option<&rcgen::KeyPair>) -> Result<(), Stop> {
    save(&out.out, &crate::est::pem("CERTIFICATE", cert), false)?;
    if let Some(kp) = new_key {
        save(&out.key_out, &kp.serialize_pem(), true)?;
    }
    let s = show(cert)?;
    crate::outln!("issued: {}", s.subject);
    if !s.san.is_empty() {
        crate::outln!("  SAN:     {}", s.san.join(", "));
    }
    crate::outln!("  serial:  {}", s.serial);
    crate::outln!("  expires: {}", s.not_after);
    crate::outln!(
        "  saved:   {}{}",
        out.out.display(),
        if new_key.is_some() {
            format!(" and {}", out.key_out.display())
        } else {
            String::new()
        }
    );
    Ok(())
}
