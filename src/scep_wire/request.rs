//! The client's side of SCEP (RFC 8894), pure: requests built (PKCSReq, RenewalReq,
//! CertPoll, GetCert, GetCRL: a pkiMessage signed with SHA-256 by the requester, its content
//! enveloped to the RA), a CertRep read (the RA's signature, our nonce and transactionID,
//! the status, the certificates and CRLs inside), and a GetCACert answer read (which
//! certificate is the RA's and which the CA's, the way INTEROP.md says clients choose).
//!
//! No I/O: bytes in, bytes or typed values out (nonces and keys from the system's random
//! source).

use aws_lc_rs::signature::KeyPair as _;
use cms::signed_data::SignedData;
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::Certificate;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use super::envelope::{Cipher, RecipientKey};
use super::reply::{self, Signer};
use super::{CertName, Digest, FailInfo, MessageType, content_of, octets, oid};

/// What went wrong building a request or reading an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request cannot be built (a key, a certificate, a name): a local problem.
    #[error("{0}")]
    Local(String),
    /// The answer is not a CertRep that can be read.
    #[error("the reply cannot be read: {0}")]
    Malformed(String),
    /// The answer's signature is not the RA's.
    #[error("the reply is not signed by the RA: {0}")]
    Untrusted(String),
    /// The answer is the RA's, but for another request (transactionID, recipientNonce).
    #[error("the reply does not answer this request: {0}")]
    Mismatch(String),
    /// The GetCACert answer cannot be used.
    #[error("the CA certificates: {0}")]
    CaCerts(String),
}

fn local(e: impl std::fmt::Display) -> RequestError {
    RequestError::Local(e.to_string())
}

fn malformed(e: impl std::fmt::Display) -> RequestError {
    RequestError::Malformed(e.to_string())
}

/// `failInfo` from its PrintableString digits.
pub fn fail_info(code: &str) -> Option<FailInfo> {
    Some(match code.trim() {
        "0" => FailInfo::BadAlg,
        "1" => FailInfo::BadMessageCheck,
        "2" => FailInfo::BadRequest,
        "3" => FailInfo::BadTime,
        "4" => FailInfo::BadCertId,
        _ => return None,
    })
}

/// `failInfo` as RFC 8894 names it.
pub fn fail_name(f: FailInfo) -> &'static str {
    match f {
        FailInfo::BadAlg => "badAlg",
        FailInfo::BadMessageCheck => "badMessageCheck",
        FailInfo::BadRequest => "badRequest",
        FailInfo::BadTime => "badTime",
        FailInfo::BadCertId => "badCertId",
    }
}

/// Who signs a request and reads the reply: a certificate and its RSA key (the reply's
/// envelope is for the signer's certificate).
pub struct Requester {
    signer: Signer,
    decrypt: RecipientKey,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Requester(redacted)")
    }
}

impl Requester {
    /// A certificate (DER) and its RSA private key (PKCS#8 DER): a renewal's current
    /// certificate, or the certificate asking for GetCert and GetCRL.
    pub fn new(cert_der: &[u8], key_pkcs8: &[u8]) -> Result<Self, RequestError> {
        let cert = Certificate::from_der(cert_der)
            .map_err(|e| local(format!("the certificate cannot be read: {e}")))?;
        let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(key_pkcs8)
            .map_err(|_| local("the key is not an RSA key in PKCS#8 (SCEP needs RSA)"))?;
        let spki = cert.tbs_certificate().subject_public_key_info();
        if spki.algorithm.oid != oid::RSA_ENCRYPTION
            || spki.subject_public_key.raw_bytes() != key.public_key().as_ref()
        {
            return Err(local("the key is not the certificate's"));
        }
        let decrypt = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(key_pkcs8)
            .map_err(|_| local("the RSA key cannot decrypt (2048 bits or more are needed)"))?;
        Ok(Self {
            signer: Signer {
                cert: cert.clone(),
                key,
            },
            decrypt: RecipientKey { cert, key: decrypt },
        })
    }

