//! The `/serverkeygen` response (RFC 7030 §4.4.2): `multipart/mixed` with the private key
//! (`application/pkcs8`) first and the certificate (certs-only) second, each base64.

use super::{CT_CERTS_ONLY, WireError, encode_body};

/// A random boundary: `estd-` and 32 hex digits (never in base64 text, which has no `-`).
pub fn new_boundary() -> Result<String, WireError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| WireError::Encode("no randomness".into()))?;
    Ok(format!("estd-{}", crate::est::hex(&b)))
}

/// The `Content-Type` of a serverkeygen response.
pub fn content_type(boundary: &str) -> String {
    format!("multipart/mixed; boundary={boundary}")
}

/// The two-part body: PKCS#8 key (DER) then the certs-only PKCS#7 (DER). Delimiters and
/// part headers end in CRLF (RFC 2046); the base64 inside is in 64-character lines.
pub fn serverkeygen_body(boundary: &str, pkcs8_der: &[u8], certs_only_der: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pkcs8_der.len() * 2 + certs_only_der.len() * 2 + 400);
    for (ct, der) in [
        ("application/pkcs8", pkcs8_der),
        (CT_CERTS_ONLY, certs_only_der),
    ] {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: {ct}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(&encode_body(der));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// One part of a multipart body: its headers (lower-case names) and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The boundary parameter of a `multipart/…` Content-Type.
pub fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits a multipart body (for tests and `estd client`): CRLF or LF line ends.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<Part>, WireError> {
    let bad = |m: &str| WireError::Encode(format!("multipart: {m}"));
    let text = std::str::from_utf8(body).map_err(|_| bad("not text"))?;
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut sections = text.split(delimiter.as_str());
    sections.next(); // preamble
    for section in sections {
        if section.starts_with("--") {
            return Ok(parts);
        }
        let section = section
            .strip_prefix("\r\n")
            .or_else(|| section.strip_prefix('\n'))
            .ok_or_else(|| bad("delimiter not followed by a line end"))?;
        // a part may have no headers at all: then the blank line comes first
        let (head, content) = if let Some(c) = section.strip_prefix("\r\n") {
            ("", c)
        } else if let Some(c) = section.strip_prefix('\n') {
            ("", c)
        } else {
            section
                .split_once("\r\n\r\n")
                .or_else(|| section.split_once("\n\n"))
                .ok_or_else(|| bad("part without a blank line after its headers"))?
        };
        let headers = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let content = content
            .strip_suffix("\r\n")
            .or_else(|| content.strip_suffix('\n'))
            .unwrap_or(content);
        parts.push(Part {
            headers,
            body: content.as_bytes().to_vec(),
        });
    }
    Err(bad("no closing delimiter"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::est::decode_body;

    #[test]
    fn round_trip_with_the_boundary_from_the_header() {
        let boundary = new_boundary().unwrap();
        assert_ne!(boundary, new_boundary().unwrap());
        let ct = content_type(&boundary);
        let key = vec![0x30, 0x03, 0x02, 0x01, 0x00];
        let certs = vec![0xAB; 300];
        let body = serverkeygen_body(&boundary, &key, &certs);
        let parts = parse_multipart(&body, &boundary_of(&ct).unwrap()).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].header("content-type"), Some("application/pkcs8"));
        assert_eq!(
            parts[1].header("Content-Type"),
            Some("application/pkcs7-mime; smime-type=certs-only")
        );
        assert_eq!(parts[0].header("content-transfer-encoding"), Some("base64"));
        assert_eq!(decode_body(&parts[0].body).unwrap(), key);
        assert_eq!(decode_body(&parts[1].body).unwrap(), certs);
        assert!(body.ends_with(format!("--{boundary}--\r\n").as_bytes()));
    }

    #[test]
    fn boundary_parameter() {
        assert_eq!(
            boundary_of("multipart/mixed; boundary=est").as_deref(),
            Some("est")
        );
        assert_eq!(
            boundary_of("multipart/mixed;Boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary_of("multipart/mixed"), None);
    }

    #[test]
    fn truncated_bodies_are_errors() {
        assert!(parse_multipart(b"--b\r\nContent-Type: x\r\n\r\nAAAA\r\n", "b").is_err());
        assert!(parse_multipart(b"--b\r\nno blank line", "b").is_err());
    }
}
