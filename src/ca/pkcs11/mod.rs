//! Keys in a PKCS#11 token (an HSM, or SoftHSM2 in tests): one login per process and
//! module, a pool of sessions, and a key that signs for rcgen (certificates, CRLs) without
//! its private part ever leaving the token.
//!
//! The issuing CA's key is one when `ca.key` is a `pkcs11:` URI. Not yet (issue 21): the
//! OCSP responder's and the sealing key in a token, `estd ca init --pkcs11`, reconnecting
//! after a token error (today: restart estd).

pub mod init;
pub mod uri;

use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

pub use uri::{Pkcs11Uri, UriError};

/// What went wrong with a token: what estd was doing, and the PKCS#11 return code when the
/// token gave one (`CKR_PIN_INCORRECT`), for the log and the audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}{}", .ckr.map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct TokenError {
    pub what: String,
    pub ckr: Option<&'static str>,
}

impl TokenError {
    fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            ckr: None,
        }
    }

    fn from_ck(what: impl Into<String>, e: &CkError) -> Self {
        Self {
            what: what.into(),
            ckr: match e {
                CkError::Pkcs11(rv, _) => Some(ckr_name(*rv)),
                _ => None,
            },
        }
    }
}

/// The `CKR_*` name of a return code (cryptoki gives only prose).
pub fn ckr_name(rv: RvError) -> &'static str {
    use RvError as R;
    match rv {
        R::DeviceRemoved => "CKR_DEVICE_REMOVED",
        R::DeviceError => "CKR_DEVICE_ERROR",
        R::DeviceMemory => "CKR_DEVICE_MEMORY",
        R::TokenNotPresent => "CKR_TOKEN_NOT_PRESENT",
        R::TokenNotRecognized => "CKR_TOKEN_NOT_RECOGNIZED",
        R::SessionHandleInvalid => "CKR_SESSION_HANDLE_INVALID",
        R::SessionClosed => "CKR_SESSION_CLOSED",
        R::SessionCount => "CKR_SESSION_COUNT",
        R::ObjectHandleInvalid => "CKR_OBJECT_HANDLE_INVALID",
        R::KeyHandleInvalid => "CKR_KEY_HANDLE_INVALID",
        R::PinIncorrect => "CKR_PIN_INCORRECT",
        R::PinLocked => "CKR_PIN_LOCKED",
        R::PinExpired => "CKR_PIN_EXPIRED",
        R::UserNotLoggedIn => "CKR_USER_NOT_LOGGED_IN",
        R::UserAlreadyLoggedIn => "CKR_USER_ALREADY_LOGGED_IN",
        R::MechanismInvalid => "CKR_MECHANISM_INVALID",
        R::MechanismParamInvalid => "CKR_MECHANISM_PARAM_INVALID",
        R::KeyTypeInconsistent => "CKR_KEY_TYPE_INCONSISTENT",
        R::KeyFunctionNotPermitted => "CKR_KEY_FUNCTION_NOT_PERMITTED",
        R::DataLenRange => "CKR_DATA_LEN_RANGE",
        R::GeneralError => "CKR_GENERAL_ERROR",
        R::FunctionFailed => "CKR_FUNCTION_FAILED",
        R::CryptokiNotInitialized => "CKR_CRYPTOKI_NOT_INITIALIZED",
        R::CryptokiAlreadyInitialized => "CKR_CRYPTOKI_ALREADY_INITIALIZED",
        R::HostMemory => "CKR_HOST_MEMORY",
        R::ArgumentsBad => "CKR_ARGUMENTS_BAD",
        _ => "CKR_(other)",
    }
}

/// One PKCS#11 module, initialised once for the process, with the token's slot, the
/// session that holds the login, and a pool of sessions to sign with.
pub struct Token {
    _ctx: Pkcs11,
    slot: Slot,
    /// Keeps the login: closing the last session of an application logs it out.
    anchor: Mutex<Session>,
    pool: Vec<Mutex<Session>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(slot {}, {} sessions)", self.slot, self.pool.len())
    }
}

impl Token {
    /// Loads `module`, finds the token the URI names, logs in with `pin` once and opens
    /// `sessions` sessions (at least one) to sign with.
    pub fn open(
        module: &str,
        uri: &Pkcs11Uri,
        pin: &str,
        sessions: usize,
    ) -> Result<Arc<Self>, TokenError> {
        let ctx = Pkcs11::new(module).map_err(|e| {
            TokenError::new(format!("PKCS#11 module {module:?} cannot be loaded: {e}"))
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(TokenError::from_ck("C_Initialize failed", &e)),
        }
        let slot = find_slot(&ctx, uri)?;
        let anchor = ctx
            .open_rw_session(slot)
            .map_err(|e| TokenError::from_ck("no session with the token", &e))?;
        match anchor.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(TokenError::from_ck("log-in to the token refused", &e)),
        }
        let pool = (0..sessions.max(1))
            .map(|_| ctx.open_ro_session(slot).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TokenError::from_ck("no session with the token", &e))?;
        Ok(Arc::new(Self {
            _ctx: ctx,
            slot,
            anchor: Mutex::new(anchor),
            pool,
        }))
    }