    /// A self-signed certificate for an RSA key (PKCS#8 DER) with `subject` (the CSR's):
    /// the signer of a first PKCSReq and its CertPolls (RFC 8894 §2.3). Valid from an hour
    /// ago for 30 days.
    pub fn self_signed(key_pkcs8: &[u8], subject: &Name) -> Result<Self, RequestError> {
        let kp = rcgen::KeyPair::try_from(key_pkcs8)
            .map_err(|e| local(format!("the key cannot sign: {e}")))?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name =
            crate::est::dn_from_name(subject).map_err(|e| local(format!("the subject: {e}")))?;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(30);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params
            .self_signed(&kp)
            .map_err(|e| local(format!("the self-signed certificate: {e}")))?;
        Self::new(cert.der(), key_pkcs8)
    }

    /// The signer's certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.signer.cert
    }

    /// The default transactionID: the hex SHA-256 of the signer's SubjectPublicKeyInfo (the
    /// same for every request made with this key, so that a restarted client can poll).
    pub fn transaction_id(&self) -> Result<String, RequestError> {
        let spki = self
            .signer
            .cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(local)?;
        Ok(crate::est::hex(&Digest::Sha256.hash(&spki)))
    }
}

/// A request built: what to send, and what its reply must echo.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message_type: MessageType,
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
    /// The pkiMessage (DER).
    pub der: Vec<u8>,
}

/// A pkiMessage of `message_type` whose `content` is enveloped with `cipher` to the RA's
/// certificate `ra` (DER, RSA), signed by `requester`; the transactionID is the given one
/// or the requester's default.
pub fn request(
    message_type: MessageType,
    content: &[u8],
    requester: &Requester,
    ra: &[u8],
    cipher: Cipher,
    transaction_id: Option<&str>,
) -> Result<Sent, RequestError> {
    if cipher == Cipher::DesCbc {
        return Err(local("single DES is never used for a request"));
    }
    let transaction_id = match transaction_id {
        Some(t) => t.to_string(),
        None => requester.transaction_id()?,
    };
    if transaction_id.is_empty() || transaction_id.len() > 128 {
        return Err(local("a transaction ID of 1 to 128 characters is needed"));
    }
    let envelope = reply::envelope_to(content, ra, cipher).map_err(local)?;
    let mut sender_nonce = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut sender_nonce).map_err(|_| local("no randomness"))?;
    let txid = reply::printable(&transaction_id).map_err(|_| {
        local("the transaction ID must be a PrintableString (letters, digits, space, '()+,-./:=?)")
    })?;
    let attrs = vec![
        reply::attribute(
            oid::MESSAGE_TYPE,
            reply::printable(message_type.code()).map_err(local)?,
        )
        .map_err(local)?,
        reply::attribute(oid::TRANSACTION_ID, txid).map_err(local)?,
        reply::attribute(
            oid::SENDER_NONCE,
            reply::octets(&sender_nonce).map_err(local)?,
        )
        .map_err(local)?,
    ];
    let der = reply::signed_message(&envelope, attrs, &requester.signer).map_err(local)?;
    Ok(Sent {
        message_type,
        transaction_id,
        sender_nonce,
        der,
    })
}

/// PKCSReq (19): a DER PKCS#10 request, signed by a self-signed certificate of its key (or,
/// for a renewal the way certmonger sends it, by the current certificate).
pub fn pkcs_req(
    csr: &[u8],
    requester: &Requester,
    ra: &[u8],
    cipher: Cipher,
    transaction_id: Option<&str>,
) -> Result<Sent, RequestError> {
    request(
        MessageType::PkcsReq,
        csr,
        requester,
        ra,
        cipher,
        transaction_id,
    )
}

/// RenewalReq (17): a DER PKCS#10 request signed by the certificate being renewed.
pub fn renewal_req(
    csr: &[u8],
    requester: &Requester,
    ra: &[u8],
    cipher: Cipher,
    transaction_id: Option<&str>,
) -> Result<Sent, RequestError> {
    request(
        MessageType::RenewalReq,
        csr,
        requester,
        ra,
        cipher,
        transaction_id,
    )
}

#[derive(der::Sequence)]
struct IssuerAndSubject {
    issuer: Name,
    subject: Name,
}

