//! Certificate templates (one per EST label) and the enrollment policy they impose.
//!
//! A template is a TOML file in the templates directory; its `name` is the EST label. It
//! compiles into data plus small checks (`rules`, `san`, `mac`); `Template::evaluate` runs
//! them in order and either approves a request (with the SAN the certificate gets) or
//! refuses it with the portal FAQ's message.

pub mod csrattrs;
mod load;
pub mod mac;
pub mod names;
pub mod rules;
pub mod san;
pub mod settings;
pub mod subject;
pub mod vendor;

pub use mac::Mac;
pub use names::{NameRules, ReservedNames};
pub use rules::{PolicyError, Requester, RequiredRdn};
pub use san::{MacEncoding, SanStyle, SanVars};
pub use subject::SubjectRules;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use der::asn1::ObjectIdentifier;
use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use serde::Deserialize;

use crate::est::{Csr, CsrAttr, KeyType, SanEntry};

/// Why a template file could not be loaded: names the file, the key and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("{file}: {reason}")]
    Invalid { file: PathBuf, reason: String },
    #[error("templates directory {dir}: {reason}")]
    Dir { dir: PathBuf, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    name: String,
    #[serde(default)]
    description: String,
    key_types: Vec<String>,
    #[serde(default)]
    server_keygen_key: Option<String>,
    validity_days: u32,
    #[serde(default = "default_key_usage")]
    key_usage: Vec<String>,
    #[serde(default = "default_eku")]
    extended_key_usage: Vec<String>,
    #[serde(default)]
    required_rdns: BTreeMap<String, String>,
    #[serde(default = "default_san_style")]
    san_style: String,
    #[serde(default)]
    san_optional: bool,
    #[serde(default)]
    san_pattern: Vec<String>,
    #[serde(default = "yes")]
    cn_must_match_user: bool,
    #[serde(default = "default_mac_encoding")]
    mac_encoding: String,
    #[serde(default)]
    mac_othername_oid: Option<String>,
    #[serde(default = "default_approval")]
    approval: String,
    #[serde(default = "default_retry_after")]
    retry_after_secs: u32,
    #[serde(default)]
    channel_binding: bool,
    #[serde(default)]
    csr_attrs: Vec<String>,
    #[serde(default)]
    fill_missing: String,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    pkcs12_legacy: bool,
    #[serde(default)]
    rsa_pss: bool,
    #[serde(default = "yes")]
    crl_distribution_point: bool,
    #[serde(default = "yes")]
    ocsp: bool,
    #[serde(default)]
    allowed_groups: Option<Vec<String>>,
    #[serde(default)]
    allowed_users: Vec<String>,
    #[serde(default)]
    allowed_rdns: Vec<String>,
    #[serde(default)]
    drop_unlisted_rdns: bool,
    #[serde(default)]
    dns_names: Vec<String>,
    #[serde(default)]
    ip_addresses: Vec<String>,
    #[serde(default)]
    uri_patterns: Vec<String>,
    #[serde(default)]
    upn_names: Vec<String>,
    #[serde(default)]
    email_names: Vec<String>,
    #[serde(default)]
    allow_wildcards: bool,
    #[serde(default = "yes")]
    scep: bool,
    #[serde(default)]
    scep_challenge: Option<String>,
    #[serde(default)]
    scep_ra_signers: Vec<String>,
    /// Who signs: `local` (estd's CA) or the name of an `[upstream.NAME]`.
    #[serde(default = "local_issuer")]
    issuer: String,
    /// Manufacturer CAs (PEM files) whose IDevIDs enroll on this template by their
    /// certificate alone.
    #[serde(default)]
    trust_vendor_cas: Vec<String>,
    /// Those manufacturers' CRLs (PEM or DER files).
    #[serde(default)]
    vendor_crls: Vec<String>,
    /// The CN a device's certificate gets, from its IDevID.
    #[serde(default = "default_idevid_cn")]
    idevid_cn: String,
    /// Only devices on the template's allow-list enroll by IDevID.
    #[serde(default)]
    idevid_allow_list: bool,
    /// The credentials EST takes, in the order of its 401's challenges.
    #[serde(default = "default_auth")]
    auth: Vec<String>,
}

