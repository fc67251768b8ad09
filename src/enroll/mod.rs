//! The enrollment service: authenticate → policy → CA → store. Nothing else issues a
//! certificate, so every path gets the same checks, the same audit and the same numbers.

mod access;
pub mod codes;
mod device;
mod issue;
mod upstream;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::auth::{self, AuthMethod, Principal};
use crate::ca::{CaError, IssuanceRequest, Issuer};
use crate::est::{self, Csr, SanEntry};
use crate::model::RequestMeta;
use crate::policy::{Approval, EvalContext, PolicyError, Requester, ReservedNames, Template};
use crate::revocation::{RevokedKeys, public_key_fingerprint};
use crate::store::{
    AuditEvent, CertRecord, PendingRecord, PendingState, Store, StoreError, UserRecord, timestamp,
};

/// Why an enrollment did not happen. `api/error.rs` turns these into HTTP.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    #[error("{0}")]
    Unauthorized(String),
    /// The template's `allowed_groups` / `allowed_users` do not include the requester.
    #[error("User {user} may not use the certificate template {template}")]
    TemplateDenied { user: String, template: String },
    /// A renewal asked under another template than the certificate was issued from.
    #[error(
        "The certificate being renewed was issued from the certificate template {issued}; it is renewed only under that template, not {asked}"
    )]
    RenewalTemplate { issued: String, asked: String },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Re-enrollment whose Subject or SubjectAltName differs from the certificate renewed.
    #[error("{0}")]
    ReenrollMismatch(String),
    #[error("The certificate request {id} was rejected{}", .reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Rejected { id: i64, reason: Option<String> },
    #[error("{0}")]
    BadRequest(String),
    /// The CA failed to sign. `Display` is the portal FAQ's text with the CN.
    #[error("{}", ca_failure_message(.cn))]
    Ca { cn: String, detail: String },
    /// A revoked certificate cannot be renewed, nor its key certified again.
    #[error("{0}")]
    Revoked(String),
    #[error("store error: {0}")]
    Store(#[from] StoreError),
    /// The bulk job was cancelled while the row was being signed: nothing was recorded.
    #[error("the job was cancelled")]
    Cancelled,
    /// Too many failed log-ins for this user from this address, or a slowed address's
    /// password check came too soon (429).
    #[error("Too many failed log-ins; try again in {retry_after} seconds")]
    Throttled { retry_after: u64 },
    /// At the bound for password checks or key generation (503).
    #[error("The server is busy; try again in {retry_after} seconds")]
    Busy { retry_after: u64 },
    /// The template's upstream CA is down, slow, at its bound, or answered with a
    /// certificate estd will not hand out (503 with Retry-After).
    #[error("{detail}; try again in {retry_after} seconds")]
    UpstreamUnavailable { detail: String, retry_after: u64 },
    /// An enrollment code bound to another CN or SubjectAltName than the request's (403).
    #[error("{0}")]
    CodeBinding(String),
    /// A manufacturer certificate (IDevID) this template does not accept: untrusted
    /// vendor, expired, revoked, or the device not allowed (403).
    #[error(transparent)]
    DeviceRefused(crate::policy::vendor::DeviceRefusal),
    /// The upstream CA refused the request: its status and reason.
    #[error("The upstream CA {name} refused the request: {reason}")]
    UpstreamRefused {
        name: String,
        status: u16,
        reason: String,
    },
}

/// The portal FAQ's text for a CA that failed to sign, with the request's CN.
pub fn ca_failure_message(cn: &str) -> String {
    format!("CA server error - Certificate request to internal CA failed CN={cn}")
}

/// A certificate just issued and recorded.
#[derive(Debug, Clone)]
pub struct Issued {
    pub der: Vec<u8>,
    pub serial: String,
    /// Signed by this request (its audit row is written with the certificate); false when
    /// an earlier approved request's certificate is handed out again.
    pub fresh: bool,
    /// The PKCS#8 private key when the server generated it. Never stored or logged.
    pub key_pkcs8: Option<zeroize::Zeroizing<Vec<u8>>>,
}

