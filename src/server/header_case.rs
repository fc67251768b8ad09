//! HTTP/1.1 header names spelled as their RFCs spell them (`WWW-Authenticate`,
//! `Content-Type`, `X-Request-Id`), byte for byte.
//!
//! Why: libest, the EST library inside many routers and IoT stacks, finds response headers
//! with a case-sensitive `strncmp(name, "WWW-Authenticate", 16)`. hyper writes names in lower
//! case, or with `title_case_headers` as `Www-Authenticate`: either way libest sees no
//! challenge and never authenticates. HTTP/2 names stay lower case, as RFC 9113 requires.
//!
//! How: hyper writes a response's header names from a `HeaderCaseMap` found in the
//! response's extensions, and falls back to title case for names the map lacks. That type is
//! private to hyper (hyperium/hyper #2313, #2873), but hyper builds one for every request it
//! parses with `preserve_header_case`, and `http::Extensions` can be cloned and moved whole.
//! So at start [`learn`] parses, over an in-memory pipe, one request whose header names are
//! [`SPELLINGS`], keeps that request's extensions, and [`apply`] puts a copy into every
//! HTTP/1.x response that carries a name title case misspells (`WWW-Authenticate`); the
//! rest are written in title case (`title_case_headers`), which spells them exactly. [`learn`] then sends a response through the same path and reads its raw
//! bytes back: if a future hyper stops honouring the map, start-up says so in the log (and
//! `tests/header_case.rs`, which reads every listener's raw bytes, fails).
//!
//! The only other ways were a byte-rewriting stream below hyper (it would have to track
//! message framing to know where a header block starts) or a fork of hyper.

use std::sync::{Arc, Mutex, OnceLock};

use axum::http::{Extensions, HeaderValue, Response, Version};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every response header name estd sends, as the defining RFC spells it (RFC 9110, 9111,
/// 6265, 7030 §3.2.4, 6797, 7034, W3C CSP and Referrer Policy; `X-Request-Id` and
/// `X-Content-Type-Options` as their common use). A name not here is written in title case.
pub const SPELLINGS: &[&str] = &[
    "Allow",
    "Cache-Control",
    "Connection",
    "Content-Disposition",
    "Content-Length",
    "Content-Security-Policy",
    "Content-Transfer-Encoding",
    "Content-Type",
    "Date",
    "Location",
    "Referrer-Policy",
    "Retry-After",
    "Set-Cookie",
    "Strict-Transport-Security",
    "Transfer-Encoding",
    "Vary",
    "WWW-Authenticate",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-Request-Id",
];

/// The names in [`SPELLINGS`] that hyper's title case gets wrong (it writes
/// `Www-Authenticate`). Every other name comes out right from title case alone, so only a
/// response carrying one of these needs (and gets) the map: the others cost nothing.
const NOT_TITLE_CASE: &[&str] = &["WWW-Authenticate"];

/// Names that may appear more than once in one response: the map holds this many
/// spellings of each (hyper takes one per occurrence, then falls back to title case).
const REPEATS: usize = 4;
const REPEATED: &[&str] = &["Set-Cookie", "WWW-Authenticate", "Vary"];

/// The request's extensions hyper made, holding its header-case map.
static LEARNED: OnceLock<Extensions> = OnceLock::new();

/// Writes the exact spellings into an HTTP/1.x response that carries a name title case
/// gets wrong (a no-op for HTTP/2, for other responses, whose names title case writes
/// exactly, and before [`learn`] has run).
pub fn apply<B>(version: Version, resp: &mut Response<B>) {
    if version >= Version::HTTP_2
        || !NOT_TITLE_CASE
            .iter()
            .any(|n| resp.headers().contains_key(*n))
    {
        return;
    }
    if let Some(ext) = LEARNED.get() {
        resp.extensions_mut().extend(ext.clone());
    }
}

/// Learns the header-case map once (later calls return at once) and checks that hyper
/// writes it. Returns the names hyper did not spell exactly (empty when all is well).
pub async fn learn() -> Vec<String> {
    if LEARNED.get().is_some() {
        return Vec::new();
    }
    match round_trip().await {
        Ok((ext, head)) => {
            let wrong = misspelled(&head);
            if wrong.is_empty() {
                tracing::debug!("HTTP/1.1 header names: exact spellings in use");
            } else {
                tracing::error!(
                    wrong = %wrong.join(", "),
                    "HTTP/1.1 header names: hyper did not write the exact spellings; \
                     clients that compare names case-sensitively (libest) will fail"
                );
            }
            let _ = LEARNED.set(ext);
            wrong
        }
        Err(e) => {
            tracing::error!(error = %e, "HTTP/1.1 header names: could not learn the exact spellings; title case in use");
            vec![e]
        }
    }
}

/// The names in a raw response head (after the status line) that are not in [`SPELLINGS`].
fn misspelled(head: &str) -> Vec<String> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':').map(|(n, _)| n))
        .filter(|n| !SPELLINGS.contains(n))
        .map(str::to_string)
        .collect()
}