/// CertPoll (20): IssuerAndSubject (the CA's subject, the request's subject), with the
/// PKCSReq's transactionID, signed by the same requester.
pub fn cert_poll(
    issuer: &Name,
    subject: &Name,
    requester: &Requester,
    ra: &[u8],
    cipher: Cipher,
    transaction_id: &str,
) -> Result<Sent, RequestError> {
    let content = IssuerAndSubject {
        issuer: issuer.clone(),
        subject: subject.clone(),
    }
    .to_der()
    .map_err(local)?;
    request(
        MessageType::CertPoll,
        &content,
        requester,
        ra,
        cipher,
        Some(transaction_id),
    )
}

fn issuer_and_serial(issuer: &Name, serial: &SerialNumber) -> Result<Vec<u8>, RequestError> {
    cms::cert::IssuerAndSerialNumber {
        issuer: issuer.clone(),
        serial_number: serial.clone(),
    }
    .to_der()
    .map_err(local)
}

/// GetCert (21): the certificate `serial` of the CA named `issuer`.
pub fn get_cert(
    issuer: &Name,
    serial: &SerialNumber,
    requester: &Requester,
    ra: &[u8],
    cipher: Cipher,
) -> Result<Sent, RequestError> {
    by_issuer_and_serial(MessageType::GetCert, issuer, serial, requester, ra, cipher)
}

/// GetCRL (22): the CRL that covers a certificate the requester holds (its issuer and
/// serial).
pub fn get_crl(
    issuer: &Name,
    serial: &SerialNumber,
    requester: &Requester,
    ra: &[u8],
    cipher: Cipher,
) -> Result<Sent, RequestError> {
    by_issuer_and_serial(MessageType::GetCrl, issuer, serial, requester, ra, cipher)
}

/// A request whose content is an IssuerAndSerialNumber (GetCert, GetCRL).
fn by_issuer_and_serial(
    message_type: MessageType,
    issuer: &Name,
    serial: &SerialNumber,
    requester: &Requester,
    ra: &[u8],
    cipher: Cipher,
) -> Result<Sent, RequestError> {
    let content = issuer_and_serial(issuer, serial)?;
    request(message_type, &content, requester, ra, cipher, None)
}

/// A PKCS#10 request (DER) for `key` with this subject and SAN, and the challengePassword
/// attribute (1.2.840.113549.1.9.7) when given.
pub fn csr(
    key: &rcgen::KeyPair,
    subject: rcgen::DistinguishedName,
    san: &[crate::est::SanEntry],
    challenge: Option<&str>,
) -> Result<Vec<u8>, RequestError> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = subject;
    if !san.is_empty() {
        let der = crate::est::encode_san(san).map_err(local)?;
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[2, 5, 29, 17],
                der,
            ));
    }
    let mut attrs = Vec::new();
    if let Some(secret) = challenge {
        // PrintableString when it can be one (what sscep sends), else UTF8String
        let value = match der::asn1::PrintableStringRef::new(secret) {
            Ok(p) => p.to_der(),
            Err(_) => der::asn1::Utf8StringRef::new(secret).and_then(|u| u.to_der()),
        }
        .map_err(|e| local(format!("the challenge password: {e}")))?;
        attrs.push(rcgen::Attribute {
            oid: &[1, 2, 840, 113549, 1, 9, 7],
            values: crate::est::tlv(0x31, &value),
        });
    }
    let req = params
        .serialize_request_with_attributes(key, attrs)
        .map_err(|e| local(format!("the CSR: {e}")))?;
    Ok(req.der().to_vec())
}

/// What a CertRep says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The certificates and CRLs of the degenerate PKCS#7 in the envelope, DER, in the
    /// order the RA put them.
    Success {
        certs: Vec<Vec<u8>>,
        crls: Vec<Vec<u8>>,
    },
    /// Waiting for a decision: poll with CertPoll.
    Pending,
    /// Refused, with the failInfo when the RA gave one that is known.
    Failure(Option<FailInfo>),
}

