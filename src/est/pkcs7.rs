//! certs-only PKCS#7 (CMS SignedData with no signers) and the csrattrs body.

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Tagged};

use super::WireError;

/// Encodes DER certificates as a degenerate certs-only CMS SignedData (RFC 5652 / RFC 7030
/// §4.1.3). `SET OF` is sorted in DER, so the order of `certs` is not preserved.
///
/// Written by hand around the certificates' own bytes: each is checked to be one whole
/// DER SEQUENCE and copied, not decoded and encoded again (on every enrollment, that
/// round trip through `cms` cost more than the rest of the encoding).
pub fn certs_only(certs: &[&[u8]]) -> Result<Vec<u8>, WireError> {
    use super::tlv;
    /// id-signedData (1.2.840.113549.1.7.2) and id-data (…7.1), DER contents.
    const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
    let mut sorted = Vec::with_capacity(certs.len());
    for der in certs {
        let any = der::AnyRef::from_der(der).map_err(|e| WireError::Encode(e.to_string()))?;
        if any.tag() != der::Tag::Sequence {
            return Err(WireError::Encode(format!(
                "a certificate is a SEQUENCE, not {}",
                any.tag()
            )));
        }
        sorted.push(*der);
    }
    // DER orders a SET OF by the encodings' bytes (duplicates stay, as `cms` keeps them)
    sorted.sort_unstable();
    let signed_data = [
        &[0x02, 0x01, 0x01][..], // version 1
        &[0x31, 0x00],           // digestAlgorithms: none
        &tlv(0x30, &tlv(0x06, DATA)),
        &tlv(0xa0, &sorted.concat()), // [0] IMPLICIT certificates
        &[0xa1, 0x00],                // [1] IMPLICIT crls: none (as `cms` writes it)
        &[0x31, 0x00],                // signerInfos: none
    ]
    .concat();
    Ok(tlv(
        0x30,
        &[tlv(0x06, SIGNED_DATA), tlv(0xa0, &tlv(0x30, &signed_data))].concat(),
    ))
}

/// One entry of a CsrAttrs: a bare OID, or an attribute with values (RFC 7030 §4.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsrAttr {
    Oid(ObjectIdentifier),
    /// An attribute whose values are OIDs (the curve of ecPublicKey, the extension of
    /// extensionRequest).
    AttrOids(ObjectIdentifier, Vec<ObjectIdentifier>),
    /// An attribute whose one value is an INTEGER (the size of rsaEncryption).
    AttrInt(ObjectIdentifier, u32),
    /// An attribute whose one value is this DER (RFC 9908's CSR template).
    AttrDer(ObjectIdentifier, Vec<u8>),
}

#[derive(der::Choice)]
enum AttrOrOid {
    Oid(ObjectIdentifier),
    Attribute(x509_cert::attr::Attribute),
}

