//! Authentication: password hashing (argon2), the HTTP Basic header, and the `Principal`
//! every request resolves to.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;

/// How a principal proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    /// A TLS client certificate issued by this CA, by serial (hex).
    ClientCert {
        serial: String,
    },
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
}

/// Largest password accepted anywhere (argon2 cost is per byte of input only slightly, but
/// an unbounded input is never reasonable).
pub const MAX_PASSWORD: usize = 1024;
/// Largest user name.
pub const MAX_USER: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    #[error("malformed Authorization header")]
    Malformed,
    #[error("password hashing failed")]
    Hash,
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
