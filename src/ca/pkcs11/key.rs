//! A private key in a token, signing for rcgen (certificates, CRLs, CSRs): ECDSA hashed on
//! the host and signed with `CKM_ECDSA` (r‖s made DER), RSA with `CKM_SHA256_RSA_PKCS` or
//! `CKM_SHA256_RSA_PKCS_PSS`.

use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::{Pkcs11Uri, Token, TokenError, names};

/// A private key found in a token, with what signing with it needs.
pub(super) struct Found {
    handle: ObjectHandle,
    public: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
    signer: Signer,
}

/// The DER OIDs of `CKA_EC_PARAMS` for P-256 and P-384 (namedCurve).
pub(super) const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(super) const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

/// What a key signs to show it is the key it claims to be.
const PROBE: &[u8] = b"estd: is this the key whose public key I hold?";

/// Finds the private key the URI names and reads its public key.
pub(super) fn find_key(s: &Session, uri: &Pkcs11Uri) -> Result<Found, TokenError> {
    let want = names(uri);
    let find = |class| {
        let mut t = vec![Attribute::Class(class)];
        t.extend(want.iter().cloned());
        s.find_objects(&t)
            .map_err(|e| TokenError::from_ck(format!("{uri}: the token cannot be searched"), &e))
    };
    let private = match find(ObjectClass::PRIVATE_KEY)?.as_slice() {
        [h] => *h,
        [] => {
            return Err(TokenError::new(format!(
                "{uri}: no such private key in the token"
            )));
        }
        _ => {
            return Err(TokenError::new(format!(
                "{uri}: names more than one private key"
            )));
        }
    };
    let public = match find(ObjectClass::PUBLIC_KEY)?.as_slice() {
        [h] => *h,
        _ => {
            return Err(TokenError::new(format!(
                "{uri}: no single public key beside the private key"
            )));
        }
    };
    let attr = |h, t| {
        s.get_attributes(h, &[t])
            .map_err(|e| TokenError::from_ck(format!("{uri}: attributes unreadable"), &e))
    };
    let kind = match attr(private, AttributeType::KeyType)?.first() {
        Some(Attribute::KeyType(k)) => *k,
        _ => return Err(TokenError::new(format!("{uri}: key type unknown"))),
    };
    let (alg, public_der, signer) = if kind == CkKeyType::EC {
        let point = match attr(public, AttributeType::EcPoint)?.first() {
            Some(Attribute::EcPoint(p)) => unwrap_ec_point(p)
                .ok_or_else(|| TokenError::new(format!("{uri}: EC point unreadable")))?,
            _ => return Err(TokenError::new(format!("{uri}: no EC point"))),
        };
        // the curve by its OID (a point's length would take secp256k1 for P-256)
        let curve = match attr(public, AttributeType::EcParams)?.first() {
            Some(Attribute::EcParams(p)) => p.clone(),
            _ => Vec::new(),
        };
        match (curve.as_slice(), point.len()) {
            (P256_OID, 65) => (&rcgen::PKCS_ECDSA_P256_SHA256, point, Signer::EcdsaSha256),
            (P384_OID, 97) => (&rcgen::PKCS_ECDSA_P384_SHA384, point, Signer::EcdsaSha384),
            _ => {
                return Err(TokenError::new(format!(
                    "{uri}: an EC key on another curve (P-256 or P-384 only)"
                )));
            }
        }
    } else if kind == CkKeyType::RSA {
        let a = s
            .get_attributes(
                public,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )
            .map_err(|e| TokenError::from_ck(format!("{uri}: RSA key unreadable"), &e))?;
        let (Some(Attribute::Modulus(n)), Some(Attribute::PublicExponent(e))) =
            (a.first(), a.get(1))
        else {
            return Err(TokenError::new(format!("{uri}: RSA key unreadable")));
        };
        let n = &n[n.iter().take_while(|&&b| b == 0).count()..];
        if !matches!(n.len() * 8, 2048 | 3072 | 4096) {
            return Err(TokenError::new(format!(
                "{uri}: RSA keys of 2048, 3072 or 4096 bits only"
            )));
        }
        (
            &rcgen::PKCS_RSA_SHA256,
            rsa_public_key(n, e),
            Signer::RsaSha256,
        )
    } else {
        return Err(TokenError::new(format!("{uri}: not an EC or RSA key")));
    };
    Ok(Found {
        handle: private,
        public: public_der,
        alg,
        signer,
    })
}

#[derive(Debug, Clone, Copy)]
enum Signer {
    /// Hash on the host, `CKM_ECDSA` in the token (SoftHSM has no `CKM_ECDSA_SHA256`).
    EcdsaSha256,
    EcdsaSha384,
    RsaSha256,
}

