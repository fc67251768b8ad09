//! The CertRep (RFC 8894 §3.3.2): a SignedData signed by the RA, whose signed attributes
//! carry messageType 3, pkiStatus, failInfo, a new senderNonce, the request's senderNonce as
//! recipientNonce and its transactionID; on success its content is an EnvelopedData, for
//! the requester's key, of a degenerate certs-only SignedData holding the issued certificate
//! only (a chain there made iOS pair the CA with its key: UCM issue 228).
//!
//! Built from `cms`'s plain types (its `builder` feature would bring RustCrypto's RSA, with
//! the Marvin advisory, and has no 3DES); RSA and AES by aws-lc-rs, 3DES by RustCrypto.
//! Signed with SHA-256 whatever the request used. Ask `can_encrypt_to` before issuing.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::EncryptedContentInfo;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, PrintableString, SetOfVec};
use der::{Any, Decode, Encode, Tag};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::envelope::Cipher;
use super::{Digest, Echo, FailInfo, oid};

/// The RA: its certificate (sent with every reply) and its RSA key.
pub struct Signer {
    pub cert: Certificate,
    pub key: aws_lc_rs::signature::RsaKeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(redacted)")
    }
}

/// What the reply says.
#[derive(Debug, Clone)]
pub enum Status {
    /// Issued: the certificate (DER), enveloped for `recipient` (a DER certificate with an
    /// RSA key: the request's signer) with `cipher` (the request's; DES becomes 3DES).
    Success {
        payload: Payload,
        recipient: Vec<u8>,
        cipher: Cipher,
    },
    /// Waiting for a decision: the client polls with CertPoll.
    Pending,
    Failure(FailInfo),
}

/// What a successful reply carries, as a degenerate certs-only SignedData.
#[derive(Debug, Clone)]
pub enum Payload {
    /// The issued (PKCSReq, RenewalReq, CertPoll) or asked-for (GetCert) certificate, DER.
    Cert(Vec<u8>),
    /// The CRL (GetCRL), DER.
    Crl(Vec<u8>),
}

/// Our own failure to build a reply (not the client's): the caller answers 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("building the SCEP reply: {0}")]
pub struct ReplyError(String);

fn internal(e: impl std::fmt::Display) -> ReplyError {
    ReplyError(e.to_string())
}

/// A certificate as clients send it: serial numbers longer than RFC 5280's 20 bytes too
/// (certmonger's self-signed request certificates carry 32).
pub type LooseCertificate = x509_cert::certificate::CertificateInner<Loose>;

/// x509-cert's profile without the serial number's length limit (its own `Raw` is behind
/// the `hazmat` feature, which turns off more).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Copy, Clone, Default)]
pub struct Loose;

impl x509_cert::certificate::Profile for Loose {
    fn check_serial_number(_: &x509_cert::serial_number::SerialNumber<Self>) -> der::Result<()> {
        Ok(())
    }
}

/// Whether a reply can be enveloped for this certificate's key (RSA, 2048 bits or more):
/// asked before issuing, so that nothing is issued that cannot be delivered.
pub fn can_encrypt_to(cert_der: &[u8]) -> bool {
    LooseCertificate::from_der(cert_der)
        .ok()
        .and_then(|c| c.tbs_certificate().subject_public_key_info().to_der().ok())
        .and_then(|spki| aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki).ok())
        .and_then(|k| aws_lc_rs::rsa::Pkcs1PublicEncryptingKey::new(k).ok())
        .is_some()
}

fn issuer_and_serial(c: &Certificate) -> IssuerAndSerialNumber {
    IssuerAndSerialNumber {
        issuer: c.tbs_certificate().issuer().clone(),
        serial_number: c.tbs_certificate().serial_number().clone(),
    }
}

fn random(n: usize) -> Result<Vec<u8>, ReplyError> {
    let mut b = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| internal("no randomness"))?;
    Ok(b)
}

