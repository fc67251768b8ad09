//! A pkiMessage (RFC 8894 §3.2): ContentInfo → SignedData whose signed attributes carry the
//! SCEP fields and whose eContent is the EnvelopedData. `parse` checks the signature (over
//! the signed attributes exactly as received) and the message digest before anything in it
//! is believed.

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::{Decode, Encode, Header, Reader, SliceReader, Tag};
use x509_cert::Certificate;

use super::{Digest, FailInfo, MessageType, ScepError, octets, oid};

/// A request whose signature and digest were checked; its content still enveloped.
#[derive(Debug, Clone)]
pub struct PkiMessage {
    pub message_type: MessageType,
    /// As sent (a PrintableString; clients use hex or base64 of a key hash).
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
    /// The signer's certificate (DER): self-signed for a first PKCSReq, the certificate
    /// being renewed for a RenewalReq (or a PKCSReq signed with it).
    pub signer_cert: Vec<u8>,
    /// The signer's digest: the reply uses the same.
    pub digest: Digest,
    /// The eContent's octets: a ContentInfo holding the EnvelopedData.
    pub envelope: Vec<u8>,
}

/// At most this many bytes in a transaction ID or a nonce: what is echoed back is bounded.
const MAX_FIELD: usize = 128;

fn bad(reason: impl Into<String>) -> ScepError {
    ScepError::new(FailInfo::BadRequest, reason)
}

/// Parses and checks a pkiMessage (DER or BER).
pub fn parse(msg: &[u8]) -> Result<PkiMessage, ScepError> {
    let ci = ContentInfo::from_ber(msg).map_err(|e| bad(format!("not a CMS message: {e}")))?;
    if ci.content_type != oid::SIGNED_DATA {
        return Err(bad(format!(
            "a {} where SignedData was expected",
            ci.content_type
        )));
    }
    let inner = ci
        .content
        .to_der()
        .map_err(|e| bad(format!("SignedData: {e}")))?;
    let sd = SignedData::from_ber(&inner).map_err(|e| bad(format!("SignedData: {e}")))?;
    let si = match sd.signer_infos.0.as_slice() {
        [si] => si,
        [] => return Err(bad("no signer")),
        _ => return Err(bad("more than one signer")),
    };
    let digest = Digest::from_oid(&si.digest_alg.oid).ok_or_else(|| {
        ScepError::new(
            FailInfo::BadAlg,
            format!(
                "digest {} (SHA-1, SHA-256, SHA-384 or SHA-512)",
                si.digest_alg.oid
            ),
        )
    })?;
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| bad("no signed attributes"))?;
    let attr = |o: der::asn1::ObjectIdentifier| {
        attrs
            .iter()
            .find(|a| a.oid == o)
            .and_then(|a| a.values.iter().next())
    };
    let text = |o, name: &str| -> Result<String, ScepError> {
        let v = attr(o).ok_or_else(|| bad(format!("no {name}")))?;
        if v.value().len() > MAX_FIELD {
            return Err(bad(format!("{name} longer than {MAX_FIELD} bytes")));
        }
        let s = std::str::from_utf8(v.value()).map_err(|_| bad(format!("{name} is not text")))?;
        if s.chars().any(char::is_control) {
            return Err(bad(format!("{name} holds control characters")));
        }
        Ok(s.to_string())
    };
    let message_type = text(oid::MESSAGE_TYPE, "messageType")?;
    let message_type = MessageType::parse(&message_type)
        .filter(|t| *t != MessageType::CertRep)
        .ok_or_else(|| bad(format!("messageType {message_type:?} is not a request")))?;
    let transaction_id = text(oid::TRANSACTION_ID, "transactionID")?;
    let sender_nonce = attr(oid::SENDER_NONCE)
        .map(|v| v.value().to_vec())
        .ok_or_else(|| bad("no senderNonce"))?;
    if sender_nonce.is_empty() || sender_nonce.len() > MAX_FIELD {
        return Err(bad("a senderNonce of 1 to 128 bytes is needed"));
    }
    let envelope = match &sd.encap_content_info.econtent {
        Some(any) => octets(any).map_err(|e| bad(format!("the content: {e}")))?,
        None => Vec::new(),
    };
    let check = |reason: &str| ScepError::new(FailInfo::BadMessageCheck, reason.to_string());
    let stated = attr(oid::MESSAGE_DIGEST).ok_or_else(|| check("no messageDigest"))?;
    if stated.value() != digest.hash(&envelope).as_slice() {
        return Err(check("the messageDigest is not the content's"));
    }
    let signer_cert = signer_certificate(&sd, si)?;
    let cert = Certificate::from_der(&signer_cert)
        .map_err(|e| bad(format!("the signer's certificate: {e}")))?;
    let signature = si.signature.as_bytes();
    // the attributes as received (re-tagged SET OF), else as DER re-encodes them (sorted)
    let mut candidates = Vec::with_capacity(2);
    if let Some(mut raw) = raw_signed_attrs(msg) {
        raw[0] = 0x31;
        candidates.push(raw);
    }
    if let Ok(der) = attrs.to_der() {
        candidates.push(der);
    }
    if !candidates
        .iter()
        .any(|signed| verifies(&cert, digest, signed, signature))
    {
        return Err(check(
            "the signature does not verify with the signer's certificate",
        ));
    }
    Ok(PkiMessage {
        message_type,
        transaction_id,
        sender_nonce,
        signer_cert,
        digest,
        envelope,
    })
}

