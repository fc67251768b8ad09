//! A template as the operator writes it: every key in its TOML spelling, defaults filled in,
//! OIDs named. `estd template show` prints it as TOML (which loads back as the same
//! template) or as JSON.

use toml::Value;

use super::{CsrAttr, RawTemplate, Template};
use crate::est::oids::oid_name;

/// One key of a template, with the value in effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: &'static str,
    /// `None`: not set, and nothing stands in (`domain`).
    pub value: Option<Value>,
    /// What the value alone does not say: where a default comes from, what an OID is.
    pub note: Option<String>,
    /// Not in the file: a value that follows from others (the first key type, est.group),
    /// shown commented out in TOML so that a copy of the output does not pin it.
    pub derived: bool,
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

fn names_of(oids: &[String]) -> Option<String> {
    let named: Vec<String> = oids
        .iter()
        .map(|o| match oid_name(o) {
            Some(n) => format!("{o} = {n}"),
            None => format!("{o} = (unnamed)"),
        })
        .collect();
    (!named.is_empty()).then(|| named.join(", "))
}

impl Template {
    /// Every key in the order of the README's table; `est_group` is who may use a template
    /// that names no `allowed_groups`.
    pub fn settings(&self, est_group: &str) -> Vec<Setting> {
        let raw: &RawTemplate = &self.raw;
        let mut out = Vec::new();
        let mut put = |key: &'static str, value: Value, note: Option<String>| {
            out.push(Setting {
                key,
                value: Some(value),
                note,
                derived: false,
            })
        };
        put("name", string(&raw.name), None);
        put("description", string(&raw.description), None);
        put("key_types", strings(&raw.key_types), None);
        out.push(Setting {
            key: "server_keygen_key",
            value: Some(string(&self.server_keygen_key.to_string())),
            note: raw
                .server_keygen_key
                .is_none()
                .then(|| "not set: the first of key_types".to_string()),
            derived: raw.server_keygen_key.is_none(),
        });
        let mut put = |key: &'static str, value: Value, note: Option<String>| {
            out.push(Setting {
                key,
                value: Some(value),
                note,
                derived: false,
            })
        };
        put(
            "validity_days",
            Value::Integer(i64::from(raw.validity_days)),
            None,
        );
        put("key_usage", strings(&raw.key_usage), None);
        put("extended_key_usage", strings(&raw.extended_key_usage), None);
        put(
            "required_rdns",
            Value::Table(
                raw.required_rdns
                    .iter()
                    .map(|(k, v)| (k.clone(), string(v)))
                    .collect(),
            ),
            None,
        );
        put(
            "cn_must_match_user",
            Value::Boolean(raw.cn_must_match_user),
            None,
        );
        put("san_style", string(&raw.san_style), None);
        put("san_optional", Value::Boolean(raw.san_optional), None);
        if raw.san_style == "other" {
            put("san_pattern", strings(&raw.san_pattern), None);
        }
        put("fill_missing", string(&raw.fill_missing), None);
        out.push(Setting {
            key: "domain",
            value: raw.domain.as_deref().map(string),
            note: raw
                .domain
                .is_none()
                .then(|| "not set: %domain% comes from the request's UPN only".to_string()),
            derived: false,
        });
        let mut put = |key: &'static str, value: Value, note: Option<String>| {
            out.push(Setting {
                key,
                value: Some(value),
                note,
                derived: false,
            })
        };
        put("mac_encoding", string(&raw.mac_encoding), None);
        if raw.mac_encoding == "othername" {
            let oid = raw
                .mac_othername_oid
                .clone()
                .unwrap_or_else(|| super::san::MAC_ADDRESS_OID.to_string());
            let note = names_of(std::slice::from_ref(&oid));
            put("mac_othername_oid", Value::String(oid), note);
        }
        put("approval", string(&raw.approval), None);
        put(
            "retry_after_secs",
            Value::Integer(i64::from(raw.retry_after_secs)),
            None,
        );
        put("channel_binding", Value::Boolean(raw.channel_binding), None);
        put(
            "csr_attrs",
            strings(&raw.csr_attrs),
            names_of(&raw.csr_attrs),
        );
        put("pkcs12_legacy", Value::Boolean(raw.pkcs12_legacy), None);
        put("rsa_pss", Value::Boolean(raw.rsa_pss), None);
        match &raw.allowed_groups {
            Some(g) => put("allowed_groups", strings(g), None),
            None => out.push(Setting {
                key: "allowed_groups",
                value: Some(strings(&[est_group.to_string()])),
                note: Some("not set: est.group".to_string()),
                derived: true,
            }),
        }
        let mut put = |key: &'static str, value: Value, note: Option<String>| {
            out.push(Setting {
                key,
                value: Some(value),
                note,
                derived: false,
            })
        };
        put("allowed_users", strings(&raw.allowed_users), None);
        put("allowed_rdns", strings(&raw.allowed_rdns), None);
        put(
            "drop_unlisted_rdns",
            Value::Boolean(raw.drop_unlisted_rdns),
            None,
        );
        put("dns_names", strings(&raw.dns_names), None);
        put("ip_addresses", strings(&raw.ip_addresses), None);
        put("uri_patterns", strings(&raw.uri_patterns), None);
        put("upn_names", strings(&raw.upn_names), None);
        put("email_names", strings(&raw.email_names), None);
        put("allow_wildcards", Value::Boolean(raw.allow_wildcards), None);
        put(
            "crl_distribution_point",
            Value::Boolean(raw.crl_distribution_point),
            None,
        );
        put("ocsp", Value::Boolean(raw.ocsp), None);
        put("scep", Value::Boolean(raw.scep), None);
        put("scep_ra_signers", strings(&raw.scep_ra_signers), None);
        put(
            "auth",
            strings(&raw.auth),
            Some("what EST takes besides client certificates: basic (user passwords), code (enrollment codes)".into()),
        );
        put("trust_vendor_cas", strings(&raw.trust_vendor_cas), None);
        put("vendor_crls", strings(&raw.vendor_crls), None);
        put(
            "idevid_cn",
            string(&raw.idevid_cn),
            raw.trust_vendor_cas
                .is_empty()
                .then(|| "unused: no trust_vendor_cas".to_string()),
        );
        put(
            "idevid_allow_list",
            Value::Boolean(raw.idevid_allow_list),
            None,
        );
        put(
            "issuer",
            Value::String(raw.issuer.clone()),
            (raw.issuer != crate::model::LOCAL_ISSUER).then(|| {
                "an upstream CA signs: validity, usages and CRL/OCSP pointers are its own"
                    .to_string()
            }),
        );
        out.push(Setting {
            key: "scep_challenge",
            // the secret is never shown
            value: raw
                .scep_challenge
                .as_ref()
                .map(|_| Value::String("(set)".into())),
            note: raw
                .scep_challenge
                .is_none()
                .then(|| "not set: one-time challenges only".to_string()),
            derived: false,
        });
        out
    }

    /// What `/csrattrs` asks for, one line per item, OIDs named:
    /// `1.2.840.10045.2.1 (ecPublicKey): 1.2.840.10045.3.1.7 (prime256v1)`.
    pub fn csr_attrs_described(&self) -> Vec<CsrAttrView> {
        self.csr_attrs()
            .iter()
            .map(|a| {
                let (oid, values) = match a {
                    CsrAttr::Oid(oid) => (oid, Vec::new()),
                    CsrAttr::AttrOids(oid, values) => (
                        oid,
                        values
                            .iter()
                            .map(|v| serde_json::Value::String(v.to_string()))
                            .collect(),
                    ),
                    CsrAttr::AttrInt(oid, n) => (oid, vec![serde_json::Value::from(*n)]),
                    // the RFC 9908 template, in words
                    CsrAttr::AttrDer(oid, der) => (
                        oid,
                        crate::est::csrtemplate::CriTemplate::decode(der)
                            .map(|t| t.describe())
                            .unwrap_or_default()
                            .into_iter()
                            .map(serde_json::Value::String)
                            .collect(),
                    ),
                };
                let oid = oid.to_string();
                CsrAttrView {
                    name: oid_name(&oid),
                    oid,
                    values,
                }
            })
            .collect()
    }
}

