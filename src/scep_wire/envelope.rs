//! The EnvelopedData inside a request (RFC 8894 §3.1, RFC 5652 §6): the content-encryption
//! key unwrapped with an RA's RSA key (PKCS#1 v1.5 or OAEP with SHA-1), the content
//! decrypted with AES-CBC, 3DES-CBC or (for old clients) DES-CBC.
//!
//! Bleichenbacher/Marvin: a key that does not unwrap, or unwraps to the wrong length, is
//! replaced by a random one and the content decryption goes on, so every failure ends the
//! same way (`badMessageCheck`, "does not decrypt") — no answer tells a padding error
//! from a wrong key.

use cms::enveloped_data::{RecipientIdentifier, RecipientInfo, RecipientInfos};
use der::Decode;
use x509_cert::Certificate;

use super::{CertName, FailInfo, ScepError, content_of, octets, oid};

/// A key the server decrypts with (an RA's), and its certificate (to match the recipient).
pub struct RecipientKey {
    pub cert: Certificate,
    pub key: aws_lc_rs::rsa::PrivateDecryptingKey,
}

impl std::fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecipientKey(redacted)")
    }
}

/// EncryptedContentInfo with the content as any `[0]`: Go clients send it constructed with
/// a definite length, which `cms`'s strict type refuses.
#[derive(der::Sequence)]
struct LooseContent {
    content_type: der::asn1::ObjectIdentifier,
    content_enc_alg: x509_cert::spki::AlgorithmIdentifierOwned,
    encrypted_content: Option<der::Any>,
}

#[derive(der::Sequence)]
struct LooseEnvelope {
    version: cms::content_info::CmsVersion,
    recip_infos: RecipientInfos,
    encrypted_content: LooseContent,
    unprotected_attrs: Option<der::Any>,
}

fn check(reason: impl Into<String>) -> ScepError {
    ScepError::new(FailInfo::BadMessageCheck, reason)
}

/// The plaintext of the envelope (`envelope`: a ContentInfo holding EnvelopedData), for
/// the recipient among `keys`, and the cipher it came in (the reply uses the same).
///
/// A wrong key decrypts to noise one time in 256 (the CBC padding happens to fit): callers
/// must answer plaintext that does not parse exactly as they answer `Err` here.
pub fn open(envelope: &[u8], keys: &[RecipientKey]) -> Result<(Vec<u8>, Cipher), ScepError> {
    let body = content_of(
        envelope,
        oid::ENVELOPED_DATA,
        "EnvelopedData",
        FailInfo::BadMessageCheck,
    )?;
    let ed = LooseEnvelope::from_ber(&body).map_err(|e| check(format!("EnvelopedData: {e}")))?;
    let content = &ed.encrypted_content;
    if content.content_type != oid::DATA {
        return Err(check("the enveloped content is not data"));
    }
    let alg = Cipher::of(&content.content_enc_alg.oid).ok_or_else(|| {
        ScepError::new(
            FailInfo::BadAlg,
            format!(
                "content encryption {} (AES-CBC, 3DES-CBC or DES-CBC)",
                content.content_enc_alg.oid
            ),
        )
    })?;
    let iv = content
        .content_enc_alg
        .parameters
        .as_ref()
        .map(|p| p.value().to_vec())
        .ok_or_else(|| check("no IV"))?;
    if iv.len() != alg.iv_len() {
        return Err(check("an IV of the wrong length"));
    }
    let ciphertext = match &content.encrypted_content {
        Some(any) => octets(any).map_err(|e| check(format!("the ciphertext: {e}")))?,
        None => return Err(check("no encrypted content")),
    };
    // the recipient: one of our certificates
    let (ktri, key) = ed
        .recip_infos
        .0
        .iter()
        .filter_map(|ri| match ri {
            RecipientInfo::Ktri(k) => Some(k),
            _ => None,
        })
        .find_map(|k| {
            keys.iter()
                .find(|key| names(&k.rid, &key.cert))
                .map(|key| (k, key))
        })
        .ok_or_else(|| check("encrypted for another recipient"))?;
    let wrapped = ktri.enc_key.as_bytes();
    // the key used when the unwrap fails: derived (not random) from the message, so the
    // same message fails the same way every time, and computed before the unwrap
    let fallback = fallback_key(wrapped, &ciphertext, alg.key_len())?;
    let unwrapped = if ktri.key_enc_alg.oid == oid::RSA_ENCRYPTION {
        aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey::new(key.key.clone())
            .ok()
            .and_then(|k| {
                let mut out = zeroize::Zeroizing::new(vec![0u8; k.min_output_size()]);
                k.decrypt(wrapped, &mut out).ok().map(|p| p.to_vec())
            })
    } else if ktri.key_enc_alg.oid == oid::RSAES_OAEP && oaep_sha1(&ktri.key_enc_alg) {
        aws_lc_rs::rsa::OaepPrivateDecryptingKey::new(key.key.clone())
            .ok()
            .and_then(|k| {
                let mut out = zeroize::Zeroizing::new(vec![0u8; k.min_output_size()]);
                k.decrypt(&aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1, wrapped, &mut out, None)
                    .ok()
                    .map(|p| p.to_vec())
            })
    } else {
        return Err(ScepError::new(
            FailInfo::BadAlg,
            format!(
                "key transport {} (rsaEncryption or RSAES-OAEP with SHA-1)",
                ktri.key_enc_alg.oid
            ),
        ));
    };
    let unwrapped = unwrapped.map(zeroize::Zeroizing::new);
    let cek = match &unwrapped {
        Some(k) if k.len() == alg.key_len() => k,
        // never say which failed: the derived key, and the decryption below fails (or,
        // one time in 256, yields noise the caller's parser refuses the same way)
        _ => &fallback,
    };
    alg.decrypt(cek, &iv, &ciphertext)
        .map(|plain| (plain, alg))
        .ok_or_else(|| check("the message does not decrypt (another key, or altered)"))
}

