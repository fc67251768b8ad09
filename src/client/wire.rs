//! Reading what EST servers answer, leniently: base64 with CRLF, LF or no line breaks (with
//! or without PEM armour, padding or a Content-Transfer-Encoding header), raw DER, trailing
//! NUL bytes, any multipart boundary (from the header, or found in the body), a PKCS#1 or
//! SEC1 key where PKCS#8 was promised, and any spelling of the media types.

use der::{Decode, Encode, Reader, Tagged};
use zeroize::Zeroizing;

pub use crate::est::lenient::{certs_from_pkcs7, clean, decode, media_type};

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

/// One DER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn oid_der(oid: &str) -> Result<Vec<u8>, String> {
    let oid = der::asn1::ObjectIdentifier::new(oid).map_err(|e| e.to_string())?;
    oid.to_der().map_err(|e| e.to_string())
}

/// A private key as PKCS#8, whatever the server sent: PKCS#8 as is; a PKCS#1
/// RSAPrivateKey or a SEC1 ECPrivateKey (with its curve) wrapped into PKCS#8.
pub fn key_to_pkcs8(der: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let items: Vec<der::Any> =
        Vec::from_der(der).map_err(|e| format!("the key is not a DER SEQUENCE: {e}"))?;
    let version = items.first().and_then(|v| v.decode_as::<u8>().ok());
    let second = items.get(1).map(|a| a.tag());
    match (version, second) {
        // PrivateKeyInfo: version 0 or 1, then the AlgorithmIdentifier SEQUENCE
        (Some(0 | 1), Some(der::Tag::Sequence)) => Ok(Zeroizing::new(der.to_vec())),
        // RSAPrivateKey: version 0, then the modulus
        (Some(0), Some(der::Tag::Integer)) => {
            let alg = tlv(0x30, &[oid_der(RSA_ENCRYPTION)?, vec![0x05, 0x00]].concat());
            Ok(Zeroizing::new(tlv(
                0x30,
                &[vec![0x02, 0x01, 0x00], alg, tlv(0x04, der)].concat(),
            )))
        }
        // ECPrivateKey: version 1, the key OCTET STRING, [0] the curve
        (Some(1), Some(der::Tag::OctetString)) => {
            let curve = items
                .iter()
                .find(|a| {
                    matches!(a.tag(), der::Tag::ContextSpecific { number, constructed: true } if number.value() == 0)
                })
                .ok_or("an EC key without its curve cannot be converted to PKCS#8")?;
            let curve_oid = curve.value().to_vec();
            let alg = tlv(0x30, &[oid_der(EC_PUBLIC_KEY)?, curve_oid].concat());
            Ok(Zeroizing::new(tlv(
                0x30,
                &[vec![0x02, 0x01, 0x00], alg, tlv(0x04, der)].concat(),
            )))
        }
        _ => Err("the key is neither PKCS#8, PKCS#1 nor SEC1".into()),
    }
}

/// What `/serverkeygen` answered: the certificate(s) and the private key (PKCS#8).
pub struct ServerKey {
    pub certs: Vec<Vec<u8>>,
    pub pkcs8: Zeroizing<Vec<u8>>,
}

/// The boundary of a multipart body: from the Content-Type, else the body's first line
/// that starts with `--`.
fn find_boundary(content_type: &str, body: &[u8]) -> Option<String> {
    if let Some(b) = crate::est::multipart::boundary_of(content_type) {
        return Some(b);
    }
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .map(str::trim_end)
        .find(|l| l.starts_with("--") && l.len() > 2)
        .map(|l| l[2..].to_string())
}

