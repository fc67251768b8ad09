//! An AES-256 key in a token, sealing bulk jobs' keys with `CKM_AES_GCM`.

use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType as CkKeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::{Pkcs11Uri, Token, TokenError, names};

/// Finds the one AES key the URI names.
pub(super) fn find_secret(s: &Session, uri: &Pkcs11Uri) -> Result<ObjectHandle, TokenError> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(CkKeyType::AES),
    ];
    t.extend(names(uri));
    let found = s
        .find_objects(&t)
        .map_err(|e| TokenError::from_ck(format!("{uri}: the token cannot be searched"), &e))?;
    match found.as_slice() {
        [h] => Ok(*h),
        [] => Err(TokenError::new(format!(
            "{uri}: no such AES key in the token"
        ))),
        _ => Err(TokenError::new(format!(
            "{uri}: names more than one AES key"
        ))),
    }
}

/// An AES-256 key in a token: AES-GCM with the nonce and the associated data the caller
/// gives, the output ciphertext‖tag (the layout aws-lc-rs writes).
pub struct TokenSecret {
    token: Arc<Token>,
    handle: Mutex<(u64, ObjectHandle)>,
    uri: Pkcs11Uri,
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSecret({})", self.uri)
    }
}

impl TokenSecret {
    pub(super) fn new(
        token: Arc<Token>,
        handle: ObjectHandle,
        generation: u64,
        uri: Pkcs11Uri,
    ) -> Self {
        Self {
            token,
            handle: Mutex::new((generation, handle)),
            uri,
        }
    }

    /// The URI the key was found by.
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    fn handle_in(&self, s: &Session, generation: u64) -> Result<ObjectHandle, TokenError> {
        let mut cached = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.0 != generation {
            *cached = (generation, find_secret(s, &self.uri)?);
        }
        Ok(cached.1)
    }

    /// AES-256-GCM encryption in the token: ciphertext‖tag (16 bytes).
    pub fn encrypt(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, TokenError> {
        self.token.with_session(|s, generation| {
            let handle = self.handle_in(s, generation)?;
            let mut iv = *nonce;
            let params = GcmParams::new(&mut iv, aad, 128.into())
                .map_err(|e| TokenError::from_ck(format!("{}: GCM parameters", self.uri), &e))?;
            s.encrypt(&Mechanism::AesGcm(params), handle, plain)
                .map_err(|e| TokenError::from_ck(format!("{}: encryption failed", self.uri), &e))
        })
    }

    /// AES-256-GCM decryption in the token of ciphertext‖tag; fails when the tag does not
    /// match (another key, another context, altered data).
    pub fn decrypt(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, TokenError> {
        self.token.with_session(|s, generation| {
            let handle = self.handle_in(s, generation)?;
            let mut iv = *nonce;
            let params = GcmParams::new(&mut iv, aad, 128.into())
                .map_err(|e| TokenError::from_ck(format!("{}: GCM parameters", self.uri), &e))?;
            s.decrypt(&Mechanism::AesGcm(params), handle, sealed)
                .map_err(|e| {
                    let mut err =
                        TokenError::from_ck(format!("{}: decryption failed", self.uri), &e);
                    // SoftHSM answers a tag that does not match with CKR_GENERAL_ERROR: the
                    // connection is lost only when the token no longer answers either
                    if err.lost && self.token.answers(s) {
                        err.lost = false;
                    }
                    err
                })
        })
    }
}
