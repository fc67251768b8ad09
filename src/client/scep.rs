//! `estd client scep`: a SCEP (RFC 8894) client over plain HTTP or HTTPS: GetCACaps,
//! GetCACert (trusted by the CA's fingerprint, or by a verified TLS connection), PKCSReq
//! with polling (CertPoll), RenewalReq, GetCert and GetCRL. The messages are made and read
//! by `scep::request`; here are the HTTP and the command line.
//!
//! Exit status as for the rest of `estd client`: 0 done, 1 refused (the failInfo is named)
//! or an unusable answer, 2 a local problem, 3 the CA certificates are not trusted (no
//! matching fingerprint), 4 the request is PENDING (the transaction ID to poll with is
//! printed).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use der::Decode;
use zeroize::Zeroizing;

use super::cli::{Stop, local, pem_chain, read_certs, read_key, sans, save, show, subject_cn};
use super::{ClientError, Trust};
use crate::scep_wire::envelope::Cipher;
use crate::scep_wire::request::{self, Bundle, CaCerts, Reply, Requester, Sent};

mod bench;
pub mod http;

pub use http::{CT_PKI_MESSAGE, Caps, ScepClient, ScepUrl};

#[derive(clap::Args)]
pub struct ScepArgs {
    #[command(subcommand)]
    op: ScepOp,
}

