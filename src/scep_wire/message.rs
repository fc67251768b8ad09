//! A pkiMessage (RFC 8894 §3.2): ContentInfo → SignedData whose signed attributes carry the
//! SCEP fields and whose eContent is the EnvelopedData. `parse` checks the signature (over
//! the signed attributes exactly as received) with the signer certificate the message
//! carries, the contentType and the message digest; whether that signer may ask is the
//! caller's question.

use der::{Decode, Encode, Header, Reader, SliceReader, Tag, Tagged};
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use super::loose::{IssuerAndSerial, SignedData, SignerInfo};
use super::reply::LooseCertificate;
use super::{Digest, FailInfo, MessageType, ScepError, content_of, octets, oid};

/// What a reply echoes: the request's transactionID as sent (its ASN.1 type and bytes) and
/// its senderNonce (the reply's recipientNonce).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    pub transaction_id: der::Any,
    pub sender_nonce: Vec<u8>,
}

/// A request whose signature and digest were checked; its content still enveloped.
///
/// Not checked here (the caller's part): that a PKCSReq's signer key is the CSR's key, and
/// that a renewal's signer certificate is current, unrevoked and this CA's.
#[derive(Debug, Clone)]
pub struct PkiMessage {
    pub message_type: MessageType,
    /// As sent, as text (for logs and lookups; clients use hex or base64 of a key hash).
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
    /// What the reply echoes.
    pub echo: Echo,
    /// The signer's certificate (DER): self-signed for a first PKCSReq, the certificate
    /// being renewed for a RenewalReq (or a PKCSReq signed with it).
    pub signer_cert: Vec<u8>,
    /// The signer's digest (the reply is signed with SHA-256 whatever this is).
    pub digest: Digest,
    /// The eContent's octets: a ContentInfo holding the EnvelopedData.
    pub envelope: Vec<u8>,
}

/// At most this many bytes in a transaction ID or a nonce: what is echoed back is bounded.
const MAX_FIELD: usize = 128;

fn bad(reason: impl Into<String>) -> ScepError {
    ScepError::new(FailInfo::BadRequest, reason)
}

/// Parses and checks a pkiMessage (DER or BER). A refusal after the transactionID and the
/// senderNonce were read carries them (`ScepError::echo`), so that the caller can answer
/// with a signed FAILURE CertRep.
pub fn parse(msg: &[u8]) -> Result<PkiMessage, ScepError> {
    let inner = content_of(msg, oid::SIGNED_DATA, "SignedData", FailInfo::BadRequest)?;
    let sd = SignedData::from_ber(&inner).map_err(|e| bad(format!("SignedData: {e}")))?;
    let signers: Vec<&SignerInfo> = sd.signer_infos.iter().collect();
    let si = match signers.as_slice() {
        [si] => *si,
        [] => return Err(bad("no signer")),
        _ => return Err(bad("more than one signer")),
    };
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| bad("no signed attributes"))?;
    // each attribute once, with one value
    let attr =
        |o: der::asn1::ObjectIdentifier, name: &str| -> Result<Option<&der::Any>, ScepError> {
            let mut found = attrs.iter().filter(|a| a.oid == o);
            match (found.next(), found.next()) {
                (None, _) => Ok(None),
                (Some(a), None) if a.values.len() == 1 => Ok(a.values.iter().next()),
                _ => Err(bad(format!("{name} more than once"))),
            }
        };
    let text = |o, name: &str| -> Result<(String, der::Any), ScepError> {
        let v = attr(o, name)?.ok_or_else(|| bad(format!("no {name}")))?;
        if ![Tag::PrintableString, Tag::Ia5String, Tag::Utf8String].contains(&v.tag()) {
            return Err(bad(format!("{name} is not a string")));
        }
        if v.value().is_empty() || v.value().len() > MAX_FIELD {
            return Err(bad(format!("{name} of 1 to {MAX_FIELD} bytes is needed")));
        }
        let s = std::str::from_utf8(v.value()).map_err(|_| bad(format!("{name} is not text")))?;
        if s.chars().any(char::is_control) {
            return Err(bad(format!("{name} holds control characters")));
        }
        Ok((s.to_string(), v.clone()))
    };
    let octet_string = |o, name: &str| -> Result<Vec<u8>, ScepError> {
        let v = attr(o, name)?.ok_or_else(|| bad(format!("no {name}")))?;
        if v.tag() != Tag::OctetString || v.value().is_empty() || v.value().len() > MAX_FIELD {
            return Err(bad(format!(
                "{name}: an OCTET STRING of 1 to {MAX_FIELD} bytes"
            )));
        }
        Ok(v.value().to_vec())
    };
    let (transaction_id, transaction_raw) = text(oid::TRANSACTION_ID, "transactionID")?;
    let sender_nonce = octet_string(oid::SENDER_NONCE, "senderNonce")?;
    let echo = Echo {
        transaction_id: transaction_raw,
        sender_nonce: sender_nonce.clone(),
    };
    // from here on, a refusal can be answered with a signed FAILURE
    let checked = (|| {
        let (message_type, _) = text(oid::MESSAGE_TYPE, "messageType")?;
        let message_type = MessageType::parse(&message_type)
            .filter(|t| *t != MessageType::CertRep)
            .ok_or_else(|| bad(format!("messageType {message_type:?} is not a request")))?;
        let digest = Digest::from_oid(&si.digest_alg.oid).ok_or_else(|| {
            ScepError::new(
                FailInfo::BadAlg,
                format!(
                    "digest {} (SHA-1, SHA-256, SHA-384 or SHA-512)",
                    si.digest_alg.oid
                ),
            )
        })?;
        let check = |reason: &str| ScepError::new(FailInfo::BadMessageCheck, reason.to_string());
        // the signed content is data, and says so in its signed contentType
        let content_type = attr(oid::CONTENT_TYPE, "contentType")?
            .and_then(|v| v.decode_as::<der::asn1::ObjectIdentifier>().ok());
        if sd.encap_content_info.econtent_type != oid::DATA || content_type != Some(oid::DATA) {
            return Err(check("the signed content is not data (contentType)"));
        }
        let envelope = match &sd.encap_content_info.econtent {
            Some(any) if any.tag() == Tag::OctetString || any.tag().is_constructed() => {
                octets(any).map_err(|e| bad(format!("the content: {e}")))?
            }
            _ => return Err(bad("no content")),
        };
        let stated =
            attr(oid::MESSAGE_DIGEST, "messageDigest")?.ok_or_else(|| check("no messageDigest"))?;
        if stated.tag() != Tag::OctetString || stated.value() != digest.hash(&envelope).as_slice() {
            return Err(check("the messageDigest is not the content's"));
        }
        let signer_cert = signer_certificate(&sd, si)?;
        let cert = LooseCertificate::from_der(&signer_cert)
            .map_err(|e| bad(format!("the signer's certificate: {e}")))?;
        let spki = cert.tbs_certificate().subject_public_key_info();
        if !signature_verifies(msg, attrs, spki, digest, si.signature.as_bytes()) {
            return Err(check(
                "the signature does not verify with the signer's certificate",
            ));
        }
        Ok((message_type, digest, envelope, signer_cert))
    })();
    match checked {
        Ok((message_type, digest, envelope, signer_cert)) => Ok(PkiMessage {
            message_type,
            transaction_id,
            sender_nonce,
            echo,
            signer_cert,
            digest,
            envelope,
        }),
        Err(mut e) => {
            e.echo = Some(echo);
            Err(e)
        }
    }
}