/// The certificate the SignerInfo names, from the SignedData's certificates.
fn signer_certificate(sd: &SignedData, si: &SignerInfo) -> Result<Vec<u8>, ScepError> {
    let certs: Vec<&Certificate> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let found = certs.iter().find(|c| match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            c.tbs_certificate().issuer() == &ias.issuer
                && c.tbs_certificate().serial_number() == &ias.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            subject_key_id(c).is_some_and(|k| k == ski.0.as_bytes())
        }
    });
    let cert = found.ok_or_else(|| bad("the signer's certificate is not in the message"))?;
    cert.to_der()
        .map_err(|e| bad(format!("the signer's certificate: {e}")))
}

fn subject_key_id(c: &Certificate) -> Option<Vec<u8>> {
    const SKI: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.14");
    let ext = c
        .tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id == SKI)?;
    der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
        .ok()
        .map(|o| o.as_bytes().to_vec())
}

/// Whether `sig` over `signed` verifies with the certificate's RSA or EC key.
fn verifies(cert: &Certificate, digest: Digest, signed: &[u8], sig: &[u8]) -> bool {
    use aws_lc_rs::signature as s;
    let spki = cert.tbs_certificate().subject_public_key_info();
    let key = spki.subject_public_key.raw_bytes();
    let alg: &dyn s::VerificationAlgorithm = if spki.algorithm.oid == oid::RSA_ENCRYPTION {
        match digest {
            Digest::Sha1 => &s::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            Digest::Sha256 => &s::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            Digest::Sha384 => &s::RSA_PKCS1_2048_8192_SHA384,
            Digest::Sha512 => &s::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        }
    } else if spki.algorithm.oid == oid::EC_PUBLIC_KEY {
        let p384 = key.len() == 97;
        match (digest, p384) {
            (Digest::Sha1, false) => &s::ECDSA_P256_SHA1_ASN1,
            (Digest::Sha256, false) => &s::ECDSA_P256_SHA256_ASN1,
            (Digest::Sha384, false) => &s::ECDSA_P256_SHA384_ASN1,
            (Digest::Sha512, false) => &s::ECDSA_P256_SHA512_ASN1,
            (Digest::Sha256, true) => &s::ECDSA_P384_SHA256_ASN1,
            (Digest::Sha384, true) => &s::ECDSA_P384_SHA384_ASN1,
            (Digest::Sha512, true) => &s::ECDSA_P384_SHA512_ASN1,
            (Digest::Sha1, true) => return false,
        }
    } else {
        return false;
    };
    s::UnparsedPublicKey::new(alg, key)
        .verify(signed, sig)
        .is_ok()
}

/// The first SignerInfo's `[0] signedAttrs` TLV exactly as received, found by walking the
/// message (definite lengths; `None` for anything else, and the caller falls back to the
/// DER re-encoding).
fn raw_signed_attrs(msg: &[u8]) -> Option<Vec<u8>> {
    let mut r = SliceReader::new(msg).ok()?;
    let ci = r.tlv_bytes().ok()?;
    let mut r = SliceReader::new(ci).ok()?;
    Header::decode(&mut r).ok()?; // ContentInfo SEQUENCE
    r.tlv_bytes().ok()?; // contentType
    Header::decode(&mut r).ok()?; // [0] EXPLICIT
    Header::decode(&mut r).ok()?; // SignedData SEQUENCE
    for _ in 0..3 {
        r.tlv_bytes().ok()?; // version, digestAlgorithms, encapContentInfo
    }
    while Header::peek(&r).ok()?.tag() != Tag::Set {
        r.tlv_bytes().ok()?; // [0] certificates, [1] crls
    }
    Header::decode(&mut r).ok()?; // SET OF SignerInfo
    Header::decode(&mut r).ok()?; // SignerInfo SEQUENCE
    for _ in 0..3 {
        r.tlv_bytes().ok()?; // version, sid, digestAlgorithm
    }
    let attrs = r.tlv_bytes().ok()?;
    (attrs.first() == Some(&0xa0)).then(|| attrs.to_vec())
}
