//! SubjectAltName styles: what a template lets a CSR carry, and what the certificate gets.

use der::asn1::ObjectIdentifier;

use super::mac::Mac;
use super::rules::PolicyError;
use crate::est::SanEntry;
pub use crate::est::oids::{MAC_ADDRESS_OID, UPN_OID};
pub use crate::fields::{PatternEntry, PatternKind, SanVars, VARIABLES, build_pattern};

/// How a template's certificates name their subject in the SAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanStyle {
    /// A device's MAC address, normalised and written per `MacEncoding`.
    Mac,
    Upn,
    UpnEmail,
    Email,
    Dns,
    /// No SAN at all.
    None,
    /// SANs built from a pattern with `%uname%`, `%email%`, `%domain%`, `%cn%`.
    Other(Vec<PatternEntry>),
}

/// How a MAC address is written into the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacEncoding {
    /// RFC 9039: `URI:urn:dev:mac:001122334455`.
    Uri,
    /// `DNS:00-11-22-33-44-55`.
    Dns,
    /// An otherName of this OID with the normalised MAC as UTF8String.
    OtherName(ObjectIdentifier),
}

/// A SAN entry's text value, when it has one a MAC could be written in.
fn text_value(e: &SanEntry) -> Option<&str> {
    match e {
        SanEntry::Dns(s) | SanEntry::Uri(s) | SanEntry::Email(s) => Some(s),
        SanEntry::OtherName(_, v) => Some(v),
        _ => None,
    }
}

fn is_upn(e: &SanEntry) -> bool {
    matches!(e, SanEntry::OtherName(oid, _) if oid == UPN_OID)
}

fn looks_like_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((user, domain)) => {
            !user.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

fn valid_dns(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        })
}