/// The CertRep answering `req` (DER).
pub fn cert_rep(req: &Echo, status: &Status, signer: &Signer) -> Result<Vec<u8>, ReplyError> {
    let (pki_status, fail, content) = match status {
        Status::Success {
            payload,
            recipient,
            cipher,
        } => {
            let degenerate = match payload {
                Payload::Cert(der) => degenerate(&[der.as_slice()], &[])?,
                Payload::Crl(der) => degenerate(&[], &[der.as_slice()])?,
            };
            // DES only for reading: a DES request gets 3DES (OpenSSL 3 has no DES by default)
            let cipher = if *cipher == Cipher::DesCbc {
                Cipher::DesEde3Cbc
            } else {
                *cipher
            };
            ("0", None, envelope_to(&degenerate, recipient, cipher)?)
        }
        Status::Pending => ("3", None, Vec::new()),
        Status::Failure(f) => ("2", Some(*f), Vec::new()),
    };
    let mut attrs = vec![
        attribute(oid::MESSAGE_TYPE, printable("3")?)?,
        attribute(oid::PKI_STATUS, printable(pki_status)?)?,
        attribute(oid::SENDER_NONCE, octets(&random(16)?)?)?,
        attribute(oid::RECIPIENT_NONCE, octets(&req.sender_nonce)?)?,
        // exactly as sent: its string type and bytes
        attribute(oid::TRANSACTION_ID, req.transaction_id.clone())?,
    ];
    if let Some(f) = fail {
        attrs.push(attribute(oid::FAIL_INFO, printable(f.code())?)?);
    }
    // PENDING and FAILURE: an empty content, as micromdm sends
    signed_message(&content, attrs, signer)
}

/// A SignedData (as a ContentInfo, DER) of `content`, signed with SHA-256 by `signer`,
/// its certificate included, with `attrs` and the contentType and messageDigest attributes
/// signed: the frame of every SCEP message, request or reply.
pub fn signed_message(
    content: &[u8],
    attrs: Vec<Attribute>,
    signer: &Signer,
) -> Result<Vec<u8>, ReplyError> {
    let mut set = SetOfVec::new();
    set.insert(attribute(
        oid::CONTENT_TYPE,
        Any::encode_from(&oid::DATA).map_err(internal)?,
    )?)
    .map_err(internal)?;
    set.insert(attribute(
        oid::MESSAGE_DIGEST,
        octets(&Digest::Sha256.hash(content))?,
    )?)
    .map_err(internal)?;
    for a in attrs {
        set.insert(a).map_err(internal)?;
    }
    // the bytes signed: the attributes as a DER SET OF (RFC 5652 §5.4)
    let signed = set.to_der().map_err(internal)?;
    let mut signature = vec![0u8; signer.key.public_modulus_len()];
    signer
        .key
        .sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            &signed,
            &mut signature,
        )
        .map_err(|_| internal("the RSA signature failed"))?;
    let sha256 = AlgorithmIdentifierOwned {
        oid: SHA_256,
        parameters: None,
    };
    let si = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(issuer_and_serial(&signer.cert)),
        digest_alg: sha256.clone(),
        signed_attrs: Some(set),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: oid::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature).map_err(internal)?,
        unsigned_attrs: None,
    };
    let mut digests = SetOfVec::new();
    digests.insert(sha256).map_err(internal)?;
    let mut certs = SetOfVec::new();
    certs
        .insert(CertificateChoices::Certificate(signer.cert.clone()))
        .map_err(internal)?;
    let mut signers = SetOfVec::new();
    signers.insert(si).map_err(internal)?;
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: digests,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::DATA,
            econtent: Some(octets(content)?),
        },
        certificates: Some(CertificateSet(certs)),
        crls: None,
        signer_infos: SignerInfos(signers),
    };
    ContentInfo {
        content_type: oid::SIGNED_DATA,
        content: Any::encode_from(&sd).map_err(internal)?,
    }
    .to_der()
    .map_err(internal)
}

/// A SCEP attribute: `oid` with one value.
pub fn attribute(o: der::asn1::ObjectIdentifier, value: Any) -> Result<Attribute, ReplyError> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(internal)?;
    Ok(Attribute { oid: o, values })
}

/// A PrintableString value (messageType, pkiStatus, failInfo, transactionID).
pub fn printable(s: &str) -> Result<Any, ReplyError> {
    Any::encode_from(&PrintableString::new(s).map_err(internal)?).map_err(internal)
}

/// An OCTET STRING value (the nonces).
pub fn octets(b: &[u8]) -> Result<Any, ReplyError> {
    Any::encode_from(&OctetString::new(b).map_err(internal)?).map_err(internal)
}