/// Reads the CertRep `msg` answering `sent`: signed by one of the `trusted` certificates
/// (DER: the RA's, from GetCACert; the signer is found among them, never taken from the
/// message), messageType 3, our transactionID and our senderNonce as its recipientNonce;
/// a SUCCESS's envelope is opened with the requester's key.
pub fn read_reply(
    msg: &[u8],
    sent: &Sent,
    trusted: &[Vec<u8>],
    requester: &Requester,
) -> Result<Reply, RequestError> {
    let inner = content_of(msg, oid::SIGNED_DATA, "SignedData", FailInfo::BadRequest)
        .map_err(|e| malformed(e.reason))?;
    let sd = SignedData::from_ber(&inner).map_err(|e| malformed(format!("SignedData: {e}")))?;
    let si = match sd.signer_infos.0.as_slice() {
        [si] => si,
        [] => return Err(malformed("no signer")),
        _ => return Err(malformed("more than one signer")),
    };
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| malformed("no signed attributes"))?;
    let attr = |o: ObjectIdentifier, name: &str| -> Result<Option<&der::Any>, RequestError> {
        let mut found = attrs.iter().filter(|a| a.oid == o);
        match (found.next(), found.next()) {
            (None, _) => Ok(None),
            (Some(a), None) if a.values.len() == 1 => Ok(a.values.iter().next()),
            _ => Err(malformed(format!("{name} more than once"))),
        }
    };
    // the signature first: nothing of the reply counts before it verifies
    let digest = Digest::from_oid(&si.digest_alg.oid)
        .ok_or_else(|| malformed(format!("digest {}", si.digest_alg.oid)))?;
    let name = match &si.sid {
        cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(ias) => {
            CertName::IssuerAndSerial(ias)
        }
        cms::signed_data::SignerIdentifier::SubjectKeyIdentifier(ski) => {
            CertName::SubjectKeyId(ski.0.as_bytes())
        }
    };
    let signer = trusted
        .iter()
        .filter_map(|der| Certificate::from_der(der).ok())
        .find(|c| name.names(c))
        .ok_or_else(|| {
            RequestError::Untrusted(
                "signed by a certificate other than the RA's (fetch the CA certificates again?)"
                    .into(),
            )
        })?;
    let content_type = attr(oid::CONTENT_TYPE, "contentType")?
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok());
    if sd.encap_content_info.econtent_type != oid::DATA || content_type != Some(oid::DATA) {
        return Err(malformed("the signed content is not data (contentType)"));
    }
    // PENDING and FAILURE may come with no content at all
    let content = match &sd.encap_content_info.econtent {
        Some(any) => octets(any).map_err(|e| malformed(format!("the content: {e}")))?,
        None => Vec::new(),
    };
    let stated = attr(oid::MESSAGE_DIGEST, "messageDigest")?
        .ok_or_else(|| RequestError::Untrusted("no messageDigest".into()))?;
    if stated.tag() != Tag::OctetString || stated.value() != digest.hash(&content).as_slice() {
        return Err(RequestError::Untrusted(
            "the messageDigest is not the content's".into(),
        ));
    }
    if !super::message::signature_verifies(
        msg,
        attrs,
        signer.tbs_certificate().subject_public_key_info(),
        digest,
        si.signature.as_bytes(),
    ) {
        return Err(RequestError::Untrusted(
            "the signature does not verify with the RA's certificate".into(),
        ));
    }
    // now the attributes are the RA's
    let text = |o, name: &str| -> Result<String, RequestError> {
        let v = attr(o, name)?.ok_or_else(|| malformed(format!("no {name}")))?;
        if ![Tag::PrintableString, Tag::Ia5String, Tag::Utf8String].contains(&v.tag()) {
            return Err(malformed(format!("{name} is not a string")));
        }
        String::from_utf8(v.value().to_vec()).map_err(|_| malformed(format!("{name} is not text")))
    };
    let message_type = text(oid::MESSAGE_TYPE, "messageType")?;
    if MessageType::parse(&message_type) != Some(MessageType::CertRep) {
        return Err(malformed(format!(
            "messageType {message_type:?}, not a CertRep (3)"
        )));
    }
    let txid = text(oid::TRANSACTION_ID, "transactionID")?;
    if txid != sent.transaction_id {
        return Err(RequestError::Mismatch(format!(
            "transactionID {txid:?}, not {:?}",
            sent.transaction_id
        )));
    }
    let recipient_nonce = attr(oid::RECIPIENT_NONCE, "recipientNonce")?
        .filter(|v| v.tag() == Tag::OctetString)
        .map(|v| v.value().to_vec());
    if recipient_nonce.as_deref() != Some(sent.sender_nonce.as_slice()) {
        return Err(RequestError::Mismatch(
            "its recipientNonce is not our senderNonce".into(),
        ));
    }
    match text(oid::PKI_STATUS, "pkiStatus")?.trim() {
        "0" => {
            if content.is_empty() {
                return Err(malformed("SUCCESS without content"));
            }
            let (plain, _) =
                super::envelope::open(&content, std::slice::from_ref(&requester.decrypt))
                    .map_err(|e| malformed(format!("the envelope: {}", e.reason)))?;
            let Bundle { certs, crls } = degenerate_contents(&plain)?;
            Ok(Reply::Success { certs, crls })
        }
        "2" => {
            let fail = match attr(oid::FAIL_INFO, "failInfo")? {
                Some(v) => std::str::from_utf8(v.value()).ok().and_then(fail_info),
                None => None,
            };
            Ok(Reply::Failure(fail))
        }
        "3" => Ok(Reply::Pending),
        other => Err(malformed(format!("pkiStatus {other:?}"))),
    }
}

