//! RFC 7512 PKCS#11 URIs naming a key in a token: `pkcs11:token=estd;object=issuing-ca`.
//!
//! Only what estd needs is accepted: the token (`token`, `serial`, `slot-id`), the object
//! (`object` = CKA_LABEL, `id` = CKA_ID, `type`), and in the query `module-path` and
//! `pin-source`. `pin-value` is refused: the PIN comes from `ca.pin_file` or `ESTD_CA_PIN`,
//! never from a configuration value that is printed, logged or committed.

use std::fmt;

/// A parsed PKCS#11 URI. `Display` writes it back without anything secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pkcs11Uri {
    /// CK_TOKEN_INFO label.
    pub token: Option<String>,
    /// CK_TOKEN_INFO serialNumber.
    pub serial: Option<String>,
    pub slot_id: Option<u64>,
    /// CKA_LABEL.
    pub object: Option<String>,
    /// CKA_ID, raw bytes.
    pub id: Option<Vec<u8>>,
    /// `private`, `public`, `cert`, `secret-key` or `data`.
    pub object_type: Option<String>,
    pub module_path: Option<String>,
    /// `file:/path` or a plain path (RFC 7512 leaves the form open).
    pub pin_source: Option<String>,
}

/// Why a PKCS#11 URI is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UriError(String);

const TYPES: &[&str] = &["private", "public", "cert", "secret-key", "data"];

impl Pkcs11Uri {
    /// Is `s` meant as a PKCS#11 URI (rather than a file path)?
    pub fn is_uri(s: &str) -> bool {
        s.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("pkcs11:"))
    }

    pub fn parse(s: &str) -> Result<Self, UriError> {
        let err = |m: String| Err(UriError(m));
        if !Self::is_uri(s) {
            return err("a PKCS#11 URI starts with pkcs11:".into());
        }
        let rest = &s[7..];
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = Self::default();
        let mut seen: Vec<String> = Vec::new();
        let attrs = path
            .split(';')
            .map(|a| (a, false))
            .chain(query.split('&').map(|a| (a, true)));
        for (attr, in_query) in attrs {
            if attr.is_empty() {
                continue;
            }
            let Some((name, value)) = attr.split_once('=') else {
                return err(format!("{:?}: expected NAME=VALUE", name_only(attr)));
            };
            let name = name.to_ascii_lowercase();
            if seen.contains(&name) {
                return err(format!("{name} is given twice"));
            }
            seen.push(name.clone());
            let bytes = decode(value).map_err(|m| UriError(format!("{name}: {m}")))?;
            let text = || {
                String::from_utf8(bytes.clone())
                    .map_err(|_| UriError(format!("{name}: not UTF-8 text")))
            };
            match (name.as_str(), in_query) {
                ("token", false) => uri.token = Some(text()?),
                ("serial", false) => uri.serial = Some(text()?),
                ("slot-id", false) => {
                    uri.slot_id = Some(
                        text()?
                            .parse()
                            .map_err(|_| UriError("slot-id: not a number".into()))?,
                    )
                }
                ("object", false) => uri.object = Some(text()?),
                ("id", false) => uri.id = Some(bytes),
                ("type", false) => {
                    let t = text()?;
                    if !TYPES.contains(&t.as_str()) {
                        return err(format!("type {t:?}: one of {}", TYPES.join(", ")));
                    }
                    uri.object_type = Some(t);
                }
                ("module-path", true) => uri.module_path = Some(text()?),
                ("pin-source", true) => uri.pin_source = Some(text()?),
                ("pin-value", _) => {
                    // the value is not echoed
                    return err(
                        "pin-value is not accepted: give the PIN in ca.pin_file or ESTD_CA_PIN"
                            .into(),
                    );
                }
                (n, _) if n.starts_with("x-") => {}
                (n, q)
                    if matches!(
                        n,
                        "manufacturer"
                            | "model"
                            | "library-manufacturer"
                            | "library-description"
                            | "library-version"
                            | "slot-description"
                            | "slot-manufacturer"
                            | "module-name"
                    ) && (q == (n == "module-name")) => {}
                (n, _) => return err(format!("{n:?} is not a PKCS#11 URI attribute estd knows")),
            }
        }
        if uri.object.is_none() && uri.id.is_none() {
            return err("name the key with object=LABEL or id=%HH…".into());
        }
        Ok(uri)
    }
}

