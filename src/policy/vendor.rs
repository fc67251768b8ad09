//! Manufacturer certificates (IEEE 802.1AR IDevIDs): the vendor CAs a template trusts, their
//! CRLs, and how a device's identity and its new certificate's CN follow from its IDevID.
//!
//! The TLS layer lets a chain to any template's vendor CA through the handshake
//! (`chain_to`); the template that the request names then verifies it again against its own
//! vendors and CRLs at the request's time (`VendorTrust::verify`), so that each refusal is a
//! 403 naming the device.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::asn1::ObjectIdentifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyPurposeIdIter, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};

/// The subject attribute 802.1AR puts the device's serial number in (X.520 serialNumber).
pub const SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");
/// The longest device serial number accepted (in an IDevID, the allow-list, the CLI).
pub const MAX_SERIAL: usize = 64;
/// The CN pattern's variables.
pub const VAR_SERIAL: &str = "%idevid_serial%";
pub const VAR_CN: &str = "%idevid_cn%";

/// A template's manufacturer trust (`trust_vendor_cas`, `vendor_crls`, `idevid_cn`,
/// `idevid_allow_list`).
pub struct VendorTrust {
    anchors: Vec<TrustAnchor<'static>>,
    /// The anchors' certificates as configured, for the TLS layer.
    anchor_ders: Vec<Vec<u8>>,
    crls: Vec<CertRevocationList<'static>>,
    /// The CN the device's new certificate must carry, with `%idevid_serial%` and
    /// `%idevid_cn%` filled in from its IDevID.
    pub cn_pattern: String,
    /// Only serial numbers on the template's allow-list enroll (the deny-list applies
    /// always).
    pub allow_list: bool,
}

impl std::fmt::Debug for VendorTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorTrust")
            .field("anchors", &self.anchors.len())
            .field("crls", &self.crls.len())
            .field("cn_pattern", &self.cn_pattern)
            .field("allow_list", &self.allow_list)
            .finish()
    }
}

/// A device that proved its IDevID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceId {
    /// The IDevID's serialNumber attribute.
    pub serial: String,
    /// The CN the new certificate must carry (the template's `idevid_cn`, filled in).
    pub cn: String,
}

/// Why a client certificate is not a device identity this template accepts. `Display` is
/// the 403's text; every variant that knows the serial names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceRefusal {
    #[error(
        "the client certificate ({subject}) is not an IDevID of a manufacturer the certificate template {template} trusts: {why}"
    )]
    NotTrusted {
        subject: String,
        template: String,
        why: String,
    },
    #[error("the IDevID of device {serial} (or a certificate of its chain) expired at {at}")]
    Expired { serial: String, at: String },
    #[error(
        "the IDevID of device {serial} (or a certificate of its chain) is not valid before {at}"
    )]
    NotYetValid { serial: String, at: String },
    #[error("the IDevID of device {serial} is revoked by its manufacturer's CRL")]
    Revoked { serial: String },
    #[error(
        "the IDevID ({subject}) has no usable serialNumber attribute (1 to {MAX_SERIAL} printable characters)"
    )]
    NoSerial { subject: String },
    #[error("the device {serial} is not on the allow-list of the certificate template {template}")]
    NotAllowed { serial: String, template: String },
    #[error("the device {serial} is on the deny-list of the certificate template {template}")]
    Denied { serial: String, template: String },
}

impl DeviceRefusal {
    /// The serial number the refusal is about, when it is known.
    pub fn serial(&self) -> Option<&str> {
        match self {
            Self::Expired { serial, .. }
            | Self::NotYetValid { serial, .. }
            | Self::Revoked { serial }
            | Self::NotAllowed { serial, .. }
            | Self::Denied { serial, .. } => Some(serial),
            Self::NotTrusted { .. } | Self::NoSerial { .. } => None,
        }
    }
}

