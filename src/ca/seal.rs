//! Sealing secrets at rest (bulk jobs' generated keys and certificate passwords until the
//! download is confirmed): AES-256-GCM with a key kept in a 0600 file beside the CA keys,
//! or in the CA's PKCS#11 token (`ca.seal_key`). Both write nonce ‖ ciphertext ‖ tag.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::CaError;

pub struct Sealer {
    key: SealKey,
}

enum SealKey {
    File(LessSafeKey),
    Token(Box<super::pkcs11::TokenSecret>),
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(key redacted)")
    }
}

impl Sealer {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CaError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| CaError::Files("the jobs key must be 32 bytes".into()))?;
        Ok(Self {
            key: SealKey::File(LessSafeKey::new(key)),
        })
    }

    /// Seals with an AES key in a token: it never leaves the token.
    pub fn in_token(key: super::pkcs11::TokenSecret) -> Self {
        Self {
            key: SealKey::Token(Box::new(key)),
        }
    }

    /// Whether sealing calls a token (then the `_async` forms use the blocking pool).
    pub fn in_a_token(&self) -> bool {
        matches!(self.key, SealKey::Token(_))
    }

    /// `seal` from async code: on the blocking pool when the key is in a token (a call to
    /// an HSM may take milliseconds), inline for a file key.
    pub async fn seal_async(
        self: &std::sync::Arc<Self>,
        context: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, CaError> {
        let plain = zeroize::Zeroizing::new(plain.to_vec());
        self.off_executor(context, move |s, c| s.seal(c, &plain))
            .await
    }

    /// `open` from async code, as `seal_async`.
    pub async fn open_async(
        self: &std::sync::Arc<Self>,
        context: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, CaError> {
        let sealed = sealed.to_vec();
        self.off_executor(context, move |s, c| s.open(c, &sealed))
            .await
    }

    async fn off_executor<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        context: &str,
        f: impl FnOnce(&Self, &str) -> Result<T, CaError> + Send + 'static,
    ) -> Result<T, CaError> {
        if !self.in_a_token() {
            return f(self, context);
        }
        let me = std::sync::Arc::clone(self);
        let context = context.to_string();
        tokio::task::spawn_blocking(move || f(&me, &context))
            .await
            .map_err(|e| CaError::Signing(format!("the sealing task failed: {e}")))?
    }

    /// Loads the key file, creating it (32 random bytes, mode 0600) when missing.
    pub fn load_or_create(path: &Path) -> Result<Self, CaError> {
        let err = |e: std::io::Error| CaError::Files(format!("{}: {e}", path.display()));
        if !path.exists() {
            let mut b = [0u8; 32];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| CaError::Files("no randomness".into()))?;
            let hex: String = super::hex(&b);
            super::devpki::write_private(path, &hex)?;
        }
        let text = std::fs::read_to_string(path).map_err(err)?;
        let bytes: Vec<u8> = (0..text.trim().len() / 2)
            .map(|i| u8::from_str_radix(&text.trim()[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| CaError::Files(format!("{}: not hex", path.display())))?;
        Self::from_bytes(&bytes)
    }

    /// nonce ‖ ciphertext ‖ tag; `context` is bound as associated data.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, CaError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CaError::Signing("no randomness".into()))?;
        let (nonce, buf) = match &self.key {
            SealKey::File(key) => {
                let mut buf = plain.to_vec();
                key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(context.as_bytes()),
                    &mut buf,
                )
                .map_err(|_| CaError::Signing("sealing failed".into()))?;
                (nonce, buf)
            }
            // the nonce the token used (it may choose its own)
            SealKey::Token(key) => key
                .encrypt(&nonce, context.as_bytes(), plain)
                .map_err(|e| CaError::Signing(format!("sealing failed: {e}")))?,
        };
        let mut out = nonce.to_vec();
        out.extend(buf);
        Ok(out)
    }

    pub fn open(
        &self,
        context: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, CaError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(CaError::Signing("sealed data too short".into()));
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let refused =
            || CaError::Signing("sealed data does not open (wrong key or context)".into());
        match &self.key {
            SealKey::File(key) => {
                let nonce = Nonce::try_assume_unique_for_key(nonce)
                    .map_err(|_| CaError::Signing("bad nonce".into()))?;
                let mut buf = zeroize::Zeroizing::new(rest.to_vec());
                let plain_len = key
                    .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
                    .map_err(|_| refused())?
                    .len();
                buf.truncate(plain_len);
                Ok(buf)
            }
            SealKey::Token(key) => {
                let nonce: [u8; NONCE_LEN] = nonce
                    .try_into()
                    .map_err(|_| CaError::Signing("bad nonce".into()))?;
                match key.decrypt(&nonce, context.as_bytes(), rest) {
                    Ok(plain) => Ok(zeroize::Zeroizing::new(plain)),
                    // the token refused the data (a tag that does not match)
                    Err(e) if e.ckr.is_some() && !e.lost => Err(refused()),
                    // the token is away, or not the one we knew
                    Err(e) => Err(CaError::Signing(format!("unsealing failed: {e}"))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_context_binding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.key");
        let s = Sealer::load_or_create(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let sealed = s.seal("item-1", b"secret key").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"secret key"));
        assert_eq!(s.open("item-1", &sealed).unwrap().as_slice(), b"secret key");
        assert!(s.open("item-2", &sealed).is_err(), "bound to its context");
        let again = Sealer::load_or_create(&path).unwrap();
        assert_eq!(
            again.open("item-1", &sealed).unwrap().as_slice(),
            b"secret key",
            "the file persists"
        );
        assert!(s.open("item-1", &sealed[..10]).is_err());
    }
}