/// A per-process secret for `fallback_key`.
fn fallback_secret() -> &'static aws_lc_rs::hmac::Key {
    static KEY: std::sync::OnceLock<aws_lc_rs::hmac::Key> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut secret = [0u8; 32];
        // a failed fill leaves zeros: the key is then predictable but still per message
        let _ = aws_lc_rs::rand::fill(&mut secret);
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret)
    })
}

/// HMAC-SHA256(secret, wrapped key ‖ ciphertext), cut to `len` bytes (at most 32).
fn fallback_key(
    wrapped: &[u8],
    ciphertext: &[u8],
    len: usize,
) -> Result<zeroize::Zeroizing<Vec<u8>>, ScepError> {
    let mut ctx = aws_lc_rs::hmac::Context::with_key(fallback_secret());
    ctx.update(wrapped);
    ctx.update(ciphertext);
    let tag = ctx.sign();
    tag.as_ref()
        .get(..len)
        .map(|k| zeroize::Zeroizing::new(k.to_vec()))
        .ok_or_else(|| check("a content key longer than 32 bytes"))
}

/// Whether RSAES-OAEP's parameters are the defaults (SHA-1, MGF1-SHA-1), or absent.
fn oaep_sha1(alg: &x509_cert::spki::AlgorithmIdentifierOwned) -> bool {
    match &alg.parameters {
        None => true,
        // an empty SEQUENCE: every field at its default
        Some(p) => p.value().is_empty(),
    }
}

/// Whether the recipient identifier names `cert`.
fn names(rid: &RecipientIdentifier, cert: &Certificate) -> bool {
    match rid {
        RecipientIdentifier::IssuerAndSerialNumber(ias) => CertName::IssuerAndSerial(ias),
        RecipientIdentifier::SubjectKeyIdentifier(ski) => CertName::SubjectKeyId(ski.0.as_bytes()),
    }
    .names(cert)
}

/// The content-encryption algorithms SCEP clients use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    Aes128Cbc,
    Aes192Cbc,
    Aes256Cbc,
    DesEde3Cbc,
    /// Single DES: only to read old clients' requests (never used for a reply).
    DesCbc,
}