/// One request and one response through hyper's HTTP/1.1 server over an in-memory pipe:
/// the request's extensions, and the response head as it came out.
async fn round_trip() -> Result<(Extensions, String), String> {
    let mut request = String::from("GET / HTTP/1.1\r\nHost: estd\r\n");
    for name in SPELLINGS {
        let copies = if REPEATED.contains(name) { REPEATS } else { 1 };
        for _ in 0..copies {
            // framing headers with values hyper accepts in a request
            let value = match *name {
                "Content-Length" => "0",
                "Connection" => "close",
                "Transfer-Encoding" => continue,
                _ => "x",
            };
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("\r\n");

    let captured: Arc<Mutex<Option<Extensions>>> = Arc::new(Mutex::new(None));
    let keep = captured.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let keep = keep.clone();
        async move {
            let ext = req.into_parts().0.extensions;
            if let Ok(mut slot) = keep.lock() {
                *slot = Some(ext.clone());
            }
            let mut resp = Response::new(http_body_util::Empty::<axum::body::Bytes>::new());
            for name in SPELLINGS {
                if !matches!(*name, "Content-Length" | "Transfer-Encoding" | "Date") {
                    resp.headers_mut()
                        .append(*name, HeaderValue::from_static("x"));
                }
            }
            resp.extensions_mut().extend(ext);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let (mut client, server) = tokio::io::duplex(16 * 1024);
    let conn = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .title_case_headers(true)
        .serve_connection(hyper_util::rt::TokioIo::new(server), service);
    let served = tokio::spawn(conn);
    client
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.read_to_end(&mut raw),
    )
    .await;
    served.abort();
    match read {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("no answer from the in-memory connection".into()),
    }
    let ext = captured
        .lock()
        .ok()
        .and_then(|mut s| s.take())
        .ok_or("the in-memory request was not parsed")?;
    let text = String::from_utf8_lossy(&raw);
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string();
    Ok((ext, head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hyper_writes_the_learned_spellings() {
        let wrong = learn().await;
        assert!(wrong.is_empty(), "misspelled: {wrong:?}");
        // a response with WWW-Authenticate gets the map over HTTP/1.1, not over HTTP/2;
        // others need none
        let challenge = || {
            let mut r = Response::new(());
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Basic"));
            r
        };
        let mut resp = challenge();
        apply(Version::HTTP_11, &mut resp);
        assert!(!resp.extensions().is_empty());
        let mut h2 = challenge();
        apply(Version::HTTP_2, &mut h2);
        assert!(h2.extensions().is_empty());
        let mut plain = Response::new(());
        plain
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("text/plain"));
        apply(Version::HTTP_11, &mut plain);
        assert!(plain.extensions().is_empty());
    }

    /// Title case (hyper's: upper case at the start and after each `-`) writes every other
    /// spelling exactly, so NOT_TITLE_CASE is complete.
    #[test]
    fn only_the_listed_names_differ_from_title_case() {
        for name in SPELLINGS {
            let mut title = String::new();
            let mut prev = '-';
            for c in name.to_ascii_lowercase().chars() {
                title.push(if prev == '-' {
                    c.to_ascii_uppercase()
                } else {
                    c
                });
                prev = c;
            }
            assert_eq!(
                title != *name,
                NOT_TITLE_CASE.contains(name),
                "{name} (title case: {title})"
            );
        }
    }

    #[test]
    fn misspelled_names_are_found() {
        let head = "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Basic\r\ncontent-type: x\r\nContent-Length: 0";
        assert_eq!(misspelled(head), ["Www-Authenticate", "content-type"]);
        assert!(misspelled("HTTP/1.1 200 OK\r\nWWW-Authenticate: x\r\nDate: y").is_empty());
    }
}