/// One item of `/csrattrs`: an OID, or an attribute with its values (OIDs or a key size).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CsrAttrView {
    pub oid: String,
    pub name: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<serde_json::Value>,
}

impl std::fmt::Display for CsrAttrView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::est::oids::named(&self.oid))?;
        for (i, v) in self.values.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            match v {
                serde_json::Value::String(s) => f.write_str(&crate::est::oids::named(s))?,
                other => write!(f, "{other}")?,
            }
        }
        Ok(())
    }
}

/// The settings as TOML lines (`key = value  # note`), then what `/csrattrs` asks for as
/// comments. Loads back as the same template.
pub fn to_toml(template: &Template, est_group: &str) -> String {
    let mut out = String::new();
    for s in template.settings(est_group) {
        match (&s.value, &s.note) {
            (Some(v), Some(n)) if s.derived => {
                out.push_str(&format!("# {} = {v}  ({n})\n", s.key));
            }
            (Some(v), Some(n)) => out.push_str(&format!("{} = {v}  # {n}\n", s.key)),
            (Some(v), None) => out.push_str(&format!("{} = {v}\n", s.key)),
            (None, Some(n)) => out.push_str(&format!("# {}: {n}\n", s.key)),
            (None, None) => out.push_str(&format!("# {}: not set\n", s.key)),
        }
    }
    let attrs = template.csr_attrs_described();
    if attrs.is_empty() {
        out.push_str("# /csrattrs asks for nothing (an empty SEQUENCE)\n");
    } else {
        out.push_str("# /csrattrs asks for:\n");
        for a in attrs {
            out.push_str(&format!("#   {a}\n"));
        }
    }
    out
}

