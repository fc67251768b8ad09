//! Keys in a PKCS#11 token (an HSM, or SoftHSM2 in tests): one login per process and
//! module, a pool of sessions, and a key that signs for rcgen (certificates, CRLs) without
//! its private part ever leaving the token.
//!
//! The issuing CA's key is one when `ca.key` is a `pkcs11:` URI. A lost token (HSM restarted,
//! token removed, session closed) fails the call in flight and is reconnected by the next.

pub mod init;
mod key;
mod secret;
pub mod uri;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType as CkKeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

pub use key::TokenKey;
use key::find_key;
pub use secret::TokenSecret;
use secret::find_secret;
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
        let result = conn.session().and_then(|s| {
            f(&s, generation).map_err(|mut e| {
                // CKR_GENERAL_ERROR and CKR_FUNCTION_FAILED are also what some tokens say
                // for a refused operation (SoftHSM: a GCM tag that does not match): the
                // connection is lost only when the token no longer answers either
                if e.lost
                    && matches!(e.ckr, Some("CKR_GENERAL_ERROR" | "CKR_FUNCTION_FAILED"))
                    && self.answers(&s)
                {
                    e.lost = false;
                }
                e
            })
        });
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
                vec![Attribute::EcParams(key::P256_OID.to_vec())],
            ),
            KeyType::EcP384 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(key::P384_OID.to_vec())],
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
        self.made_once(uri, 2)?;
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
            self.made_once(uri, 1)?;
            true
        } else {
            false
        };
        let (handle, generation) = self.with_session(|s, g| Ok((find_secret(s, uri)?, g)))?;
        Ok((
            TokenSecret::new(Arc::clone(self), handle, generation, uri.clone()).with_check_value(),
            made,
        ))
    }

    /// After making a key: the name must hold exactly the objects made (`objects`), else
    /// another process (a second estd starting at the same moment) made one too.
    fn made_once(&self, uri: &Pkcs11Uri, objects: usize) -> Result<(), TokenError> {
        let n = self.with_session(|s, _| count_objects(s, uri))?;
        if n != objects {
            return Err(TokenError::new(format!(
                "{uri}: {n} objects under this name after making one key ({objects} expected): another process made one at the same time; delete the extra ones (pkcs11-tool --delete-object) and start one estd first"
            )));
        }
        Ok(())
    }

    /// The private key the URI names, with its public key, ready to sign.
    pub fn key(self: &Arc<Self>, uri: &Pkcs11Uri) -> Result<TokenKey, TokenError> {
        let (found, generation) = self.with_session(|s, g| Ok((find_key(s, uri)?, g)))?;
        let key = TokenKey::new(Arc::clone(self), found, generation, uri.clone());
        // the private key must sign for the public key found beside it
        key.check()?;
        Ok(key)
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
