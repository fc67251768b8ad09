//! EST as the registration authority speaks it to its upstream: the requests (RFC 7030
//! §4.1, §4.2) and how each answer reads (RFC 8951 base64, certs-only PKCS#7, 202 with
//! Retry-After, an error's text).

use std::time::Duration;

use super::{Method, OutboundAnswer, OutboundRequest};
use crate::est::lenient;

/// How an enrollment answer reads, before the certificate is checked.
#[derive(Debug)]
pub enum Read {
    /// 200: the certificates of the certs-only answer.
    Certs(Vec<Vec<u8>>),
    /// 202: ask again after this long.
    Pending(Duration),
    /// The upstream refused this request (4xx other than 401): its status and reason.
    Refused { status: u16, reason: String },
    /// The upstream failed, or refused the RA itself (401, 5xx, an unreadable 200).
    Failed {
        detail: String,
        retry_after: Option<u64>,
    },
}

/// Longest refusal text kept from an upstream's answer.
const MAX_REASON: usize = 300;

/// A `Retry-After` of a 202 when the upstream sends none (RFC 7030 §4.2.3 requires one).
pub const DEFAULT_RETRY: Duration = Duration::from_secs(60);

pub fn cacerts(path: &str, basic: Option<&str>) -> OutboundRequest {
    OutboundRequest {
        method: Method::Get,
        path: format!("{path}/cacerts"),
        headers: auth(basic),
        body: Vec::new(),
    }
}

/// `/simpleenroll` or `/simplereenroll` with the CSR, base64 with line breaks (RFC 8951).
pub fn enroll(path: &str, op: &str, csr_der: &[u8], basic: Option<&str>) -> OutboundRequest {
    let mut headers = auth(basic);
    headers.push(("Content-Type".into(), crate::est::CT_PKCS10.to_string()));
    headers.push(("Content-Transfer-Encoding".into(), "base64".into()));
    OutboundRequest {
        method: Method::Post,
        path: format!("{path}/{op}"),
        headers,
        body: crate::est::encode_body(csr_der),
    }
}

fn auth(basic: Option<&str>) -> Vec<(String, String)> {
    basic
        .map(|b| vec![("Authorization".into(), b.to_string())])
        .unwrap_or_default()
}

/// The certificates of a `/cacerts` answer.
pub fn read_cacerts(a: &OutboundAnswer) -> Result<Vec<Vec<u8>>, String> {
    if a.status != 200 {
        return Err(format!(
            "/cacerts answered {}{}",
            a.status,
            reason_suffix(a)
        ));
    }
    let der = lenient::decode(&a.body).map_err(|e| format!("/cacerts: {e}"))?;
    lenient::certs_from_pkcs7(&der).map_err(|e| format!("/cacerts: {e}"))
}

pub fn read_enroll(a: &OutboundAnswer) -> Read {
    match a.status {
        200 => match lenient::decode(&a.body).and_then(|d| lenient::certs_from_pkcs7(&d)) {
            Ok(certs) => Read::Certs(certs),
            Err(e) => Read::Failed {
                detail: format!("its 200 answer is unreadable: {e}"),
                retry_after: None,
            },
        },
        202 => Read::Pending(retry_after(a).map_or(DEFAULT_RETRY, Duration::from_secs)),
        401 => Read::Failed {
            detail: format!(
                "it refused the registration authority's credentials (401){}",
                reason_suffix(a)
            ),
            retry_after: None,
        },
        s @ 400..=499 if s != 408 && s != 429 => Read::Refused {
            status: s,
            reason: reason(a),
        },
        s => Read::Failed {
            detail: format!("it answered {s}{}", reason_suffix(a)),
            retry_after: retry_after(a),
        },
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by EST servers; ignored).
pub fn retry_after(a: &OutboundAnswer) -> Option<u64> {
    a.header("retry-after")?.trim().parse().ok()
}

/// The answer's text, printable and bounded: what the device is told the upstream said.
pub fn reason(a: &OutboundAnswer) -> String {
    // lines joined with spaces (estd's own refusals end with a "Request ID: …" line)
    let text = String::from_utf8_lossy(&a.body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let text = if text.is_empty() {
        format!("HTTP {}", a.status)
    } else {
        text
    };
    let printable = crate::model::printable(&text).into_owned();
    printable.chars().take(MAX_REASON).collect()
}

fn reason_suffix(a: &OutboundAnswer) -> String {
    let r = reason(a);
    if r.starts_with("HTTP ") {
        String::new()
    } else {
        format!(": {r}")
    }
}

#[cfg(test)]
mod tests {
    //! A `panic!` here is the test failing on an unexpected reading.
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> OutboundAnswer {
        OutboundAnswer {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn answers_read_as_the_device_must_be_told() {
        assert!(matches!(
            read_enroll(&answer(202, &[("Retry-After", "120")], "")),
            Read::Pending(d) if d == Duration::from_secs(120)
        ));
        assert!(matches!(
            read_enroll(&answer(202, &[], "")),
            Read::Pending(d) if d == DEFAULT_RETRY
        ));
        match read_enroll(&answer(403, &[], "User x may not\u{1b}[31m use T\n")) {
            Read::Refused { status, reason } => {
                assert_eq!(status, 403);
                assert!(!reason.contains('\u{1b}'), "escaped: {reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read_enroll(&answer(401, &[], "")),
            Read::Failed { .. }
        ));
        assert!(matches!(
            read_enroll(&answer(503, &[("retry-after", "7")], "busy")),
            Read::Failed {
                retry_after: Some(7),
                ..
            }
        ));
        assert!(matches!(
            read_enroll(&answer(200, &[], "not base64 !!")),
            Read::Failed { .. }
        ));
        let long = "x".repeat(5000);
        match read_enroll(&answer(400, &[], &long)) {
            Read::Refused { reason, .. } => assert_eq!(reason.len(), MAX_REASON),
            other => panic!("{other:?}"),
        }
    }
}