/// What an enrollment came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    Issued(Issued),
    /// Waiting for a person (`estd pending approve ID`); retry after the delay.
    Pending {
        id: i64,
        retry_after: Duration,
    },
}

/// The certificate a re-enrollment renews: the TLS client certificate, DER.
#[derive(Debug, Clone)]
pub struct Renewing<'a> {
    pub cert_der: &'a [u8],
}

/// One enrollment request, as the transport delivered it.
pub struct EnrollRequest<'a> {
    pub meta: &'a RequestMeta,
    /// What the audit log and the certificate record call the request: the EST operation
    /// (`simpleenroll`, …) or the portal/API call (`portal-single`, `api-csr`, …).
    pub op: &'static str,
    /// The requester's description of the certificate (portal, API); empty for EST.
    pub description: &'a str,
    pub principal: &'a Principal,
    pub template: &'a Template,
    pub csr: &'a Csr,
    pub renewing: Option<Renewing<'a>>,
    /// The connection's RFC 9266 tls-exporter value, for channel binding.
    pub exporter: Option<&'a [u8]>,
    /// The server generates the key (of the template's `server_keygen_key` type); the CSR
    /// gives only the subject and SAN.
    pub server_keygen: bool,
    /// A bulk job's row: issued only while the job runs, recorded with the row.
    pub job_item: Option<&'a crate::store::JobClaim>,
    /// Values for the template's SAN pattern (a test certificate's fields); default: taken
    /// from the CSR.
    pub vars: Option<&'a crate::policy::SanVars>,
}

/// A request that waits for approval, as `enroll` checked it.
struct Submitted<'a> {
    meta: &'a RequestMeta,
    op: &'static str,
    principal: &'a Principal,
    /// Who the policy saw (a renewal: its certificate's CN, no admin rights).
    requester: &'a Requester<'a>,
    template: &'a Template,
    csr: &'a Csr,
    /// The subject and SAN the policy built.
    subject: &'a x509_cert::name::Name,
    san: &'a [SanEntry],
    server_keygen: bool,
    description: &'a str,
}

/// Everything `issue` needs.
#[derive(Clone, Copy)]
struct IssueCtx<'a> {
    meta: &'a RequestMeta,
    op: &'static str,
    requester: &'a str,
    template: &'a Template,
    csr: &'a Csr,
    /// The subject the policy built from the request's.
    subject: &'a x509_cert::name::Name,
    san: &'a [SanEntry],
    /// An approved manual request being issued.
    pending_id: Option<i64>,
    /// A renewal: the serial of the certificate renewed (in the audit row).
    renews: Option<&'a str>,
    server_keygen: bool,
    description: &'a str,
    /// A bulk row: recorded with the row, the generated key sealed into it.
    job_item: Option<&'a crate::store::JobClaim>,
}

pub struct EnrollService {
    issuer: Arc<dyn Issuer>,
    store: Arc<dyn Store>,
    est_group: String,
    admin_groups: Vec<String>,
    sealer: Option<Arc<crate::ca::seal::Sealer>>,
    credentials: Option<auth::CredentialCache>,
    /// User records read for Basic authentication, reused for `USER_FRESH` (with the
    /// credential cache only): a device enrolling many times a second does not read its
    /// user row each time. A password changed elsewhere counts within that second.
    recent_users: std::sync::Mutex<std::collections::HashMap<String, (UserRecord, Instant)>>,
    /// Where issued certificates point relying parties for revocation.
    revocation_urls: crate::revocation::Urls,
    revoked_keys: Arc<RevokedKeys>,
    /// This server's own names (its TLS certificate's, its CA's subjects): never issued.
    /// Replaced when the TLS certificate is reloaded.
    reserved: std::sync::RwLock<Arc<ReservedNames>>,
    /// argon2 verifications: bounded, sharing memory, one per identical request at a time.
    passwords: auth::PasswordChecker,
    /// Failed log-ins: per (user, address) refused, per address slowed.
    throttle: auth::Throttle,
    /// Other CPU- or memory-heavy work a client starts (key generation, packaging).
    work: Arc<crate::gate::Gate>,
    /// Upstream CAs by name (registration-authority mode).
    upstreams: std::collections::BTreeMap<String, Arc<crate::ca::upstream::Upstream>>,
    /// The templates, for requests an upstream holds (polled without a request in hand).
    templates: Option<Arc<crate::policy::Templates>>,
    /// Bearer tokens' verifier (`[tokens]`), when configured.
    tokens: Option<Arc<auth::jwt::Verifier>>,
}

