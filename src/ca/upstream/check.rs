//! What an upstream's certificate must be before estd hands it out or records it: for the
//! key the request carried, signed by a CA of the upstream's `/cacerts`, valid now, not a
//! CA, and naming nothing the template did not approve: its subject attributes and SAN
//! entries among the approved ones (an upstream may leave some out, never add one), its
//! extended key usages (when it has any) among the template's. Its lifetime and its other
//! extensions are the upstream's decision.

use std::time::{Duration, SystemTime};

use der::Decode;
use x509_cert::Certificate;

use crate::ca::SignedCert;
use crate::est::SanEntry;

/// What the template approved: the certificate may name no more.
#[derive(Debug, Clone, Copy)]
pub struct Approved<'a> {
    pub subject: &'a x509_cert::name::Name,
    pub san: &'a [SanEntry],
    /// The template's extended key usages (OIDs).
    pub eku: &'a [der::asn1::ObjectIdentifier],
}

/// A clock difference tolerated on notBefore.
const SKEW: Duration = Duration::from_secs(300);

/// Picks, among the answer's certificates, the one for `public_key` (the CSR's
/// subjectPublicKey bits; never the first by assumption) and checks it against `chain`
/// (the upstream's CA certificates, DER) at `now`.
pub fn accept(
    certs: &[Vec<u8>],
    public_key: &[u8],
    approved: &Approved<'_>,
    chain: &[Vec<u8>],
    now: SystemTime,
) -> Result<SignedCert, String> {
    let mut parsed = Vec::new();
    for der in certs {
        let cert = Certificate::from_der(der)
            .map_err(|e| format!("a returned certificate is not X.509 DER: {e}"))?;
        parsed.push((der, cert));
    }
    let Some((der, cert)) = parsed.into_iter().find(|(_, c)| {
        c.tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes()
            == public_key
    }) else {
        let other = certs
            .first()
            .and_then(|d| Certificate::from_der(d).ok())
            .map(|c| {
                let spki = c
                    .tbs_certificate()
                    .subject_public_key_info()
                    .subject_public_key
                    .raw_bytes()
                    .to_vec();
                format!(" (it certifies the key with SHA-256 {})", short_hash(&spki))
            })
            .unwrap_or_default();
        return Err(format!(
            "the certificate returned is not for the key of the request (SHA-256 {}){other}",
            short_hash(public_key)
        ));
    };
    let issuers: Vec<Certificate> = chain
        .iter()
        .filter_map(|d| Certificate::from_der(d).ok())
        .collect();
    if !issuers
        .iter()
        .any(|ca| crate::scep_wire::request::signed_by(&cert, ca))
    {
        return Err(format!(
            "the certificate returned (issuer {}) is not signed by a CA of the upstream's /cacerts",
            crate::model::printable(&cert.tbs_certificate().issuer().to_string())
        ));
    }
    let validity = cert.tbs_certificate().validity();
    let not_before = validity.not_before.to_system_time();
    let not_after = validity.not_after.to_system_time();
    if not_before > now + SKEW {
        return Err("the certificate returned is not valid yet".into());
    }
    if not_after <= now {
        return Err("the certificate returned has expired".into());
    }
    if is_ca(&cert) {
        return Err("the certificate returned is a CA certificate".into());
    }
    let (_, san) = crate::est::cert_identity(der)
        .map_err(|e| format!("the certificate returned is unreadable: {e}"))?;
    names_approved(&cert, &san, approved)?;
    Ok(SignedCert {
        der: der.clone(),
        serial: crate::est::hex(cert.tbs_certificate().serial_number().as_bytes()),
        subject: crate::model::printable(&cert.tbs_certificate().subject().to_string())
            .into_owned(),
        san: san
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        not_before,
        not_after,
    })
}

/// The subject's attributes, SAN entries and extended key usages are among the approved.
fn names_approved(cert: &Certificate, san: &[SanEntry], a: &Approved<'_>) -> Result<(), String> {
    let attrs = |n: &x509_cert::name::Name| -> Vec<(String, String)> {
        n.iter()
            .map(|atv| {
                (
                    atv.oid.to_string(),
                    crate::est::directory_string(&atv.value),
                )
            })
            .collect()
    };
    let allowed = attrs(a.subject);
    if let Some((oid, value)) = attrs(cert.tbs_certificate().subject())
        .into_iter()
        .find(|x| !allowed.contains(x))
    {
        return Err(format!(
            "the certificate returned names {}={} in its subject, which the template did not approve",
            crate::est::oids::named(&oid),
            crate::model::printable(&value)
        ));
    }
    if let Some(extra) = san.iter().find(|e| !a.san.contains(e)) {
        return Err(format!(
            "the certificate returned names {} in its SubjectAltName, which the template did not approve",
            crate::model::printable(&extra.to_string())
        ));
    }
    use x509_cert::ext::pkix::ExtendedKeyUsage;
    if let Ok(Some((_, eku))) = cert.tbs_certificate().get_extension::<ExtendedKeyUsage>()
        && let Some(extra) = eku.0.iter().find(|u| !a.eku.contains(u))
    {
        return Err(format!(
            "the certificate returned allows the usage {}, which the template does not",
            crate::est::oids::named(&extra.to_string())
        ));
    }
    Ok(())
}