/// What the certificate's SAN will be, given the CSR's SAN entries, or why not.
/// `optional`: a style that takes its SAN from the CSR accepts a CSR without one.
pub fn resolve(
    style: &SanStyle,
    template: &str,
    requested: &[SanEntry],
    vars: &SanVars,
    mac_encoding: &MacEncoding,
    fill: &str,
    optional: bool,
) -> Result<Vec<SanEntry>, PolicyError> {
    let not_allowed = |e: &SanEntry| PolicyError::SanNotAllowed {
        template: template.to_string(),
        entry: e.to_string(),
    };
    let missing = |what: &str| PolicyError::SanMissing {
        template: template.to_string(),
        what: what.to_string(),
    };
    let invalid = |e: &SanEntry, reason: &str| PolicyError::SanInvalid {
        entry: e.to_string(),
        reason: reason.to_string(),
    };
    match style {
        SanStyle::None => match requested.first() {
            Some(e) => Err(not_allowed(e)),
            None => Ok(Vec::new()),
        },
        SanStyle::Mac => {
            let mut mac: Option<Mac> = None;
            for e in requested {
                let value = text_value(e).ok_or_else(|| not_allowed(e))?;
                let this = Mac::from_san_value(value).ok_or(PolicyError::InvalidMac)?;
                match mac {
                    Some(m) if m != this => return Err(not_allowed(e)),
                    _ => mac = Some(this),
                }
            }
            let Some(mac) = mac else {
                return if optional {
                    Ok(Vec::new())
                } else {
                    Err(missing("a MAC address"))
                };
            };
            Ok(vec![match mac_encoding {
                MacEncoding::Uri => SanEntry::Uri(mac.urn()),
                MacEncoding::Dns => SanEntry::Dns(mac.normalized()),
                MacEncoding::OtherName(oid) => {
                    SanEntry::OtherName(oid.to_string(), mac.normalized())
                }
            }])
        }
        SanStyle::Upn | SanStyle::UpnEmail | SanStyle::Email | SanStyle::Dns => {
            let (want_upn, want_email, want_dns) = match style {
                SanStyle::Upn => (true, false, false),
                SanStyle::UpnEmail => (true, true, false),
                SanStyle::Email => (false, true, false),
                _ => (false, false, true),
            };
            for e in requested {
                match e {
                    SanEntry::OtherName(_, v) if want_upn && is_upn(e) => {
                        if !looks_like_address(v) {
                            return Err(invalid(e, "a UPN is user@domain"));
                        }
                    }
                    SanEntry::Email(v) if want_email => {
                        if !looks_like_address(v) {
                            return Err(invalid(e, "an email address is user@domain"));
                        }
                    }
                    SanEntry::Dns(v) if want_dns => {
                        if !valid_dns(v) {
                            return Err(invalid(e, "not a DNS name"));
                        }
                    }
                    other => return Err(not_allowed(other)),
                }
            }
            if requested.is_empty() && optional {
                return Ok(Vec::new());
            }
            if want_upn && !requested.iter().any(is_upn) {
                return Err(missing("a UPN (otherName 1.3.6.1.4.1.311.20.2.3)"));
            }
            if want_email && !requested.iter().any(|e| matches!(e, SanEntry::Email(_))) {
                return Err(missing("an email address (rfc822Name)"));
            }
            if want_dns && !requested.iter().any(|e| matches!(e, SanEntry::Dns(_))) {
                return Err(missing("a DNS name"));
            }
            Ok(requested.to_vec())
        }
        SanStyle::Other(pattern) => {
            let built = build_pattern(pattern, vars, fill);
            if let Some(extra) = requested.iter().find(|e| !built.contains(e)) {
                return Err(not_allowed(extra));
            }
            Ok(built)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upn(s: &str) -> SanEntry {
        SanEntry::OtherName(UPN_OID.into(), s.into())
    }
    fn email(s: &str) -> SanEntry {
        SanEntry::Email(s.into())
    }
    fn dns(s: &str) -> SanEntry {
        SanEntry::Dns(s.into())
    }

    fn run(style: &SanStyle, requested: &[SanEntry]) -> Result<Vec<SanEntry>, PolicyError> {
        resolve(
            style,
            "t",
            requested,
            &SanVars::default(),
            &MacEncoding::Uri,
            "",
            false,
        )
    }

    #[test]
    fn mac_style_normalises_and_encodes() {
        for form in [
            "00-11-22-33-44-55",
            "00:11:22:33:44:55",
            "0011.2233.4455",
            "001122-334455",
            "001122334455",
        ] {
            assert_eq!(
                run(&SanStyle::Mac, &[dns(form)]).unwrap(),
                vec![SanEntry::Uri("urn:dev:mac:001122334455".into())],
                "{form}"
            );
        }
        let mac = [SanEntry::Uri("urn:dev:mac:001122334455".into())];
        let enc = |e: MacEncoding| {
            resolve(
                &SanStyle::Mac,
                "t",
                &mac,
                &SanVars::default(),
                &e,
                "",
                false,
            )
            .unwrap()
        };
        assert_eq!(enc(MacEncoding::Dns), vec![dns("00-11-22-33-44-55")]);
        let oid = ObjectIdentifier::new_unwrap(MAC_ADDRESS_OID);
        assert_eq!(
            enc(MacEncoding::OtherName(oid)),
            vec![SanEntry::OtherName(
                MAC_ADDRESS_OID.into(),
                "00-11-22-33-44-55".into()
            )]
        );
        assert_eq!(
            run(&SanStyle::Mac, &[dns("00-11-22-33-44")]),
            Err(PolicyError::InvalidMac)
        );
        assert_eq!(
            run(&SanStyle::Mac, &[dns("printer.example")]),
            Err(PolicyError::InvalidMac)
        );
        assert!(matches!(
            run(&SanStyle::Mac, &[]),
            Err(PolicyError::SanMissing { .. })
        ));
        // the same MAC twice (DNS and URI forms) is one; two MACs are not
        assert_eq!(
            run(&SanStyle::Mac, &[dns("00:11:22:33:44:55"), mac[0].clone()])
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            run(
                &SanStyle::Mac,
                &[dns("00:11:22:33:44:55"), dns("00:11:22:33:44:66")]
            ),
            Err(PolicyError::SanNotAllowed { .. })
        ));
        assert!(matches!(
            run(&SanStyle::Mac, &[SanEntry::Ip("10.0.0.1".parse().unwrap())]),
            Err(PolicyError::SanNotAllowed { .. })
        ));
    }

    #[test]
    fn upn_email_dns_and_none() {
        assert_eq!(
            run(&SanStyle::Upn, &[upn("joe@example.com")]).unwrap(),
            vec![upn("joe@example.com")]
        );
        let err = run(
            &SanStyle::Upn,
            &[upn("joe@example.com"), email("joe@example.com")],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The certificate template t does not allow the Subject alternative name email:joe@example.com"
        );
        assert!(matches!(
            run(&SanStyle::Upn, &[]),
            Err(PolicyError::SanMissing { .. })
        ));
        assert!(matches!(
            run(&SanStyle::Upn, &[upn("joe")]),
            Err(PolicyError::SanInvalid { .. })
        ));

        let both = [email("joe@example.com"), upn("joe@example.com")];
        assert_eq!(run(&SanStyle::UpnEmail, &both).unwrap().len(), 2);
        let err = run(&SanStyle::UpnEmail, &both[1..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "The certificate template t requires an email address (rfc822Name) in the Subject alternative name"
        );

        assert!(run(&SanStyle::Email, &[email("a@b.c")]).is_ok());
        assert!(matches!(
            run(&SanStyle::Email, &[dns("a.b")]),
            Err(PolicyError::SanNotAllowed { .. })
        ));
        assert!(run(&SanStyle::Dns, &[dns("a.example"), dns("*.b.example")]).is_ok());
        assert!(matches!(
            run(&SanStyle::Dns, &[dns("bad name")]),
            Err(PolicyError::SanInvalid { .. })
        ));
        assert!(
            resolve(
                &SanStyle::Dns,
                "t",
                &[],
                &SanVars::default(),
                &MacEncoding::Uri,
                "",
                true
            )
            .unwrap()
            .is_empty()
        );

        assert!(run(&SanStyle::None, &[]).unwrap().is_empty());
        assert!(matches!(
            run(&SanStyle::None, &[dns("a.b")]),
            Err(PolicyError::SanNotAllowed { .. })
        ));
    }

    #[test]
    fn other_builds_from_the_pattern() {
        let pattern: Vec<PatternEntry> = [
            "upn:%uname%@%domain%",
            "email:%email%",
            "dns:%cn%.devices.example",
        ]
        .iter()
        .map(|s| PatternEntry::parse(s).unwrap())
        .collect();
        let style = SanStyle::Other(pattern.clone());
        let vars = SanVars {
            uname: Some("joe".into()),
            email: Some("joe@example.com".into()),
            domain: Some("example.com".into()),
            cn: Some("pos-17".into()),
        };
        let built = resolve(&style, "t", &[], &vars, &MacEncoding::Uri, "", false).unwrap();
        assert_eq!(
            built,
            vec![
                upn("joe@example.com"),
                email("joe@example.com"),
                dns("pos-17.devices.example")
            ]
        );
        // a CSR may repeat what the pattern builds, nothing else
        assert!(
            resolve(
                &style,
                "t",
                &[email("joe@example.com")],
                &vars,
                &MacEncoding::Uri,
                "",
                false
            )
            .is_ok()
        );
        assert!(matches!(
            resolve(
                &style,
                "t",
                &[email("eve@example.com")],
                &vars,
                &MacEncoding::Uri,
                "",
                false
            ),
            Err(PolicyError::SanNotAllowed { .. })
        ));
        // missing values: "Test", or left out when blank
        let some = SanVars {
            cn: Some("pos-17".into()),
            ..SanVars::default()
        };
        assert_eq!(
            build_pattern(&pattern, &some, "Test"),
            vec![
                upn("Test@Test"),
                email("Test"),
                dns("pos-17.devices.example")
            ]
        );
        assert_eq!(
            build_pattern(&pattern, &some, ""),
            vec![dns("pos-17.devices.example")]
        );
    }
}