#[derive(clap::Args)]
struct Service {
    /// The SCEP URL, http(s)://HOST[:PORT]/PATH (estd serves /scep/TEMPLATE, /scep and
    /// /cgi-bin/pkiclient.exe)
    #[arg(long, env = "SCEP_CLIENT_URL")]
    url: String,
    /// For an https:// URL: CA certificates (PEM) to trust for the server's TLS certificate
    /// [default: the --cacert file]
    #[arg(long)]
    tls_cacert: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CipherArg {
    /// AES-128 when GetCACaps lists AES or SCEPStandard, 3DES when it lists only DES3
    Auto,
    Aes128,
    Aes256,
    #[value(name = "3des")]
    Des3,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    /// POST when GetCACaps lists POSTPKIOperation or SCEPStandard, else GET
    Auto,
    Post,
    Get,
}

#[derive(clap::Args)]
struct Ra {
    #[command(flatten)]
    service: Service,
    /// The RA and CA certificates (PEM) as `scep cacert` saved them: requests are
    /// encrypted to the RA, replies must be signed by it
    #[arg(long)]
    cacert: PathBuf,
    /// How the requests are encrypted
    #[arg(long, value_enum, default_value = "auto")]
    cipher: CipherArg,
    /// How PKIOperation is sent
    #[arg(long, value_enum, default_value = "auto")]
    method: MethodArg,
}

/// The certificate a GetCert or GetCRL is asked with, and its key.
#[derive(clap::Args)]
struct Holder {
    /// Your certificate (PEM)
    #[arg(long)]
    cert: PathBuf,
    /// Its private key (PEM, RSA)
    #[arg(long)]
    key: PathBuf,
}

impl Holder {
    fn requester(&self) -> Result<Requester, Stop> {
        requester(&read_cert(&self.cert)?, &read_pkcs8(&self.key)?, &self.cert)
    }
}

#[derive(clap::Args)]
struct Wait {
    /// While the request is PENDING, poll (CertPoll) for up to this many seconds (0: ask
    /// once; exit status 4 and the transaction ID when still pending)
    #[arg(long, default_value_t = 0)]
    wait: u64,
    /// Seconds between polls
    #[arg(long, default_value_t = 10)]
    poll_interval: u64,
}

#[derive(clap::Subcommand)]
enum ScepOp {
    /// GetCACaps: what the server supports, one capability a line
    Caps {
        #[command(flatten)]
        service: Service,
    },
    /// GetCACert: the RA and CA certificates, saved as PEM in the order received (RA
    /// first). Trusted over https:// with --tls-cacert, else only when the CA has the
    /// --fingerprint (and the others are signed by it)
    Cacert {
        #[command(flatten)]
        service: Service,
        /// Where to save them (PEM)
        #[arg(long, default_value = "scep-ca.pem")]
        out: PathBuf,
        /// The CA certificate's SHA-256 fingerprint, obtained out of band (hex, colons
        /// optional)
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// PKCSReq: a new RSA-2048 key (saved first, mode 0600) and a CSR with --cn, --san and
    /// the challenge password, signed by a self-signed certificate of the key
    Enroll {
        #[command(flatten)]
        ra: Ra,
        /// Common Name of the requested certificate
        #[arg(long)]
        cn: String,
        /// Subject alternative name, KIND:VALUE (dns, email, upn, uri, ip); repeatable
        #[arg(long = "san")]
        san: Vec<String>,
        /// The challenge password (better: the SCEP_CHALLENGE environment variable)
        #[arg(long, env = "SCEP_CHALLENGE", hide_env_values = true)]
        challenge: Option<String>,
        /// Where to save the new private key (PEM, PKCS#8, mode 0600)
        #[arg(long, default_value = "key.pem")]
        key_out: PathBuf,
        /// Where to save the certificate (PEM)
        #[arg(long, default_value = "cert.pem")]
        out: PathBuf,
        #[command(flatten)]
        wait: Wait,
    },
    /// CertPoll: asks again for the certificate of a PENDING request
    Poll {
        #[command(flatten)]
        ra: Ra,
        /// The key the request was made with (PEM)
        #[arg(long)]
        key: PathBuf,
        /// For a renewal: the certificate that signed it (PEM); its subject is the request's
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Common Name of the request (its subject) [default: the --cert's subject]
        #[arg(long)]
        cn: Option<String>,
        /// The transaction ID the request printed [default: the one enroll and renew use,
        /// the hex SHA-256 of the signer's public key]
        #[arg(long)]
        txid: Option<String>,
        /// Where to save the certificate (PEM)
        #[arg(long, default_value = "cert.pem")]
        out: PathBuf,
        #[command(flatten)]
        wait: Wait,
    },
    /// RenewalReq (or PKCSReq with --pkcsreq) signed by the current certificate, with its
    /// subject and SAN; the same key, or a new one with --key-out
    Renew {
        #[command(flatten)]
        ra: Ra,
        /// The certificate being renewed (PEM)
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PEM, RSA)
        #[arg(long)]
        key: PathBuf,
        /// Where to save the new certificate (PEM)
        #[arg(long, default_value = "cert.pem")]
        out: PathBuf,
        /// Renew with a new RSA-2048 key, saved here (PEM, PKCS#8, mode 0600)
        #[arg(long)]
        key_out: Option<PathBuf>,
        /// Send a PKCSReq signed by the current certificate (as certmonger does) instead of
        /// a RenewalReq
        #[arg(long)]
        pkcsreq: bool,
        /// A challenge password for the CSR, if the server wants one for renewals
        #[arg(long, env = "SCEP_CHALLENGE", hide_env_values = true)]
        challenge: Option<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// GetCert: a certificate of the CA by its serial number, asked with your certificate
    Getcert {
        #[command(flatten)]
        ra: Ra,
        #[command(flatten)]
        holder: Holder,
        /// The serial number of the certificate asked for (hex, colons optional)
        #[arg(long)]
        serial: String,
        /// Where to save it (PEM)
        #[arg(long)]
        out: PathBuf,
    },
    /// GetCRL: the CRL that covers your certificate
    Getcrl {
        #[command(flatten)]
        ra: Ra,
        #[command(flatten)]
        holder: Holder,
        /// Where to save the CRL (PEM)
        #[arg(long)]
        out: PathBuf,
    },
    /// Load: concurrent workers send PKCSReq enrollments (the template's static challenge,
    /// RSA-2048 keys made before the clock) for a while; enrollments per second, latency
    /// percentiles, errors, and the server's CPU time per enrollment
    Bench(bench::BenchArgs),
}

/// A private key file as PKCS#8 (PKCS#1 RSA keys converted).
fn read_pkcs8(path: &Path) -> Result<Zeroizing<Vec<u8>>, Stop> {
    use rustls::pki_types::PrivateKeyDer;
    let name = path.display().to_string();
    match read_key(path)? {
        PrivateKeyDer::Pkcs8(k) => Ok(Zeroizing::new(k.secret_pkcs8_der().to_vec())),
        PrivateKeyDer::Pkcs1(k) => super::wire::key_to_pkcs8(k.secret_pkcs1_der())
            .map_err(|e| Stop::Local(format!("{name}: {e}"))),
        _ => Err(Stop::Local(format!("{name}: SCEP needs an RSA key"))),
    }
}

/// The first certificate of a PEM file, DER.
fn read_cert(path: &Path) -> Result<Vec<u8>, Stop> {
    Ok(read_certs(path)?.remove(0).to_vec())
}

fn requester(cert: &[u8], key: &[u8], path: &Path) -> Result<Requester, Stop> {
    Requester::new(cert, key).map_err(|e| Stop::Local(format!("{}: {e}", path.display())))
}

/// A new RSA-2048 key (off the executor), saved at once (mode 0600): a PENDING request is
/// polled for with it.
async fn new_key(out: &Path) -> Result<Zeroizing<Vec<u8>>, Stop> {
    let g =
        tokio::task::spawn_blocking(|| crate::est::generate_key(crate::est::KeyType::Rsa(2048)))
            .await
            .map_err(local("key generation"))?
            .map_err(Stop::Local)?;
    let pem = Zeroizing::new(crate::est::pem("PRIVATE KEY", &g.pkcs8));
    save(out, &pem, true)?;
    Ok(g.pkcs8)
}

fn fail(e: request::RequestError) -> Stop {
    match e {
        request::RequestError::Local(m) => Stop::Local(m),
        other => Stop::Fail(other.to_string()),
    }
}

/// The trust anchors of an https:// connection: --tls-cacert, else `fallback`.
fn tls_for(
    service: &Service,
    url: &ScepUrl,
    fallback: Option<&Path>,
) -> Result<Option<Arc<rustls::ClientConfig>>, Stop> {
    if !url.https {
        return Ok(None);
    }
    let trust = match service.tls_cacert.as_deref().or(fallback) {
        Some(path) => Trust::Roots(read_certs(path)?),
        None => Trust::Provisional,
    };
    Ok(Some(super::tls_config(trust, None)?))
}

/// An RA to talk to: the client, its certificates, and how to send.
struct Session {
    client: ScepClient,
    ca: CaCerts,
    cipher: Cipher,
    post: bool,
}

impl Session {
    async fn open(ra: &Ra, timeout: Duration) -> Result<Self, Stop> {
        let certs = read_certs(&ra.cacert)?
            .into_iter()
            .map(|c| c.to_vec())
            .collect();
        let ca = request::pick(certs)
            .map_err(|e| Stop::Local(format!("{}: {e}", ra.cacert.display())))?;
        let url = ScepUrl::parse(&ra.service.url).map_err(Stop::Local)?;
        let tls = tls_for(&ra.service, &url, Some(&ra.cacert))?;
        let client = ScepClient::new(url, tls, timeout)?;
        let caps = match client.caps().await {
            Ok(c) => c,
            Err(e @ ClientError::Refused { .. }) => {
                eprintln!("GetCACaps: {e}; going on with GET and AES-128");
                Caps::default()
            }
            Err(e) => return Err(e.into()),
        };
        let cipher = match ra.cipher {
            CipherArg::Auto => caps.cipher(),
            CipherArg::Aes128 => Cipher::Aes128Cbc,
            CipherArg::Aes256 => Cipher::Aes256Cbc,
            CipherArg::Des3 => Cipher::DesEde3Cbc,
        };
        let post = match ra.method {
            MethodArg::Auto => caps.post(),
            MethodArg::Post => true,
            MethodArg::Get => false,
        };
        Ok(Self {
            client,
            ca,
            cipher,
            post,
        })
    }

    async fn send(&self, sent: &Sent, who: &Requester) -> Result<Reply, Stop> {
        let body = self.client.pki_operation(&sent.der, self.post).await?;
        request::read_reply(&body, sent, &self.ca.reply_signers(), who).map_err(fail)
    }

    /// While PENDING and `wait` allows: CertPoll with the same transaction ID.
    async fn settle(
        &self,
        mut reply: Reply,
        who: &Requester,
        subject: &x509_cert::name::Name,
        txid: &str,
        wait: &Wait,
    ) -> Result<Reply, Stop> {
        let deadline = Instant::now() + Duration::from_secs(wait.wait);
        let every = Duration::from_secs(wait.poll_interval.max(1));
        let issuer = self.ca.ca_subject().map_err(fail)?;
        while reply == Reply::Pending && Instant::now() + every <= deadline {
            eprintln!("pending; polling again in {} s", every.as_secs());
            tokio::time::sleep(every).await;
            let poll = request::cert_poll(
                &issuer,
                subject,
                who,
                &self.ca.encryption,
                self.cipher,
                txid,
            )
            .map_err(fail)?;
            reply = self.send(&poll, who).await?;
        }
        Ok(reply)
    }
}

/// The certificates and CRLs of a SUCCESS; PENDING and FAILURE stop here.
fn success(reply: Reply, pending: impl FnOnce() -> String) -> Result<Bundle, Stop> {
    match reply {
        Reply::Success { certs, crls } => Ok(Bundle { certs, crls }),
        Reply::Pending => Err(Stop::ScepPending(pending())),
        Reply::Failure(f) => Err(Stop::Fail(format!(
            "the server refused the request: {}",
            f.map_or("(no failInfo)", request::fail_name)
        ))),
    }
}

/// The certificate for `public_key` (its subjectPublicKey bits) among those issued.
fn issued_for(certs: &[Vec<u8>], public_key: &[u8]) -> Result<Vec<u8>, Stop> {
    certs
        .iter()
        .find(|c| {
            x509_cert::Certificate::from_der(c).is_ok_and(|c| {
                c.tbs_certificate()
                    .subject_public_key_info()
                    .subject_public_key
                    .raw_bytes()
                    == public_key
            })
        })
        .cloned()
        .ok_or_else(|| {
            Stop::Fail("the reply holds no certificate for the key of the request".into())
        })
}

/// Saves an issued certificate and says what it is.
fn finish(cert: &[u8], out: &Path, key_out: Option<&Path>) -> Result<(), Stop> {
    save(out, &crate::est::pem("CERTIFICATE", cert), false)?;
    let s = show(cert)?;
    crate::outln!("issued: {}", s.subject);
    if !s.san.is_empty() {
        crate::outln!("  SAN:     {}", s.san.join(", "));
    }
    crate::outln!("  issuer:  {}", s.issuer);
    crate::outln!("  serial:  {}", s.serial);
    crate::outln!("  expires: {}", s.not_after);
    crate::outln!(
        "  saved:   {}{}",
        out.display(),
        key_out
            .map(|k| format!(" and {}", k.display()))
            .unwrap_or_default()
    );
    Ok(())
}

/// What to run to poll for a PENDING request.
fn poll_hint(ra: &Ra, txid: &str, key: &Path, who: &str, out: &Path) -> String {
    format!(
        "the request waits for approval (transaction ID {txid}); poll with: estd client scep poll --url {} --cacert {} --key {} {who} --txid {txid} --out {}",
        ra.service.url,
        ra.cacert.display(),
        key.display(),
        out.display()
    )
}

pub(super) async fn run(
    args: &ScepArgs,
    timeout: Duration,
    trust_fingerprint: Option<&str>,
) -> Result<(), Stop> {
    match &args.op {
        ScepOp::Bench(b) => bench::run(b, timeout).await?,
        ScepOp::Caps { service } => {
            let url = ScepUrl::parse(&service.url).map_err(Stop::Local)?;
            let tls = tls_for(service, &url, None)?;
            let caps = ScepClient::new(url, tls, timeout)?.caps().await?;
            if caps.0.is_empty() {
                crate::outln!("(no capabilities listed: clients then use GET, DES and MD5)");
            }
            for c in &caps.0 {
                crate::outln!("{c}");
            }
        }
        ScepOp::Cacert {
            service,
            out,
            fingerprint,
        } => {
            let url = ScepUrl::parse(&service.url).map_err(Stop::Local)?;
            let verified = url.https && service.tls_cacert.is_some();
            let tls = tls_for(service, &url, None)?;
            let ca = ScepClient::new(url, tls, timeout)?.ca_certs().await?;
            for c in &ca.all {
                let s = show(c)?;
                let mut roles = Vec::new();
                if *c == ca.ca {
                    roles.push("CA");
                }
                if *c == ca.encryption {
                    roles.push("RA (encryption)");
                }
                if *c == ca.signing {
                    roles.push("RA (signing)");
                }
                if roles.is_empty() {
                    roles.push("other");
                }
                crate::outln!(
                    "{}: {}\n  SHA-256 {}",
                    roles.join(", "),
                    s.subject,
                    super::fingerprint(c)
                );
            }
            match fingerprint.as_deref().or(trust_fingerprint) {
                Some(fp) if super::fingerprint_matches(fp, &ca.ca) => {
                    ca.verify_chain().map_err(fail)?;
                    eprintln!("Trusted: the CA has the fingerprint given, and signed the others.");
                }
                Some(_) => {
                    eprintln!("NOT TRUSTED: the CA does not have the fingerprint given.");
                    return Err(Stop::Untrusted);
                }
                None if verified => {}
                None => {
                    eprintln!(
                        "NOT TRUSTED yet: compare the CA's fingerprint above with one obtained out of band, then run again with --fingerprint FINGERPRINT (or over https:// with --tls-cacert FILE)."
                    );
                    return Err(Stop::Untrusted);
                }
            }
            save(out, &pem_chain(&ca.all), false)?;
            crate::outln!("saved {} certificate(s) to {}", ca.all.len(), out.display());
        }
        ScepOp::Enroll {
            ra,
            cn,
            san,
            challenge,
            key_out,
            out,
            wait,
        } => {
            let session = Session::open(ra, timeout).await?;
            let san = sans(san)?;
            let pkcs8 = new_key(key_out).await?;
            let kp = rcgen::KeyPair::try_from(pkcs8.as_slice()).map_err(local("the new key"))?;
            let csr =
                request::csr(&kp, subject_cn(cn), &san, challenge.as_deref()).map_err(fail)?;
            let subject = csr_subject(&csr)?;
            let who = Requester::self_signed(&pkcs8, &subject).map_err(fail)?;
            let sent = request::pkcs_req(&csr, &who, &session.ca.encryption, session.cipher, None)
                .map_err(fail)?;
            let reply = session.send(&sent, &who).await?;
            let reply = session
                .settle(reply, &who, &subject, &sent.transaction_id, wait)
                .await?;
            let Bundle { certs, .. } = success(reply, || {
                poll_hint(
                    ra,
                    &sent.transaction_id,
                    key_out,
                    &format!("--cn {cn}"),
                    out,
                )
            })?;
            let cert = issued_for(&certs, kp.public_key_raw())?;
            finish(&cert, out, Some(key_out))?;
        }
        ScepOp::Poll {
            ra,
            key,
            cert,
            cn,
            txid,
            out,
            wait,
        } => {
            let session = Session::open(ra, timeout).await?;
            let pkcs8 = read_pkcs8(key)?;
            let (who, subject, hint) = match (cert, cn) {
                (Some(path), _) => {
                    let der = read_cert(path)?;
                    let c = x509_cert::Certificate::from_der(&der)
                        .map_err(local(&path.display().to_string()))?;
                    let subject = match cn {
                        Some(cn) => name_cn(cn)?,
                        None => c.tbs_certificate().subject().clone(),
                    };
                    let hint = format!("--cert {}", path.display());
                    (requester(&der, &pkcs8, path)?, subject, hint)
                }
                (None, Some(cn)) => {
                    let subject = name_cn(cn)?;
                    let who = Requester::self_signed(&pkcs8, &subject).map_err(fail)?;
                    (who, subject, format!("--cn {cn}"))
                }
                (None, None) => {
                    return Err(Stop::Local(
                        "poll needs --cn (the request's Common Name) or --cert".into(),
                    ));
                }
            };
            let txid = match txid {
                Some(t) => t.clone(),
                None => who.transaction_id().map_err(fail)?,
            };
            let issuer = session.ca.ca_subject().map_err(fail)?;
            let poll = request::cert_poll(
                &issuer,
                &subject,
                &who,
                &session.ca.encryption,
                session.cipher,
                &txid,
            )
            .map_err(fail)?;
            let reply = session.send(&poll, &who).await?;
            let reply = session.settle(reply, &who, &subject, &txid, wait).await?;
            let Bundle { certs, .. } = success(reply, || poll_hint(ra, &txid, key, &hint, out))?;
            let spki = rcgen::KeyPair::try_from(pkcs8.as_slice()).map_err(local("the key"))?;
            let cert = issued_for(&certs, spki.public_key_raw())?;
            finish(&cert, out, None)?;
        }
        ScepOp::Renew {
            ra,
            cert,
            key,
            out,
            key_out,
            pkcsreq,
            challenge,
            wait,
        } => {
            let session = Session::open(ra, timeout).await?;
            let current = read_cert(cert)?;
            let old_key = read_pkcs8(key)?;
            let who = requester(&current, &old_key, cert)?;
            let old = who.certificate();
            let subject = old.tbs_certificate().subject().clone();
            let dn = crate::est::dn_from_name(&subject)
                .map_err(|e| Stop::Local(format!("{}: {e}", cert.display())))?;
            let san = crate::est::cert_identity(&current)
                .map_err(local(&cert.display().to_string()))?
                .1;
            let pkcs8 = match key_out {
                Some(path) => new_key(path).await?,
                None => old_key.clone(),
            };
            let kp = rcgen::KeyPair::try_from(pkcs8.as_slice()).map_err(local("the key"))?;
            let csr = request::csr(&kp, dn, &san, challenge.as_deref()).map_err(fail)?;
            let build = if *pkcsreq {
                request::pkcs_req
            } else {
                request::renewal_req
            };
            let sent =
                build(&csr, &who, &session.ca.encryption, session.cipher, None).map_err(fail)?;
            let reply = session.send(&sent, &who).await?;
            let reply = session
                .settle(reply, &who, &subject, &sent.transaction_id, wait)
                .await?;
            let Bundle { certs, .. } = success(reply, || {
                poll_hint(
                    ra,
                    &sent.transaction_id,
                    key,
                    &format!("--cert {}", cert.display()),
                    out,
                )
            })?;
            let issued = issued_for(&certs, kp.public_key_raw())?;
            finish(&issued, out, key_out.as_deref())?;
        }
        ScepOp::Getcert {
            ra,
            holder,
            serial,
            out,
        } => {
            let session = Session::open(ra, timeout).await?;
            let who = holder.requester()?;
            let serial = parse_serial(serial)?;
            let issuer = session.ca.ca_subject().map_err(fail)?;
            let sent = request::get_cert(
                &issuer,
                &serial,
                &who,
                &session.ca.encryption,
                session.cipher,
            )
            .map_err(fail)?;
            let reply = session.send(&sent, &who).await?;
            let Bundle { certs, .. } =
                success(reply, || "the server answered PENDING to GetCert".into())?;
            let wanted = certs
                .iter()
                .find(|c| {
                    x509_cert::Certificate::from_der(c).is_ok_and(|c| {
                        c.tbs_certificate().serial_number().as_bytes() == serial.as_bytes()
                    })
                })
                .or(certs.first())
                .ok_or_else(|| Stop::Fail("the reply holds no certificate".into()))?;
            save(out, &crate::est::pem("CERTIFICATE", wanted), false)?;
            let s = show(wanted)?;
            crate::outln!("certificate: {}", s.subject);
            crate::outln!("  issuer:  {}", s.issuer);
            crate::outln!("  serial:  {}", s.serial);
            crate::outln!("  expires: {}", s.not_after);
            crate::outln!("  saved:   {}", out.display());
        }
        ScepOp::Getcrl { ra, holder, out } => {
            let session = Session::open(ra, timeout).await?;
            let who = holder.requester()?;
            let tbs = who.certificate().tbs_certificate();
            let sent = request::get_crl(
                tbs.issuer(),
                tbs.serial_number(),
                &who,
                &session.ca.encryption,
                session.cipher,
            )
            .map_err(fail)?;
            let reply = session.send(&sent, &who).await?;
            let Bundle { crls, .. } =
                success(reply, || "the server answered PENDING to GetCRL".into())?;
            let crl = crls
                .first()
                .ok_or_else(|| Stop::Fail("the reply holds no CRL".into()))?;
            let list: x509_cert::crl::CertificateList = der::Decode::from_der(crl)
                .map_err(|e| Stop::Fail(format!("the CRL cannot be read: {e}")))?;
            save(out, &crate::est::pem("X509 CRL", crl), false)?;
            let t = &list.tbs_cert_list;
            crate::outln!("CRL of {}", t.issuer);
            crate::outln!("  this update: {}", t.this_update);
            if let Some(next) = &t.next_update {
                crate::outln!("  next update: {next}");
            }
            crate::outln!(
                "  revoked:     {}",
                t.revoked_certificates.as_ref().map_or(0, Vec::len)
            );
            crate::outln!("  saved:       {}", out.display());
        }
    }
    Ok(())
}

/// The subject of a DER CSR.
fn csr_subject(csr: &[u8]) -> Result<x509_cert::name::Name, Stop> {
    x509_cert::request::CertReq::from_der(csr)
        .map(|r| r.info.subject)
        .map_err(local("the CSR"))
}

/// `CN=cn` as an X.509 name (what enroll's CSR carries).
fn name_cn(cn: &str) -> Result<x509_cert::name::Name, Stop> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = subject_cn(cn);
    // rcgen writes the name: a CSR of a throwaway key, its subject read back
    let kp = rcgen::KeyPair::generate().map_err(local("a key"))?;
    let csr = params
        .serialize_request(&kp)
        .map_err(local("the subject"))?;
    csr_subject(csr.der())
}

/// A serial number in hex (colons, spaces and a 0x in front allowed).
fn parse_serial(s: &str) -> Result<x509_cert::serial_number::SerialNumber, Stop> {
    let bad = || Stop::Local(format!("--serial {s:?}: give the serial number in hex"));
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let mut digits: String = t
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    if digits.len() % 2 == 1 {
        digits.insert(0, '0');
    }
    let bytes = crate::est::unhex(&digits).ok_or_else(bad)?;
    x509_cert::serial_number::SerialNumber::new(&bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials() {
        assert!(parse_serial("01:AB").is_ok());
        assert!(parse_serial("0x1ab").is_ok());
        assert!(parse_serial("zz").is_err());
        assert!(parse_serial("").is_err());
    }
}
