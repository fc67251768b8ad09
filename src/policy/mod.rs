//! Certificate templates (one per EST label) and the enrollment policy they impose.
//!
//! A template is a TOML file in the templates directory; its `name` is the EST label. It
//! compiles into data plus small checks (`rules`, `san`, `mac`); `Template::evaluate` runs
//! them in order and either approves a request (with the SAN the certificate gets) or
//! refuses it with the portal FAQ's message.

pub mod mac;
pub mod names;
pub mod rules;
pub mod san;
pub mod settings;
pub mod subject;

pub use mac::Mac;
pub use names::{NameRules, ReservedNames};
pub use rules::{PolicyError, Requester, RequiredRdn};
pub use san::{MacEncoding, PatternEntry, SanStyle, SanVars, UPN_OID, build_pattern};
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

    /// What `/csrattrs` tells clients (RFC 7030 §4.5.2): channel binding's challengePassword,
    /// the preferred key type (when the template restricts key types) and its signature
    /// algorithm, the SAN extension when one is required, and any further OIDs.
    /// Empty means the template asks nothing (an empty SEQUENCE).
    pub fn csr_attrs(&self) -> Vec<CsrAttr> {
        let mut out = Vec::new();
        if self.channel_binding {
            out.push(CsrAttr::Oid(CHALLENGE_PASSWORD));
        }
        if self.key_types.len() < AllowedKey::ALL
            && let Some(first) = self.key_types.first()
        {
            let oid = |s| ObjectIdentifier::new_unwrap(s);
            match first {
                AllowedKey::EcP256 => {
                    out.push(CsrAttr::AttrOids(
                        EC_PUBLIC_KEY,
                        vec![oid("1.2.840.10045.3.1.7")],
                    ));
                    out.push(CsrAttr::Oid(oid("1.2.840.10045.4.3.2")));
                }
                AllowedKey::EcP384 => {
                    out.push(CsrAttr::AttrOids(EC_PUBLIC_KEY, vec![oid("1.3.132.0.34")]));
                    out.push(CsrAttr::Oid(oid("1.2.840.10045.4.3.3")));
                }
                AllowedKey::Rsa(bits) => {
                    out.push(CsrAttr::AttrInt(RSA_ENCRYPTION, *bits));
                    out.push(CsrAttr::Oid(oid("1.2.840.113549.1.1.11")));
                }
                AllowedKey::Ed25519 => out.push(CsrAttr::Oid(ED25519)),
            }
        }
        let san_required = !self.san_optional
            && matches!(
                self.san_style,
                SanStyle::Mac
                    | SanStyle::Upn
                    | SanStyle::UpnEmail
                    | SanStyle::Email
                    | SanStyle::Dns
            );
        if san_required {
            let mut exts = vec![SUBJECT_ALT_NAME];
            if self.san_style == SanStyle::Mac {
                exts.push(ObjectIdentifier::new_unwrap(san::MAC_ADDRESS_OID));
            }
            out.push(CsrAttr::AttrOids(EXTENSION_REQUEST, exts));
        }
        out.extend(self.extra_attrs.iter().map(|o| CsrAttr::Oid(*o)));
        out
    }

    /// Parses one template from TOML text; `file` names it in errors.
    pub fn from_toml(file: &Path, text: &str) -> Result<Self, TemplateError> {
        let bad = |reason: String| TemplateError::Invalid {
            file: file.to_path_buf(),
            reason,
        };
        let raw: RawTemplate = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if !crate::est::valid_label(&raw.name) {
            return Err(bad(format!(
                "name: {:?} is not a valid EST label (letters, digits, '-' and '_', not an operation name)",
                raw.name
            )));
        }
        if raw.key_types.is_empty() {
            return Err(bad("key_types: must name at least one key type".into()));
        }
        let key_type = |key: &str, s: &str| {
            AllowedKey::parse(s).ok_or_else(|| {
                bad(format!(
                    "{key}: unknown key type {s:?} (expected ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519)"
                ))
            })
        };
        let key_types = raw
            .key_types
            .iter()
            .map(|s| key_type("key_types", s))
            .collect::<Result<Vec<_>, _>>()?;
        let server_keygen_key = match &raw.server_keygen_key {
            Some(s) => key_type("server_keygen_key", s)?,
            None => key_types[0],
        };
        if !(1..=3650).contains(&raw.validity_days) {
            return Err(bad(format!(
                "validity_days: {} is out of range (1 to 3650)",
                raw.validity_days
            )));
        }
        let key_usage = raw
            .key_usage
            .iter()
            .map(|s| key_usage(s).ok_or_else(|| bad(format!("key_usage: unknown usage {s:?} (expected digital_signature, content_commitment, key_encipherment, data_encipherment or key_agreement)"))))
            .collect::<Result<Vec<_>, _>>()?;
        let extended_key_usage = raw
            .extended_key_usage
            .iter()
            .map(|s| eku(s).ok_or_else(|| bad(format!("extended_key_usage: unknown usage {s:?} (expected client_auth, server_auth, email_protection or code_signing)"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut required_rdns = Vec::new();
        for (k, v) in &raw.required_rdns {
            let (short, oid) = rules::RDN_TYPES
                .iter()
                .find(|(short, _)| short == k)
                .ok_or_else(|| {
                    bad(format!(
                        "required_rdns: unknown RDN {k:?} (expected O, OU, C, ST or L)"
                    ))
                })?;
            if v.is_empty() {
                return Err(bad(format!("required_rdns: {k} must not be empty")));
            }
            required_rdns.push(RequiredRdn {
                short,
                oid: ObjectIdentifier::new_unwrap(oid),
                value: v.clone(),
            });
        }
        let san_style = match raw.san_style.as_str() {
            "mac" => SanStyle::Mac,
            "upn" => SanStyle::Upn,
            "upn+email" => SanStyle::UpnEmail,
            "email" => SanStyle::Email,
            "dns" => SanStyle::Dns,
            "none" => SanStyle::None,
            "other" => {
                if raw.san_pattern.is_empty() {
                    return Err(bad("san_pattern: san_style \"other\" needs a pattern, e.g. [\"upn:%uname%@%domain%\"]".into()));
                }
                SanStyle::Other(
                    raw.san_pattern
                        .iter()
                        .map(|p| {
                            PatternEntry::parse(p).map_err(|e| bad(format!("san_pattern: {e}")))
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            other => {
                return Err(bad(format!(
                    "san_style: {other:?} is not one of mac, upn, upn+email, email, dns, none, other"
                )));
            }
        };
        if !raw.san_pattern.is_empty() && !matches!(san_style, SanStyle::Other(_)) {
            return Err(bad(
                "san_pattern: only used with san_style = \"other\"".into()
            ));
        }
        let mac_encoding = match (raw.mac_encoding.as_str(), &raw.mac_othername_oid) {
            ("uri", None) => MacEncoding::Uri,
            ("dns", None) => MacEncoding::Dns,
            ("othername", oid) => MacEncoding::OtherName(
                ObjectIdentifier::new(oid.as_deref().unwrap_or(san::MAC_ADDRESS_OID))
                    .map_err(|e| bad(format!("mac_othername_oid: {e}")))?,
            ),
            ("uri" | "dns", Some(_)) => {
                return Err(bad(
                    "mac_othername_oid: only used with mac_encoding = \"othername\"".into(),
                ));
            }
            (other, _) => {
                return Err(bad(format!(
                    "mac_encoding: {other:?} is not uri, dns or othername"
                )));
            }
        };
        let approval = match raw.approval.as_str() {
            "auto" => Approval::Auto,
            "manual" => Approval::Manual,
            other => {
                return Err(bad(format!(
                    "approval: {other:?} is not \"auto\" or \"manual\""
                )));
            }
        };
        if !(1..=86_400).contains(&raw.retry_after_secs) {
            return Err(bad(format!(
                "retry_after_secs: {} is out of range (1 to 86400)",
                raw.retry_after_secs
            )));
        }
        let extra_attrs = raw
            .csr_attrs
            .iter()
            .map(|s| {
                ObjectIdentifier::new(s)
                    .map_err(|e| bad(format!("csr_attrs: {s:?} is not an OID: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if raw.allowed_groups.as_ref().is_some_and(Vec::is_empty) && raw.allowed_users.is_empty() {
            return Err(bad(
                "allowed_groups: empty and no allowed_users: nobody could use the template (remove the file to retire it)".into(),
            ));
        }
        for g in raw.allowed_groups.iter().flatten() {
            if g.trim().is_empty() || rules::has_control(g) {
                return Err(bad(format!("allowed_groups: {g:?} is not a group name")));
            }
        }
        for u in &raw.allowed_users {
            crate::model::check_user_name(u).map_err(|e| bad(format!("allowed_users: {e}")))?;
        }
        let mut allowed_rdns = Vec::new();
        for short in &raw.allowed_rdns {
            let t = subject::by_short(short).filter(|t| t.short != "CN").ok_or_else(|| {
                bad(format!(
                    "allowed_rdns: unknown RDN {short:?} (expected one of {}; CN is always allowed)",
                    subject::ATTRIBUTE_TYPES
                        .iter()
                        .filter(|t| t.short != "CN")
                        .map(|t| t.short)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            allowed_rdns.push(ObjectIdentifier::new_unwrap(t.oid));
        }
        let names = name_rules(&raw, &san_style, &extended_key_usage).map_err(bad)?;
        Ok(Template {
            raw: raw.clone(),
            name: raw.name,
            description: raw.description,
            key_types,
            server_keygen_key,
            validity: Duration::from_secs(u64::from(raw.validity_days) * 86_400),
            key_usage,
            extended_key_usage,
            required_rdns,
            san_style,
            san_optional: raw.san_optional,
            cn_must_match_user: raw.cn_must_match_user,
            mac_encoding,
            approval,
            retry_after: Duration::from_secs(u64::from(raw.retry_after_secs)),
            channel_binding: raw.channel_binding,
            extra_attrs,
            fill_missing: raw.fill_missing,
            domain: raw.domain,
            pkcs12_legacy: raw.pkcs12_legacy,
            crl_distribution_point: raw.crl_distribution_point,
            ocsp: raw.ocsp,
            allowed_groups: raw.allowed_groups,
            allowed_users: raw.allowed_users,
            subject_rules: SubjectRules {
                allowed: allowed_rdns,
                drop_unlisted: raw.drop_unlisted_rdns,
            },
            names,
        })
    }
}

/// The template's name rules: `dns_names`, `ip_addresses`, `uri_patterns` as written, plus
/// the `other` pattern's DNS and URI entries whose only variable is `%cn%` (the pattern is
/// its own rule). A style or pattern that takes names from the request needs rules saying
/// which; `server_auth` needs rules at all: TLS server certificates only for names the
/// template allows.
fn name_rules(
    raw: &RawTemplate,
    style: &SanStyle,
    eku: &[ExtendedKeyUsagePurpose],
) -> Result<NameRules, String> {
    fn each<T>(
        key: &str,
        list: &[String],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        list.iter()
            .map(|r| parse(r).map_err(|e| format!("{key}: {e}")))
            .collect()
    }
    let mut rules = NameRules {
        dns: each("dns_names", &raw.dns_names, names::DnsRule::parse)?,
        ips: each("ip_addresses", &raw.ip_addresses, names::IpRange::parse)?,
        uris: each("uri_patterns", &raw.uri_patterns, names::UriRule::parse)?,
        upns: each("upn_names", &raw.upn_names, names::MailRule::parse)?,
        emails: each("email_names", &raw.email_names, names::MailRule::parse)?,
        allow_wildcards: raw.allow_wildcards,
    };
    let explicit = (
        !rules.dns.is_empty(),
        !rules.uris.is_empty(),
        !rules.upns.is_empty(),
        !rules.emails.is_empty(),
    );
    if let SanStyle::Other(pattern) = style {
        for p in pattern {
            let only_cn = san::VARIABLES
                .iter()
                .all(|v| *v == "%cn%" || !p.text.contains(v));
            let bad = |e: String| format!("san_pattern: {e}");
            let needs = |kind: &str, key: &str| {
                format!(
                    "san_pattern: \"{kind}:{}\" takes names from the request: say which may be issued with {key}",
                    p.text
                )
            };
            match p.kind {
                san::PatternKind::Dns if only_cn => {
                    rules.dns.push(names::DnsRule::parse(&p.text).map_err(bad)?)
                }
                san::PatternKind::Uri if only_cn => rules
                    .uris
                    .push(names::UriRule::parse(&p.text).map_err(bad)?),
                san::PatternKind::Upn if only_cn => rules
                    .upns
                    .push(names::MailRule::parse(&p.text).map_err(bad)?),
                san::PatternKind::Email if only_cn => rules
                    .emails
                    .push(names::MailRule::parse(&p.text).map_err(bad)?),
                san::PatternKind::Dns if !explicit.0 => return Err(needs("dns", "dns_names")),
                san::PatternKind::Uri if !explicit.1 => {
                    return Err(needs("uri", "uri_patterns"));
                }
                san::PatternKind::Upn if !explicit.2 => return Err(needs("upn", "upn_names")),
                san::PatternKind::Email if !explicit.3 => {
                    return Err(needs("email", "email_names"));
                }
                _ => {}
            }
        }
    }
    if *style == SanStyle::Dns && rules.dns.is_empty() && rules.ips.is_empty() {
        return Err("dns_names: san_style \"dns\" takes DNS names from the request: say which may be issued, e.g. dns_names = [\"%cn%.devices.example.com\"] or [\"*.devices.example.com\"] (or ip_addresses)".into());
    }
    if matches!(style, SanStyle::Upn | SanStyle::UpnEmail) && rules.upns.is_empty() {
        return Err("upn_names: this san_style takes UPNs from the request: say which may be issued, e.g. upn_names = [\"%cn%@corp.example.com\"], [\"*@corp.example.com\"], or [\"*\"] for a template only trusted connectors may use".into());
    }
    if matches!(style, SanStyle::Email | SanStyle::UpnEmail) && rules.emails.is_empty() {
        return Err("email_names: this san_style takes email addresses from the request: say which may be issued, e.g. email_names = [\"%cn%@example.com\"], [\"*@example.com\"], or [\"*\"] for a template only trusted connectors may use".into());
    }
    if eku.is_empty() {
        return Err("extended_key_usage: name at least one (a certificate without one may be used for anything, TLS servers included)".into());
    }
    if eku.contains(&ExtendedKeyUsagePurpose::ServerAuth)
        && rules.dns.is_empty()
        && rules.ips.is_empty()
    {
        return Err("extended_key_usage: server_auth needs name rules (dns_names or ip_addresses): TLS server certificates only for names the template allows".into());
    }
    if rules.allow_wildcards && rules.dns.is_empty() {
        return Err("allow_wildcards: only with dns_names".into());
    }
    if raw.allowed_rdns.iter().any(|r| r == "emailAddress") && rules.emails.is_empty() {
        return Err(
            "allowed_rdns: emailAddress needs email_names saying which addresses may be issued"
                .into(),
        );
    }
    Ok(rules)
}

fn key_usage(s: &str) -> Option<KeyUsagePurpose> {
    Some(match s {
        "digital_signature" => KeyUsagePurpose::DigitalSignature,
        "content_commitment" | "non_repudiation" => KeyUsagePurpose::ContentCommitment,
        "key_encipherment" => KeyUsagePurpose::KeyEncipherment,
        "data_encipherment" => KeyUsagePurpose::DataEncipherment,
        "key_agreement" => KeyUsagePurpose::KeyAgreement,
        _ => return None,
    })
}

fn eku(s: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match s {
        "client_auth" => ExtendedKeyUsagePurpose::ClientAuth,
        "server_auth" => ExtendedKeyUsagePurpose::ServerAuth,
        "email_protection" => ExtendedKeyUsagePurpose::EmailProtection,
        "code_signing" => ExtendedKeyUsagePurpose::CodeSigning,
        _ => return None,
    })
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
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "default"
description = "test"
key_types = ["ec-p256", "rsa-2048"]
validity_days = 365
csr_attrs = ["1.2.840.113549.1.9.7"]
"#;

    fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::from_toml(Path::new("t.toml"), text)
    }

    #[test]
    fn a_good_template_compiles() {
        let t = parse(GOOD).unwrap();
        assert_eq!(t.name, "default");
        assert_eq!(t.validity, Duration::from_secs(365 * 86_400));
        assert_eq!(t.key_usage, vec![KeyUsagePurpose::DigitalSignature]);
        assert_eq!(
            t.extended_key_usage,
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        );
        assert_eq!(t.extra_attrs.len(), 1);
        assert_eq!(t.san_style, SanStyle::None);
        assert!(t.cn_must_match_user);
        assert_eq!(t.approval, Approval::Auto);
        assert_eq!(t.server_keygen_key, AllowedKey::EcP256);
        assert!(t.check_key(KeyType::EcP256).is_ok());
        assert!(t.check_key(KeyType::Rsa(2048)).is_ok());
        let err = t.check_key(KeyType::EcP384).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key type ec-p384 is not allowed by template default (allowed: ec-p256, rsa-2048)"
        );
    }

    #[test]
    fn bad_values_name_the_file_and_key() {
        for (text, needle) in [
            (
                GOOD.replace("\"rsa-2048\"", "\"rsa-1024\""),
                "key_types: unknown key type \"rsa-1024\"",
            ),
            (GOOD.replace("365", "0"), "validity_days: 0 is out of range"),
            (
                GOOD.replace("\"default\"", "\"cacerts\""),
                "name: \"cacerts\" is not a valid EST label",
            ),
            (
                GOOD.replace("\"default\"", "\"a/b\""),
                "is not a valid EST label",
            ),
            (
                GOOD.replace("1.2.840.113549.1.9.7", "nope"),
                "csr_attrs: \"nope\" is not an OID",
            ),
            (format!("{GOOD}\ncolour = 1\n"), "unknown field `colour`"),
            (
                GOOD.replace("validity_days = 365", ""),
                "missing field `validity_days`",
            ),
            // who may get which certificate: rules that are missing or too broad
            (
                format!("{GOOD}extended_key_usage = [\"server_auth\"]\n"),
                "extended_key_usage: server_auth needs name rules (dns_names or ip_addresses)",
            ),
            (
                format!("{GOOD}san_style = \"dns\"\n"),
                "dns_names: san_style \"dns\" takes DNS names from the request",
            ),
            (
                format!("{GOOD}san_style = \"other\"\nsan_pattern = [\"dns:%cn%.%domain%\"]\n"),
                "san_pattern: \"dns:%cn%.%domain%\" takes names from the request",
            ),
            (
                format!("{GOOD}san_style = \"dns\"\ndns_names = [\"*\"]\n"),
                "dns_names: \"*\": a bare * would allow every name",
            ),
            (
                format!("{GOOD}san_style = \"dns\"\ndns_names = [\"*.co.uk\"]\n"),
                "covers the public suffix \"co.uk\"",
            ),
            (
                format!("{GOOD}san_style = \"dns\"\ndns_names = [\"a*.example.com\"]\n"),
                "'*' only as the whole first label",
            ),
            (
                format!("{GOOD}san_style = \"dns\"\nip_addresses = [\"0.0.0.0/0\"]\n"),
                "would allow every address",
            ),
            (
                format!("{GOOD}uri_patterns = [\"*\"]\n"),
                "uri_patterns: \"*\" does not start with a scheme",
            ),
            (
                format!("{GOOD}allow_wildcards = true\n"),
                "allow_wildcards: only with dns_names",
            ),
            (
                format!("{GOOD}allowed_rdns = [\"XX\"]\n"),
                "allowed_rdns: unknown RDN \"XX\"",
            ),
            (
                format!("{GOOD}allowed_groups = []\n"),
                "nobody could use the template",
            ),
            (
                format!("{GOOD}allowed_users = [\"b{}d\"]\n", "\u{430}"),
                "allowed_users: user name",
            ),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.starts_with("t.toml: "), "{err}");
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }

    #[test]
    fn access_and_name_rules_compile() {
        let t = parse(&format!(
            "{GOOD}allowed_groups = [\"mdm-connectors\"]\nallowed_users = [\"Joe\"]\n\
             san_style = \"other\"\nsan_pattern = [\"uri:urn:mdm:%cn%\", \"dns:%cn%.example.com\"]\n"
        ))
        .unwrap();
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(t.may_use("alice", &g(&["mdm-connectors"]), "est-users"));
        assert!(!t.may_use("alice", &g(&["est-users"]), "est-users"));
        assert!(
            t.may_use("joe", &[], "est-users"),
            "allowed_users, regardless of case"
        );
        // a pattern whose only variable is %cn% is its own rule
        assert_eq!(t.names.describe_dns(), "%cn%.example.com");
        assert_eq!(t.names.describe_uris(), "urn:mdm:%cn%");
        let d = parse(GOOD).unwrap();
        assert!(d.may_use("alice", &g(&["est-users"]), "est-users"));
        assert!(!d.may_use("alice", &g(&["contractors"]), "est-users"));
    }

    fn csr(subject: &str, sans: Vec<rcgen::SanType>) -> Csr {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        for (k, v) in subject.split(',').filter_map(|kv| kv.split_once('=')) {
            let ty = match k {
                "CN" => rcgen::DnType::CommonName,
                "OU" => rcgen::DnType::OrganizationalUnitName,
                "O" => rcgen::DnType::OrganizationName,
                _ => panic!("{k}"),
            };
            params.distinguished_name.push(ty, v);
        }
        params.subject_alt_names = sans;
        Csr::parse(params.serialize_request(&key).unwrap().der()).unwrap()
    }

    const JOE: Requester<'static> = Requester {
        name: "joe",
        is_admin: false,
    };

    #[test]
    fn evaluate_runs_the_rules_in_order() {
        let t = parse(&format!(
            "{}san_style = \"mac\"\n[required_rdns]\nOU = \"POS\"\n",
            GOOD.replace("csr_attrs = [\"1.2.840.113549.1.9.7\"]", "")
        ))
        .unwrap();
        let mac = |s: &str| vec![rcgen::SanType::DnsName(s.try_into().unwrap())];
        let ok = t
            .evaluate(
                &csr("CN=joe,OU=POS", mac("00:11:22:33:44:55")),
                &JOE,
                &EvalContext::default(),
            )
            .unwrap();
        assert_eq!(
            ok.san,
            vec![SanEntry::Uri("urn:dev:mac:001122334455".into())]
        );
        let err = |c: Csr| t.evaluate(&c, &JOE, &EvalContext::default()).unwrap_err();
        // CN characters come before the CN owner, which comes before the RDNs and the SAN
        assert_eq!(err(csr("CN=eve*,OU=x", mac("bad"))), PolicyError::CnInvalid);
        assert_eq!(err(csr("CN=eve,OU=x", mac("bad"))), PolicyError::CnMismatch);
        assert_eq!(
            err(csr("CN=joe,OU=x", mac("bad"))),
            PolicyError::RdnMismatch { rdn: "OU".into() }
        );
        assert_eq!(
            err(csr("CN=joe,OU=POS", mac("00-11-22-33-44"))),
            PolicyError::InvalidMac
        );
        // an admin may name someone else
        let admin = Requester {
            name: "admin",
            is_admin: true,
        };
        assert!(
            t.evaluate(
                &csr("CN=eve,OU=POS", mac("001122334455")),
                &admin,
                &EvalContext::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn control_characters_are_refused_in_every_subject_attribute_and_san_value() {
        let t = parse(&format!(
            "{}san_style = \"dns\"\nsan_optional = true\ncn_must_match_user = false\ndns_names = [\"joe.example\"]\nallowed_rdns = [\"O\", \"OU\"]\n",
            GOOD.replace("csr_attrs = [\"1.2.840.113549.1.9.7\"]", "")
        ))
        .unwrap();
        let err = |c: Csr| t.evaluate(&c, &JOE, &EvalContext::default()).unwrap_err();
        let control = |field: &str| PolicyError::ControlChars {
            field: field.into(),
        };
        for cn in [
            "bad\ncn",
            "bad\0",
            "\rbad",
            "a\tb",
            "a\u{1b}[2Jb",
            "a\u{7f}",
            "a\u{85}b",
            "a\u{9f}",
            "adm\u{202e}nim",
            "a\u{200b}dmin",
            "a\u{2028}b",
            "\u{feff}a",
        ] {
            let e = err(csr(&format!("CN={cn}"), vec![]));
            assert_eq!(e, control("CN"), "{cn:?}");
            assert_eq!(
                e.to_string(),
                "The given CN is invalid. Cannot contain control characters"
            );
        }
        // before the CN's forbidden characters, and in any attribute
        assert_eq!(err(csr("CN=x*\n", vec![])), control("CN"));
        assert_eq!(err(csr("CN=joe,O=Ex\u{0}ample", vec![])), control("O"));
        assert_eq!(err(csr("CN=joe,OU=a\u{8}b", vec![])), control("OU"));
        // every SAN type that carries text
        let san = control(rules::SAN_FIELD);
        assert_eq!(
            san.to_string(),
            "The given Subject alternative name is invalid. Cannot contain control characters"
        );
        for entry in [
            rcgen::SanType::DnsName("a\nb.example".try_into().unwrap()),
            rcgen::SanType::Rfc822Name("joe\0@example.com".try_into().unwrap()),
            rcgen::SanType::URI("urn:x\u{1b}".try_into().unwrap()),
            rcgen::SanType::OtherName((
                vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
                rcgen::OtherNameValue::Utf8String("joe\r\n@example.com".into()),
            )),
        ] {
            assert_eq!(err(csr("CN=joe", vec![entry.clone()])), san, "{entry:?}");
        }
        // a BMPString is read as UTF-16, not as bytes: "joe" is three letters, no NULs
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(
            rcgen::DnType::OrganizationName,
            rcgen::DnValue::BmpString("Joe".try_into().unwrap()),
        );
        let bmp = Csr::parse(params.serialize_request(&key).unwrap().der()).unwrap();
        assert!(t.evaluate(&bmp, &JOE, &EvalContext::default()).is_ok());
        // a Teletex byte 0x85 is the C1 control NEL; in a BMPString, U+0085 is too
        let t61 = der::Any::new(der::Tag::TeletexString, vec![b'a', 0x85]).unwrap();
        assert!(rules::has_control(&crate::est::directory_string(&t61)));
        let bmp = der::Any::new(der::Tag::BmpString, vec![0, b'a', 0, 0x85]).unwrap();
        assert!(rules::has_control(&crate::est::directory_string(&bmp)));
        let bmp = der::Any::new(der::Tag::BmpString, vec![0, b'a', 0x30, 0x42]).unwrap();
        assert_eq!(crate::est::directory_string(&bmp), "a\u{3042}");
        // clean values pass
        assert!(
            t.evaluate(
                &csr(
                    "CN=joe,O=Example",
                    vec![rcgen::SanType::DnsName("joe.example".try_into().unwrap())]
                ),
                &JOE,
                &EvalContext::default()
            )
            .is_ok()
        );
    }

    /// libest's example client walks a `/csrattrs` answer OID by OID and loops for ever when
    /// it does not end with one: every non-empty answer ends with an OID.
    #[test]
    fn csr_attrs_end_with_an_oid() {
        for key_types in [
            "\"rsa-2048\"",
            "\"rsa-3072\", \"ec-p256\"",
            "\"ec-p384\"",
            "\"ed25519\"",
        ] {
            for extra in [
                "",
                "channel_binding = true\n",
                "san_style = \"mac\"\n",
                "san_style = \"upn\"\nupn_names = [\"*\"]\ncsr_attrs = [\"1.2.3.4\"]\n",
            ] {
                let t = parse(&format!(
                    "name = \"t\"\nkey_types = [{key_types}]\nvalidity_days = 1\n{extra}"
                ))
                .unwrap();
                let attrs = t.csr_attrs();
                assert!(!attrs.is_empty());
                let der = crate::est::csrattrs(&attrs).unwrap();
                // the last TLV of the encoding: an OBJECT IDENTIFIER (tag 6) with its length
                let last_oid_at = (0..der.len())
                    .rev()
                    .find(|&i| der[i] == 0x06 && i + 2 + usize::from(der[i + 1]) == der.len());
                assert!(last_oid_at.is_some(), "{key_types} {extra}: {attrs:?}");
            }
        }
    }

    #[test]
    fn csr_attrs_follow_the_template() {
        let oid = |s| ObjectIdentifier::new_unwrap(s);
        let t = parse(&format!(
            "{GOOD}san_style = \"mac\"\nchannel_binding = true\n"
        ))
        .unwrap();
        assert_eq!(
            t.csr_attrs(),
            vec![
                CsrAttr::Oid(oid("1.2.840.113549.1.9.7")),
                CsrAttr::AttrOids(oid("1.2.840.10045.2.1"), vec![oid("1.2.840.10045.3.1.7")]),
                CsrAttr::Oid(oid("1.2.840.10045.4.3.2")),
                CsrAttr::AttrOids(
                    oid("1.2.840.113549.1.9.14"),
                    vec![oid("2.5.29.17"), oid("1.3.6.1.1.1.1.22")]
                ),
                CsrAttr::Oid(oid("1.2.840.113549.1.9.7")),
            ]
        );
        let open = parse(
            "name = \"open\"\nkey_types = [\"ec-p256\", \"ec-p384\", \"rsa-2048\", \"rsa-3072\", \"rsa-4096\", \"ed25519\"]\nvalidity_days = 1\n",
        )
        .unwrap();
        assert!(
            open.csr_attrs().is_empty(),
            "a template that asks nothing: an empty SEQUENCE"
        );
        let rsa = parse(
            "name = \"r\"\nkey_types = [\"rsa-3072\"]\nvalidity_days = 1\nsan_style = \"upn\"\nupn_names = [\"*\"]\n",
        )
        .unwrap();
        assert_eq!(
            rsa.csr_attrs()[0],
            CsrAttr::AttrInt(oid("1.2.840.113549.1.1.1"), 3072)
        );
    }

    #[test]
    fn labels_and_default() {
        let a = parse(GOOD).unwrap();
        let b = parse(&GOOD.replace("\"default\"", "\"iot\"")).unwrap();
        let set = Templates::new(vec![a.clone(), b], "default").unwrap();
        assert_eq!(set.get(None).unwrap().name, "default");
        assert_eq!(set.get(Some("iot")).unwrap().name, "iot");
        assert!(set.get(Some("nope")).is_none());
        assert!(Templates::new(vec![a.clone(), a.clone()], "default").is_err());
        assert!(
            Templates::new(vec![a], "missing")
                .unwrap_err()
                .contains("does not exist")
        );
    }
}