/// The name part of an attribute, for an error message that must not echo a value.
fn name_only(attr: &str) -> &str {
    attr.split('=')
        .next()
        .unwrap_or("")
        .get(..32)
        .unwrap_or(attr)
}

/// Percent-decoding; `%` must be followed by two hex digits.
fn decode(v: &str) -> Result<Vec<u8>, String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a % not followed by two hex digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn encode(bytes: &[u8], out: &mut String) {
    for &c in bytes {
        if c.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |v: &[u8]| {
            let mut s = String::new();
            encode(v, &mut s);
            s
        };
        let mut path = Vec::new();
        if let Some(v) = &self.token {
            path.push(format!("token={}", enc(v.as_bytes())));
        }
        if let Some(v) = &self.serial {
            path.push(format!("serial={}", enc(v.as_bytes())));
        }
        if let Some(v) = self.slot_id {
            path.push(format!("slot-id={v}"));
        }
        if let Some(v) = &self.object {
            path.push(format!("object={}", enc(v.as_bytes())));
        }
        if let Some(v) = &self.id {
            path.push(format!(
                "id={}",
                v.iter().map(|b| format!("%{b:02X}")).collect::<String>()
            ));
        }
        if let Some(v) = &self.object_type {
            path.push(format!("type={v}"));
        }
        let mut query = Vec::new();
        if let Some(v) = &self.module_path {
            query.push(format!("module-path={}", enc(v.as_bytes())));
        }
        if let Some(v) = &self.pin_source {
            query.push(format!("pin-source={}", enc(v.as_bytes())));
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issues_example_and_the_rfcs() {
        let u = Pkcs11Uri::parse("pkcs11:token=estd;object=issuing-ca").unwrap();
        assert_eq!(u.token.as_deref(), Some("estd"));
        assert_eq!(u.object.as_deref(), Some("issuing-ca"));
        assert_eq!(u.to_string(), "pkcs11:token=estd;object=issuing-ca");
        let u = Pkcs11Uri::parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;id=%01%a2;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/estd/pin",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xa2][..]));
        assert_eq!(u.object_type.as_deref(), Some("private"));
        assert_eq!(
            u.module_path.as_deref(),
            Some("/usr/lib/softhsm/libsofthsm2.so")
        );
        assert_eq!(u.pin_source.as_deref(), Some("file:/etc/estd/pin"));
        assert_eq!(Pkcs11Uri::parse(&u.to_string()).unwrap(), u, "round trip");
        assert!(Pkcs11Uri::is_uri("PKCS11:object=x") && !Pkcs11Uri::is_uri("certs/ca.key"));
    }

    #[test]
    fn what_is_refused() {
        for (bad, why) in [
            ("certs/issuing-ca.key", "starts with"),
            ("pkcs11:token=estd", "object=LABEL"),
            ("pkcs11:object=a;object=b", "twice"),
            ("pkcs11:object=a?pin-value=1234", "pin-value"),
            ("pkcs11:object=a;pin-value=1234", "pin-value"),
            ("pkcs11:object=a%2", "two hex digits"),
            ("pkcs11:object=a;type=key", "type"),
            ("pkcs11:object=a;colour=blue", "colour"),
            ("pkcs11:object", "NAME=VALUE"),
            ("pkcs11:object=a;slot-id=x", "slot-id"),
        ] {
            let e = Pkcs11Uri::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("1234"), "the PIN is echoed: {e}");
        }
        // vendor attributes and the informational ones are ignored
        assert!(Pkcs11Uri::parse("pkcs11:object=a;x-vendor=1;manufacturer=SoftHSM").is_ok());
    }
}
