//! An AES-256 key in a token, sealing bulk jobs' keys with `CKM_AES_GCM`.

use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass, ObjectHandle};
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

/// `CKA_CHECK_VALUE` (PKCS#11 2.40: the first bytes of the key's encryption of zeros),
/// when the token has it.
fn check_value(s: &Session, handle: ObjectHandle) -> Option<Vec<u8>> {
    match s.get_attributes(handle, &[AttributeType::CheckValue]) {
        Ok(a) => match a.first() {
            Some(Attribute::CheckValue(v)) if !v.is_empty() => Some(v.clone()),
            _ => None,
        },
        Err(_) => None,
    }
}

/// An AES-256 key in a token: AES-GCM with the nonce and the associated data the caller
/// gives, the output ciphertext‖tag (the layout aws-lc-rs writes).
pub struct TokenSecret {
    token: Arc<Token>,
    handle: Mutex<(u64, ObjectHandle)>,
    uri: Pkcs11Uri,
    /// `CKA_CHECK_VALUE` when the token gives one: a key found again after a reconnect
    /// must have the same, or it is another key under the name.
    check_value: Option<Vec<u8>>,
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
            check_value: None,
        }
    }

    /// Reads the key's check value (kept to recognise the key after a reconnect).
    pub(super) fn with_check_value(mut self) -> Self {
        let handle = self.handle.lock().unwrap_or_else(PoisonError::into_inner).1;
        self.check_value = self
            .token
            .with_session(|s, _| Ok(check_value(s, handle)))
            .ok()
            .flatten();
        self
    }

    /// The URI the key was found by.
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    fn handle_in(&self, s: &Session, generation: u64) -> Result<ObjectHandle, TokenError> {
        let mut cached = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.0 != generation {
            let handle = find_secret(s, &self.uri)?;
            if self.check_value.is_some() && check_value(s, handle) != self.check_value {
                tracing::error!(key = %self.uri, "the token now holds another AES key under this name: nothing is sealed or opened with it");
                return Err(TokenError::new(format!(
                    "{}: the token now holds another key under this name",
                    self.uri
                )));
            }
            *cached = (generation, handle);
        }
        Ok(cached.1)
    }

    /// AES-256-GCM encryption in the token: the nonce used and ciphertext‖tag (16 bytes).
    /// The nonce is `nonce`, or the one the token chose: some HSMs (in FIPS mode) make the
    /// IV themselves and write it back into the parameters.
    pub fn encrypt(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        plain: &[u8],
    ) -> Result<([u8; 12], Vec<u8>), TokenError> {
        self.token.with_session(|s, generation| {
            let handle = self.handle_in(s, generation)?;
            let mut iv = *nonce;
            let sealed = {
                let params = GcmParams::new(&mut iv, aad, 128.into()).map_err(|e| {
                    TokenError::from_ck(format!("{}: GCM parameters", self.uri), &e)
                })?;
                s.encrypt(&Mechanism::AesGcm(params), handle, plain)
                    .map_err(|e| {
                        TokenError::from_ck(format!("{}: encryption failed", self.uri), &e)
                    })?
            };
            Ok((iv, sealed))
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
                .map_err(|e| TokenError::from_ck(format!("{}: decryption failed", self.uri), &e))
        })
    }
}
