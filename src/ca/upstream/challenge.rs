//! Where a SCEP upstream's challenge password comes from, for the CSRs estd makes itself
//! (server-generated keys, the portal, bulk rows): a device's CSR carries its own (it is
//! signed), which estd passes on untouched.
//!
//! - `Static`: one secret the upstream accepts for every request (NDES with a fixed
//!   password, an estd template's `scep_challenge`).
//! - `Estd`: a one-time challenge an estd upstream issues through its JSON API, bound to
//!   the request's CN and expiring in an hour.
//! - `Ndes`: a one-time password from NDES's `mscep_admin` page (UTF-16LE HTML), fetched
//!   just before the request that uses it: NDES keeps only a few unused ones.

use zeroize::Zeroizing;

use super::{Method, OutboundAnswer, OutboundRequest};

#[derive(Clone, Default)]
pub enum Source {
    /// None: only CSRs that carry their own challenge can be forwarded.
    #[default]
    None,
    Static(Zeroizing<String>),
    /// `POST {path}` (`/api/v1/scep/challenges`) for `template`, as `basic`.
    Estd {
        path: String,
        template: String,
        basic: Zeroizing<String>,
    },
    /// `GET {path}` (`/certsrv/mscep_admin/`), with Basic when given.
    Ndes {
        path: String,
        basic: Option<Zeroizing<String>>,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Static(_) => "Static(…)",
            Self::Estd { .. } => "Estd",
            Self::Ndes { .. } => "Ndes",
        })
    }
}

/// The request that fetches a challenge for a CSR with this CN (`None` for the sources
/// that fetch nothing).
pub fn request(source: &Source, cn: &str) -> Option<OutboundRequest> {
    match source {
        Source::None | Source::Static(_) => None,
        Source::Estd {
            path,
            template,
            basic,
        } => Some(OutboundRequest {
            method: Method::Post,
            path: path.clone(),
            headers: vec![
                ("Authorization".into(), basic.to_string()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: serde_json::json!({"template": template, "cn": cn, "expires": "1h"})
                .to_string()
                .into_bytes(),
        }),
        Source::Ndes { path, basic } => Some(OutboundRequest {
            method: Method::Get,
            path: path.clone(),
            headers: basic
                .iter()
                .map(|b| ("Authorization".to_string(), b.to_string()))
                .collect(),
            body: Vec::new(),
        }),
    }
}

/// The challenge in an answer to `request`.
pub fn read(source: &Source, a: &OutboundAnswer) -> Result<Zeroizing<String>, String> {
    match source {
        Source::Estd { .. } => {
            if a.status != 201 && a.status != 200 {
                return Err(format!(
                    "the challenge API answered {}: {}",
                    a.status,
                    super::est::reason(a)
                ));
            }
            let v: serde_json::Value = serde_json::from_slice(&a.body)
                .map_err(|e| format!("the challenge API's answer is not JSON: {e}"))?;
            v.get("challenge")
                .and_then(|c| c.as_str())
                .map(|c| Zeroizing::new(c.to_string()))
                .ok_or_else(|| "the challenge API's answer has no \"challenge\"".into())
        }
        Source::Ndes { .. } => {
            if a.status != 200 {
                return Err(format!("mscep_admin answered {}", a.status));
            }
            ndes_password(&a.body)
        }
        Source::None | Source::Static(_) => Err("no challenge is fetched".into()),
    }
}

/// The one-time password of an `mscep_admin` page: UTF-16LE (with or without a byte-order
/// mark) or, from a proxy that converted it, UTF-8.
pub fn ndes_password(body: &[u8]) -> Result<Zeroizing<String>, String> {
    let text = Zeroizing::new(decode_page(body));
    let lower = text.to_ascii_lowercase();
    if lower.contains("password cache is full") {
        return Err(
            "NDES's password cache is full (unused passwords wait to expire; see PasswordMax)"
                .into(),
        );
    }
    if lower.contains("do not have sufficient permission") {
        return Err("NDES refuses the RA's user: it may not enroll with SCEP (give it the enrollment permission on the template)".into());
    }
    const MARK: &str = "the enrollment challenge password is:";
    let at = lower
        .find(MARK)
        .ok_or("the mscep_admin page holds no challenge password")?;
    let rest = &text[at + MARK.len()..];
    // `<B> 0123456789ABCDEF </B>`: the first word that is not markup
    let word = rest
        .split(|c: char| c.is_whitespace() || c == '<' || c == '>')
        .filter(|w| !w.is_empty())
        .find(|w| !w.eq_ignore_ascii_case("b") && !w.starts_with('/'))
        .ok_or("the mscep_admin page's challenge password is empty")?;
    if !word.chars().all(|c| c.is_ascii_alphanumeric()) || word.len() > 64 {
        return Err("the mscep_admin page's challenge password is not what NDES issues".into());
    }
    Ok(Zeroizing::new(word.to_string()))
}

fn decode_page(body: &[u8]) -> String {
    let (bytes, utf16) = match body {
        [0xff, 0xfe, rest @ ..] => (rest, true),
        // NULs at odd offsets: UTF-16LE without a byte-order mark
        _ => (body, body.len() >= 4 && body[1] == 0 && body[3] == 0),
    };
    if utf16 {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    //! An unwrap here asserts a fixture reads; its panic is the test failing.
    use super::*;

    fn utf16(s: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xff, 0xfe] } else { Vec::new() };
        for u in s.encode_utf16() {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out
    }

    const PAGE: &str = "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-16\"></Head><Body><P> The thumbprint (hash value) for the CA certificate is: <B> 1A2B </B> <P> The enrollment challenge password is: <B> 4F1C7A3B9D2E6F08 </B> <P> This password can be used only once and will expire within 60 minutes.</Body></HTML>";

    #[test]
    fn the_mscep_admin_page_gives_its_password_in_utf16_or_utf8() {
        for body in [
            utf16(PAGE, false),
            utf16(PAGE, true),
            PAGE.as_bytes().to_vec(),
        ] {
            assert_eq!(ndes_password(&body).unwrap().as_str(), "4F1C7A3B9D2E6F08");
        }
        let full = utf16("<P> The password cache is full. </P>", false);
        assert!(ndes_password(&full).unwrap_err().contains("cache is full"));
        let denied = utf16(
            "You do not have sufficient permission to enroll with SCEP.",
            true,
        );
        assert!(
            ndes_password(&denied)
                .unwrap_err()
                .contains("may not enroll")
        );
        assert!(ndes_password(b"<html>something else</html>").is_err());
        let odd = PAGE.replace("4F1C7A3B9D2E6F08", "4F1C\"onerror=x");
        assert!(ndes_password(odd.as_bytes()).is_err());
    }
}