fn default_key_usage() -> Vec<String> {
    vec!["digital_signature".into()]
}
fn default_eku() -> Vec<String> {
    vec!["client_auth".into()]
}
fn default_san_style() -> String {
    "none".into()
}
fn default_mac_encoding() -> String {
    "uri".into()
}
fn default_approval() -> String {
    "auto".into()
}
fn default_retry_after() -> u32 {
    60
}
fn local_issuer() -> String {
    crate::model::LOCAL_ISSUER.into()
}

fn default_auth() -> Vec<String> {
    vec!["basic".into()]
}

fn default_idevid_cn() -> String {
    vendor::VAR_SERIAL.into()
}

fn yes() -> bool {
    true
}

/// A key type a template allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedKey {
    EcP256,
    EcP384,
    Rsa(u32),
    Ed25519,
}

impl AllowedKey {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match KeyType::parse(s)? {
            KeyType::EcP256 => Self::EcP256,
            KeyType::EcP384 => Self::EcP384,
            KeyType::Rsa(bits) => Self::Rsa(bits),
            KeyType::Ed25519 => Self::Ed25519,
        })
    }

    fn allows(self, key: KeyType) -> bool {
        match (self, key) {
            (Self::EcP256, KeyType::EcP256)
            | (Self::EcP384, KeyType::EcP384)
            | (Self::Ed25519, KeyType::Ed25519) => true,
            (Self::Rsa(want), KeyType::Rsa(got)) => want == got,
            _ => false,
        }
    }

    const ALL: usize = 6;

    /// The key type a certificate for this kind of key carries.
    pub fn key_type(self) -> KeyType {
        match self {
            Self::EcP256 => KeyType::EcP256,
            Self::EcP384 => KeyType::EcP384,
            Self::Rsa(bits) => KeyType::Rsa(bits),
            Self::Ed25519 => KeyType::Ed25519,
        }
    }
}

/// What `Template::evaluate` needs besides the CSR and the requester.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalContext<'a> {
    /// The connection's tls-exporter value, for channel binding.
    pub exporter: Option<&'a [u8]>,
    /// Values for the `other` pattern's variables (default: taken from the CSR).
    pub vars: Option<&'a SanVars>,
    /// The server generates the key: the CSR's own key type is not checked.
    pub server_keygen: bool,
    /// This server's own names, never issued.
    pub reserved: Option<&'a ReservedNames>,
    /// A renewal: its subject and SAN are compared with the certificate renewed (by the
    /// enrollment service), so the CN is not compared with a user name.
    pub renewal: bool,
}

impl std::fmt::Display for AllowedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EcP256 => f.write_str("ec-p256"),
            Self::EcP384 => f.write_str("ec-p384"),
            Self::Rsa(bits) => write!(f, "rsa-{bits}"),
            Self::Ed25519 => f.write_str("ed25519"),
        }
    }
}

/// A credential an EST request may present (a template's `auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// A user's name and password (HTTP Basic).
    Basic,
    /// An enrollment code: the Basic password (the user name its id or CN), or the CSR's
    /// challengePassword.
    Code,
    /// A bearer token of the identity provider in `[tokens]`.
    Bearer,
}

impl AuthScheme {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "basic" => Some(Self::Basic),
            "code" => Some(Self::Code),
            "bearer" => Some(Self::Bearer),
            _ => None,
        }
    }
}

/// Whether issuance waits for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    Auto,
    Manual,
}