impl From<crate::gate::Busy> for EnrollError {
    fn from(b: crate::gate::Busy) -> Self {
        EnrollError::Busy {
            retry_after: b.retry_after,
        }
    }
}

/// How many CPU-heavy tasks (argon2, key generation, packaging) run at once by default: the
/// number of cores.
pub fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Heavy tasks waiting for a slot, at most (then 503).
pub const DEFAULT_QUEUE: usize = 64;

/// How long a user record read for Basic authentication is reused.
const USER_FRESH: Duration = Duration::from_secs(1);
/// User records kept at most (then the map is emptied).
const RECENT_USERS_MAX: usize = 10_000;

/// How many times a serial-number collision is retried (each is a 2^-126 event).
const SERIAL_ATTEMPTS: usize = 3;

impl EnrollService {
    pub fn new(
        issuer: Arc<dyn Issuer>,
        store: Arc<dyn Store>,
        est_group: String,
        admin_groups: Vec<String>,
    ) -> Self {
        let reserved = Arc::new(ReservedNames::from_certificates(None, issuer.chain()));
        let cores = default_parallelism();
        Self {
            reserved: std::sync::RwLock::new(reserved),
            passwords: auth::PasswordChecker::new(cores, DEFAULT_QUEUE),
            throttle: auth::Throttle::new(auth::ThrottleSettings::default()),
            work: Arc::new(crate::gate::Gate::new(
                "keys and packaging",
                cores,
                DEFAULT_QUEUE,
            )),
            issuer,
            store,
            est_group,
            admin_groups,
            sealer: None,
            credentials: None,
            recent_users: std::sync::Mutex::new(std::collections::HashMap::new()),
            revocation_urls: crate::revocation::Urls::default(),
            revoked_keys: Arc::new(RevokedKeys::default()),
            upstreams: std::collections::BTreeMap::new(),
            tokens: None,
            templates: None,
        }
    }

    /// Never issues the names of this TLS server certificate (DER), nor the CA's subjects:
    /// at start and whenever the certificate is reloaded.
    pub fn set_server_certificate(&self, tls_leaf: &[u8]) {
        let names = ReservedNames::from_certificates(Some(tls_leaf), self.issuer.chain());
        tracing::info!(
            dns = %names.dns.join(", "),
            ips = %names.ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            "this server's own names are never issued"
        );
        if let Ok(mut r) = self.reserved.write() {
            *r = Arc::new(names);
        }
    }

