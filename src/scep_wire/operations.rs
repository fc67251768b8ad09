//! What SCEP puts in HTTP (RFC 8894 §4), without HTTP types: the media type of a
//! pkiMessage, the request target of an operation (a GET PKIOperation carries the message,
//! base64, in the URL), and what GetCACaps listed. The client, the server's adapter and
//! the registration authority's SCEP upstream share these.

use super::envelope::Cipher;

/// The media type of a pkiMessage, both ways.
pub const CT_PKI_MESSAGE: &str = "application/x-pki-message";

/// The request target of an operation on `path` (with `query` kept first), with the
/// message (base64, `+`, `/` and `=` escaped) for a GET PKIOperation.
pub fn target(path: &str, query: Option<&str>, operation: &str, message: Option<&[u8]>) -> String {
    use base64::Engine;
    let mut t = path.to_string();
    t.push('?');
    if let Some(q) = query {
        t.push_str(q);
        t.push('&');
    }
    t.push_str("operation=");
    t.push_str(operation);
    if let Some(m) = message {
        let b64 = base64::engine::general_purpose::STANDARD.encode(m);
        t.push_str("&message=");
        t.push_str(
            &b64.replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D"),
        );
    }
    t
}

/// What GetCACaps listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps(pub Vec<String>);

impl Caps {
    /// One capability a line (CRLF or LF), blank lines left out.
    pub fn parse(body: &[u8]) -> Self {
        Self(
            String::from_utf8_lossy(body)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        )
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|c| c.eq_ignore_ascii_case(name))
    }

    /// POST for PKIOperation (else GET with the message in the URL).
    pub fn post(&self) -> bool {
        self.has("POSTPKIOperation") || self.has("SCEPStandard")
    }

    /// AES-128 when the server lists AES or SCEPStandard, 3DES when it lists only DES3,
    /// else AES-128 all the same (single DES is never sent).
    pub fn cipher(&self) -> Cipher {
        if !self.has("AES") && !self.has("SCEPStandard") && self.has("DES3") {
            Cipher::DesEde3Cbc
        } else {
            Cipher::Aes128Cbc
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_choose_the_method_and_the_cipher() {
        let caps = |s: &[&str]| Caps::parse(s.join("\r\n").as_bytes());
        assert!(caps(&["POSTPKIOperation"]).post());
        assert!(caps(&["SCEPStandard"]).post());
        assert!(!caps(&["AES", "SHA-256"]).post());
        assert_eq!(caps(&["aes"]).cipher(), Cipher::Aes128Cbc);
        assert_eq!(caps(&["DES3"]).cipher(), Cipher::DesEde3Cbc);
        assert_eq!(caps(&["DES3", "SCEPStandard"]).cipher(), Cipher::Aes128Cbc);
        assert_eq!(caps(&[]).cipher(), Cipher::Aes128Cbc);
    }
}
