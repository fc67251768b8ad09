//! Keys in a PKCS#11 token (an HSM, or SoftHSM2 in tests): one login per process and
//! module, a pool of sessions, and a key that signs for rcgen (certificates, CRLs) without
//! its private part ever leaving the token.
//!
//! The issuing CA's key is one when `ca.key` is a `pkcs11:` URI. A lost token (HSM restarted,
//! token removed, session closed) fails the call in flight and is reconnected by the next.

pub mod init;
pub mod uri;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
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
    /// The connection is gone: the next call reconnects.
    pub lost: bool,
}

impl TokenError {
    fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            ckr: None,
            lost: false,
        }
    }

    fn from_ck(what: impl Into<String>, e: &CkError) -> Self {
        Self {
            what: what.into(),
            ckr: match e {
                CkError::Pkcs11(rv, _) => Some(ckr_name(*rv)),
                _ => None,
            },
            lost: connection_lost(e),
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
///
/// A token error that means the connection is gone (the HSM restarted, the token was
/// removed, the session closed) drops the connection: the call in flight fails with the
/// token's `CKR_*` code, and the next call reconnects (C_Finalize, C_Initialize, log in
/// again, find the keys again) — at most once a second, so a token that stays away is not
/// hammered.
pub struct Token {
    ctx: Pkcs11,
    module: String,
    /// The token part of the URI the token was opened with (object attributes unused).
    uri: Pkcs11Uri,
    /// Kept (zeroized on drop) to log in again after a reconnect.
    pin: AuthPin,
    sessions: usize,
    conn: RwLock<Option<Conn>>,
    /// Bumped on every connect: object handles found before are stale after it.
    generation: AtomicU64,
    /// When the last reconnect failed, and why: retried after `RETRY_AFTER`.
    failed: Mutex<Option<(Instant, TokenError)>>,
}

/// How long a failed reconnect is remembered before the next call tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

struct Conn {
    generation: u64,
    /// Keeps the login: closing the last session of an application logs it out.
    anchor: Mutex<Session>,
    pool: Pool,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}, {} sessions)", self.uri, self.sessions)
    }
}