/// A compiled certificate template.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub description: String,
    pub key_types: Vec<AllowedKey>,
    /// The key `/serverkeygen` and the portal generate.
    pub server_keygen_key: AllowedKey,
    pub validity: Duration,
    pub key_usage: Vec<KeyUsagePurpose>,
    pub extended_key_usage: Vec<ExtendedKeyUsagePurpose>,
    pub required_rdns: Vec<RequiredRdn>,
    pub san_style: SanStyle,
    /// A style that takes its SAN from the CSR also accepts a CSR without one.
    pub san_optional: bool,
    pub cn_must_match_user: bool,
    pub mac_encoding: MacEncoding,
    pub approval: Approval,
    /// What `Retry-After` says while a request waits for approval.
    pub retry_after: Duration,
    pub channel_binding: bool,
    /// Further attribute OIDs the CSR must carry (and `/csrattrs` asks for).
    pub extra_attrs: Vec<ObjectIdentifier>,
    /// The value of a pattern variable nobody gave (`Test`), or empty to leave the SAN out.
    pub fill_missing: String,
    /// `%domain%` when the request has none.
    pub domain: Option<String>,
    /// PKCS#12 downloads with 3DES and a SHA-1 MAC (old device importers) instead of
    /// AES-256 and SHA-256.
    pub pkcs12_legacy: bool,
    /// The CA (an RSA key) signs with RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) instead
    /// of PKCS#1 v1.5.
    pub rsa_pss: bool,
    /// Certificates name the CRL's URL (CRL Distribution Points), when estd serves one.
    pub crl_distribution_point: bool,
    /// Certificates name the OCSP responder (Authority Information Access), when estd runs
    /// one.
    pub ocsp: bool,
    /// Who may use the template: members of these groups; `None`: of `est.group`.
    pub allowed_groups: Option<Vec<String>>,
    /// And these users (by name, regardless of case), whatever their groups.
    pub allowed_users: Vec<String>,
    /// Which subject attributes the requester may choose; the rest are refused or dropped.
    pub subject_rules: SubjectRules,
    /// Which DNS names, IP addresses and URIs the certificates may carry.
    pub names: NameRules,
    /// Served over SCEP too (`/scep/<name>`): with a one-time challenge, the static one
    /// below, or as a renewal signed by a current certificate.
    pub scep: bool,
    /// A static SCEP challenge password (what MDM profiles carry), when set.
    pub scep_challenge: Option<zeroize::Zeroizing<String>>,
    /// Registration authorities (their certificates, DER) whose signature on a PKCSReq
    /// stands for the device's: a request they sign may carry another key's CSR (it still
    /// needs its challenge).
    pub scep_ra_signers: Vec<Vec<u8>>,
    /// Who signs the certificates: `local` (estd's CA) or an upstream CA's name
    /// (registration-authority mode; `app` checks the name at start).
    pub issuer: String,
    /// Manufacturer certificates (IDevIDs) that authenticate devices on this template:
    /// `trust_vendor_cas` and what goes with it.
    pub vendor: Option<Arc<vendor::VendorTrust>>,
    /// The credentials EST takes besides a client certificate: user passwords, enrollment
    /// codes (`enroll::codes`).
    pub auth: Vec<AuthScheme>,
    /// The file as read (serde's defaults filled in), for `estd template show`.
    raw: RawTemplate,
}

/// A request the template accepts: the subject and SAN the certificate gets, and whether
/// it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    /// Built from the request's by the template's subject rules (not copied whole).
    pub subject: x509_cert::name::Name,
    pub san: Vec<SanEntry>,
    pub approval: Approval,
}

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const CHALLENGE_PASSWORD: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");
const EXTENSION_REQUEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const EMAIL_ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");

