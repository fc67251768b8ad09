//! The enrollment rules, one small check each, and the messages people see. The texts in
//! quotes are the portal FAQ's, word for word.

pub use crate::fields::has_control;
use base64::Engine;
use der::asn1::ObjectIdentifier;
use x509_cert::name::Name;

use crate::est::{Csr, name_value};

/// The FAQ's message when a non-admin asks for a certificate in someone else's name.
pub const MSG_CN_MISMATCH: &str = "Invalid request - The given CSR has a CN that does not match the provided user name, and that user does not have ERS Admin";
/// The FAQ's message for a CN with characters Active Directory forbids.
pub const MSG_CN_INVALID: &str =
    "The given CN is invalid. Cannot contain [ ] \" ; | = , + * ? < > characters";
/// The FAQ's message for a MAC address in none of the five forms.
pub const MSG_INVALID_MAC: &str = "Invalid MAC address";
/// The characters a CN may not hold.
pub const CN_FORBIDDEN: &[char] = &['[', ']', '"', ';', '|', '=', ',', '+', '*', '?', '<', '>'];

/// A request a template refuses. `Display` is the text the client sees.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("key type {got} is not allowed by template {template} (allowed: {allowed})")]
    KeyType {
        got: String,
        template: String,
        allowed: String,
    },
    #[error("{MSG_CN_MISMATCH}")]
    CnMismatch,
    #[error("{MSG_CN_INVALID}")]
    CnInvalid,
    #[error("{MSG_INVALID_MAC}")]
    InvalidMac,
    /// A subject attribute (`CN`, `O`, …) or SAN value with a control character.
    #[error("{}", crate::fields::control_chars_message(field))]
    ControlChars { field: String },
    /// A subject attribute or SAN value over its upper bound (X.520, RFC 5280).
    #[error("The given {field} is invalid. Cannot be longer than {max} characters")]
    TooLong { field: String, max: usize },
    /// A value of the wrong shape (`C` not two letters, an empty value).
    #[error("The given {field} is invalid. {reason}")]
    InvalidValue { field: String, reason: String },
    /// A subject attribute the template neither fixes nor lets the requester choose.
    #[error(
        "Invalid request - The given CSR has an {rdn} RDN that the provided Certificate Template does not allow"
    )]
    RdnNotAllowed { rdn: String },
    #[error("Invalid request - The given CSR has more than one {rdn} RDN")]
    RdnRepeated { rdn: String },
    #[error("Invalid request - The given CSR has a multi-valued RDN ({rdn})")]
    MultiValuedRdn { rdn: String },
    /// A DNS name, IP address or URI the template's name rules do not allow.
    #[error(
        "The certificate template {template} does not issue the name {entry} (allowed: {allowed})"
    )]
    NameNotAllowed {
        template: String,
        entry: String,
        allowed: String,
    },
    #[error("The certificate template {template} does not issue wildcard names ({entry})")]
    WildcardNotAllowed { template: String, entry: String },
    #[error("The wildcard name {entry} covers the public suffix {suffix} and is never issued")]
    WildcardTooBroad { entry: String, suffix: String },
    /// A name of this server (its TLS certificate's names, its CA's subject).
    #[error("The name {entry} belongs to this server and is never issued")]
    ServerName { entry: String },
    #[error(
        "Invalid request - The given CSR has an {rdn} RDN that does not match what is defined in the provided Certificate Template"
    )]
    RdnMismatch { rdn: String },
    #[error("The certificate template {template} requires {what} in the Subject alternative name")]
    SanMissing { template: String, what: String },
    #[error(
        "The certificate template {template} does not allow the Subject alternative name {entry}"
    )]
    SanNotAllowed { template: String, entry: String },
    #[error("The Subject alternative name {entry} is invalid: {reason}")]
    SanInvalid { entry: String, reason: String },
    #[error(
        "The CSR lacks the {name} attribute ({oid}) that /csrattrs of template {template} asks for"
    )]
    MissingAttribute {
        template: String,
        name: String,
        oid: String,
    },
    #[error(
        "The certificate template {template} requires channel binding: put the TLS connection's tls-exporter value (RFC 9266, base64) in the CSR's challengePassword"
    )]
    BindingMissing { template: String },
    #[error(
        "The CSR's challengePassword does not match this TLS connection's tls-exporter value (channel binding failed)"
    )]
    BindingMismatch,
    /// The CSR is not what the template's RFC 9908 CSR template asks for (after the rules
    /// above, whose messages come first): the first mismatch.
    #[error(
        "The CSR does not match the CSR template of the certificate template {template}: {why}"
    )]
    Template { template: String, why: String },
}

impl PolicyError {
    /// Refusals of who may have what (403) as opposed to malformed requests (400).
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Self::KeyType { .. }
                | Self::CnMismatch
                | Self::BindingMismatch
                | Self::NameNotAllowed { .. }
                | Self::WildcardNotAllowed { .. }
                | Self::WildcardTooBroad { .. }
                | Self::ServerName { .. }
        )
    }
}

