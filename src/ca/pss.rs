//! RSASSA-PSS certificates (a template's `rsa_pss`): rcgen 0.14 signs only PKCS#1 v1.5 with
//! RSA, so rcgen builds the certificate as usual while a capturing key records the TBS it
//! would sign; the TBS's `signature` field is then replaced by the PSS algorithm, and the
//! new TBS is signed with PSS (by aws-lc-rs for a file key, `CKM_SHA256_RSA_PKCS_PSS` in a
//! token) and wrapped as the certificate.

use std::cell::RefCell;

use der::asn1::AnyRef;
use der::{Decode, Encode, SliceReader};

use super::{CaError, CaKey};
use crate::est::tlv;

/// `AlgorithmIdentifier { id-RSASSA-PSS, RSASSA-PSS-params { sha256, mgf1SHA256, salt 32 } }`
/// (RFC 4055 §3.1, with the NULL parameters openssl and most verifiers write for SHA-256).
pub const PSS_SHA256: &[u8] = &[
    0x30, 0x41, // AlgorithmIdentifier
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, // id-RSASSA-PSS
    0x30, 0x34, // RSASSA-PSS-params
    0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, // [0] hashAlgorithm sha256
    0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30,
    0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, // [1] maskGenAlgorithm mgf1 with sha256
    0xa2, 0x03, 0x02, 0x01, 0x20, // [2] saltLength 32
];

/// `AlgorithmIdentifier { sha256WithRSAEncryption, NULL }`, as rcgen writes it.
const SHA256_WITH_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];

/// A key that records what rcgen asks it to sign and signs nothing.
pub(super) struct Capture<'a> {
    pub key: &'a CaKey,
    pub tbs: RefCell<Option<Vec<u8>>>,
}

impl rcgen::PublicKeyData for Capture<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.key.der_bytes()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.key.algorithm()
    }
}

impl rcgen::SigningKey for Capture<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        *self.tbs.borrow_mut() = Some(msg.to_vec());
        Ok(vec![0])
    }
}

/// The TBS with its `signature` field (the third element) replaced by `PSS_SHA256`.
fn pss_tbs(tbs: &[u8]) -> Result<Vec<u8>, CaError> {
    let bad = |e: der::Error| CaError::Signing(format!("PSS: the certificate to sign: {e}"));
    let outer = AnyRef::from_der(tbs).map_err(bad)?;
    let mut r = SliceReader::new(outer.value()).map_err(bad)?;
    let mut body = Vec::with_capacity(tbs.len() + 64);
    let mut index = 0;
    while !der::Reader::is_finished(&r) {
        let field = AnyRef::decode(&mut r).map_err(bad)?;
        // [0] version, serialNumber, then signature: rcgen's sha256WithRSAEncryption
        if index == 2 {
            if field.to_der().map_err(bad)? != SHA256_WITH_RSA {
                return Err(CaError::Signing(
                    "PSS: the certificate to sign names an unexpected algorithm".into(),
                ));
            }
            body.extend_from_slice(PSS_SHA256);
        } else {
            body.extend_from_slice(&field.to_der().map_err(bad)?);
        }
        index += 1;
    }
    if index < 7 {
        return Err(CaError::Signing(
            "PSS: the certificate to sign is short".into(),
        ));
    }
    Ok(tlv(0x30, &body))
}

/// The certificate: rcgen's TBS made a PSS one, signed by `sign`.
pub(super) fn certificate(
    tbs: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, CaError>,
) -> Result<Vec<u8>, CaError> {
    let tbs = pss_tbs(tbs)?;
    let sig = sign(&tbs)?;
    let mut bits = Vec::with_capacity(sig.len() + 1);
    bits.push(0);
    bits.extend_from_slice(&sig);
    let mut body = tbs;
    body.extend_from_slice(PSS_SHA256);
    body.extend_from_slice(&tlv(0x03, &bits));
    Ok(tlv(0x30, &body))
}

/// A PSS signature (SHA-256, MGF1-SHA-256, salt 32) with a file's RSA key (PKCS#8).
pub(super) fn sign_with_file_key(
    key: &aws_lc_rs::signature::RsaKeyPair,
    msg: &[u8],
) -> Result<Vec<u8>, CaError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(&aws_lc_rs::signature::RSA_PSS_SHA256, &rng, msg, &mut sig)
        .map_err(|_| CaError::Signing("PSS signature failed".into()))?;
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pss_algorithm_identifier_is_well_formed() {
        let alg = x509_cert::spki::AlgorithmIdentifierOwned::from_der(PSS_SHA256).unwrap();
        assert_eq!(alg.oid.to_string(), "1.2.840.113549.1.1.10");
        assert_eq!(alg.to_der().unwrap(), PSS_SHA256);
    }
}