/// Splits a `/serverkeygen` answer into the key and the certificate, by each part's
/// Content-Type, or, where a part has none, by what it holds.
pub fn parse_serverkeygen(content_type: &str, body: &[u8]) -> Result<ServerKey, String> {
    let body = clean(body);
    let boundary = find_boundary(content_type, body)
        .ok_or("the answer is not multipart (no boundary in the Content-Type or the body)")?;
    let mut text = body.to_vec();
    // a body cut right after the last delimiter (no `--`, no line end) still counts
    if !text.ends_with(b"--") && !text.ends_with(b"--\r\n") && !text.ends_with(b"--\n") {
        text.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    } else {
        text.extend_from_slice(b"\r\n");
    }
    let parts = crate::est::multipart::parse_multipart(&text, &boundary)
        .map_err(|e| format!("the multipart answer cannot be read: {e}"))?;
    let mut certs = None;
    let mut key = None;
    for part in parts.iter().filter(|p| !clean(&p.body).is_empty()) {
        let ct = part
            .header("content-type")
            .unwrap_or("")
            .to_ascii_lowercase();
        let der = decode(&part.body)?;
        if ct.contains("smime-type=server-generated-key") {
            return Err(
                "the server encrypted the key (RFC 7030 §4.4.2); estd client does not decrypt keys"
                    .into(),
            );
        }
        if ct.contains("pkcs7") || (ct.is_empty() && certs_from_pkcs7(&der).is_ok()) {
            certs = Some(certs_from_pkcs7(&der)?);
        } else if ct.contains("pkcs8") || ct.contains("key") || ct.is_empty() {
            key = Some(key_to_pkcs8(&der)?);
        }
    }
    match (certs, key) {
        (Some(certs), Some(pkcs8)) => Ok(ServerKey { certs, pkcs8 }),
        (None, _) => Err("the answer has no certificate part".into()),
        (_, None) => Err("the answer has no private key part".into()),
    }
}

/// Known OIDs in `/csrattrs` answers, for people.
/// The items of a CsrAttrs (RFC 7030 §4.5.2 / RFC 9908), one line each.
pub fn describe_csrattrs(der: &[u8]) -> Result<Vec<String>, String> {
    let items: Vec<der::Any> =
        Vec::from_der(der).map_err(|e| format!("not a CsrAttrs SEQUENCE: {e}"))?;
    let mut out = Vec::new();
    for item in items {
        match item.tag() {
            der::Tag::ObjectIdentifier => {
                let oid: der::asn1::ObjectIdentifier =
                    item.decode_as().map_err(|e: der::Error| e.to_string())?;
                out.push(crate::est::oids::named(&oid.to_string()));
            }
            der::Tag::Sequence => {
                let attr: x509_cert::attr::Attribute =
                    item.decode_as().map_err(|e: der::Error| e.to_string())?;
                // an RFC 9908 CSR template: what it asks for, line by line
                if attr.oid == crate::est::csrtemplate::ID_AA_CRI_TEMPLATE
                    && let Some(v) = attr.values.iter().next()
                    && let Ok(t) = crate::est::csrtemplate::CriTemplate::decode(
                        &v.to_der().map_err(|e| e.to_string())?,
                    )
                {
                    out.extend(
                        t.describe()
                            .into_iter()
                            .map(|l| format!("CSR template: {l}")),
                    );
                    continue;
                }
                let mut values = Vec::new();
                for v in attr.values.iter() {
                    if let Ok(n) = v.decode_as::<u32>() {
                        values.push(n.to_string());
                    } else {
                        values.extend(oids_in(&v.to_der().map_err(|e| e.to_string())?));
                    }
                }
                out.push(format!(
                    "{}: {}",
                    crate::est::oids::named(&attr.oid.to_string()),
                    if values.is_empty() {
                        "(value)".to_string()
                    } else {
                        values.join(", ")
                    }
                ));
            }
            other => return Err(format!("unexpected {other} in CsrAttrs")),
        }
    }
    Ok(out)
}