    /// This server's own names, as the policy needs them (`EvalContext::reserved`).
    pub fn reserved(&self) -> Arc<ReservedNames> {
        self.reserved
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Bounds password checks and other heavy work: `max` at once, `queue` waiting.
    pub fn with_work_bounds(mut self, max: usize, queue: usize) -> Self {
        self.passwords = auth::PasswordChecker::new(max, queue);
        self.work = Arc::new(crate::gate::Gate::new("keys and packaging", max, queue));
        self
    }

    /// The failed-log-in throttle's settings.
    pub fn with_throttle(mut self, s: auth::ThrottleSettings) -> Self {
        self.throttle = auth::Throttle::new(s);
        self
    }

    /// The failed-log-in throttle (SCEP challenges count as log-ins).
    pub fn throttle(&self) -> &auth::Throttle {
        &self.throttle
    }

    /// The bound on heavy work (key generation, packaging) the HTTP layers run through.
    pub fn work(&self) -> &Arc<crate::gate::Gate> {
        &self.work
    }

    /// Hashes a new password within the bound on password work.
    pub async fn hash_password(&self, password: &str) -> Result<String, EnrollError> {
        self.passwords
            .hash(password)
            .await?
            .map_err(|e| EnrollError::Ca {
                cn: String::new(),
                detail: format!("password hashing: {e}"),
            })
    }

    /// Names the CRL and OCSP URLs in the certificates of templates that want them.
    pub fn with_revocation_urls(mut self, urls: crate::revocation::Urls) -> Self {
        self.revocation_urls = urls;
        self
    }

    pub fn revoked_keys(&self) -> &Arc<RevokedKeys> {
        &self.revoked_keys
    }

    /// Takes bearer tokens verified by `v`.
    pub fn with_tokens(mut self, v: Arc<auth::jwt::Verifier>) -> Self {
        self.tokens = Some(v);
        self
    }

    pub fn tokens(&self) -> Option<&Arc<auth::jwt::Verifier>> {
        self.tokens.as_ref()
    }

    /// Remembers verified Basic credentials for `ttl` (see `auth::CredentialCache`).
    pub fn with_credential_cache(mut self, cache: auth::CredentialCache) -> Self {
        self.credentials = Some(cache);
        self
    }

    /// Seals bulk rows' generated keys until their download is confirmed.
    pub fn with_sealer(mut self, sealer: Arc<crate::ca::seal::Sealer>) -> Self {
        self.sealer = Some(sealer);
        self
    }

    pub fn sealer(&self) -> Option<&Arc<crate::ca::seal::Sealer>> {
        self.sealer.as_ref()
    }

    pub fn issuer(&self) -> &Arc<dyn Issuer> {
        &self.issuer
    }

    /// The group whose members may enroll and use the portal.
    pub fn est_group(&self) -> &str {
        &self.est_group
    }

    /// Applies the template's policy and issues (or queues for approval) a certificate.
    pub async fn enroll(&self, req: EnrollRequest<'_>) -> Result<Outcome, EnrollError> {
        let EnrollRequest {
            meta,
            op,
            principal,
            template,
            csr,
            renewing,
            exporter,
            server_keygen,
            description,
            job_item,
            vars,
        } = req;
        // RFC 7030 §4.4.1: a key the client asked to have encrypted is never sent in clear
        if server_keygen
            && let Some(asked) = csr.attribute_oids.iter().find_map(|o| encryption_asked(o))
        {
            return Err(EnrollError::BadRequest(format!(
                "the CSR asks for the server-generated key encrypted ({asked}); this server sends server-generated keys only inside the TLS connection, unencrypted: remove the attribute"
            )));
        }
        // A renewal (the TLS client certificate being renewed is the identity) stays under
        // the template its certificate was issued from, with that certificate's CN as the
        // requester's name and no admin rights; its owner must still have the template's
        // access, as any other request.
        let renewal = match (&renewing, &principal.method) {
            (
                Some(old),
                AuthMethod::ClientCert {
                    template: issued, ..
                },
            ) => {
                if *issued != template.name {
                    return Err(EnrollError::RenewalTemplate {
                        issued: issued.clone(),
                        asked: template.name.clone(),
                    });
                }
                self.check_access(principal, template)?;
                // a device's certificate renews while the device may still enroll
                if let Some(serial) = auth::device_serial(&principal.name) {
                    self.check_listed(template, serial).await?;
                }
                let (subject, _) = est::cert_identity(old.cert_der).map_err(|e| {
                    EnrollError::BadRequest(format!("unreadable client certificate: {e}"))
                })?;
                let cn = <x509_cert::name::Name as der::Decode>::from_der(&subject)
                    .ok()
                    .and_then(|n| est::common_name(&n))
                    .unwrap_or_default();
                Some(cn)
            }
            (Some(_), _) => {
                return Err(EnrollError::Unauthorized(
                    "re-enrollment is authenticated by the certificate being renewed".into(),
                ));
            }
            (None, _) => {
                self.check_access(principal, template)?;
                None
            }
        };
        let requester = match (&renewal, &principal.method) {
            (Some(cn), _) => Requester {
                name: cn,
                is_admin: false,
            },
            // the IDevID names the certificate
            (None, AuthMethod::DeviceCert { serial, cn, .. }) => {
                device::check_device_cn(csr, cn, serial)?;
                Requester {
                    name: cn,
                    is_admin: false,
                }
            }
            (None, _) => Requester {
                name: principal.user_name(),
                is_admin: self.is_admin(principal),
            },
        };
        if let Some(serial) = self
            .revoked_keys
            .serial_for(&public_key_fingerprint(&csr.public_key))
        {
            return Err(EnrollError::Revoked(format!(
                "the key of this request belongs to the revoked certificate {serial}; make a new key"
            )));
        }
        // A renewal whose subject is not the certificate's is told so first (the policy would
        // refuse it too, with a less telling reason: its CN's names, say).
        if let Some(old) = &renewing {
            let (subject, _) = est::cert_identity(old.cert_der).map_err(|e| {
                EnrollError::BadRequest(format!("unreadable client certificate: {e}"))
            })?;
            let same = if template.subject_rules.drop_unlisted {
                // (a certificate without a CN renews from a CSR without one)
                renewal.as_deref().unwrap_or("") == csr.common_name().unwrap_or_default()
            } else {
                subject == csr.subject_der
            };
            if !same {
                return Err(EnrollError::ReenrollMismatch(
                    "the CSR Subject differs from the Subject of the certificate being renewed"
                        .into(),
                ));
            }
        }
        let reserved = self.reserved();
        let evaluated = template.evaluate(
            csr,
            &requester,
            &EvalContext {
                exporter,
                vars,
                server_keygen,
                reserved: Some(&reserved),
                renewal: renewal.is_some(),
            },
        );
        let approved = match (evaluated, &renewing) {
            (Ok(a), _) => a,
            // a renewal asking for other names is told that first (the name rules would
            // refuse them too, with a less telling reason)
            (Err(e), Some(old)) => {
                let mut asked = csr
                    .san
                    .as_ref()
                    .map(|s| s.entries.clone())
                    .unwrap_or_default();
                asked.sort();
                if est::cert_identity(old.cert_der).is_ok_and(|(_, had)| had != asked)
                    && matches!(
                        e,
                        PolicyError::NameNotAllowed { .. }
                            | PolicyError::WildcardNotAllowed { .. }
                            | PolicyError::WildcardTooBroad { .. }
                            | PolicyError::ServerName { .. }
                            | PolicyError::SanNotAllowed { .. }
                    )
                {
                    return Err(EnrollError::ReenrollMismatch(
                        "the CSR SubjectAltName differs from the SubjectAltName of the certificate being renewed".into(),
                    ));
                }
                return Err(e.into());
            }
            (Err(e), None) => return Err(e.into()),
        };
        if let Some(old) = &renewing {
            let subject = der::Encode::to_der(&approved.subject).map_err(|e| {
                EnrollError::BadRequest(format!("the subject cannot be encoded: {e}"))
            })?;
            check_same_identity(&subject, &approved.san, old.cert_der)?;
        }
        let renews = match (&renewal, &principal.method) {
            (Some(_), AuthMethod::ClientCert { serial, .. }) => Some(serial.as_str()),
            _ => None,
        };
        if approved.approval == Approval::Manual {
            return self
                .manual(
                    Submitted {
                        meta,
                        op,
                        principal,
                        requester: &requester,
                        template,
                        csr,
                        subject: &approved.subject,
                        san: &approved.san,
                        server_keygen,
                        description,
                    },
                    renews,
                )
                .await;
        }
        self.issue_or_forward(IssueCtx {
            meta,
            op,
            requester: &principal.name,
            template,
            csr,
            subject: &approved.subject,
            san: &approved.san,
            pending_id: None,
            renews,
            server_keygen,
            description,
            job_item,
        })
        .await
    }
}

/// The RFC 7030 §4.4.1 attributes of a `/serverkeygen` CSR that ask for the key encrypted
/// (DecryptKeyIdentifier, AsymmetricDecryptKeyIdentifier), named.
fn encryption_asked(oid: &der::asn1::ObjectIdentifier) -> Option<&'static str> {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.9.16.2.37" => Some("DecryptKeyIdentifier, 1.2.840.113549.1.9.16.2.37"),
        "1.2.840.113549.1.9.16.2.54" => {
            Some("AsymmetricDecryptKeyIdentifier, 1.2.840.113549.1.9.16.2.54")
        }
        _ => None,
    }
}

