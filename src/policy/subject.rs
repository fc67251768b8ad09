//! The subject a certificate gets is built from the request, not copied: the CN, the
//! template's fixed RDNs (`required_rdns`) and the attributes it lets the requester choose
//! (`allowed_rdns`), each within its X.520 upper bound. Any other attribute is refused with
//! a message naming it, or dropped where the template says `drop_unlisted_rdns = true`.

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::name::{Name, RelativeDistinguishedName};

use super::rules::{PolicyError, RequiredRdn};

/// A subject attribute type estd knows: its short name, OID and upper bound in characters
/// (RFC 5280 Appendix A, X.520; `UID` and `GN`/`SN` have none there and get 64).
#[derive(Debug, Clone, Copy)]
pub struct AttributeType {
    pub short: &'static str,
    pub oid: &'static str,
    pub max: usize,
}

pub const CN_OID: &str = "2.5.4.3";

pub const ATTRIBUTE_TYPES: &[AttributeType] = &[
    AttributeType {
        short: "CN",
        oid: CN_OID,
        max: 64,
    },
    AttributeType {
        short: "SN",
        oid: "2.5.4.4",
        max: 64,
    },
    AttributeType {
        short: "serialNumber",
        oid: "2.5.4.5",
        max: 64,
    },
    AttributeType {
        short: "C",
        oid: "2.5.4.6",
        max: 2,
    },
    AttributeType {
        short: "L",
        oid: "2.5.4.7",
        max: 128,
    },
    AttributeType {
        short: "ST",
        oid: "2.5.4.8",
        max: 128,
    },
    AttributeType {
        short: "street",
        oid: "2.5.4.9",
        max: 128,
    },
    AttributeType {
        short: "O",
        oid: "2.5.4.10",
        max: 64,
    },
    AttributeType {
        short: "OU",
        oid: "2.5.4.11",
        max: 64,
    },
    AttributeType {
        short: "title",
        oid: "2.5.4.12",
        max: 64,
    },
    AttributeType {
        short: "GN",
        oid: "2.5.4.42",
        max: 64,
    },
    AttributeType {
        short: "dnQualifier",
        oid: "2.5.4.46",
        max: 64,
    },
    AttributeType {
        short: "pseudonym",
        oid: "2.5.4.65",
        max: 128,
    },
    AttributeType {
        short: "UID",
        oid: "0.9.2342.19200300.100.1.1",
        max: 64,
    },
    AttributeType {
        short: "DC",
        oid: "0.9.2342.19200300.100.1.25",
        max: 63,
    },
    AttributeType {
        short: "emailAddress",
        oid: "1.2.840.113549.1.9.1",
        max: 255,
    },
];

/// The known type with this short name (as a template writes it).
pub fn by_short(short: &str) -> Option<&'static AttributeType> {
    ATTRIBUTE_TYPES.iter().find(|t| t.short == short)
}

/// The known type with this OID.
pub fn by_oid(oid: &ObjectIdentifier) -> Option<&'static AttributeType> {
    let text = oid.to_string();
    ATTRIBUTE_TYPES.iter().find(|t| t.oid == text)
}

/// How a template shapes the subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectRules {
    /// Attribute types (besides CN and the required RDNs) whose values the requester chooses.
    pub allowed: Vec<ObjectIdentifier>,
    /// Leave out attributes the template does not list instead of refusing the request.
    pub drop_unlisted: bool,
}

