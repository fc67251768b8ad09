//! Base64 bodies, RFC 8951 style: lenient in, strict out.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::WireError;

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes an EST request body to DER.
///
/// Accepts base64 with or without line breaks (CRLF or LF) and trailing whitespace, with or
/// without padding; a PEM-wrapped CSR (`-----BEGIN CERTIFICATE REQUEST-----` or the `NEW`
/// variant); and raw binary DER (a `SEQUENCE` that is clearly not text). The
/// Content-Transfer-Encoding header is ignored, as RFC 8951 asks.
pub fn decode_body(body: &[u8]) -> Result<Vec<u8>, WireError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(WireError::Empty);
    }
    if trimmed.first() == Some(&0x30) && trimmed.iter().any(|b| !b.is_ascii()) {
        return Ok(trimmed.to_vec());
    }
    let text = if trimmed.starts_with(b"-----BEGIN ") {
        strip_pem(trimmed)?
    } else {
        trimmed
    };
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    LENIENT.decode(&compact).map_err(|_| WireError::Base64)
}

/// Returns the base64 between the BEGIN and END lines of a PEM CSR.
fn strip_pem(text: &[u8]) -> Result<&[u8], WireError> {
    let text = std::str::from_utf8(text).map_err(|_| WireError::Pem)?;
    let mut lines = text.lines();
    let begin = lines.next().ok_or(WireError::Pem)?.trim();
    if begin != "-----BEGIN CERTIFICATE REQUEST-----"
        && begin != "-----BEGIN NEW CERTIFICATE REQUEST-----"
    {
        return Err(WireError::Pem);
    }
    let end_label = begin.replace("BEGIN", "END");
    let start = text.find('\n').ok_or(WireError::Pem)? + 1;
    let end = text.find(&end_label).ok_or(WireError::Pem)?;
    if end < start {
        return Err(WireError::Pem);
    }
    Ok(&text.as_bytes()[start..end])
}

/// Encodes DER as the body of an EST response: base64 in lines of 64 characters, each ending
/// in LF, as libest does, so that `curl … | base64 -d` works (GNU base64 rejects CR).
pub fn encode_body(der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = Vec::with_capacity(b64.len() + b64.len() / 64 + 1);
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// PEM text of one DER object: base64 in 64-character lines, LF line ends.
pub fn pem(label: &str, der: &[u8]) -> String {
    let mut out = format!("-----BEGIN {label}-----\n");
    out.push_str(&String::from_utf8_lossy(&encode_body(der)));
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_wraps_at_64_with_lf() {
        let der = vec![0xAB; 100];
        let body = encode_body(&der);
        let text = std::str::from_utf8(&body).unwrap();
        assert!(!text.contains('\r'));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].len(), 64);
        assert!(lines.iter().all(|l| l.len() <= 64));
        assert!(text.ends_with('\n'));
        assert_eq!(decode_body(&body).unwrap(), der);
    }

    #[test]
    fn decode_accepts_every_lenient_form() {
        let der = (0u8..=200).collect::<Vec<_>>();
        let one_line = base64::engine::general_purpose::STANDARD.encode(&der);
        let crlf = one_line
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n");
        let unpadded = one_line.trim_end_matches('=').to_string();
        let pem = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{crlf}\n-----END CERTIFICATE REQUEST-----\n"
        );
        let new_pem = pem.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST");
        for form in [
            one_line.clone(),
            crlf,
            unpadded,
            pem,
            new_pem,
            format!("{one_line}\n\n  "),
        ] {
            assert_eq!(decode_body(form.as_bytes()).unwrap(), der, "form {form:?}");
        }
    }

    #[test]
    fn decode_accepts_binary_der() {
        let der = [0x30, 0x82, 0x01, 0x00, 0xff];
        assert_eq!(decode_body(&der).unwrap(), der);
    }

    #[test]
    fn decode_rejects_garbage() {
        assert_eq!(decode_body(b""), Err(WireError::Empty));
        assert_eq!(decode_body(b"  \n"), Err(WireError::Empty));
        assert_eq!(decode_body(b"not*base64!"), Err(WireError::Base64));
        assert_eq!(
            decode_body(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
            Err(WireError::Pem)
        );
        assert_eq!(
            decode_body(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"),
            Err(WireError::Pem)
        );
    }
}