impl Cipher {
    pub fn of(o: &der::asn1::ObjectIdentifier) -> Option<Self> {
        Some(if *o == oid::AES_128_CBC {
            Self::Aes128Cbc
        } else if *o == oid::AES_192_CBC {
            Self::Aes192Cbc
        } else if *o == oid::AES_256_CBC {
            Self::Aes256Cbc
        } else if *o == oid::DES_EDE3_CBC {
            Self::DesEde3Cbc
        } else if *o == oid::DES_CBC {
            Self::DesCbc
        } else {
            return None;
        })
    }

    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Cbc => 16,
            Self::Aes192Cbc | Self::DesEde3Cbc => 24,
            Self::Aes256Cbc => 32,
            Self::DesCbc => 8,
        }
    }

    pub fn iv_len(self) -> usize {
        match self {
            Self::Aes128Cbc | Self::Aes192Cbc | Self::Aes256Cbc => 16,
            Self::DesEde3Cbc | Self::DesCbc => 8,
        }
    }

    pub fn oid(self) -> der::asn1::ObjectIdentifier {
        match self {
            Self::Aes128Cbc => oid::AES_128_CBC,
            Self::Aes192Cbc => oid::AES_192_CBC,
            Self::Aes256Cbc => oid::AES_256_CBC,
            Self::DesEde3Cbc => oid::DES_EDE3_CBC,
            Self::DesCbc => oid::DES_CBC,
        }
    }

    /// aws-lc-rs's algorithm for the AES ciphers.
    fn aes(self) -> Option<&'static aws_lc_rs::cipher::Algorithm> {
        use aws_lc_rs::cipher::{AES_128, AES_192, AES_256};
        match self {
            Self::Aes128Cbc => Some(&AES_128),
            Self::Aes192Cbc => Some(&AES_192),
            Self::Aes256Cbc => Some(&AES_256),
            Self::DesEde3Cbc | Self::DesCbc => None,
        }
    }

    /// CBC with PKCS#7 padding and a random IV: (IV, ciphertext). Never single DES.
    pub fn encrypt(self, key: &[u8], plain: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
        match self {
            Self::Aes128Cbc | Self::Aes192Cbc | Self::Aes256Cbc => {
                use aws_lc_rs::cipher::{PaddedBlockEncryptingKey, UnboundCipherKey};
                let alg = self.aes()?;
                let key =
                    PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(alg, key).ok()?)
                        .ok()?;
                let mut buf = plain.to_vec();
                let ctx = key.encrypt(&mut buf).ok()?;
                let iv: &[u8] = (&ctx).try_into().ok()?;
                Some((iv.to_vec(), buf))
            }
            Self::DesEde3Cbc => {
                let mut iv = [0u8; 8];
                aws_lc_rs::rand::fill(&mut iv).ok()?;
                let ct = cbc::Encryptor::<des::TdesEde3>::new_from_slices(key, &iv)
                    .ok()?
                    .encrypt_padded_vec::<Pkcs7>(plain);
                Some((iv.to_vec(), ct))
            }
            Self::DesCbc => None,
        }
    }

    /// CBC with PKCS#7 padding; `None` when the key, the IV or the padding is wrong.
    pub fn decrypt(self, key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
        match self {
            Self::Aes128Cbc | Self::Aes192Cbc | Self::Aes256Cbc => {
                use aws_lc_rs::cipher::{
                    DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey,
                };
                let alg = self.aes()?;
                let key =
                    PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(alg, key).ok()?)
                        .ok()?;
                let iv: [u8; 16] = iv.try_into().ok()?;
                let mut buf = ciphertext.to_vec();
                let plain = key
                    .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
                    .ok()?
                    .len();
                buf.truncate(plain);
                Some(buf)
            }
            Self::DesEde3Cbc => cbc::Decryptor::<des::TdesEde3>::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded_vec::<Pkcs7>(ciphertext)
                .ok(),
            Self::DesCbc => cbc::Decryptor::<des::Des>::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded_vec::<Pkcs7>(ciphertext)
                .ok(),
        }
    }
}