/// The subject the certificate gets, from the request's: CN, the required RDNs and the
/// allowed ones, in the request's order; every value within its bound. Refuses a
/// multi-valued RDN, an attribute given twice, and (unless `drop_unlisted`) any attribute
/// the template does not list.
pub fn build(
    requested: &Name,
    required: &[RequiredRdn],
    rules: &SubjectRules,
) -> Result<Name, PolicyError> {
    let cn = ObjectIdentifier::new_unwrap(CN_OID);
    let mut kept: Vec<RelativeDistinguishedName> = Vec::new();
    let mut seen: Vec<ObjectIdentifier> = Vec::new();
    for rdn in requested.iter_rdn() {
        let atvs: Vec<_> = rdn.iter().collect();
        if atvs.len() != 1 {
            return Err(PolicyError::MultiValuedRdn {
                rdn: atvs
                    .iter()
                    .map(|a| name_of(&a.oid))
                    .collect::<Vec<_>>()
                    .join("+"),
            });
        }
        let atv = atvs[0];
        let short = name_of(&atv.oid);
        if seen.contains(&atv.oid) {
            return Err(PolicyError::RdnRepeated { rdn: short });
        }
        seen.push(atv.oid);
        let listed = atv.oid == cn
            || required.iter().any(|r| r.oid == atv.oid)
            || rules.allowed.contains(&atv.oid);
        if !listed {
            if rules.drop_unlisted {
                continue;
            }
            return Err(PolicyError::RdnNotAllowed { rdn: short });
        }
        // text only: the string types X.520 and PKCS#9 use (IA5String for emailAddress and DC)
        let tag = atv.value.tag();
        let text = matches!(
            tag,
            Tag::Utf8String
                | Tag::PrintableString
                | Tag::TeletexString
                | Tag::BmpString
                | Tag::Ia5String
                | Tag::VisibleString
        );
        if !text {
            return Err(PolicyError::InvalidValue {
                field: short,
                reason: "Must be text".into(),
            });
        }
        let value = crate::est::directory_string(&atv.value);
        if let Some(t) = by_oid(&atv.oid) {
            let len = value.chars().count();
            if t.short == "C" {
                if tag != Tag::PrintableString {
                    return Err(PolicyError::InvalidValue {
                        field: short,
                        reason: "Must be a PrintableString".into(),
                    });
                }
                if len != 2 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(PolicyError::InvalidValue {
                        field: short,
                        reason: "Must be a two-letter country code (ISO 3166), such as US".into(),
                    });
                }
            } else if len > t.max {
                return Err(PolicyError::TooLong {
                    field: short,
                    max: t.max,
                });
            }
        }
        if value.trim().is_empty() {
            return Err(PolicyError::InvalidValue {
                field: short,
                reason: "Cannot be empty".into(),
            });
        }
        kept.push(rdn.clone());
    }
    if kept.len() == requested.len() {
        return Ok(requested.clone());
    }
    let der = kept.to_der().map_err(|e| PolicyError::InvalidValue {
        field: "subject".into(),
        reason: e.to_string(),
    })?;
    Name::from_der(&der).map_err(|e| PolicyError::InvalidValue {
        field: "subject".into(),
        reason: e.to_string(),
    })
}

/// An attribute type's short name, or its OID.
pub fn name_of(oid: &ObjectIdentifier) -> String {
    by_oid(oid).map_or_else(|| oid.to_string(), |t| t.short.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn required(short: &'static str, value: &str) -> RequiredRdn {
        RequiredRdn {
            short,
            oid: ObjectIdentifier::new_unwrap(by_short(short).unwrap().oid),
            value: value.into(),
        }
    }

    #[test]
    fn unlisted_attributes_are_refused_or_dropped() {
        let rules = SubjectRules::default();
        let n = name("CN=alice,O=estd development,OU=Domain Admins");
        assert_eq!(
            build(&n, &[], &rules),
            Err(PolicyError::RdnNotAllowed { rdn: "OU".into() })
        );
        let dropping = SubjectRules {
            drop_unlisted: true,
            ..SubjectRules::default()
        };
        assert_eq!(build(&n, &[], &dropping).unwrap(), name("CN=alice"));
        // listed ones stay, in the request's order
        let o = SubjectRules {
            allowed: vec![ObjectIdentifier::new_unwrap("2.5.4.10")],
            drop_unlisted: true,
        };
        assert_eq!(
            build(&n, &[], &o).unwrap(),
            name("CN=alice,O=estd development")
        );
        assert_eq!(
            build(&name("CN=x,OU=POS"), &[required("OU", "POS")], &rules).unwrap(),
            name("CN=x,OU=POS")
        );
        let uid = name("CN=alice,UID=admin");
        assert_eq!(
            build(&uid, &[], &rules),
            Err(PolicyError::RdnNotAllowed { rdn: "UID".into() })
        );
    }

    #[test]
    fn bounds_and_shapes() {
        let rules = SubjectRules {
            allowed: ["2.5.4.10", "2.5.4.6", "2.5.4.11"]
                .iter()
                .map(|o| ObjectIdentifier::new_unwrap(o))
                .collect(),
            drop_unlisted: false,
        };
        let long = "a".repeat(65);
        assert_eq!(
            build(&name(&format!("CN={long}")), &[], &rules),
            Err(PolicyError::TooLong {
                field: "CN".into(),
                max: 64
            })
        );
        assert!(build(&name(&format!("CN={}", "a".repeat(64))), &[], &rules).is_ok());
        assert_eq!(
            build(&name(&format!("CN=x,O={long}")), &[], &rules),
            Err(PolicyError::TooLong {
                field: "O".into(),
                max: 64
            })
        );
        assert!(matches!(
            build(&name("CN=x,C=USA"), &[], &rules),
            Err(PolicyError::InvalidValue { .. })
        ));
        assert!(build(&name("CN=x,C=US"), &[], &rules).is_ok());
        assert_eq!(
            build(&name("CN=x,OU=a,OU=b"), &[], &rules),
            Err(PolicyError::RdnRepeated { rdn: "OU".into() })
        );
        assert!(matches!(
            build(&name("CN=x+OU=a"), &[], &rules),
            Err(PolicyError::MultiValuedRdn { .. })
        ));
    }
}
