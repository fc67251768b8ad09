//! Authentication: password hashing (argon2), the HTTP Basic header, and the `Principal`
//! every request resolves to.

pub mod jwt;
pub mod password;
pub mod throttle;

pub use password::PasswordChecker;
pub use throttle::{Throttle, ThrottleSettings};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    /// A TLS client certificate issued by this CA, by serial (hex), under a template: it
    /// renews that certificate (the principal is its owner, without admin rights).
    ClientCert {
        serial: String,
        template: String,
    },
    /// A portal session cookie.
    Session,
    /// An enrollment code for this template (a one-time code by its id, over EST or as a
    /// SCEP challenge), or the template's static SCEP challenge (no id). The code is the
    /// template's permission: its access groups do not apply.
    Code {
        template: String,
        id: Option<i64>,
    },
    /// A bearer token (JWT) of the configured identity provider: the user (the principal's
    /// name is `token:<user>`) and groups it names, who need no account here.
    Bearer,
    /// A manufacturer certificate (IDevID) a template trusts: the device with this serial
    /// number, whose new certificate's CN must be `cn`. The IDevID is the template's
    /// permission: its access groups do not apply.
    DeviceCert {
        template: String,
        serial: String,
        cn: String,
    },
}

/// The requester of a certificate a SCEP challenge obtained (`scep:challenge-7`,
/// `scep:static`): never a user's name (user names have no `:`), so the certificate's
/// renewals are authorised by the certificate alone.
pub fn is_scep_requester(name: &str) -> bool {
    name.starts_with("scep:")
}

/// The requester of a certificate a device obtained with its IDevID: `idevid:<serial>`.
pub fn device_requester(serial: &str) -> String {
    format!("{IDEVID}{serial}")
}

const IDEVID: &str = "idevid:";

/// The serial number of an IDevID requester (`idevid:<serial>`).
pub fn device_serial(requester: &str) -> Option<&str> {
    requester.strip_prefix(IDEVID)
}

/// The requester of a certificate an enrollment code obtained over EST: `code:<id>`.
pub fn code_requester(id: i64) -> String {
    format!("code:{id}")
}

/// A requester that is no local account (a SCEP challenge, an enrollment code, an IDevID, a
/// bearer token's user): its certificates' renewals are authorised by the certificate
/// alone.
pub fn is_device_requester(name: &str) -> bool {
    is_scep_requester(name)
        || name.starts_with("code:")
        || name.starts_with(TOKEN)
        || device_serial(name).is_some()
}

/// An authenticated identity with its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub groups: Vec<String>,
    pub method: AuthMethod,
}

impl Principal {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The user name the name rules compare a CN with: a token's user without its
    /// `token:` (the principal's name, `token:<user>`, keeps it apart from a local account
    /// of that name everywhere else: records, ownership, `allowed_users`).
    pub fn user_name(&self) -> &str {
        match self.method {
            AuthMethod::Bearer => self.name.strip_prefix(TOKEN).unwrap_or(&self.name),
            _ => &self.name,
        }
    }
}

const TOKEN: &str = "token:";

/// A bearer token's user as a principal's name: `token:<user>`.
pub fn token_principal(user: &str) -> String {
    format!("{TOKEN}{user}")
}

/// The token of `Authorization: Bearer <token>`; `None` for another scheme.
pub fn parse_bearer(header: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Largest password accepted anywhere (argon2 cost is per byte of input only slightly, but
/// an unbounded input is never reasonable).
pub const MAX_PASSWORD: usize = 1024;
/// Largest user name accepted in a Basic header (names estd creates are shorter:
/// [`MAX_USER_NAME`]).
pub const MAX_USER: usize = 256;
pub use crate::model::{MAX_USER_NAME, check_user_name};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    #[error("malformed Authorization header")]
    Malformed,
    #[error("password hashing failed")]
    Hash,
    #[error("no randomness available")]
    Random,
}

/// Hashes a password with argon2id (default parameters) and a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| AuthError::Hash)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| AuthError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Hash)
}

/// Whether a configured secret is an argon2 PHC hash (`$argon2id$…`) rather than the
/// secret itself.
pub fn is_phc(s: &str) -> bool {
    s.starts_with("$argon2") && PasswordHash::new(s).is_ok()
}

/// Checks a password against a stored PHC hash. A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// A hash of a random password, used to spend the same time on unknown users as on known ones.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("estd-dummy-password").unwrap_or_default())
}