/// Encodes a CsrAttrs (RFC 7030 §4.5.2): `SEQUENCE OF AttrOrOID`.
pub fn csrattrs(items: &[CsrAttr]) -> Result<Vec<u8>, WireError> {
    let enc = |e: der::Error| WireError::Encode(e.to_string());
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(match item {
            CsrAttr::Oid(oid) => AttrOrOid::Oid(*oid),
            CsrAttr::AttrOids(oid, values) => {
                let mut set = der::asn1::SetOfVec::new();
                for v in values {
                    set.insert(der::Any::encode_from(v).map_err(enc)?)
                        .map_err(enc)?;
                }
                AttrOrOid::Attribute(x509_cert::attr::Attribute {
                    oid: *oid,
                    values: set,
                })
            }
            CsrAttr::AttrDer(oid, value) => {
                let mut set = der::asn1::SetOfVec::new();
                set.insert(der::Any::from_der(value).map_err(enc)?)
                    .map_err(enc)?;
                AttrOrOid::Attribute(x509_cert::attr::Attribute {
                    oid: *oid,
                    values: set,
                })
            }
            CsrAttr::AttrInt(oid, n) => {
                let mut set = der::asn1::SetOfVec::new();
                set.insert(der::Any::encode_from(n).map_err(enc)?)
                    .map_err(enc)?;
                AttrOrOid::Attribute(x509_cert::attr::Attribute {
                    oid: *oid,
                    values: set,
                })
            }
        });
    }
    out.to_der().map_err(enc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cms::content_info::ContentInfo;
    use cms::signed_data::{CertificateSet, SignedData};
    use der::Decode;

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

    /// For one certificate, the hand-written encoding is byte for byte what `cms` makes;
    /// for several, the same certificates, duplicates kept, in X.690's SET OF order
    /// (ascending encodings; `der` sorts SEQUENCEs field by field instead, which can
    /// differ when the lengths differ).
    #[test]
    fn certs_only_is_what_cms_encodes() {
        let certs: Vec<Vec<u8>> = ["a", "b", "a longer name", "z", "b"]
            .iter()
            .map(|cn| self_signed(cn))
            .collect();
        let one = x509_cert::Certificate::from_der(&certs[0]).unwrap();
        let want = ContentInfo::try_from(vec![one]).unwrap().to_der().unwrap();
        assert_eq!(certs_only(&[&certs[0]]).unwrap(), want);

        let mut all: Vec<&[u8]> = certs.iter().map(|c| &c[..]).collect();
        all.push(&certs[1]);
        let der = certs_only(&all).unwrap();
        let sd: SignedData = ContentInfo::from_der(&der)
            .unwrap()
            .content
            .decode_as()
            .unwrap();
        let got: Vec<Vec<u8>> = sd
            .certificates
            .unwrap()
            .0
            .iter()
            .map(|c| match c {
                cms::cert::CertificateChoices::Certificate(c) => c.to_der().unwrap(),
                _ => panic!("not a certificate"),
            })
            .collect();
        let mut got = got;
        got.sort();
        let mut want: Vec<Vec<u8>> = all.iter().map(|c| c.to_vec()).collect();
        want.sort();
        assert_eq!(got, want, "every certificate, duplicates kept");
        // on the wire in ascending order (`cms` re-sorts when it decodes, so look at bytes)
        let at = |c: &[u8]| der.windows(c.len()).position(|w| w == c).unwrap();
        let positions: Vec<usize> = want.iter().map(|c| at(c)).collect();
        assert!(positions.is_sorted(), "{positions:?}");
        assert!(sd.crls.is_some_and(|c| c.0.is_empty()));
    }

    fn const_signed_data() -> ObjectIdentifier {
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2")
    }

    #[test]
    fn csrattrs_holds_oids_and_attributes() {
        let cp = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");
        let der = csrattrs(&[CsrAttr::Oid(cp)]).unwrap();
        assert_eq!(Vec::<ObjectIdentifier>::from_der(&der).unwrap(), vec![cp]);
        assert_eq!(csrattrs(&[]).unwrap(), vec![0x30, 0x00]);

        // RFC 7030 §4.5.2's example: ecPublicKey with secp384r1, as DER
        let ec = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
        let p384 = ObjectIdentifier::new_unwrap("1.3.132.0.34");
        let der = csrattrs(&[CsrAttr::Oid(cp), CsrAttr::AttrOids(ec, vec![p384])]).unwrap();
        assert_eq!(
            der,
            [
                &[0x30, 0x1f][..],
                &[
                    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07
                ],
                &[
                    0x30, 0x12, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01
                ],
                &[0x31, 0x07, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
            ]
            .concat()
        );
        let rsa = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
        let der = csrattrs(&[CsrAttr::AttrInt(rsa, 2048)]).unwrap();
        assert!(der.ends_with(&[0x31, 0x04, 0x02, 0x02, 0x08, 0x00]));
    }

    #[test]
    fn garbage_certificates_are_an_error() {
        assert!(certs_only(&[b"nope"]).is_err());
        // well-formed DER, but not a SEQUENCE; and a SEQUENCE with bytes after it
        assert!(certs_only(&[&[0x04, 0x01, 0x00]]).is_err());
        assert!(certs_only(&[&[0x30, 0x00, 0x00]]).is_err());
    }
}
