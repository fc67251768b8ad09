//! certs-only PKCS#7 (CMS SignedData with no signers) and the csrattrs body.

use cms::content_info::ContentInfo;
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;

use super::WireError;

/// Encodes DER certificates as a degenerate certs-only CMS SignedData (RFC 5652 / RFC 7030
/// §4.1.3). `SET OF` is sorted in DER, so the order of `certs` is not preserved.
pub fn certs_only(certs: &[&[u8]]) -> Result<Vec<u8>, WireError> {
    let parsed = certs
        .iter()
        .map(|der| Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WireError::Encode(e.to_string()))?;
    let info = ContentInfo::try_from(parsed).map_err(|e| WireError::Encode(e.to_string()))?;
    info.to_der().map_err(|e| WireError::Encode(e.to_string()))
}

/// Encodes a CsrAttrs (RFC 7030 §4.5.2) that asks for the given attribute OIDs.
pub fn csrattrs(oids: &[ObjectIdentifier]) -> Result<Vec<u8>, WireError> {
    oids.to_vec()
        .to_der()
        .map_err(|e| WireError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cms::signed_data::{CertificateSet, SignedData};

    fn self_signed(cn: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn certs_only_holds_every_certificate_and_no_signer() {
        let a = self_signed("a");
        let b = self_signed("b");
        let der = certs_only(&[&a, &b]).unwrap();
        let info = ContentInfo::from_der(&der).unwrap();
        assert_eq!(info.content_type, const_signed_data());
        let sd: SignedData = info.content.decode_as().unwrap();
        assert!(sd.signer_infos.0.is_empty());
        let CertificateSet(set) = sd.certificates.unwrap();
        let mut got: Vec<Vec<u8>> = set
            .iter()
            .map(|c| match c {
                cms::cert::CertificateChoices::Certificate(c) => c.to_der().unwrap(),
                _ => panic!("not a certificate"),
            })
            .collect();
        got.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(got, want);
    }

    fn const_signed_data() -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2")
    }

    #[test]
    fn csrattrs_is_a_sequence_of_oids() {
        let oid = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");
        let der = csrattrs(&[oid]).unwrap();
        assert_eq!(Vec::<ObjectIdentifier>::from_der(&der).unwrap(), vec![oid]);
        assert_eq!(csrattrs(&[]).unwrap(), vec![0x30, 0x00]);
    }

    #[test]
    fn garbage_certificates_are_an_error() {
        assert!(certs_only(&[b"nope"]).is_err());
    }
}