    /// A free session, or the first one when all are busy.
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.pool
            .iter()
            .find_map(|m| m.try_lock().ok())
            .unwrap_or_else(|| {
                self.pool[0]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            })
    }

    /// Generates a key pair in the token under the URI's label and id: the private key
    /// sensitive, never extractable, for signing only. Refused when the URI already names a
    /// key. `key_type`: EC P-256/P-384 or RSA 2048/3072/4096.
    pub fn generate(
        self: &Arc<Self>,
        uri: &Pkcs11Uri,
        key_type: crate::est::KeyType,
    ) -> Result<TokenKey, TokenError> {
        use crate::est::KeyType;
        if self.key(uri).is_ok() {
            return Err(TokenError::new(format!(
                "{uri}: the token already holds this key"
            )));
        }
        let mut names = Vec::new();
        if let Some(l) = &uri.object {
            names.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        if let Some(id) = &uri.id {
            names.push(Attribute::Id(id.clone()));
        }
        let (mechanism, mut public) = match key_type {
            KeyType::EcP256 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(vec![
                    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
                ])],
            ),
            KeyType::EcP384 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(vec![
                    0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22,
                ])],
            ),
            KeyType::Rsa(bits @ (2048 | 3072 | 4096)) => (
                Mechanism::RsaPkcsKeyPairGen,
                vec![
                    Attribute::ModulusBits(u64::from(bits).into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                ],
            ),
            other => {
                return Err(TokenError::new(format!(
                    "{other} keys cannot be made in a token here (ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096)"
                )));
            }
        };
        public.extend([
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
        ]);
        public.extend(names.iter().cloned());
        let mut private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
        ];
        private.extend(names);
        {
            let s = self
                .anchor
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            s.generate_key_pair(&mechanism, &public, &private)
                .map_err(|e| TokenError::from_ck(format!("{uri}: key generation failed"), &e))?;
        }
        self.key(uri)
    }

    /// The private key the URI names, with its public key, ready to sign.
    pub fn key(self: &Arc<Self>, uri: &Pkcs11Uri) -> Result<TokenKey, TokenError> {
        let s = self.session();
        let mut want = Vec::new();
        if let Some(l) = &uri.object {
            want.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        if let Some(id) = &uri.id {
            want.push(Attribute::Id(id.clone()));
        }
        let find = |class| {
            let mut t = vec![Attribute::Class(class)];
            t.extend(want.iter().cloned());
            s.find_objects(&t).map_err(|e| {
                TokenError::from_ck(format!("{uri}: the token cannot be searched"), &e)
            })
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
            match point.len() {
                65 => (&rcgen::PKCS_ECDSA_P256_SHA256, point, Signer::EcdsaSha256),
                97 => (&rcgen::PKCS_ECDSA_P384_SHA384, point, Signer::EcdsaSha384),
                n => {
                    return Err(TokenError::new(format!(
                        "{uri}: an EC key of {n}-byte points (P-256 or P-384 only)"
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
        drop(s);
        Ok(TokenKey {
            token: Arc::clone(self),
            handle: private,
            public: public_der,
            alg,
            signer,
            uri: uri.to_string(),
            last_error: Mutex::new(None),
        })
    }
}

fn find_slot(ctx: &Pkcs11, uri: &Pkcs11Uri) -> Result<Slot, TokenError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| TokenError::from_ck("the token's slots cannot be listed", &e))?;
    for slot in slots {
        if uri.slot_id.is_some_and(|id| id != slot.id()) {
            continue;
        }
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| TokenError::from_ck("token information unreadable", &e))?;
        if uri.token.as_deref().is_some_and(|l| l != info.label())
            || uri
                .serial
                .as_deref()
                .is_some_and(|s| s != info.serial_number())
        {
            continue;
        }
        return Ok(slot);
    }
    Err(TokenError::new(format!("{uri}: no such token")))
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
    handle: ObjectHandle,
    /// subjectPublicKey: the EC point, or the PKCS#1 RSAPublicKey.
    public: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
    signer: Signer,
    uri: String,
    /// rcgen's error carries nothing: the token's, for the caller to report.
    last_error: Mutex<Option<TokenError>>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({})", self.uri)
    }
}

impl TokenKey {
    /// The token's error behind the last failed signature, if any.
    pub fn take_error(&self) -> Option<TokenError> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn sign_now(&self, msg: &[u8]) -> Result<Vec<u8>, TokenError> {
        let s = self.token.session();
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
                    .sign(&Mechanism::Ecdsa, self.handle, digest.as_ref())
                    .map_err(fail)?;
                ecdsa_raw_to_der(&raw)
                    .ok_or_else(|| TokenError::new(format!("{}: an odd ECDSA signature", self.uri)))
            }
            Signer::RsaSha256 => s
                .sign(&Mechanism::Sha256RsaPkcs, self.handle, msg)
                .map_err(fail),
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
        self.sign_now(msg).map_err(|e| {
            *self
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
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