impl Template {
    /// May this user (with these groups) use the template? Members of `allowed_groups`
    /// (`default_group`, est.group, when the template names none) and the `allowed_users`.
    pub fn may_use(&self, user: &str, groups: &[String], default_group: &str) -> bool {
        self.allowed_users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(user))
            || match &self.allowed_groups {
                Some(allowed) => allowed.iter().any(|g| groups.contains(g)),
                None => groups.iter().any(|g| g == default_group),
            }
    }

    /// Checks the CSR's key type against the template.
    pub fn check_key(&self, key: KeyType) -> Result<(), PolicyError> {
        if self.key_types.iter().any(|k| k.allows(key)) {
            return Ok(());
        }
        Err(PolicyError::KeyType {
            got: key.to_string(),
            template: self.name.clone(),
            allowed: self
                .key_types
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Runs every rule on a CSR, in order: control characters anywhere in the subject or
    /// SAN, CN characters, CN owner, fixed RDNs, key type,
    /// required attributes, channel binding, SAN style. `vars` overrides what the SAN
    /// pattern's variables are taken from (the CSR by default).
    pub fn evaluate(
        &self,
        csr: &Csr,
        requester: &Requester<'_>,
        ctx: &EvalContext<'_>,
    ) -> Result<Approved, PolicyError> {
        let EvalContext {
            exporter,
            vars,
            server_keygen,
            reserved,
            renewal,
        } = *ctx;
        rules::check_csr_control_chars(csr)?;
        let cn = csr.common_name();
        if let Some(cn) = &cn {
            rules::check_cn_chars(cn)?;
        }
        if !renewal {
            rules::check_cn_owner(cn.as_deref(), requester, self.cn_must_match_user)?;
        }
        rules::check_rdns(&csr.subject, &self.required_rdns)?;
        let subject = subject::build(&csr.subject, &self.required_rdns, &self.subject_rules)?;
        if !server_keygen {
            self.check_key(csr.key_type)?;
        }
        rules::check_attributes(csr, &self.name, &self.extra_attrs)?;
        if self.channel_binding {
            rules::check_binding(&self.name, csr.challenge_password.as_deref(), exporter)?;
        }
        let all_requested = csr
            .san
            .as_ref()
            .map(|s| s.entries.as_slice())
            .unwrap_or_default();
        // Under the dns style, IP addresses and URIs come along where the template has rules
        // for them (checked with the rest below).
        let (extra, requested): (Vec<SanEntry>, Vec<SanEntry>) =
            all_requested.iter().cloned().partition(|e| {
                self.san_style == SanStyle::Dns
                    && match e {
                        SanEntry::Ip(_) => !self.names.ips.is_empty(),
                        SanEntry::Uri(_) => !self.names.uris.is_empty(),
                        _ => false,
                    }
            });
        let from_csr;
        let vars = match vars {
            Some(v) => v,
            None => {
                from_csr = self.vars_from_csr(csr);
                &from_csr
            }
        };
        let mut san = san::resolve(
            &self.san_style,
            &self.name,
            &requested,
            vars,
            &self.mac_encoding,
            &self.fill_missing,
            self.san_optional || (requested.is_empty() && !extra.is_empty()),
        )?;
        san.extend(extra);
        rules::check_san_lengths(&san)?;
        // a MAC address is written by estd from a checked value: the rules are for names
        self.names.check(&self.name, &san, cn.as_deref(), |_| {
            self.san_style == SanStyle::Mac
        })?;
        self.check_subject_names(&subject, cn.as_deref())?;
        if let Some(reserved) = reserved {
            reserved.check(&subject, cn.as_deref(), &san)?;
        }
        // last, what /csrattrs's RFC 9908 template asked for (a renewal repeats its
        // certificate); the key type was checked above against every type the template
        // allows, of which the CSR template names the preferred one
        if !renewal && let Some(t) = self.cri_template() {
            t.check(csr, true).map_err(|why| PolicyError::Template {
                template: self.name.clone(),
                why,
            })?;
        }
        Ok(Approved {
            subject,
            san,
            approval: self.approval,
        })
    }

    /// Names in the subject fall under the name rules too: a TLS server certificate's CN that
    /// looks like a host name (a dot, or an IP address), which old clients still match when
    /// there is no SAN; and an emailAddress attribute.
    fn check_subject_names(
        &self,
        subject: &x509_cert::name::Name,
        cn: Option<&str>,
    ) -> Result<(), PolicyError> {
        let refuse = |entry: String, allowed: String| PolicyError::NameNotAllowed {
            template: self.name.clone(),
            entry,
            allowed,
        };
        if self
            .extended_key_usage
            .contains(&ExtendedKeyUsagePurpose::ServerAuth)
            && let Some(c) = cn
        {
            let allowed = match c.parse::<std::net::IpAddr>() {
                Ok(ip) => self.names.allows_ip(ip),
                Err(_) if c.contains('.') => {
                    let name = names::normalize_dns(c);
                    !name.contains('*') && self.names.allows_dns(&name, cn)
                }
                Err(_) => true,
            };
            if !allowed {
                return Err(refuse(format!("CN={c}"), self.names.describe_dns()));
            }
        }
        if let Some(email) = crate::est::name_value(subject, EMAIL_ADDRESS)
            && !self.names.allows_email(&email, cn)
        {
            return Err(refuse(
                format!("emailAddress={email}"),
                self.names.describe_emails(),
            ));
        }
        Ok(())
    }

    /// The SAN entry a typed-in value (the portal's "Subject alternative name" field) stands
    /// for under this template's style: a MAC address, a DNS name, an email address or a UPN.
    /// `Err(InvalidMac)` when a MAC cannot even be held in a SAN (non-ASCII).
    pub fn san_from_field(&self, value: &str) -> Result<Vec<SanEntry>, PolicyError> {
        let v = value.trim();
        if v.is_empty() {
            return Ok(Vec::new());
        }
        Ok(match self.san_style {
            SanStyle::Mac => {
                if !v.is_ascii() {
                    return Err(PolicyError::InvalidMac);
                }
                vec![SanEntry::Dns(v.to_string())]
            }
            SanStyle::Dns => vec![SanEntry::Dns(v.to_string())],
            SanStyle::Email => vec![SanEntry::Email(v.to_string())],
            SanStyle::Upn => vec![SanEntry::OtherName(san::UPN_OID.into(), v.to_string())],
            SanStyle::UpnEmail => vec![
                SanEntry::OtherName(san::UPN_OID.into(), v.to_string()),
                SanEntry::Email(v.to_string()),
            ],
            SanStyle::None | SanStyle::Other(_) => vec![SanEntry::Dns(v.to_string())],
        })
    }

    /// The SAN text for file names: a MAC normalised (`11-22-33-44-55-66`), else as typed.
    pub fn san_label(&self, value: &str) -> String {
        match (self.san_style == SanStyle::Mac, Mac::parse(value)) {
            (true, Some(mac)) => mac.normalized(),
            _ => value.trim().to_string(),
        }
    }

    /// Pattern variables from a CSR: `%cn%` its CN; `%uname%` and `%domain%` from its UPN
    /// (else the CN and the template's `domain`); `%email%` its rfc822Name or emailAddress.
    pub fn vars_from_csr(&self, csr: &Csr) -> SanVars {
        let entries = csr
            .san
            .as_ref()
            .map(|s| s.entries.as_slice())
            .unwrap_or_default();
        let upn = entries.iter().find_map(|e| match e {
            SanEntry::OtherName(oid, v) if oid == san::UPN_OID => v.split_once('@'),
            _ => None,
        });
        let email = entries
            .iter()
            .find_map(|e| match e {
                SanEntry::Email(v) => Some(v.clone()),
                _ => None,
            })
            .or_else(|| crate::est::name_value(&csr.subject, EMAIL_ADDRESS));
        let cn = csr.common_name();
        SanVars {
            uname: upn.map(|(u, _)| u.to_string()).or_else(|| cn.clone()),
            domain: upn
                .map(|(_, d)| d.to_string())
                .or_else(|| self.domain.clone()),
            email,
            cn,
        }
    }
}

/// Every template, by name, and which one serves requests without a label.
#[derive(Debug, Clone)]
pub struct Templates {
    by_name: BTreeMap<String, Arc<Template>>,
    default: Arc<Template>,
}

impl Templates {
    /// Loads every `*.toml` in `dir`; `default` must name one of them.
    pub fn load(dir: &Path, default: &str) -> Result<Self, TemplateError> {
        let dir_err = |reason: String| TemplateError::Dir {
            dir: dir.to_path_buf(),
            reason,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| dir_err(e.to_string()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut templates = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| TemplateError::Invalid {
                file: file.clone(),
                reason: e.to_string(),
            })?;
            templates.push(Template::from_toml(&file, &text)?);
        }
        Self::new(templates, default).map_err(dir_err)
    }

    /// Builds the set from compiled templates (tests and `load`).
    pub fn new(templates: Vec<Template>, default: &str) -> Result<Self, String> {
        let mut by_name = BTreeMap::new();
        for t in templates {
            let name = t.name.clone();
            if by_name.insert(name.clone(), Arc::new(t)).is_some() {
                return Err(format!("two templates are named {name:?}"));
            }
        }
        let default = by_name.get(default).cloned().ok_or_else(|| {
            format!(
                "the default template {default:?} does not exist (have: {})",
                by_name.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        Ok(Self { by_name, default })
    }

    /// The template for a label, or the default one for no label.
    pub fn get(&self, label: Option<&str>) -> Option<Arc<Template>> {
        match label {
            None => Some(self.default.clone()),
            Some(l) => self.by_name.get(l).cloned(),
        }
    }

    pub fn default_template(&self) -> &Arc<Template> {
        &self.default
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Template>> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests;