/// The associated data that binds a bulk row's sealed key to the row.
pub fn job_key_context(item_id: i64) -> String {
    format!("estd-job-item:{item_id}")
}

/// A CSR for a typed-in CN and SAN (portal, API, bulk rows), signed with a throwaway key: the
/// certificate gets a key the server generates; the CSR carries the subject and SAN through
/// the same checks. The subject also gets the template's fixed RDNs (there are no fields for
/// them).
pub fn attribute_csr(cn: &str, san: &[SanEntry], template: &Template) -> Result<Csr, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::default();
    for rdn in &template.required_rdns {
        let arcs: Vec<u64> = rdn.oid.arcs().map(u64::from).collect();
        params
            .distinguished_name
            .push(rcgen::DnType::from_oid(&arcs), rdn.value.clone());
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn.to_string());
    if !san.is_empty() {
        let der = est::encode_san(san)
            .map_err(|_| "the Subject alternative name must be ASCII text".to_string())?;
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[2, 5, 29, 17],
                der,
            ));
    }
    let req = params.serialize_request(&key).map_err(|e| e.to_string())?;
    Csr::parse(req.der()).map_err(|e| e.to_string())
}

fn san_text(entries: &[SanEntry]) -> String {
    entries
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// SHA-256 of the key type and public key: identifies a client's repeated request.
pub fn key_fingerprint(csr: &Csr) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(csr.key_type.to_string().as_bytes());
    ctx.update(b":");
    ctx.update(&csr.public_key);
    crate::est::hex(ctx.finish().as_ref())
}