/// Who is asking, as far as the rules care.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub name: &'a str,
    /// A member of an admin group (`Super Admin`, `ERS Admin`): may ask for others.
    pub is_admin: bool,
}

/// A CN must not hold `[ ] " ; | = , + * ? < >`.
pub fn check_cn_chars(cn: &str) -> Result<(), PolicyError> {
    if cn.contains(CN_FORBIDDEN) {
        return Err(PolicyError::CnInvalid);
    }
    Ok(())
}

/// A value typed into a field (`what`: "CN", "Subject alternative name", "user name", …)
/// must hold no control character.
pub fn check_no_control(what: &str, value: &str) -> Result<(), PolicyError> {
    if has_control(value) {
        return Err(PolicyError::ControlChars {
            field: what.to_string(),
        });
    }
    Ok(())
}

/// No subject attribute and no SAN value of a CSR may hold a control character; the error
/// names the first attribute that does (`The given CN is invalid. Cannot contain control
/// characters`), or the Subject alternative name.
pub fn check_csr_control_chars(csr: &Csr) -> Result<(), PolicyError> {
    for atv in csr.subject.iter() {
        if has_control(&crate::est::directory_string(&atv.value)) {
            return Err(PolicyError::ControlChars {
                field: super::subject::name_of(&atv.oid),
            });
        }
    }
    use crate::est::SanEntry;
    for entry in csr.san.iter().flat_map(|s| s.entries.iter()) {
        let text = match entry {
            SanEntry::Dns(v)
            | SanEntry::Email(v)
            | SanEntry::Uri(v)
            | SanEntry::OtherName(_, v) => v.as_str(),
            SanEntry::Ip(_) | SanEntry::Other(_) => continue,
        };
        check_no_control(SAN_FIELD, text)?;
    }
    Ok(())
}

/// How messages name the SubjectAltName.
pub const SAN_FIELD: &str = "Subject alternative name";

/// Upper bounds of SAN values, in characters: a DNS name 253 (RFC 1035), an email address
/// 254 (RFC 5321's path), a URI 1024, an otherName (UPN) 256.
pub fn check_san_lengths(san: &[crate::est::SanEntry]) -> Result<(), PolicyError> {
    use crate::est::SanEntry;
    for e in san {
        let (len, max) = match e {
            SanEntry::Dns(v) => (v.len(), 253),
            SanEntry::Email(v) => (v.chars().count(), 254),
            SanEntry::Uri(v) => (v.chars().count(), 1024),
            SanEntry::OtherName(_, v) => (v.chars().count(), 256),
            SanEntry::Ip(_) | SanEntry::Other(_) => continue,
        };
        if len > max {
            return Err(PolicyError::TooLong {
                field: SAN_FIELD.into(),
                max,
            });
        }
    }
    Ok(())
}

/// The CN must be the requester's user name (case-insensitively, as Active Directory
/// compares names), unless the requester is an admin or the template does not ask for it.
pub fn check_cn_owner(
    cn: Option<&str>,
    requester: &Requester<'_>,
    must_match: bool,
) -> Result<(), PolicyError> {
    if !must_match || requester.is_admin {
        return Ok(());
    }
    match cn {
        Some(cn) if cn.eq_ignore_ascii_case(requester.name) => Ok(()),
        _ => Err(PolicyError::CnMismatch),
    }
}

/// A subject attribute the template fixes, such as `OU = "Devices"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredRdn {
    /// Its short name as in the FAQ's message: `OU`, `O`, `C`, `ST`, `L`.
    pub short: &'static str,
    pub oid: ObjectIdentifier,
    pub value: String,
}

/// The short names of the RDNs a template may fix, and their OIDs.
pub const RDN_TYPES: &[(&str, &str)] = &[
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("C", "2.5.4.6"),
    ("ST", "2.5.4.8"),
    ("L", "2.5.4.7"),
];

/// Every fixed RDN must be in the subject with exactly the template's value.
pub fn check_rdns(subject: &Name, required: &[RequiredRdn]) -> Result<(), PolicyError> {
    for r in required {
        if name_value(subject, r.oid).as_deref() != Some(r.value.as_str()) {
            return Err(PolicyError::RdnMismatch {
                rdn: r.short.to_string(),
            });
        }
    }
    Ok(())
}

/// Every attribute the template's csrattrs asks for by OID must be in the CSR, as an
/// attribute or as an extension of its extensionRequest.
pub fn check_attributes(
    csr: &Csr,
    template: &str,
    required: &[ObjectIdentifier],
) -> Result<(), PolicyError> {
    for oid in required {
        if !csr.attribute_oids.contains(oid) && !csr.extension_oids.contains(oid) {
            return Err(PolicyError::MissingAttribute {
                template: template.to_string(),
                name: attribute_name(oid),
                oid: oid.to_string(),
            });
        }
    }
    Ok(())
}