/// A private key in a token, signing for rcgen: certificates, CRLs, CSRs.
pub struct TokenKey {
    token: Arc<Token>,
    /// The connection generation the handle was found in, and the handle.
    handle: Mutex<(u64, ObjectHandle)>,
    /// subjectPublicKey: the EC point, or the PKCS#1 RSAPublicKey.
    public: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
    signer: Signer,
    uri: Pkcs11Uri,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({})", self.uri)
    }
}

thread_local! {
    /// rcgen's signing error carries nothing: the token's, kept for the same thread's
    /// caller to report (a thread, so concurrent signatures cannot swap errors).
    static LAST_ERROR: std::cell::RefCell<Option<TokenError>> = const { std::cell::RefCell::new(None) };
}

impl TokenKey {
    pub(super) fn new(token: Arc<Token>, found: Found, generation: u64, uri: Pkcs11Uri) -> Self {
        Self {
            token,
            handle: Mutex::new((generation, found.handle)),
            public: found.public,
            alg: found.alg,
            signer: found.signer,
            uri,
        }
    }

    /// The token's error behind this thread's last failed signature, if any.
    pub fn take_error(&self) -> Option<TokenError> {
        LAST_ERROR.with(|e| e.borrow_mut().take())
    }

    /// The URI the key was found by.
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    /// Whether it is an RSA key.
    pub fn is_rsa(&self) -> bool {
        matches!(self.signer, Signer::RsaSha256)
    }

    /// An RSASSA-PSS signature (SHA-256, MGF1-SHA-256, salt 32) in the token:
    /// `CKM_SHA256_RSA_PKCS_PSS`. RSA keys only.
    pub fn sign_pss(&self, msg: &[u8]) -> Result<Vec<u8>, TokenError> {
        if !self.is_rsa() {
            return Err(TokenError::new(format!("{}: not an RSA key", self.uri)));
        }
        self.token.with_session(|s, generation| {
            let handle = self.handle_in(s, generation)?;
            let params = PkcsPssParams {
                hash_alg: MechanismType::SHA256,
                mgf: PkcsMgfType::MGF1_SHA256,
                s_len: 32.into(),
            };
            s.sign(&Mechanism::Sha256RsaPkcsPss(params), handle, msg)
                .map_err(|e| TokenError::from_ck(format!("{}: signing failed", self.uri), &e))
        })
    }

    /// The key's handle in this connection: found again after a reconnect, and refused
    /// when the token now holds another key under the name.
    fn handle_in(&self, s: &Session, generation: u64) -> Result<ObjectHandle, TokenError> {
        let mut cached = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.0 != generation {
            let found = find_key(s, &self.uri)?;
            // the public key object must be the same, and the private key must sign for it
            // (a private object swapped under the name would not)
            let same = found.public == self.public
                && self
                    .sign_with(s, found.handle, PROBE)
                    .is_ok_and(|sig| self.verifies(PROBE, &sig));
            if !same {
                tracing::error!(key = %self.uri, "the token now holds another key under this name: nothing is signed with it");
                return Err(TokenError::new(format!(
                    "{}: the token now holds another key under this name",
                    self.uri
                )));
            }
            *cached = (generation, found.handle);
        }
        Ok(cached.1)
    }

    fn sign_now(&self, msg: &[u8]) -> Result<Vec<u8>, TokenError> {
        self.token.with_session(|s, generation| {
            let handle = self.handle_in(s, generation)?;
            self.sign_with(s, handle, msg)
        })
    }

    /// The signature X.509 carries, made in the token with `handle`.
    fn sign_with(
        &self,
        s: &Session,
        handle: ObjectHandle,
        msg: &[u8],
    ) -> Result<Vec<u8>, TokenError> {
        let fail = |e: CkError| TokenError::from_ck(format!("{}: signing failed", self.uri), &e);
        match self.signer {
            Signer::EcdsaSha256 | Signer::EcdsaSha384 => {
                let alg = if matches!(self.signer, Signer::EcdsaSha256) {
                    &aws_lc_rs::digest::SHA256
                } else {
                    &aws_lc_rs::digest::SHA384
                };
                let digest = aws_lc_rs::digest::digest(alg, msg);
                let raw = s
                    .sign(&Mechanism::Ecdsa, handle, digest.as_ref())
                    .map_err(fail)?;
                ecdsa_raw_to_der(&raw)
                    .ok_or_else(|| TokenError::new(format!("{}: an odd ECDSA signature", self.uri)))
            }
            Signer::RsaSha256 => s.sign(&Mechanism::Sha256RsaPkcs, handle, msg).map_err(fail),
        }
    }