/// The settings as one JSON object (keys as in TOML; `null` for what is not set), with
/// `"csrattrs"`: what `/csrattrs` asks for, and `"notes"`: the notes by key.
pub fn to_json(template: &Template, est_group: &str) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    let mut notes = serde_json::Map::new();
    for s in template.settings(est_group) {
        let v = match s.value {
            Some(v) => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
            None => serde_json::Value::Null,
        };
        map.insert(s.key.to_string(), v);
        if let Some(n) = s.note {
            notes.insert(s.key.to_string(), serde_json::Value::String(n));
        }
    }
    map.insert(
        "csrattrs".into(),
        serde_json::to_value(template.csr_attrs_described()).unwrap_or_default(),
    );
    map.insert("notes".into(), serde_json::Value::Object(notes));
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn load(text: &str) -> Template {
        Template::from_toml(Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn every_shipped_template_shows_as_toml_that_loads_back_the_same() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/templates");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let t = load(&std::fs::read_to_string(&path).unwrap());
            let shown = to_toml(&t, "est-users");
            let again = Template::from_toml(&path, &shown)
                .unwrap_or_else(|e| panic!("{}: {e}\n{shown}", path.display()));
            // the same values (the notes on defaults go: the shown file sets every key)
            let values = |t: &Template| -> Vec<_> {
                t.settings("est-users")
                    .into_iter()
                    .map(|s| (s.key, s.value))
                    .collect()
            };
            assert_eq!(values(&again), values(&t), "{shown}");
            assert!(!shown.contains("Dns") && !shown.contains("Auto"), "{shown}");
            n += 1;
        }
        assert!(n >= 5, "only {n} templates shipped");
    }

    #[test]
    fn spellings_defaults_and_oid_names() {
        let t = load(
            "name = \"x\"\nkey_types = [\"ec-p384\", \"rsa-2048\"]\nvalidity_days = 30\n\
             key_usage = [\"digital_signature\", \"key_agreement\"]\n\
             extended_key_usage = [\"client_auth\"]\nrequired_rdns = { OU = \"POS\" }\n\
             san_style = \"mac\"\nmac_encoding = \"othername\"\napproval = \"manual\"\n\
             channel_binding = true\ncsr_attrs = [\"2.5.4.5\", \"1.2.3.4\"]\n",
        );
        let shown = to_toml(&t, "est-users");
        for line in [
            "key_usage = [\"digital_signature\", \"key_agreement\"]",
            "required_rdns = { OU = \"POS\" }",
            "san_style = \"mac\"",
            "mac_encoding = \"othername\"",
            "mac_othername_oid = \"1.3.6.1.1.1.1.22\"  # 1.3.6.1.1.1.1.22 = macAddress",
            "approval = \"manual\"",
            "csr_attrs = [\"2.5.4.5\", \"1.2.3.4\"]  # 2.5.4.5 = serialNumber, 1.2.3.4 = (unnamed)",
            "# server_keygen_key = \"ec-p384\"  (not set: the first of key_types)",
            "# allowed_groups = [\"est-users\"]  (not set: est.group)",
            "#   1.2.840.113549.1.9.7 (challengePassword)",
            "#   1.2.840.10045.2.1 (ecPublicKey): 1.3.132.0.34 (secp384r1)",
            "#   1.2.840.113549.1.9.14 (extensionRequest): 2.5.29.17 (subjectAltName), 1.3.6.1.1.1.1.22 (macAddress)",
            "#   2.5.4.5 (serialNumber)",
        ] {
            assert!(
                shown.lines().any(|l| l == line),
                "{line:?} missing in\n{shown}"
            );
        }
        let json = to_json(&t, "est-users");
        assert_eq!(json["san_style"], "mac");
        assert_eq!(json["domain"], serde_json::Value::Null);
        assert_eq!(json["required_rdns"]["OU"], "POS");
        assert_eq!(
            json["csrattrs"][0]["name"],
            "certificationRequestInfoTemplate"
        );
        assert_eq!(json["csrattrs"][2]["name"], "ecPublicKey");
        assert_eq!(json["csrattrs"][2]["values"][0], "1.3.132.0.34");
        assert_eq!(json["notes"]["allowed_groups"], "not set: est.group");
    }
}