fn is_ca(cert: &Certificate) -> bool {
    use x509_cert::ext::pkix::BasicConstraints;
    cert.tbs_certificate()
        .get_extension::<BasicConstraints>()
        .ok()
        .flatten()
        .is_some_and(|(_, bc)| bc.ca)
}

/// The first 8 bytes of a SHA-256, hex: enough to tell keys apart in a log line.
pub fn short_hash(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    crate::est::hex(&d.as_ref()[..8])
}

#[cfg(test)]
mod tests {
    //! Fixtures made here with rcgen; an unwrap failing is the test failing.
    use super::*;
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};

    struct Ca {
        params: CertificateParams,
        key: KeyPair,
        der: Vec<u8>,
    }

    fn ca(cn: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Ca { params, key, der }
    }

    /// A certificate for `key` signed by `ca`, `days_left` from now (negative: expired).
    fn leaf(ca: &Ca, key: &KeyPair, days_left: i64, is_ca: bool) -> Vec<u8> {
        leaf_with(ca, key, days_left, is_ca, |_| {})
    }

    fn leaf_with(
        ca: &Ca,
        key: &KeyPair,
        days_left: i64,
        is_ca: bool,
        more: impl FnOnce(&mut CertificateParams),
    ) -> Vec<u8> {
        let mut p = CertificateParams::new(vec!["dev.example".into()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "dev");
        more(&mut p);
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(400);
        p.not_after = now + time::Duration::days(days_left);
        if is_ca {
            p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        p.signed_by(key, &Issuer::from_params(&ca.params, &ca.key))
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn only_a_current_end_entity_certificate_for_the_key_from_the_upstreams_ca_passes() {
        let upstream = ca("upstream CA");
        let stranger = ca("another CA");
        let device = KeyPair::generate().unwrap();
        let other = KeyPair::generate().unwrap();
        let chain = vec![upstream.der.clone()];
        let now = SystemTime::now();
        let pk = device.public_key_raw().to_vec();
        let mut subject = x509_cert::name::Name::default();
        if let Ok(n) = <x509_cert::name::Name as std::str::FromStr>::from_str("CN=dev") {
            subject = n;
        }
        let san = vec![SanEntry::Dns("dev.example".into())];
        let client_auth = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
        let approved = Approved {
            subject: &subject,
            san: &san,
            eku: &[client_auth],
        };

        let good = leaf(&upstream, &device, 30, false);
        // the right one is picked among several, whatever the order
        let for_other = leaf(&upstream, &other, 30, false);
        let ok = accept(
            &[for_other.clone(), good.clone()],
            &pk,
            &approved,
            &chain,
            now,
        )
        .unwrap();
        assert_eq!(ok.der, good);
        assert_eq!(ok.subject, "CN=dev");
        assert_eq!(ok.san, "DNS:dev.example");

        let refused =
            |certs: Vec<Vec<u8>>| accept(&certs, &pk, &approved, &chain, now).unwrap_err();
        assert!(refused(vec![for_other]).contains("not for the key of the request"));
        assert!(
            refused(vec![leaf(&stranger, &device, 30, false)])
                .contains("not signed by a CA of the upstream")
        );
        assert!(refused(vec![leaf(&upstream, &device, -1, false)]).contains("expired"));
        assert!(refused(vec![leaf(&upstream, &device, 30, true)]).contains("a CA certificate"));
        assert!(refused(vec![vec![0x30, 0x00]]).contains("not X.509"));
        assert!(accept(&[], &pk, &approved, &chain, now).is_err());
        // names and usages beyond what the template approved
        let more_san = leaf_with(&upstream, &device, 30, false, |p| {
            p.subject_alt_names
                .push(rcgen::SanType::DnsName("bank.example".try_into().unwrap()));
        });
        assert!(refused(vec![more_san]).contains("DNS:bank.example"));
        let more_subject = leaf_with(&upstream, &device, 30, false, |p| {
            p.distinguished_name
                .push(DnType::OrganizationName, "Elsewhere");
        });
        assert!(refused(vec![more_subject]).contains("Elsewhere"));
        let code_signing = leaf_with(&upstream, &device, 30, false, |p| {
            p.extended_key_usages = vec![
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
                rcgen::ExtendedKeyUsagePurpose::CodeSigning,
            ];
        });
        assert!(refused(vec![code_signing]).contains("usage"));
        // fewer names, an approved usage: fine (the upstream's choice)
        let fewer = leaf_with(&upstream, &device, 30, false, |p| {
            p.subject_alt_names.clear();
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        });
        assert!(accept(&[fewer], &pk, &approved, &chain, now).is_ok());
    }
}
