//! Bearer tokens (RFC 6750) for MDM connectors and services: JWTs (RFC 7519) signed by the
//! organisation's identity provider, verified against its JWKS (RFC 7517) with RS256, ES256
//! or EdDSA (Ed25519), the issuer and audience checked, one claim the user name and one the
//! groups. Pure: the key set is handed in (`service::tokens` reads and refreshes it).

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

/// The longest token accepted (a JWT with a few claims is well under 2 KiB).
pub const MAX_TOKEN: usize = 8 * 1024;
/// The most keys a key set holds.
pub const MAX_KEYS: usize = 64;

/// A signature algorithm estd verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyMaterial {
    /// Modulus and exponent, big-endian.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point (0x04 ‖ x ‖ y).
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl KeyMaterial {
    fn alg(&self) -> Alg {
        match self {
            Self::Rsa { .. } => Alg::Rs256,
            Self::P256(_) => Alg::Es256,
            Self::Ed25519(_) => Alg::EdDsa,
        }
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            Self::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
            Self::P256(point) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok(),
            Self::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(msg, sig)
                .is_ok(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Jwk {
    kid: Option<String>,
    key: KeyMaterial,
}

/// The identity provider's public keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

fn b64url(s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| "not base64url".to_string())
}

impl KeySet {
    /// Reads a JWKS (`{"keys": [...]}`): RSA keys of 2048 bits or more, EC P-256 and OKP
    /// Ed25519 keys. Keys for encryption (`"use": "enc"`) and of other types are skipped; a
    /// key of a known type that does not read, or a `kid` twice, is an error.
    pub fn from_jwks(json: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
        let list = v
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("no \"keys\" array")?;
        let mut keys: Vec<Jwk> = Vec::new();
        for (i, k) in list.iter().enumerate() {
            let field = |name: &str| k.get(name).and_then(Value::as_str);
            if field("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let bad = |m: String| format!("key {i}: {m}");
            let bytes = |name: &str| {
                field(name)
                    .ok_or_else(|| bad(format!("no {name:?}")))
                    .and_then(|s| b64url(s).map_err(|e| bad(format!("{name}: {e}"))))
            };
            let key = match (field("kty"), field("crv")) {
                (Some("RSA"), _) => {
                    let n = bytes("n")?;
                    let n: Vec<u8> = n.iter().copied().skip_while(|b| *b == 0).collect();
                    if n.len() * 8 < 2048 {
                        return Err(bad("an RSA key under 2048 bits".into()));
                    }
                    KeyMaterial::Rsa { n, e: bytes("e")? }
                }
                (Some("EC"), Some("P-256")) => {
                    let (x, y) = (bytes("x")?, bytes("y")?);
                    if x.len() != 32 || y.len() != 32 {
                        return Err(bad("a P-256 point is two 32-byte coordinates".into()));
                    }
                    let mut point = vec![0x04];
                    point.extend(x);
                    point.extend(y);
                    KeyMaterial::P256(point)
                }
                (Some("OKP"), Some("Ed25519")) => {
                    let x = bytes("x")?;
                    if x.len() != 32 {
                        return Err(bad("an Ed25519 key is 32 bytes".into()));
                    }
                    KeyMaterial::Ed25519(x)
                }
                _ => continue,
            };
            if let Some(alg) = field("alg")
                && Alg::parse(alg) != Some(key.alg())
            {
                return Err(bad(format!("\"alg\": {alg:?} does not go with its key")));
            }
            let kid = field("kid").map(str::to_string);
            if kid.is_some() && keys.iter().any(|k| k.kid == kid) {
                return Err(bad(format!("the kid {kid:?} twice")));
            }
            if keys.len() == MAX_KEYS {
                return Err(format!("more than {MAX_KEYS} keys"));
            }
            keys.push(Jwk { kid, key });
        }
        if keys.is_empty() {
            return Err("no signing key estd can use (RSA, EC P-256, Ed25519)".into());
        }
        Ok(Self { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What a token must say, and which claims name the user and the groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub issuer: String,
    pub audience: String,
    pub user_claim: String,
    pub groups_claim: Option<String>,
    pub algorithms: Vec<Alg>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

/// Who a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user: String,
    pub groups: Vec<String>,
}

/// Why a token is refused (the 401's text: nothing of the token itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the bearer token is not a JWT (header.payload.signature, base64url)")]
    Malformed,
    #[error("the bearer token is longer than {MAX_TOKEN} bytes")]
    TooLong,
    #[error("the bearer token's algorithm {0:?} is not accepted here")]
    Algorithm(String),
    #[error("the bearer token has a critical header estd does not know")]
    Critical,
    #[error("the bearer token's signature does not verify with the identity provider's keys")]
    Signature,
    #[error("the bearer token expired at {0} (Unix time)")]
    Expired(u64),
    #[error("the bearer token is not valid before {0} (Unix time)")]
    NotYet(u64),
    #[error("the bearer token has no \"exp\" claim")]
    NoExpiry,
    #[error("the bearer token's issuer is not {0:?}")]
    Issuer(String),
    #[error("the bearer token is not for the audience {0:?}")]
    Audience(String),
    #[error("the bearer token's claim {0:?} is not a usable user name")]
    User(String),
    #[error("the bearer token's claim {0:?} is not a list of group names")]
    Groups(String),
}

/// The token as sent: a JWT, or (libest's `--auth-token`) the standard base64 of one.
fn unwrap_token(token: &str) -> Result<String, TokenError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN {
        return Err(TokenError::TooLong);
    }
    if token.matches('.').count() == 2 {
        return Ok(token.to_string());
    }
    let decoded = STANDARD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|t| t.matches('.').count() == 2)
        .ok_or(TokenError::Malformed)?;
    Ok(decoded)
}

fn seconds(v: Option<&Value>) -> Option<u64> {
    v.and_then(|x| x.as_u64().or_else(|| x.as_f64().map(|f| f.max(0.0) as u64)))
}

/// Verifies a token against `keys` and `settings` at `now`.
pub fn verify(
    keys: &KeySet,
    settings: &Settings,
    token: &str,
    now: SystemTime,
) -> Result<Claims, TokenError> {
    let token = unwrap_token(token)?;
    let mut parts = token.splitn(3, '.');
    let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let header: Value = b64url(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = Alg::parse(alg_name)
        .filter(|a| settings.algorithms.contains(a))
        .ok_or_else(|| TokenError::Algorithm(alg_name.chars().take(16).collect()))?;
    if header.get("crit").is_some() {
        return Err(TokenError::Critical);
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let sig = b64url(s).map_err(|_| TokenError::Malformed)?;
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    let verified = keys
        .keys
        .iter()
        .filter(|k| k.key.alg() == alg && (kid.is_none() || k.kid.as_deref() == kid))
        .any(|k| k.key.verify(signed, &sig));
    if !verified {
        return Err(TokenError::Signature);
    }
    let claims: Value = b64url(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Value::is_object)
        .ok_or(TokenError::Malformed)?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let leeway = settings.leeway.as_secs();
    let exp = seconds(claims.get("exp")).ok_or(TokenError::NoExpiry)?;
    if now >= exp.saturating_add(leeway) {
        return Err(TokenError::Expired(exp));
    }
    for name in ["nbf", "iat"] {
        if let Some(t) = seconds(claims.get(name))
            && t > now.saturating_add(leeway)
        {
            return Err(TokenError::NotYet(t));
        }
    }
    if claims.get("iss").and_then(Value::as_str) != Some(settings.issuer.as_str()) {
        return Err(TokenError::Issuer(settings.issuer.clone()));
    }
    let for_us = match claims.get("aud") {
        Some(Value::String(a)) => *a == settings.audience,
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str() == Some(settings.audience.as_str())),
        _ => false,
    };
    if !for_us {
        return Err(TokenError::Audience(settings.audience.clone()));
    }
    let user = claims
        .get(&settings.user_claim)
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty() && u.chars().count() <= 256 && !u.chars().any(char::is_control))
        .ok_or_else(|| TokenError::User(settings.user_claim.clone()))?
        .to_string();
    let groups = match &settings.groups_claim {
        None => Vec::new(),
        Some(name) => {
            let bad = || TokenError::Groups(name.clone());
            let list: Vec<String> = match claims.get(name) {
                None => Vec::new(),
                Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|g| g.as_str().map(str::to_string).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(bad()),
            };
            if list.len() > 256
                || list
                    .iter()
                    .any(|g| g.is_empty() || g.len() > 256 || g.chars().any(char::is_control))
            {
                return Err(bad());
            }
            list
        }
    };
    Ok(Claims { user, groups })
}

/// The settings and the current key set, which a refresh replaces.
#[derive(Debug)]
pub struct Verifier {
    settings: Settings,
    keys: RwLock<Arc<KeySet>>,
}

impl Verifier {
    pub fn new(settings: Settings, keys: KeySet) -> Self {
        Self {
            settings,
            keys: RwLock::new(Arc::new(keys)),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Replaces the key set (a refreshed JWKS).
    pub fn set_keys(&self, keys: KeySet) {
        if let Ok(mut k) = self.keys.write() {
            *k = Arc::new(keys);
        }
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        verify(&self.keys(), &self.settings, token, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    //! Keys made here with aws-lc-rs; an unwrap failing is the test failing.
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn settings() -> Settings {
        Settings {
            issuer: "https://idp.example".into(),
            audience: "estd".into(),
            user_claim: "sub".into(),
            groups_claim: Some("groups".into()),
            algorithms: vec![Alg::Rs256, Alg::Es256, Alg::EdDsa],
            leeway: Duration::from_secs(60),
        }
    }

    fn b64j(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    struct Ed(Ed25519KeyPair);

    impl Ed {
        fn new() -> Self {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            Self(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
        }
        fn jwks(&self, kid: &str) -> KeySet {
            let x = URL_SAFE_NO_PAD.encode(self.0.public_key().as_ref());
            KeySet::from_jwks(
                serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}]})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap()
        }
        fn token(&self, header: Value, claims: Value) -> String {
            let signed = format!("{}.{}", b64j(&header), b64j(&claims));
            let sig = self.0.sign(signed.as_bytes());
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn claims() -> Value {
        serde_json::json!({"iss": "https://idp.example", "aud": ["x", "estd"], "sub": "alice",
            "groups": ["est", "mdm"], "exp": now() + 300, "iat": now()})
    }

    #[test]
    fn a_good_token_and_each_refusal() {
        let k = Ed::new();
        let keys = k.jwks("k1");
        let h = serde_json::json!({"alg": "EdDSA", "kid": "k1"});
        let ok = verify(
            &keys,
            &settings(),
            &k.token(h.clone(), claims()),
            SystemTime::now(),
        );
        assert_eq!(
            ok,
            Ok(Claims {
                user: "alice".into(),
                groups: vec!["est".into(), "mdm".into()]
            })
        );
        // libest sends the standard base64 of the token
        let wrapped = STANDARD.encode(k.token(h.clone(), claims()));
        assert!(verify(&keys, &settings(), &wrapped, SystemTime::now()).is_ok());
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = claims();
            f(&mut c);
            verify(
                &keys,
                &settings(),
                &k.token(h.clone(), c),
                SystemTime::now(),
            )
        };
        assert!(matches!(
            with(&|c| c["aud"] = "other".into()),
            Err(TokenError::Audience(_))
        ));
        assert!(matches!(
            with(&|c| c["iss"] = "evil".into()),
            Err(TokenError::Issuer(_))
        ));
        assert!(matches!(
            with(&|c| c["exp"] = (now() - 120).into()),
            Err(TokenError::Expired(_))
        ));
        assert!(matches!(
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            Err(TokenError::NoExpiry)
        ));
        assert!(matches!(
            with(&|c| c["nbf"] = (now() + 600).into()),
            Err(TokenError::NotYet(_))
        ));
        assert!(matches!(
            with(&|c| c["sub"] = "a\u{7}".into()),
            Err(TokenError::User(_))
        ));
        assert!(matches!(
            with(&|c| c["groups"] = 5.into()),
            Err(TokenError::Groups(_))
        ));
        // space-separated groups are a list too
        assert_eq!(
            with(&|c| c["groups"] = "a b".into()).map(|c| c.groups),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        // none, HS256, another key, a changed payload, crit
        for alg in ["none", "HS256", "RS384"] {
            let t = k.token(serde_json::json!({"alg": alg}), claims());
            assert!(matches!(
                verify(&keys, &settings(), &t, SystemTime::now()),
                Err(TokenError::Algorithm(_))
            ));
        }
        let other = Ed::new().token(h.clone(), claims());
        assert_eq!(
            verify(&keys, &settings(), &other, SystemTime::now()),
            Err(TokenError::Signature)
        );
        let good = k.token(h.clone(), claims());
        let mut forged: Vec<&str> = good.split('.').collect();
        let evil = b64j(
            &serde_json::json!({"iss": "https://idp.example", "aud": "estd", "sub": "admin", "exp": now() + 300}),
        );
        forged[1] = &evil;
        assert_eq!(
            verify(&keys, &settings(), &forged.join("."), SystemTime::now()),
            Err(TokenError::Signature)
        );
        let crit = k.token(
            serde_json::json!({"alg": "EdDSA", "crit": ["exp"]}),
            claims(),
        );
        assert_eq!(
            verify(&keys, &settings(), &crit, SystemTime::now()),
            Err(TokenError::Critical)
        );
        let unknown_kid = k.token(serde_json::json!({"alg": "EdDSA", "kid": "k2"}), claims());
        assert_eq!(
            verify(&keys, &settings(), &unknown_kid, SystemTime::now()),
            Err(TokenError::Signature)
        );
        assert_eq!(
            verify(
                &keys,
                &settings(),
                &"a".repeat(MAX_TOKEN + 1),
                SystemTime::now()
            ),
            Err(TokenError::TooLong)
        );
    }

    #[test]
    fn es256_tokens_verify() {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
        let point = kp.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])}]});
        let keys = KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap();
        let signed = format!(
            "{}.{}",
            b64j(&serde_json::json!({"alg": "ES256"})),
            b64j(&claims())
        );
        let sig = kp.sign(&rng, signed.as_bytes()).unwrap();
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        assert!(verify(&keys, &settings(), &token, SystemTime::now()).is_ok());
        // ES256 refused when the settings do not list it
        let mut only_ed = settings();
        only_ed.algorithms = vec![Alg::EdDsa];
        assert!(matches!(
            verify(&keys, &only_ed, &token, SystemTime::now()),
            Err(TokenError::Algorithm(_))
        ));
    }

    #[test]
    fn key_sets_are_checked() {
        for (jwks, want) in [
            ("[]", "no \"keys\""),
            (r#"{"keys": []}"#, "no signing key"),
            (
                r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#,
                "under 2048 bits",
            ),
            (
                r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}"#,
                "32 bytes",
            ),
            (
                r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "RS256", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
                "does not go with its key",
            ),
        ] {
            let e = KeySet::from_jwks(jwks.as_bytes()).err().unwrap_or_default();
            assert!(e.contains(want), "{jwks}: {e}");
        }
        // encryption keys and unknown types are skipped
        let k = KeySet::from_jwks(
            br#"{"keys": [{"kty": "oct", "k": "AA"}, {"kty": "OKP", "crv": "Ed25519", "use": "enc", "x": "AA"},
                {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
        )
        .unwrap();
        assert_eq!(k.len(), 1);
    }
}