/// Parses `Authorization: Basic base64(user:password)`. `Ok(None)` when the header is some
/// other scheme.
pub fn parse_basic(header: &[u8]) -> Result<Option<(String, String)>, AuthError> {
    let text = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?;
    let text = text.trim();
    let Some((scheme, rest)) = text.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let rest = rest.trim();
    if rest.len() > 4 * (MAX_USER + MAX_PASSWORD) / 3 + 4 {
        return Err(AuthError::Malformed);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .map_err(|_| AuthError::Malformed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Malformed)?;
    let (user, password) = decoded.split_once(':').ok_or(AuthError::Malformed)?;
    if user.is_empty() || user.len() > MAX_USER || password.len() > MAX_PASSWORD {
        return Err(AuthError::Malformed);
    }
    Ok(Some((user.to_string(), password.to_string())))
}

/// A random password of `len` characters from an unambiguous alphabet.
/// Recently verified Basic credentials, so that a device enrolling again does not pay for
/// argon2 (~20 ms of CPU) every time. An entry is an HMAC (under a key that lives only in
/// this process) of user and password, with the stored password hash it was checked
/// against and when: it counts only while that hash is still the user's current one (so
/// `estd user passwd`, on any instance, ends it at once) and for `ttl` at most. Failed
/// attempts are never cached: a wrong password always costs argon2.
pub struct CredentialCache {
    key: aws_lc_rs::hmac::Key,
    ttl: std::time::Duration,
    entries: std::sync::Mutex<std::collections::HashMap<Vec<u8>, (String, std::time::Instant)>>,
}

/// Entries kept at most; when full, expired ones are dropped, then everything.
const CACHE_MAX: usize = 10_000;

impl CredentialCache {
    /// `ttl` zero turns the cache off.
    pub fn new(ttl: std::time::Duration) -> Result<Self, AuthError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng)
            .map_err(|_| AuthError::Random)?;
        Ok(Self {
            key,
            ttl,
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn tag(&self, user: &str, password: &str) -> Vec<u8> {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.key);
        ctx.update(&(user.len() as u64).to_be_bytes());
        ctx.update(user.as_bytes());
        ctx.update(password.as_bytes());
        ctx.sign().as_ref().to_vec()
    }

    /// Were these credentials verified against `current_hash` within the TTL?
    pub fn hit(&self, user: &str, password: &str, current_hash: &str) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let tag = self.tag(user, password);
        let Ok(map) = self.entries.lock() else {
            return false;
        };
        matches!(map.get(&tag), Some((hash, at)) if hash == current_hash && at.elapsed() < self.ttl)
    }

    /// Remembers credentials argon2 just accepted against `hash`.
    pub fn remember(&self, user: &str, password: &str, hash: &str) {
        if self.ttl.is_zero() {
            return;
        }
        let tag = self.tag(user, password);
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= CACHE_MAX {
                let ttl = self.ttl;
                map.retain(|_, (_, at)| at.elapsed() < ttl);
                if map.len() >= CACHE_MAX {
                    map.clear();
                }
            }
            map.insert(tag, (hash.to_string(), std::time::Instant::now()));
        }
    }
}

pub fn random_password(len: usize) -> Result<String, AuthError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| AuthError::Hash)?;
    // 256 % 57 != 0: reject the top of the range to keep the choice uniform.
    let mut out = String::with_capacity(len);
    let mut i = 0;
    while out.len() < len {
        if i == bytes.len() {
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| AuthError::Hash)?;
            i = 0;
        }
        let b = bytes[i] as usize;
        i += 1;
        if b < 256 - 256 % ALPHABET.len() {
            out.push(ALPHABET[b % ALPHABET.len()] as char);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn remembered_credentials() {
        let c = CredentialCache::new(std::time::Duration::from_millis(200)).unwrap();
        assert!(!c.hit("joe", "pw", "h1"));
        c.remember("joe", "pw", "h1");
        assert!(c.hit("joe", "pw", "h1"));
        assert!(!c.hit("joe", "pw2", "h1"), "another password");
        assert!(
            !c.hit("jo", "epw", "h1"),
            "user and password are kept apart"
        );
        assert!(!c.hit("joe", "pw", "h2"), "the password was changed");
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert!(!c.hit("joe", "pw", "h1"), "expired");
        let off = CredentialCache::new(std::time::Duration::ZERO).unwrap();
        off.remember("joe", "pw", "h1");
        assert!(!off.hit("joe", "pw", "h1"));
    }

    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret ", &h));
        assert!(!verify_password("s3cret", "not a hash"));
    }

    #[test]
    fn basic_header() {
        let enc = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(
            parse_basic(enc("alice:pa:ss").as_bytes()).unwrap(),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(
            parse_basic(enc("bob:").replace("Basic", "basic").as_bytes()).unwrap(),
            Some(("bob".into(), String::new()))
        );
        assert_eq!(parse_basic(b"Bearer abc").unwrap(), None);
        assert_eq!(parse_basic(b"Basic !!!"), Err(AuthError::Malformed));
        assert_eq!(
            parse_basic(enc("nocolon").as_bytes()),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            parse_basic(enc(":pw").as_bytes()),
            Err(AuthError::Malformed)
        );
        assert_eq!(parse_basic(b"\xff\xfe"), Err(AuthError::Malformed));
        let long = "a".repeat(10_000);
        assert_eq!(
            parse_basic(enc(&format!("u:{long}")).as_bytes()),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn random_passwords_differ_and_have_the_length() {
        let a = random_password(20).unwrap();
        let b = random_password(20).unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