/// A degenerate certs-only SignedData (ContentInfo, DER) with the certificates in the
/// order given (GetCACert: RA first) and the CRLs.
pub fn degenerate(certs: &[&[u8]], crls: &[&[u8]]) -> Result<Vec<u8>, ReplyError> {
    let mut set = Vec::new();
    for c in certs {
        set.push(CertificateChoices::Certificate(
            Certificate::from_der(c).map_err(internal)?,
        ));
    }
    let crls = if crls.is_empty() {
        None
    } else {
        let mut list = Vec::new();
        for c in crls {
            list.push(cms::revocation::RevocationInfoChoice::Crl(
                x509_cert::crl::CertificateList::from_der(c).map_err(internal)?,
            ));
        }
        Some(cms::revocation::RevocationInfoChoices(
            SetOfVec::try_from(list).map_err(internal)?,
        ))
    };
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(set).map_err(internal)?)),
        crls,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let mut der = ContentInfo {
        content_type: oid::SIGNED_DATA,
        content: Any::encode_from(&sd).map_err(internal)?,
    }
    .to_der()
    .map_err(internal)?;
    if certs.len() > 1 {
        // a SET OF is sorted when encoded; the certificates go back in the order given,
        // which clients read as meaning (same bytes, same length: only their order changes)
        let sorted: Vec<u8> = {
            let mut each: Vec<&[u8]> = certs.to_vec();
            each.sort();
            each.concat()
        };
        let given = certs.concat();
        let at = der
            .windows(sorted.len())
            .position(|w| w == sorted.as_slice())
            .ok_or_else(|| internal("the certificates are not where they were put"))?;
        der[at..at + sorted.len()].copy_from_slice(&given);
    }
    Ok(der)
}

const SHA_256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// `plain` enveloped (EnvelopedData in a ContentInfo, DER) for `recipient`'s RSA key
/// (a DER certificate) with `cipher`, the content key by PKCS#1 v1.5 key transport.
pub fn envelope_to(plain: &[u8], recipient: &[u8], cipher: Cipher) -> Result<Vec<u8>, ReplyError> {
    let recipient = LooseCertificate::from_der(recipient).map_err(internal)?;
    let cek = zeroize::Zeroizing::new(random(cipher.key_len())?);
    let (iv, ciphertext) = cipher
        .encrypt(&cek, plain)
        .ok_or_else(|| internal("encryption"))?;
    let spki = recipient
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(internal)?;
    let bad_key =
        || internal("the requester's key is not RSA of 2048 bits or more (can_encrypt_to)");
    let public = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki).map_err(|_| bad_key())?;
    let public = aws_lc_rs::rsa::Pkcs1PublicEncryptingKey::new(public).map_err(|_| bad_key())?;
    let mut wrapped = vec![0u8; public.ciphertext_size()];
    let wrapped = public
        .encrypt(&cek, &mut wrapped)
        .map_err(|_| internal("key transport"))?
        .to_vec();
    // written out by hand: cms's types hold RFC 5280 serial numbers only, and the
    // recipient's (a client's self-signed certificate) may be longer
    let tbs = recipient.tbs_certificate();
    let rid = tlv(
        Tag::Sequence,
        &[
            tbs.issuer().to_der().map_err(internal)?,
            tlv(Tag::Integer, tbs.serial_number().as_bytes())?,
        ]
        .concat(),
    )?;
    let ktri = tlv(
        Tag::Sequence,
        &[
            tlv(Tag::Integer, &[0])?,
            rid,
            AlgorithmIdentifierOwned {
                oid: oid::RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            }
            .to_der()
            .map_err(internal)?,
            tlv(Tag::OctetString, &wrapped)?,
        ]
        .concat(),
    )?;
    let eci = EncryptedContentInfo {
        content_type: oid::DATA,
        content_enc_alg: AlgorithmIdentifierOwned {
            oid: cipher.oid(),
            parameters: Some(octets(&iv)?),
        },
        encrypted_content: Some(OctetString::new(ciphertext).map_err(internal)?),
    }
    .to_der()
    .map_err(internal)?;
    let ed = tlv(
        Tag::Sequence,
        &[tlv(Tag::Integer, &[0])?, tlv(Tag::Set, &ktri)?, eci].concat(),
    )?;
    let ed = Any::from_der(&ed).map_err(internal)?;
    ContentInfo {
        content_type: oid::ENVELOPED_DATA,
        content: ed,
    }
    .to_der()
    .map_err(internal)
}

/// One DER TLV.
fn tlv(tag: Tag, content: &[u8]) -> Result<Vec<u8>, ReplyError> {
    let mut out = der::Header::new(tag, der::Length::try_from(content.len()).map_err(internal)?)
        .to_der()
        .map_err(internal)?;
    out.extend_from_slice(content);
    Ok(out)
}