fn attribute_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.9.7" => "challengePassword".into(),
        "1.2.840.113549.1.9.14" => "extensionRequest".into(),
        "2.5.29.17" => "subjectAltName".into(),
        "1.3.6.1.1.1.1.22" => "macAddress".into(),
        other => other.to_string(),
    }
}

/// RFC 9266 channel binding: the challengePassword is the base64 of the connection's
/// tls-exporter value.
pub fn check_binding(
    template: &str,
    challenge: Option<&str>,
    exporter: Option<&[u8]>,
) -> Result<(), PolicyError> {
    let Some(challenge) = challenge.map(str::trim).filter(|c| !c.is_empty()) else {
        return Err(PolicyError::BindingMissing {
            template: template.to_string(),
        });
    };
    let Some(exporter) = exporter else {
        return Err(PolicyError::BindingMismatch);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(challenge)
        .map_err(|_| PolicyError::BindingMismatch)?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(&decoded, exporter).is_err() {
        return Err(PolicyError::BindingMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    const ALICE: Requester<'static> = Requester {
        name: "alice",
        is_admin: false,
    };
    const ADMIN: Requester<'static> = Requester {
        name: "admin",
        is_admin: true,
    };

    #[test]
    fn cn_characters() {
        for c in CN_FORBIDDEN {
            assert_eq!(
                check_cn_chars(&format!("ab{c}cd")),
                Err(PolicyError::CnInvalid),
                "{c}"
            );
        }
        assert!(check_cn_chars("Joe O'Brien-2 (lab) joe@example.com").is_ok());
        assert_eq!(
            PolicyError::CnInvalid.to_string(),
            r#"The given CN is invalid. Cannot contain [ ] " ; | = , + * ? < > characters"#
        );
    }

    #[test]
    fn cn_owner() {
        assert!(check_cn_owner(Some("alice"), &ALICE, true).is_ok());
        assert!(check_cn_owner(Some("ALICE"), &ALICE, true).is_ok());
        assert_eq!(
            check_cn_owner(Some("bob"), &ALICE, true),
            Err(PolicyError::CnMismatch)
        );
        assert_eq!(
            check_cn_owner(None, &ALICE, true),
            Err(PolicyError::CnMismatch)
        );
        assert!(
            check_cn_owner(Some("bob"), &ADMIN, true).is_ok(),
            "admins act for others"
        );
        assert!(
            check_cn_owner(Some("bob"), &ALICE, false).is_ok(),
            "template allows any CN"
        );
        assert_eq!(
            PolicyError::CnMismatch.to_string(),
            "Invalid request - The given CSR has a CN that does not match the provided user name, and that user does not have ERS Admin"
        );
        assert!(PolicyError::CnMismatch.is_forbidden());
    }

    #[test]
    fn fixed_rdns() {
        let ou = RequiredRdn {
            short: "OU",
            oid: ObjectIdentifier::new_unwrap("2.5.4.11"),
            value: "Devices".into(),
        };
        let o = RequiredRdn {
            short: "O",
            oid: ObjectIdentifier::new_unwrap("2.5.4.10"),
            value: "Example".into(),
        };
        let required = [ou, o];
        let name = |s: &str| Name::from_str(s).unwrap();
        assert!(check_rdns(&name("CN=a,OU=Devices,O=Example"), &required).is_ok());
        let err = check_rdns(&name("CN=a,OU=Printers,O=Example"), &required).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid request - The given CSR has an OU RDN that does not match what is defined in the provided Certificate Template"
        );
        let err = check_rdns(&name("CN=a,OU=Devices"), &required).unwrap_err();
        assert_eq!(err, PolicyError::RdnMismatch { rdn: "O".into() });
        assert!(
            check_rdns(&name("CN=a,OU=devices,O=Example"), &required).is_err(),
            "values are exact"
        );
    }

    #[test]
    fn binding() {
        let exporter = [7u8; 32];
        let good = base64::engine::general_purpose::STANDARD.encode(exporter);
        assert!(check_binding("t", Some(&good), Some(&exporter)).is_ok());
        assert!(matches!(
            check_binding("t", None, Some(&exporter)),
            Err(PolicyError::BindingMissing { .. })
        ));
        assert!(matches!(
            check_binding("t", Some(" "), Some(&exporter)),
            Err(PolicyError::BindingMissing { .. })
        ));
        let other = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
        assert_eq!(
            check_binding("t", Some(&other), Some(&exporter)),
            Err(PolicyError::BindingMismatch)
        );
        assert_eq!(
            check_binding("t", Some("!!"), Some(&exporter)),
            Err(PolicyError::BindingMismatch)
        );
        assert_eq!(
            check_binding("t", Some(&good), None),
            Err(PolicyError::BindingMismatch)
        );
    }
}
