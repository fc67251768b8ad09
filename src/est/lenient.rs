//! Reading what EST servers answer, leniently: base64 with CRLF, LF or no line breaks (with
//! or without PEM armour, padding or a Content-Transfer-Encoding header), raw DER, trailing
//! NUL bytes, any spelling of the media types, and certs-only PKCS#7. The client and the
//! registration authority's upstream (`ca::upstream`) read answers with these.

use base64::Engine;
use der::{Decode, Encode, Reader};

const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Strips what some servers leave around a body: NUL bytes and whitespace at either end.
pub fn clean(body: &[u8]) -> &[u8] {
    let is_junk = |b: &u8| *b == 0 || b.is_ascii_whitespace();
    let start = body.iter().position(|b| !is_junk(b)).unwrap_or(body.len());
    let end = body
        .iter()
        .rposition(|b| !is_junk(b))
        .map_or(start, |i| i + 1);
    &body[start..end]
}

/// The DER SEQUENCE a body starts with, when the body is one (followed by nothing, or only
/// by NUL bytes and whitespace). Binary DER is never trimmed: it may end in any byte.
fn leading_sequence(body: &[u8]) -> Option<&[u8]> {
    if body.first() != Some(&0x30) {
        return None;
    }
    let mut reader = der::SliceReader::new(body).ok()?;
    der::asn1::AnyRef::decode(&mut reader).ok()?;
    let len = usize::try_from(reader.position()).ok()?;
    let (tlv, rest) = body.split_at(len);
    rest.iter()
        .all(|b| *b == 0 || b.is_ascii_whitespace())
        .then_some(tlv)
}

/// The DER inside a body: raw DER as is, else base64 (whitespace of any kind ignored, PEM
/// armour of any label removed).
pub fn decode(body: &[u8]) -> Result<Vec<u8>, String> {
    if let Some(der) = leading_sequence(body) {
        return Ok(der.to_vec());
    }
    let body = clean(body);
    if body.is_empty() {
        return Err("the body is empty".into());
    }
    let text = std::str::from_utf8(body).map_err(|_| "the body is neither DER nor base64")?;
    let inner: String = if text.starts_with("-----BEGIN ") {
        text.lines()
            .filter(|l| !l.starts_with("-----"))
            .filter(|l| !l.contains(':')) // old-style PEM headers
            .collect()
    } else {
        text.to_string()
    };
    let compact: Vec<u8> = inner.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    LENIENT
        .decode(&compact)
        .map_err(|e| format!("the body is not base64: {e}"))
}

/// The media type of a Content-Type value, lower case, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .to_ascii_lowercase()
}

/// The certificates of a certs-only PKCS#7 (CMS SignedData), DER each, in order.
pub fn certs_from_pkcs7(der: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    let info = ContentInfo::from_der(der).map_err(|e| format!("not a PKCS#7 ContentInfo: {e}"))?;
    let sd: SignedData = info
        .content
        .decode_as()
        .map_err(|e| format!("not a PKCS#7 SignedData: {e}"))?;
    let mut out = Vec::new();
    for c in sd.certificates.map(|s| s.0).unwrap_or_default().iter() {
        if let cms::cert::CertificateChoices::Certificate(c) = c {
            out.push(c.to_der().map_err(|e| e.to_string())?);
        }
    }
    if out.is_empty() {
        return Err("the PKCS#7 holds no certificate".into());
    }
    Ok(out)
}