/// Every OID inside DER values, in order (enough to show what an attribute asks for).
fn oids_in(der: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(mut reader) = der::SliceReader::new(der) else {
        return out;
    };
    while !reader.is_finished() {
        let Ok(any) = der::asn1::AnyRef::decode(&mut reader) else {
            break;
        };
        if any.tag() == der::Tag::ObjectIdentifier {
            if let Ok(oid) = any.decode_as::<der::asn1::ObjectIdentifier>() {
                out.push(crate::est::oids::named(&oid.to_string()));
            }
        } else if any.tag().is_constructed() {
            out.extend(oids_in(any.value()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Fixed fixtures; an unwrap failing is the test failing.
    use super::*;
    use base64::Engine;

    fn b64(der: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(der)
    }

    fn lines(s: &str, width: usize, eol: &str) -> String {
        s.as_bytes()
            .chunks(width)
            .map(|c| format!("{}{eol}", std::str::from_utf8(c).unwrap()))
            .collect()
    }

    fn sample_pkcs7() -> (Vec<u8>, Vec<Vec<u8>>) {
        let kp = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "x");
        let cert = params.self_signed(&kp).unwrap();
        let der = cert.der().to_vec();
        let p7 = crate::est::certs_only(&[&der, &der]).unwrap();
        (p7, vec![der.clone(), der])
    }

    #[test]
    fn every_base64_layout_and_raw_der() {
        let (p7, certs) = sample_pkcs7();
        let text = b64(&p7);
        let unpadded = text.trim_end_matches('=').to_string();
        for body in [
            lines(&text, 64, "\n"),
            lines(&text, 76, "\r\n"),
            text.clone(),
            format!("{text}\0"),
            format!("{}\0\0", lines(&text, 64, "\r\n")),
            unpadded,
            format!(
                "-----BEGIN PKCS7-----\n{}-----END PKCS7-----\n",
                lines(&text, 64, "\n")
            ),
        ] {
            let der = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{body:?}: {e}"));
            assert_eq!(certs_from_pkcs7(&der).unwrap(), certs, "{body:?}");
        }
        let mut raw = p7.clone();
        assert_eq!(decode(&raw).unwrap(), p7, "binary DER");
        raw.push(0);
        assert_eq!(decode(&raw).unwrap(), p7, "binary DER with a NUL");
        assert!(decode(b"").is_err());
        assert!(decode(b"\0\0").is_err());
        assert!(decode(b"not base64 at all!").is_err());
    }

    #[test]
    fn media_types() {
        for ct in [
            "application/pkcs7-mime; smime-type=certs-only",
            "Application/PKCS7-MIME;smime-type=\"certs-only\"",
            "application/pkcs7-mime",
            " application/pkcs7-mime ; charset=binary",
        ] {
            assert_eq!(media_type(ct), "application/pkcs7-mime", "{ct}");
        }
    }

    #[test]
    fn keys_in_every_encoding_become_pkcs8() {
        use pkcs8::der::Decode as _;
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
        ] {
            let kp = rcgen::KeyPair::generate_for(alg).unwrap();
            let p8 = kp.serialize_der();
            assert_eq!(*key_to_pkcs8(&p8).unwrap(), p8);
            // the SEC1 key inside, with its curve (as `openssl ec` writes it), wrapped again
            let info = pkcs8::PrivateKeyInfoRef::from_der(&p8).unwrap();
            let curve = info
                .algorithm
                .parameters
                .as_ref()
                .unwrap()
                .to_der()
                .unwrap();
            let inner: Vec<der::Any> = Vec::from_der(info.private_key.as_bytes()).unwrap();
            let mut content = Vec::new();
            content.extend(inner[0].to_der().unwrap());
            content.extend(inner[1].to_der().unwrap());
            content.extend(tlv(0xA0, &curve));
            for rest in &inner[2..] {
                content.extend(rest.to_der().unwrap());
            }
            let sec1 = tlv(0x30, &content);
            let again = key_to_pkcs8(&sec1).unwrap();
            let back = rcgen::KeyPair::try_from(again.as_slice()).unwrap();
            assert_eq!(back.public_key_raw(), kp.public_key_raw());
        }
        let rsa =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let p8 = rsa.serialize_der();
        let info = pkcs8::PrivateKeyInfoRef::from_der(&p8).unwrap();
        let pkcs1 = info.private_key.as_bytes();
        let wrapped = key_to_pkcs8(pkcs1).unwrap();
        let back = rcgen::KeyPair::try_from(wrapped.as_slice()).unwrap();
        assert_eq!(back.public_key_raw(), rsa.public_key_raw());
        assert!(key_to_pkcs8(&[0x30, 0x03, 0x02, 0x01, 0x05]).is_err());
    }

    #[test]
    fn multipart_with_any_boundary_and_line_ends() {
        let (p7, certs) = sample_pkcs7();
        let kp = rcgen::KeyPair::generate().unwrap();
        let key = kp.serialize_der();
        for (boundary, eol, header) in [
            ("est", "\r\n", true),
            ("----=_Part_0_12345.67890", "\n", true),
            ("xyz'()+_,-./:=?", "\r\n", true),
            ("sniffed-boundary", "\r\n", false),
        ] {
            let body = format!(
                "--{boundary}{eol}Content-Type: application/pkcs8{eol}Content-Transfer-Encoding: base64{eol}{eol}{}{eol}--{boundary}{eol}content-type: application/pkcs7-mime; smime-type=certs-only{eol}{eol}{}{eol}--{boundary}--{eol}\0",
                lines(&b64(&key), 64, eol),
                b64(&p7),
            );
            let ct = if header {
                format!("multipart/mixed; boundary=\"{boundary}\"")
            } else {
                "multipart/mixed".to_string()
            };
            let got = parse_serverkeygen(&ct, body.as_bytes())
                .unwrap_or_else(|e| panic!("{boundary}: {e}"));
            assert_eq!(got.certs, certs);
            assert_eq!(*got.pkcs8, key);
        }
        // parts without headers, in the other order, and no line end after the last one
        let body = format!(
            "--b\r\n\r\n{}\r\n--b\r\n\r\n{}\r\n--b--",
            b64(&p7),
            b64(&key)
        );
        let got = parse_serverkeygen("multipart/mixed; boundary=b", body.as_bytes()).unwrap();
        assert_eq!(got.certs, certs);
        let back = rcgen::KeyPair::try_from(got.pkcs8.as_slice()).unwrap();
        assert_eq!(back.public_key_raw(), kp.public_key_raw());
        assert!(parse_serverkeygen("application/pkcs7-mime", b64(&p7).as_bytes()).is_err());
    }

    #[test]
    fn csrattrs_are_described() {
        use crate::est::{CsrAttr, csrattrs};
        let der = csrattrs(&[
            CsrAttr::Oid(der::asn1::ObjectIdentifier::new_unwrap(
                "1.2.840.113549.1.9.7",
            )),
            CsrAttr::AttrOids(
                der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1"),
                vec![der::asn1::ObjectIdentifier::new_unwrap("1.3.132.0.34")],
            ),
            CsrAttr::AttrInt(
                der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
                3072,
            ),
        ])
        .unwrap();
        let lines = describe_csrattrs(&der).unwrap();
        assert_eq!(
            lines,
            vec![
                "1.2.840.113549.1.9.7 (challengePassword)".to_string(),
                "1.2.840.10045.2.1 (ecPublicKey): 1.3.132.0.34 (secp384r1)".to_string(),
                "1.2.840.113549.1.1.1 (rsaEncryption): 3072".to_string(),
            ]
        );
        // an RFC 9908 template, in words
        use crate::est::csrtemplate::{
            CriTemplate, ExtTemplate, ID_AA_CRI_TEMPLATE, RdnTemplate, SAN,
        };
        let t = CriTemplate {
            subject: vec![RdnTemplate {
                oid: der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3"),
                value: None,
            }],
            key: Some(crate::est::KeyType::EcP384),
            extensions: vec![ExtTemplate {
                oid: SAN,
                critical: false,
                value: None,
            }],
        };
        let der = csrattrs(&[
            CsrAttr::AttrDer(ID_AA_CRI_TEMPLATE, t.encode().unwrap()),
            CsrAttr::Oid(der::asn1::ObjectIdentifier::new_unwrap(
                "1.2.840.10045.4.3.3",
            )),
        ])
        .unwrap();
        assert_eq!(
            describe_csrattrs(&der).unwrap(),
            vec![
                "CSR template: subject commonName: yours to fill in".to_string(),
                "CSR template: key: ec-p384".to_string(),
                "CSR template: extension subjectAltName: yours to fill in".to_string(),
                "1.2.840.10045.4.3.3 (ecdsa-with-SHA384)".to_string(),
            ]
        );
    }
}