/// RFC 7030 §4.2.2: the Subject and SubjectAltName of a re-enrollment must be those of the
/// certificate being renewed. The SAN compared is the one the policy resolved (so a MAC
/// written in another accepted form still matches); SANs are compared as sets.
pub fn check_same_identity(
    subject_der: &[u8],
    san: &[SanEntry],
    cert_der: &[u8],
) -> Result<(), EnrollError> {
    let (subject, sans) = est::cert_identity(cert_der)
        .map_err(|e| EnrollError::BadRequest(format!("unreadable client certificate: {e}")))?;
    if subject != subject_der {
        return Err(EnrollError::ReenrollMismatch(
            "the CSR Subject differs from the Subject of the certificate being renewed".into(),
        ));
    }
    let mut requested = san.to_vec();
    requested.sort();
    if requested != sans {
        return Err(EnrollError::ReenrollMismatch(
            "the CSR SubjectAltName differs from the SubjectAltName of the certificate being renewed".into(),
        ));
    }
    Ok(())
}

/// The serial number of a DER certificate, lower-case hex.
/// Who requested a certificate this CA issued (by its serial), for the audit row of a
/// refused renewal; `None` for a certificate the store does not know.
pub async fn certificate_owner(store: &dyn Store, cert_der: &[u8]) -> Option<String> {
    let serial = serial_of(cert_der).ok()?;
    store
        .find_certificate(&serial)
        .await
        .ok()
        .flatten()
        .map(|c| c.requester)
}

/// A certificate's subject as text (`CN=dev-1,O=Example`); `None` when unreadable or empty.
pub fn subject_of(cert_der: &[u8]) -> Option<String> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der).ok()?;
    let s = crate::model::printable(&cert.tbs_certificate().subject().to_string()).into_owned();
    (!s.is_empty()).then_some(s)
}

pub fn serial_of(cert_der: &[u8]) -> Result<String, der::Error> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der)?;
    Ok(crate::est::hex(
        cert.tbs_certificate().serial_number().as_bytes(),
    ))
}