/// Whether the signature of `msg`'s (only) SignerInfo over its signed attributes verifies
/// with the key `spki`: over the attributes as received (re-tagged SET OF), else as DER re-encodes
/// them (sorted); both are the same parsed set, checked against the same key. For requests
/// (`parse`) and for the replies a client reads (`request::read_reply`).
pub(super) fn signature_verifies(
    msg: &[u8],
    attrs: &cms::signed_data::SignedAttributes,
    spki: &SubjectPublicKeyInfoOwned,
    digest: Digest,
    signature: &[u8],
) -> bool {
    let mut candidates = Vec::with_capacity(2);
    if let Some(mut raw) = raw_signed_attrs(msg) {
        raw[0] = 0x31;
        candidates.push(raw);
    }
    if let Ok(der) = attrs.to_der() {
        candidates.push(der);
    }
    candidates
        .iter()
        .any(|signed| verifies(spki, digest, signed, signature))
}

/// The certificate the SignerInfo names, from the SignedData's certificates (DER).
fn signer_certificate(sd: &SignedData, si: &SignerInfo) -> Result<Vec<u8>, ScepError> {
    let by_name = match si.sid.tag() {
        Tag::Sequence => Some(
            si.sid
                .decode_as::<IssuerAndSerial>()
                .map_err(|e| bad(format!("the signer's identifier: {e}")))?,
        ),
        _ => None,
    };
    let found = sd
        .certificates
        .iter()
        .flat_map(|set| set.iter())
        .filter(|c| c.tag() == Tag::Sequence)
        .filter_map(|c| c.to_der().ok())
        .find(|der| {
            let Ok(cert) = LooseCertificate::from_der(der) else {
                return false;
            };
            let tbs = cert.tbs_certificate();
            match &by_name {
                Some(ias) => {
                    tbs.issuer() == &ias.issuer
                        && tbs.serial_number().as_bytes() == ias.serial.as_bytes()
                }
                // [0] SubjectKeyIdentifier: the OCTET STRING's content, implicitly tagged
                None => super::subject_key_id_of(tbs).is_some_and(|k| k == si.sid.value()),
            }
        });
    found.ok_or_else(|| bad("the signer's certificate is not in the message"))
}

/// Whether `sig` over `signed` verifies with this RSA or EC key.
fn verifies(spki: &SubjectPublicKeyInfoOwned, digest: Digest, signed: &[u8], sig: &[u8]) -> bool {
    use aws_lc_rs::signature as s;
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
    let ber = der::EncodingRules::Ber;
    let mut r = SliceReader::new_with_encoding_rules(msg, ber).ok()?;
    let ci = r.tlv_bytes().ok()?;
    let mut r = SliceReader::new_with_encoding_rules(ci, ber).ok()?;
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