/// Return codes after which the connection is rebuilt: the token or the session is gone,
/// or the module lost its state. SoftHSM reports a removed token as
/// `CKR_OBJECT_HANDLE_INVALID` or `CKR_GENERAL_ERROR`, never `CKR_DEVICE_REMOVED`.
fn connection_lost(e: &CkError) -> bool {
    use RvError as R;
    matches!(
        e,
        CkError::Pkcs11(
            R::DeviceRemoved
                | R::DeviceError
                | R::TokenNotPresent
                | R::TokenNotRecognized
                | R::SessionHandleInvalid
                | R::SessionClosed
                | R::ObjectHandleInvalid
                | R::KeyHandleInvalid
                | R::UserNotLoggedIn
                | R::GeneralError
                | R::FunctionFailed
                | R::CryptokiNotInitialized,
            _
        )
    )
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
        let token = Self {
            ctx,
            module: module.to_string(),
            uri: uri.clone(),
            pin: AuthPin::new(pin.into()),
            sessions: sessions.max(1),
            conn: RwLock::new(None),
            generation: AtomicU64::new(0),
            failed: Mutex::new(None),
        };
        let conn = token.connect()?;
        *token.conn.write().unwrap_or_else(PoisonError::into_inner) = Some(conn);
        Ok(Arc::new(token))
    }

    /// The module's path, for messages.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// Finds the slot, opens the anchor session, logs in and opens the pool.
    fn connect(&self) -> Result<Conn, TokenError> {
        let slot = find_slot(&self.ctx, &self.uri)?;
        let anchor = self
            .ctx
            .open_rw_session(slot)
            .map_err(|e| TokenError::from_ck("no session with the token", &e))?;
        match anchor.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(TokenError::from_ck("log-in to the token refused", &e)),
        }
        let sessions = (0..self.sessions)
            .map(|_| self.ctx.open_ro_session(slot))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TokenError::from_ck("no session with the token", &e))?;
        let pool = Pool {
            free: Mutex::new(sessions),
            ready: Condvar::new(),
        };
        Ok(Conn {
            generation: self.generation.fetch_add(1, Ordering::AcqRel) + 1,
            anchor: Mutex::new(anchor),
            pool,
        })
    }

    /// Drops every session, finalises and initialises the module again (SoftHSM sees a
    /// restored token only then), and connects. Called with the write lock held.
    fn reconnect(&self, conn: &mut Option<Conn>) -> Result<(), TokenError> {
        if let Some((at, e)) = &*self.failed.lock().unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < RETRY_AFTER
        {
            return Err(e.clone());
        }
        *conn = None;
        // Errors here are expected: the module may already have lost its state.
        let _ = self.ctx.clone().finalize();
        let result = match self
            .ctx
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => self.connect(),
            Err(e) => Err(TokenError::from_ck("C_Initialize failed", &e)),
        };
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(c) => {
                tracing::warn!(token = %self.uri, "reconnected to the token and logged in again");
                *conn = Some(c);
                *failed = None;
                Ok(())
            }
            Err(e) => {
                tracing::error!(token = %self.uri, error = %e, "the token is unreachable");
                *failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// Runs `f` with a pool session and the connection's generation, connecting again
    /// first when the connection was lost. When `f` fails because the connection is gone,
    /// the connection is dropped for the next call to rebuild.
    fn with_session<T>(
        &self,
        f: impl FnOnce(&Session, u64) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        let mut read = self.conn.read().unwrap_or_else(PoisonError::into_inner);
        if read.is_none() {
            drop(read);
            {
                let mut w = self.conn.write().unwrap_or_else(PoisonError::into_inner);
                if w.is_none() {
                    self.reconnect(&mut w)?;
                }
            }
            read = self.conn.read().unwrap_or_else(PoisonError::into_inner);
        }
        let Some(conn) = read.as_ref() else {
            return Err(TokenError::new("the token is unreachable"));
        };
        let generation = conn.generation;
        let result = conn.session().and_then(|s| f(&s, generation));
        drop(read);
        if let Err(e) = &result
            && e.lost
        {
            let mut w = self.conn.write().unwrap_or_else(PoisonError::into_inner);
            if w.as_ref().is_some_and(|c| c.generation == generation) {
                tracing::error!(token = %self.uri, error = %e, "lost the token; the next call reconnects");
                *w = None;
            }
        }
        result
    }

    /// Runs `f` with the read-write session that holds the login (key generation).
    fn with_anchor<T>(
        &self,
        f: impl FnOnce(&Session) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        let read = self.conn.read().unwrap_or_else(PoisonError::into_inner);
        let conn = read
            .as_ref()
            .ok_or_else(|| TokenError::new("the token is unreachable"))?;
        let s = conn.anchor.lock().unwrap_or_else(PoisonError::into_inner);
        f(&s)
    }

    /// Whether the token behind `s` still answers (`C_GetTokenInfo` on its slot: SoftHSM
    /// keeps reporting a session as logged in after its token was removed).
    fn answers(&self, s: &Session) -> bool {
        s.get_session_info()
            .and_then(|i| self.ctx.get_token_info(i.slot_id()))
            .is_ok()
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
        if self.with_session(|s, _| count_objects(s, uri))? > 0 {
            return Err(TokenError::new(format!(
                "{uri}: the token already holds an object by this name"
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
        self.with_anchor(|s| {
            s.generate_key_pair(&mechanism, &public, &private)
                .map_err(|e| TokenError::from_ck(format!("{uri}: key generation failed"), &e))
        })?;
        self.key(uri)
    }

    /// The key pair the URI names, made in the token (as `generate` does) when the token
    /// holds no object by that name. The bool: whether it was made now.
    pub fn key_or_generate(
        self: &Arc<Self>,
        uri: &Pkcs11Uri,
        key_type: crate::est::KeyType,
    ) -> Result<(TokenKey, bool), TokenError> {
        if self.with_session(|s, _| count_objects(s, uri))? == 0 {
            return Ok((self.generate(uri, key_type)?, true));
        }
        Ok((self.key(uri)?, false))
    }

    /// The AES-256 key the URI names, made in the token when the token holds no object by
    /// that name: sensitive, never extractable, for encryption and decryption only. The
    /// bool: whether it was made now.
    pub fn secret_or_generate(
        self: &Arc<Self>,
        uri: &Pkcs11Uri,
    ) -> Result<(TokenSecret, bool), TokenError> {
        let made = if self.with_session(|s, _| count_objects(s, uri))? == 0 {
            let mut template = vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(CkKeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Sign(false),
                Attribute::Verify(false),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
            ];
            template.extend(names(uri));
            self.with_anchor(|s| {
                s.generate_key(&Mechanism::AesKeyGen, &template)
                    .map_err(|e| TokenError::from_ck(format!("{uri}: key generation failed"), &e))
            })?;
            true
        } else {
            false
        };
        let (handle, generation) = self.with_session(|s, g| Ok((find_secret(s, uri)?, g)))?;
        Ok((
            TokenSecret {
                token: Arc::clone(self),
                handle: Mutex::new((generation, handle)),
                uri: uri.clone(),
            },
            made,
        ))
    }

    /// The private key the URI names, with its public key, ready to sign.
    pub fn key(self: &Arc<Self>, uri: &Pkcs11Uri) -> Result<TokenKey, TokenError> {
        let (found, generation) = self.with_session(|s, g| Ok((find_key(s, uri)?, g)))?;
        Ok(TokenKey {
            token: Arc::clone(self),
            handle: Mutex::new((generation, found.handle)),
            public: found.public,
            alg: found.alg,
            signer: found.signer,
            uri: uri.clone(),
        })
    }
}

impl Conn {
    /// A free session, waiting for one (in turn) when all are in use.
    fn session(&self) -> Result<PoolGuard<'_>, TokenError> {
        let mut free = self
            .pool
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let deadline = Instant::now() + SESSION_WAIT;
        loop {
            if let Some(s) = free.pop() {
                return Ok(PoolGuard {
                    pool: &self.pool,
                    session: Some(s),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TokenError::new(format!(
                    "no free session with the token within {} s",
                    SESSION_WAIT.as_secs()
                )));
            }
            free = self
                .pool
                .ready
                .wait_timeout(free, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// At most this long waiting for a free session (a token that hangs must not hold every
/// signing request forever).
const SESSION_WAIT: Duration = Duration::from_secs(30);

/// The sessions to sign with: each used by one thread at a time (a `Session` is not
/// `Sync`), handed out in turn.
struct Pool {
    free: Mutex<Vec<Session>>,
    ready: Condvar,
}

/// A session taken from the pool, put back when dropped.
struct PoolGuard<'a> {
    pool: &'a Pool,
    session: Option<Session>,
}

impl std::ops::Deref for PoolGuard<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        // Some until dropped
        self.session
            .as_ref()
            .unwrap_or_else(|| unreachable!("a pool guard holds a session until dropped"))
    }
}

impl Drop for PoolGuard<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(s);
            self.pool.ready.notify_one();
        }
    }
}

/// The attributes naming the URI's object (label, id).
fn names(uri: &Pkcs11Uri) -> Vec<Attribute> {
    let mut want = Vec::new();
    if let Some(l) = &uri.object {
        want.push(Attribute::Label(l.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        want.push(Attribute::Id(id.clone()));
    }
    want
}

/// How many objects of any class the URI names.
fn count_objects(s: &Session, uri: &Pkcs11Uri) -> Result<usize, TokenError> {
    s.find_objects(&names(uri))
        .map(|v| v.len())
        .map_err(|e| TokenError::from_ck(format!("{uri}: the token cannot be searched"), &e))
}

/// A private key found in a token, with what signing with it needs.
struct Found {
    handle: ObjectHandle,
    public: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
    signer: Signer,
}

/// Finds the private key the URI names and reads its public key.
fn find_key(s: &Session, uri: &Pkcs11Uri) -> Result<Found, TokenError> {
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
    Ok(Found {
        handle: private,
        public: public_der,
        alg,
        signer,
    })
}

/// Finds the one AES key the URI names.
fn find_secret(s: &Session, uri: &Pkcs11Uri) -> Result<ObjectHandle, TokenError> {
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
    /// The token's error behind this thread's last failed signature, if any.
    pub fn take_error(&self) -> Option<TokenError> {
        LAST_ERROR.with(|e| e.borrow_mut().take())
    }

    /// The URI the key was found by.
    pub fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    /// The token the key is in.
    pub fn token(&self) -> &Arc<Token> {
        &self.token
    }

    /// The key's handle in this connection: found again after a reconnect, and refused
    /// when the token now holds another key under the name.
    fn handle_in(&self, s: &Session, generation: u64) -> Result<ObjectHandle, TokenError> {
        let mut cached = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.0 != generation {
            let found = find_key(s, &self.uri)?;
            if found.public != self.public {
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
            let fail =
                |e: CkError| TokenError::from_ck(format!("{}: signing failed", self.uri), &e);
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
                    ecdsa_raw_to_der(&raw).ok_or_else(|| {
                        TokenError::new(format!("{}: an odd ECDSA signature", self.uri))
                    })
                }
                Signer::RsaSha256 => s.sign(&Mechanism::Sha256RsaPkcs, handle, msg).map_err(fail),
            }
        })
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