/// Accepts any extended key usage, or none: 802.1AR IDevIDs often carry no EKU, or carry
/// vendor-specific ones. (What the device gets is the template's certificate, with the
/// template's EKUs.)
struct AnyEku;

impl webpki::ExtendedKeyUsageValidator for AnyEku {
    fn validate(&self, _iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

/// The signature algorithms chains are verified with (those rustls' provider verifies
/// handshakes with).
fn algorithms() -> &'static [&'static dyn rustls_pki_types::SignatureVerificationAlgorithm] {
    rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .all
}

/// Does `chain` (leaf first) lead to one of `anchors` at `time`, under `crls` when there
/// are any? Any EKU is accepted.
pub fn chain_to(
    anchors: &[TrustAnchor<'_>],
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    time: UnixTime,
    crls: &[CertRevocationList<'_>],
) -> Result<(), webpki::Error> {
    let ee = EndEntityCert::try_from(leaf)?;
    let refs: Vec<&CertRevocationList<'_>> = crls.iter().collect();
    let revocation = match RevocationOptionsBuilder::new(&refs) {
        Ok(b) => Some(
            b.with_depth(RevocationCheckDepth::Chain)
                // a vendor CA without a CRL of its own (the root, say) is not refused for it
                .with_status_policy(UnknownStatusPolicy::Allow)
                // a CRL past its nextUpdate still says what it revoked (load warns)
                .with_expiration_policy(ExpirationPolicy::Ignore)
                .build(),
        ),
        Err(_) => None,
    };
    ee.verify_for_usage(
        algorithms(),
        anchors,
        intermediates,
        time,
        AnyEku,
        revocation,
        None,
    )
    .map(|_| ())
}

/// For a chain refused only for a date (`e`): does it lead to `anchors` at a moment the
/// failing certificate was valid? (webpki checks dates before it looks for the issuer.)
pub fn chains_apart_from_dates(
    anchors: &[TrustAnchor<'_>],
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    e: &webpki::Error,
) -> bool {
    let at = match e {
        webpki::Error::CertExpired { not_after, .. } => {
            UnixTime::since_unix_epoch(Duration::from_secs(not_after.as_secs().saturating_sub(1)))
        }
        webpki::Error::CertNotValidYet { not_before, .. } => *not_before,
        _ => return false,
    };
    chain_to(anchors, leaf, intermediates, at, &[]).is_ok()
}

/// Trust anchors from certificates (DER).
pub fn anchors_of(ders: &[Vec<u8>]) -> Result<Vec<TrustAnchor<'static>>, String> {
    ders.iter()
        .map(|d| {
            webpki::anchor_from_trusted_cert(&CertificateDer::from(d.as_slice()))
                .map(|a| a.to_owned())
                .map_err(|e| format!("not a usable CA certificate: {e}"))
        })
        .collect()
}

pub fn unix_time(t: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(t.duration_since(UNIX_EPOCH).unwrap_or_default())
}

fn system_time(t: UnixTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.as_secs())
}

impl VendorTrust {
    /// Reads the vendor CA files (PEM, every certificate in them an anchor) and CRL files
    /// (PEM or DER), paths relative to `dir`. Names the key and file in each error.
    pub fn load(
        dir: &Path,
        ca_files: &[String],
        crl_files: &[String],
        cn_pattern: &str,
        allow_list: bool,
    ) -> Result<Arc<Self>, String> {
        let mut anchor_ders = Vec::new();
        for f in ca_files {
            let path = dir.join(f);
            let pem = std::fs::read(&path)
                .map_err(|e| format!("trust_vendor_cas: {}: {e}", path.display()))?;
            let before = anchor_ders.len();
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| format!("trust_vendor_cas: {}: {e:?}", path.display()))?;
                anchor_ders.push(c.to_vec());
            }
            if anchor_ders.len() == before {
                return Err(format!(
                    "trust_vendor_cas: {}: no PEM certificate in it",
                    path.display()
                ));
            }
        }
        let anchors = anchors_of(&anchor_ders).map_err(|e| format!("trust_vendor_cas: {e}"))?;
        let mut crls = Vec::new();
        for f in crl_files {
            let path = dir.join(f);
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("vendor_crls: {}: {e}", path.display()))?;
            let der = match CertificateRevocationListDer::from_pem_slice(&bytes) {
                Ok(d) => d.to_vec(),
                Err(_) => bytes,
            };
            let crl = OwnedCertRevocationList::from_der(&der)
                .map_err(|e| format!("vendor_crls: {}: not a CRL: {e}", path.display()))?;
            if stale(&der) {
                tracing::warn!(
                    file = %path.display(),
                    "vendor CRL past its nextUpdate: still applied (replace the file and restart)"
                );
            }
            crls.push(CertRevocationList::from(crl));
        }
        check_pattern(cn_pattern)?;
        Ok(Arc::new(Self {
            anchors,
            anchor_ders,
            crls,
            cn_pattern: cn_pattern.to_string(),
            allow_list,
        }))
    }

    /// The vendor CA certificates (DER), for the TLS layer's union.
    pub fn anchor_ders(&self) -> &[Vec<u8>] {
        &self.anchor_ders
    }

    /// Verifies a client chain (leaf first, DER) against this template's vendors and CRLs
    /// at `now`, and derives the device's identity. The lists are checked by the caller.
    pub fn verify(
        &self,
        template: &str,
        chain: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<DeviceId, DeviceRefusal> {
        use der::Decode;
        let leaf_der = chain.first().map(Vec::as_slice).unwrap_or_default();
        let cert = x509_cert::Certificate::from_der(leaf_der);
        let subject = cert.as_ref().map_or_else(
            |_| "unreadable".to_string(),
            |c| crate::model::printable(&c.tbs_certificate().subject().to_string()).into_owned(),
        );
        let serial = cert.as_ref().ok().and_then(|c| {
            crate::est::name_value(c.tbs_certificate().subject(), SERIAL_NUMBER)
                .filter(|s| usable_serial(s))
        });
        let leaf = CertificateDer::from(leaf_der);
        let intermediates: Vec<CertificateDer<'_>> = chain
            .iter()
            .skip(1)
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let checked = chain_to(
            &self.anchors,
            &leaf,
            &intermediates,
            unix_time(now),
            &self.crls,
        );
        let named = |s: &Option<String>| s.clone().unwrap_or_else(|| subject.clone());
        match checked {
            Ok(()) => {}
            // a date is named only for a chain to this template's vendors
            Err(e)
                if !chains_apart_from_dates(&self.anchors, &leaf, &intermediates, &e)
                    && matches!(
                        e,
                        webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. }
                    ) =>
            {
                return Err(DeviceRefusal::NotTrusted {
                    subject,
                    template: template.to_string(),
                    why: "its issuer is not one of the template's vendor CAs".into(),
                });
            }
            Err(webpki::Error::CertExpired { not_after, .. }) => {
                return Err(DeviceRefusal::Expired {
                    serial: named(&serial),
                    at: crate::model::timestamp(system_time(not_after)),
                });
            }
            Err(webpki::Error::CertNotValidYet { not_before, .. }) => {
                return Err(DeviceRefusal::NotYetValid {
                    serial: named(&serial),
                    at: crate::model::timestamp(system_time(not_before)),
                });
            }
            Err(webpki::Error::CertRevoked) => {
                return Err(DeviceRefusal::Revoked {
                    serial: named(&serial),
                });
            }
            Err(e) => {
                return Err(DeviceRefusal::NotTrusted {
                    subject,
                    template: template.to_string(),
                    why: describe(&e),
                });
            }
        }
        let Some(serial) = serial else {
            return Err(DeviceRefusal::NoSerial { subject });
        };
        let device_cn = cert
            .as_ref()
            .ok()
            .and_then(|c| crate::est::common_name(c.tbs_certificate().subject()))
            .unwrap_or_default();
        Ok(DeviceId {
            cn: self
                .cn_pattern
                .replace(VAR_SERIAL, &serial)
                .replace(VAR_CN, &device_cn),
            serial,
        })
    }
}