    /// Whether `sig` is this key's signature of `msg`, checked with the public key.
    fn verifies(&self, msg: &[u8], sig: &[u8]) -> bool {
        use aws_lc_rs::signature as v;
        let alg: &dyn v::VerificationAlgorithm = match self.signer {
            Signer::EcdsaSha256 => &v::ECDSA_P256_SHA256_ASN1,
            Signer::EcdsaSha384 => &v::ECDSA_P384_SHA384_ASN1,
            Signer::RsaSha256 => &v::RSA_PKCS1_2048_8192_SHA256,
        };
        v::UnparsedPublicKey::new(alg, &self.public)
            .verify(msg, sig)
            .is_ok()
    }

    /// Signs a test message in the token and verifies it with the public key: the token
    /// answers, and its key is the one estd holds the public key of.
    pub fn check(&self) -> Result<(), TokenError> {
        let sig = self.sign_now(PROBE)?;
        if self.verifies(PROBE, &sig) {
            Ok(())
        } else {
            Err(TokenError::new(format!(
                "{}: the token's signature does not verify with the key's public key",
                self.uri
            )))
        }
    }
}

impl rcgen::PublicKeyData for TokenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

impl rcgen::SigningKey for TokenKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        // nothing stale from an earlier failure nobody took
        LAST_ERROR.with(|last| last.borrow_mut().take());
        self.sign_now(msg).map_err(|e| {
            LAST_ERROR.with(|last| *last.borrow_mut() = Some(e));
            rcgen::Error::RemoteKeyError
        })
    }
}

/// `CKA_EC_POINT`: a DER OCTET STRING around `04‖X‖Y` (PKCS#11 2.40), or the bare point.
fn unwrap_ec_point(v: &[u8]) -> Option<Vec<u8>> {
    if v.first() == Some(&0x04) && matches!(v.len(), 65 | 97) {
        return Some(v.to_vec());
    }
    let (&tag, rest) = v.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = if len == 0x81 {
        let (&l, rest) = rest.split_first()?;
        (usize::from(l), rest)
    } else {
        (usize::from(len), rest)
    };
    (tag == 0x04 && len == rest.len() && rest.first() == Some(&0x04)).then(|| rest.to_vec())
}

/// A DER INTEGER of unsigned big-endian bytes.
fn der_uint(b: &[u8], out: &mut Vec<u8>) {
    let start = b
        .iter()
        .position(|&x| x != 0)
        .unwrap_or(b.len().saturating_sub(1));
    let b = &b[start..];
    let pad = b.first().is_some_and(|&x| x & 0x80 != 0);
    let mut content = Vec::with_capacity(b.len() + 1);
    if pad || b.is_empty() {
        content.push(0);
    }
    content.extend_from_slice(b);
    out.extend_from_slice(&crate::est::tlv(0x02, &content));
}

/// `CKM_ECDSA`'s `r‖s` as the DER `Ecdsa-Sig-Value` X.509 carries.
fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = Vec::with_capacity(raw.len() + 6);
    der_uint(r, &mut body);
    der_uint(s, &mut body);
    Some(crate::est::tlv(0x30, &body))
}

/// PKCS#1 `RSAPublicKey` from the modulus and the public exponent.
fn rsa_public_key(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(n.len() + e.len() + 8);
    der_uint(n, &mut body);
    der_uint(e, &mut body);
    crate::est::tlv(0x30, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_in_der() {
        // leading zeros dropped, a high bit padded
        let mut raw = vec![0u8; 64];
        raw[0] = 0x00;
        raw[1] = 0x7f;
        raw[32] = 0x80;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..4], &[0x02, 31]);
        assert_eq!(der[4], 0x7f);
        let s_at = 4 + 31;
        assert_eq!(&der[s_at..s_at + 3], &[0x02, 33, 0x00]);
        assert_eq!(ecdsa_raw_to_der(&[1, 2, 3]), None);
        // all zero: INTEGER 0
        let zero = ecdsa_raw_to_der(&[0u8; 64]).unwrap();
        assert_eq!(zero, [0x30, 6, 0x02, 1, 0, 0x02, 1, 0]);
    }

    #[test]
    fn ec_points_wrapped_or_bare() {
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        assert_eq!(unwrap_ec_point(&point).as_deref(), Some(&point[..]));
        let wrapped = crate::est::tlv(0x04, &point);
        assert_eq!(unwrap_ec_point(&wrapped).as_deref(), Some(&point[..]));
        let mut p384 = vec![0x04];
        p384.extend([9u8; 96]);
        assert_eq!(
            unwrap_ec_point(&crate::est::tlv(0x04, &p384)).as_deref(),
            Some(&p384[..])
        );
        assert_eq!(unwrap_ec_point(&[0x04, 0x05, 0x01]), None);
    }
}
