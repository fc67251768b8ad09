//! The RA's TLS client key in a PKCS#11 token (the CA's token, `[ca]`): rustls signs the
//! handshake through `ca::pkcs11::TokenKey`. ECDSA P-256/P-384 (SHA-256/SHA-384) and RSA
//! (RSASSA-PSS with SHA-256, which TLS 1.3 requires, or PKCS#1 v1.5 with SHA-256 for a TLS
//! 1.2 peer that offers nothing else). One signature per handshake, made in the token on
//! the connecting task: a few milliseconds with a network HSM, once per upstream request.

use std::sync::Arc;

use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

use crate::ca::pkcs11::TokenKey;

#[derive(Debug)]
pub struct TokenTlsKey(pub Arc<TokenKey>);

impl TokenTlsKey {
    /// What the key signs with, best first.
    fn schemes(&self) -> &'static [SignatureScheme] {
        let alg = rcgen::PublicKeyData::algorithm(self.0.as_ref());
        if self.0.is_rsa() {
            &[
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::RSA_PKCS1_SHA256,
            ]
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            &[SignatureScheme::ECDSA_NISTP384_SHA384]
        } else {
            &[SignatureScheme::ECDSA_NISTP256_SHA256]
        }
    }
}

impl SigningKey for TokenTlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = *self.schemes().iter().find(|s| offered.contains(s))?;
        Some(Box::new(TokenSigner {
            key: self.0.clone(),
            scheme,
        }))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        if self.0.is_rsa() {
            SignatureAlgorithm::RSA
        } else {
            SignatureAlgorithm::ECDSA
        }
    }
}

#[derive(Debug)]
struct TokenSigner {
    key: Arc<TokenKey>,
    scheme: SignatureScheme,
}

impl Signer for TokenSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let signed = if self.scheme == SignatureScheme::RSA_PSS_SHA256 {
            self.key.sign_pss(message).map_err(|e| e.to_string())
        } else {
            // ECDSA (DER, as TLS wants it) or RSA PKCS#1 v1.5 with SHA-256: what the key
            // signs certificates with
            rcgen::SigningKey::sign(self.key.as_ref(), message).map_err(|_| {
                self.key
                    .take_error()
                    .map_or_else(|| "the token did not sign".to_string(), |e| e.to_string())
            })
        };
        signed.map_err(|e| rustls::Error::General(format!("the RA's key in the token: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
