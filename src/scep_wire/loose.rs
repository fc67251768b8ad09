//! cms's SignedData and SignerInfo with the certificates and the signer's identifier left
//! as DER: cms decodes them as RFC 5280 certificates, whose serial numbers are at most 20
//! bytes, and certmonger signs its requests with a self-signed certificate whose serial
//! has 32. `message.rs` reads them with `reply::LooseCertificate`.

use cms::content_info::CmsVersion;
use cms::signed_data::{EncapsulatedContentInfo, SignatureValue, SignedAttributes};
use der::asn1::SetOfVec;
use der::{Any, Sequence, ValueOrd};
use x509_cert::spki::AlgorithmIdentifierOwned;

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(super) struct SignedData {
    pub version: CmsVersion,
    pub digest_algorithms: SetOfVec<AlgorithmIdentifierOwned>,
    pub encap_content_info: EncapsulatedContentInfo,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub certificates: Option<SetOfVec<Any>>,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub crls: Option<SetOfVec<Any>>,
    pub signer_infos: SetOfVec<SignerInfo>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence, ValueOrd)]
pub(super) struct SignerInfo {
    pub version: CmsVersion,
    /// IssuerAndSerialNumber (a SEQUENCE) or `[0]` SubjectKeyIdentifier.
    pub sid: Any,
    pub digest_alg: AlgorithmIdentifierOwned,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub signed_attrs: Option<SignedAttributes>,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub signature: SignatureValue,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub unsigned_attrs: Option<SetOfVec<Any>>,
}

/// IssuerAndSerialNumber with the serial as any INTEGER.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(super) struct IssuerAndSerial {
    pub issuer: x509_cert::name::Name,
    pub serial: der::asn1::Int,
}
