//! Certificate templates (one per EST label) and the checks they impose on a request.
//!
//! A template is a TOML file in the templates directory; its `name` is the EST label. This is
//! the seed of the policy engine: key types, validity, key usage and csrattrs for now.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use der::asn1::ObjectIdentifier;
use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use serde::Deserialize;

use crate::est::KeyType;

/// Why a template file could not be loaded: names the file, the key and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("{file}: {reason}")]
    Invalid { file: PathBuf, reason: String },
    #[error("templates directory {dir}: {reason}")]
    Dir { dir: PathBuf, reason: String },
}

/// A request the template refuses. The message is shown to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("key type {got} is not allowed by template {template} (allowed: {allowed})")]
    KeyType {
        got: String,
        template: String,
        allowed: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    name: String,
    #[serde(default)]
    description: String,
    key_types: Vec<String>,
    validity_days: u32,
    #[serde(default = "default_key_usage")]
    key_usage: Vec<String>,
    #[serde(default = "default_eku")]
    extended_key_usage: Vec<String>,
    #[serde(default)]
    csr_attrs: Vec<String>,
}

fn default_key_usage() -> Vec<String> {
    vec!["digital_signature".into()]
}

fn default_eku() -> Vec<String> {
    vec!["client_auth".into()]
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
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ec-p256" => Self::EcP256,
            "ec-p384" => Self::EcP384,
            "rsa-2048" => Self::Rsa(2048),
            "rsa-3072" => Self::Rsa(3072),
            "rsa-4096" => Self::Rsa(4096),
            "ed25519" => Self::Ed25519,
            _ => return None,
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

/// A compiled certificate template.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub description: String,
    pub key_types: Vec<AllowedKey>,
    pub validity: Duration,
    pub key_usage: Vec<KeyUsagePurpose>,
    pub extended_key_usage: Vec<ExtendedKeyUsagePurpose>,
    pub csr_attrs: Vec<ObjectIdentifier>,
}

impl Template {
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

    /// Parses one template from TOML text; `file` names it in errors.
    pub fn from_toml(file: &Path, text: &str) -> Result<Self, TemplateError> {
        let bad = |reason: String| TemplateError::Invalid {
            file: file.to_path_buf(),
            reason,
        };
        let raw: RawTemplate = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if !valid_label(&raw.name) {
            return Err(bad(format!(
                "name: {:?} is not a valid EST label (letters, digits, '-' and '_', not an operation name)",
                raw.name
            )));
        }
        if raw.key_types.is_empty() {
            return Err(bad("key_types: must name at least one key type".into()));
        }
        let key_types = raw
            .key_types
            .iter()
            .map(|s| {
                AllowedKey::parse(s).ok_or_else(|| {
                    bad(format!(
                        "key_types: unknown key type {s:?} (expected ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
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
        let csr_attrs = raw
            .csr_attrs
            .iter()
            .map(|s| {
                ObjectIdentifier::new(s)
                    .map_err(|e| bad(format!("csr_attrs: {s:?} is not an OID: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Template {
            name: raw.name,
            description: raw.description,
            key_types,
            validity: Duration::from_secs(u64::from(raw.validity_days) * 86_400),
            key_usage,
            extended_key_usage,
            csr_attrs,
        })
    }
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

/// Is `s` usable as an EST label? (RFC 7030 §3.2.2: a path segment; not an operation name.)
pub fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && crate::est::Operation::from_segment(s).is_none()
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
        assert_eq!(t.csr_attrs.len(), 1);
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
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.starts_with("t.toml: "), "{err}");
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
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