/// The certificates and the CRLs of a degenerate PKCS#7 (DER each, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundle {
    pub certs: Vec<Vec<u8>>,
    pub crls: Vec<Vec<u8>>,
}

/// The certificates and the CRLs (DER each) of a degenerate certs-only PKCS#7, in the
/// order they are in the message (read as BER: DER would sort the SET OF).
pub fn degenerate_contents(der: &[u8]) -> Result<Bundle, RequestError> {
    let inner = content_of(
        der,
        oid::SIGNED_DATA,
        "a PKCS#7 SignedData",
        FailInfo::BadRequest,
    )
    .map_err(|e| malformed(e.reason))?;
    let sd = SignedData::from_ber(&inner).map_err(|e| malformed(format!("the PKCS#7: {e}")))?;
    let mut certs = Vec::new();
    for c in sd.certificates.iter().flat_map(|s| s.0.iter()) {
        if let cms::cert::CertificateChoices::Certificate(c) = c {
            certs.push(c.to_der().map_err(malformed)?);
        }
    }
    let mut crls = Vec::new();
    for c in sd.crls.iter().flat_map(|s| s.0.iter()) {
        if let cms::revocation::RevocationInfoChoice::Crl(c) = c {
            crls.push(c.to_der().map_err(malformed)?);
        }
    }
    Ok(Bundle { certs, crls })
}

/// A GetCACert answer: every certificate, in order, and which one does what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCerts {
    /// Every certificate (DER), in the order received.
    pub all: Vec<Vec<u8>>,
    /// The CA: the issuer of the RA (or the only certificate).
    pub ca: Vec<u8>,
    /// What requests are enveloped to: RSA, keyEncipherment, issued by (not issuing) the
    /// others.
    pub encryption: Vec<u8>,
    /// What signs the replies: digitalSignature, issued by (not issuing) the others.
    pub signing: Vec<u8>,
}

/// Media types of a GetCACert answer.
pub const CT_CA_CERT: &str = "application/x-x509-ca-cert";
pub const CT_CA_RA_CERT: &str = "application/x-x509-ca-ra-cert";

/// Reads a GetCACert answer: `application/x-x509-ca-cert` (one DER certificate) or
/// `application/x-x509-ca-ra-cert` (a degenerate PKCS#7, order kept); another media type
/// is read by what the body holds.
pub fn ca_certs(content_type: &str, body: &[u8]) -> Result<CaCerts, RequestError> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let bad = |e: &dyn std::fmt::Display| RequestError::CaCerts(e.to_string());
    let certs = match media.as_str() {
        CT_CA_CERT => vec![
            Certificate::from_der(body)
                .map_err(|e| bad(&format!("not a DER certificate: {e}")))?
                .to_der()
                .map_err(|e| bad(&e))?,
        ],
        CT_CA_RA_CERT => degenerate_contents(body).map_err(|e| bad(&e))?.certs,
        _ => match Certificate::from_der(body) {
            Ok(c) => vec![c.to_der().map_err(|e| bad(&e))?],
            Err(_) => {
                degenerate_contents(body)
                    .map_err(|_| bad(&format!("{media:?}: neither a certificate nor a PKCS#7")))?
                    .certs
            }
        },
    };
    pick(certs)
}