/// Is the CRL past its nextUpdate?
fn stale(der: &[u8]) -> bool {
    use der::Decode;
    x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der).is_ok_and(
        |c| {
            c.tbs_cert_list
                .next_update
                .is_some_and(|t| t.to_system_time() < SystemTime::now())
        },
    )
}

/// A serial number estd accepts: 1 to `MAX_SERIAL` printable ASCII characters, no spaces
/// at either end.
pub fn usable_serial(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SERIAL
        && s.bytes().all(|b| (0x20..0x7f).contains(&b))
        && s.trim() == s
}

/// An `idevid_cn` names at least one variable and no unknown one.
fn check_pattern(p: &str) -> Result<(), String> {
    let rest = p.replace(VAR_SERIAL, "").replace(VAR_CN, "");
    if rest.contains('%') || !p.contains(VAR_SERIAL) && !p.contains(VAR_CN) {
        return Err(format!(
            "idevid_cn: {p:?} must use {VAR_SERIAL} or {VAR_CN} and no other %variable%"
        ));
    }
    if rest.chars().any(char::is_control) || p.len() > 128 {
        return Err("idevid_cn: at most 128 characters without control characters".into());
    }
    Ok(())
}

/// webpki's error in words an operator can act on.
fn describe(e: &webpki::Error) -> String {
    match e {
        webpki::Error::UnknownIssuer => "its issuer is not one of the template's vendor CAs".into(),
        webpki::Error::CaUsedAsEndEntity => "it is a CA certificate".into(),
        webpki::Error::BadDer | webpki::Error::BadDerTime => "it is not valid DER".into(),
        webpki::Error::InvalidSignatureForPublicKey => "a signature in its chain is wrong".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    //! Fixtures made here with rcgen in a temporary directory; an unwrap failing is the test
    //! failing.
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Vendor Root");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.self_signed(&key).unwrap().pem()
    }

    fn load(files: &[(&str, &str)], cas: &[&str], crls: &[&str], cn: &str) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        VendorTrust::load(dir.path(), &s(cas), &s(crls), cn, false).map(|_| ())
    }

    #[test]
    fn load_names_the_key_and_file_of_each_mistake() {
        let ca = ca_pem();
        assert!(load(&[("v.pem", &ca)], &["v.pem"], &[], "%idevid_serial%").is_ok());
        assert!(load(&[("v.pem", &ca)], &["v.pem"], &[], "dev-%idevid_cn%").is_ok());
        let err = |r: Result<(), String>| r.err().unwrap_or_default();
        assert!(err(load(&[], &["missing.pem"], &[], VAR_SERIAL)).starts_with("trust_vendor_cas:"));
        assert!(
            err(load(&[("v.pem", "no pem")], &["v.pem"], &[], VAR_SERIAL))
                .contains("no PEM certificate")
        );
        assert!(
            err(load(
                &[("v.pem", &ca), ("c.crl", "junk")],
                &["v.pem"],
                &["c.crl"],
                VAR_SERIAL
            ))
            .contains("vendor_crls:")
        );
        for bad in ["fixed", "%idevid_serial%-%mac%", "x\u{7}%idevid_serial%"] {
            assert!(
                err(load(&[("v.pem", &ca)], &["v.pem"], &[], bad)).starts_with("idevid_cn:"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn serials() {
        assert!(usable_serial("SN-0001"));
        assert!(usable_serial("A B"));
        for bad in ["", " SN", "SN ", "tab\there", "é", &"9".repeat(65)] {
            assert!(!usable_serial(bad), "{bad:?}");
        }
    }
}