/// The key usage of a certificate, `None` when it has no such extension (any use).
fn key_usage(c: &Certificate) -> Option<x509_cert::ext::pkix::KeyUsage> {
    c.tbs_certificate()
        .get_extension::<x509_cert::ext::pkix::KeyUsage>()
        .ok()
        .flatten()
        .map(|(_, ku)| ku)
}

/// Which of these certificates (DER, in the order received) is the CA, which the RA's for
/// encryption and which for signing: the RA's are the ones no other certificate names as
/// its issuer, chosen by key usage; the CA is the RA's issuer.
pub fn pick(all: Vec<Vec<u8>>) -> Result<CaCerts, RequestError> {
    let bad = |s: String| RequestError::CaCerts(s);
    if all.is_empty() {
        return Err(bad("no certificate".into()));
    }
    let parsed = all
        .iter()
        .map(|d| Certificate::from_der(d).map_err(|e| bad(format!("a certificate: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let subject = |i: usize| parsed[i].tbs_certificate().subject();
    let issuer = |i: usize| parsed[i].tbs_certificate().issuer();
    let issues_another = |i: usize| (0..parsed.len()).any(|j| j != i && issuer(j) == subject(i));
    let rsa = |i: usize| {
        parsed[i]
            .tbs_certificate()
            .subject_public_key_info()
            .algorithm
            .oid
            == oid::RSA_ENCRYPTION
    };
    let leaf = |i: usize| !issues_another(i);
    let encrypts = |i: usize| rsa(i) && key_usage(&parsed[i]).is_none_or(|k| k.key_encipherment());
    let signs = |i: usize| key_usage(&parsed[i]).is_none_or(|k| k.digital_signature());
    let n = parsed.len();
    let encryption = (0..n)
        .find(|&i| leaf(i) && encrypts(i))
        .or_else(|| (0..n).find(|&i| encrypts(i)))
        .or_else(|| (0..n).find(|&i| leaf(i) && rsa(i)))
        .or_else(|| (0..n).find(|&i| rsa(i)))
        .ok_or_else(|| {
            bad("no RSA certificate to encrypt requests to (SCEP needs an RSA CA or RA)".into())
        })?;
    let signing = if signs(encryption) {
        encryption
    } else {
        (0..n).find(|&i| leaf(i) && signs(i)).unwrap_or(encryption)
    };
    let ca = (0..n)
        .find(|&j| j != encryption && subject(j) == issuer(encryption))
        .unwrap_or(encryption);
    Ok(CaCerts {
        ca: all[ca].clone(),
        encryption: all[encryption].clone(),
        signing: all[signing].clone(),
        all,
    })
}

impl CaCerts {
    /// The CA's subject (the issuer in CertPoll and GetCert).
    pub fn ca_subject(&self) -> Result<Name, RequestError> {
        Certificate::from_der(&self.ca)
            .map(|c| c.tbs_certificate().subject().clone())
            .map_err(|e| RequestError::CaCerts(e.to_string()))
    }

    /// The certificates a reply may be signed by: the signing one, then the others.
    pub fn reply_signers(&self) -> Vec<Vec<u8>> {
        let mut out = vec![self.signing.clone()];
        out.extend(self.all.iter().filter(|c| **c != self.signing).cloned());
        out
    }

    /// Checks that every certificate is linked to the CA by verified signatures (issued by
    /// it, directly or through others, or issuing it): when the CA is trusted by its
    /// fingerprint, so is then the rest of the answer. Names the first that is not.
    pub fn verify_chain(&self) -> Result<(), RequestError> {
        let parsed = self
            .all
            .iter()
            .map(|d| Certificate::from_der(d).map_err(|e| RequestError::CaCerts(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let mut trusted: Vec<bool> = self.all.iter().map(|d| *d == self.ca).collect();
        if !trusted.iter().any(|t| *t) {
            return Err(RequestError::CaCerts("the CA is not in the answer".into()));
        }
        loop {
            let mut changed = false;
            for i in 0..parsed.len() {
                if trusted[i] {
                    continue;
                }
                let linked = (0..parsed.len()).any(|j| {
                    trusted[j]
                        && (signed_by(&parsed[i], &parsed[j]) || signed_by(&parsed[j], &parsed[i]))
                });
                if linked {
                    trusted[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        match trusted.iter().position(|t| !*t) {
            None => Ok(()),
            Some(i) => Err(RequestError::CaCerts(format!(
                "{} is not signed by the CA (nor by a certificate the CA signed)",
                parsed[i].tbs_certificate().subject()
            ))),
        }
    }
}

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Whether `cert`'s signature verifies with `issuer`'s key (and `issuer` is named as its
/// issuer): RSA PKCS#1 v1.5 and PSS with SHA-2, ECDSA P-256/P-384, Ed25519.
pub fn signed_by(cert: &Certificate, issuer: &Certificate) -> bool {
    use aws_lc_rs::signature as s;
    if cert.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return false;
    }
    let Ok(tbs) = cert.tbs_certificate().to_der() else {
        return false;
    };
    let Some(sig) = cert.signature().as_bytes() else {
        return false;
    };
    let key = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    let p384 = key.len() == 97;
    let alg = cert.signature_algorithm();
    let alg: &dyn s::VerificationAlgorithm = match alg.oid {
        SHA256_WITH_RSA => &s::RSA_PKCS1_2048_8192_SHA256,
        SHA384_WITH_RSA => &s::RSA_PKCS1_2048_8192_SHA384,
        SHA512_WITH_RSA => &s::RSA_PKCS1_2048_8192_SHA512,
        RSASSA_PSS => {
            // RSASSA-PSS-params: [0] EXPLICIT hashAlgorithm first
            let hash = alg
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<Vec<der::Any>>().ok())
                .and_then(|items| items.into_iter().find(|a| a.tag().is_context_specific()))
                .and_then(|h| x509_cert::spki::AlgorithmIdentifierOwned::from_der(h.value()).ok())
                .map(|a| a.oid.to_string());
            match hash.as_deref() {
                Some("2.16.840.1.101.3.4.2.1") => &s::RSA_PSS_2048_8192_SHA256,
                Some("2.16.840.1.101.3.4.2.2") => &s::RSA_PSS_2048_8192_SHA384,
                Some("2.16.840.1.101.3.4.2.3") => &s::RSA_PSS_2048_8192_SHA512,
                _ => return false,
            }
        }
        ECDSA_SHA256 if p384 => &s::ECDSA_P384_SHA256_ASN1,
        ECDSA_SHA384 if p384 => &s::ECDSA_P384_SHA384_ASN1,
        ECDSA_SHA512 if p384 => &s::ECDSA_P384_SHA512_ASN1,
        ECDSA_SHA256 => &s::ECDSA_P256_SHA256_ASN1,
        ECDSA_SHA384 => &s::ECDSA_P256_SHA384_ASN1,
        ECDSA_SHA512 => &s::ECDSA_P256_SHA512_ASN1,
        ED25519 => &s::ED25519,
        _ => return false,
    };
    s::UnparsedPublicKey::new(alg, key)
        .verify(&tbs, sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    // Tests only: each unwrap asserts that a fixed, valid input is handled (a key made
    // here, a literal URL or code); its panic is the test failing, nothing the network sends.
    use super::*;

    #[test]
    fn fail_info_codes_and_names() {
        for (code, name) in [
            ("0", "badAlg"),
            ("1", "badMessageCheck"),
            ("2", "badRequest"),
            ("3", "badTime"),
            ("4", "badCertId"),
        ] {
            let f = fail_info(code).unwrap();
            assert_eq!(f.code(), code);
            assert_eq!(fail_name(f), name);
        }
        assert_eq!(fail_info("5"), None);
        assert_eq!(fail_info(""), None);
    }

    #[test]
    fn a_challenge_password_goes_into_the_csr() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "dev1");
        let san = [crate::est::SanEntry::Dns("dev1.example".into())];
        for secret in ["s3cret-1", "pässword_with@"] {
            let der = csr(&key, dn.clone(), &san, Some(secret)).unwrap();
            let parsed = crate::est::Csr::parse(&der).unwrap();
            assert_eq!(parsed.challenge_password.as_deref(), Some(secret));
            assert_eq!(parsed.common_name().as_deref(), Some("dev1"));
            assert!(parsed.san.is_some());
        }
        let plain = crate::est::Csr::parse(&csr(&key, dn, &[], None).unwrap()).unwrap();
        assert!(plain.challenge_password.is_none());
    }
}
