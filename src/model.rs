//! Small types shared by the server, the API and the enrollment service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// What the TLS layer learned about a connection, attached to each of its requests.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The client's certificate chain (leaf first, DER), when it sent one: verified at the
    /// handshake against this CA's roots, or a template's manufacturer CAs (which only that
    /// template accepts: `EnrollService::authenticate_device`).
    pub client_chain: Option<Arc<Vec<Vec<u8>>>>,
    /// RFC 9266 tls-exporter value of the connection (32 bytes), for channel binding.
    pub exporter: Option<[u8; 32]>,
}

/// Facts about one request that the audit log records.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    pub peer: String,
    pub label: Option<String>,
}

/// Who signed a certificate estd's own CA signed (`CertRecord::issuer`, a template's
/// `issuer`); any other value names an upstream CA.
pub const LOCAL_ISSUER: &str = "local";

/// A UTC time as fixed-width text, sortable as a string.
pub fn timestamp(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.microsecond()
    )
}

/// The time `timestamp` wrote (also without the fraction).
pub fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || !s.ends_with('Z') || !s.is_ascii() {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(n(5..7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(n(0..4)?).ok()?,
        month,
        u8::try_from(n(8..10)?).ok()?,
    )
    .ok()?;
    let micros = match s.get(19..s.len() - 1)? {
        "" => 0,
        f => {
            let digits = f.strip_prefix('.')?;
            if digits.is_empty() || digits.len() > 6 {
                return None;
            }
            digits.parse::<u32>().ok()? * 10u32.pow(6 - digits.len() as u32)
        }
    };
    let t = time::Time::from_hms_micro(
        u8::try_from(n(11..13)?).ok()?,
        u8::try_from(n(14..16)?).ok()?,
        u8::try_from(n(17..19)?).ok()?,
        micros,
    )
    .ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc().into())
}

/// A look-back like `30s`, `10m` (also plain `10`), `2h` or `1d`.
pub fn parse_since(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit, like 10m"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" | "" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        other => {
            return Err(format!("{s:?}: unknown unit {other:?} (s, m, h or d)"));
        }
    };
    let secs = secs.ok_or_else(|| format!("{s:?}: too long ago"))?;
    Ok(std::time::Duration::from_secs(secs))
}

/// A value from a client, as it may be written to a log line or a terminal: control and
/// format characters (ESC, CR, LF, bidi overrides, …) shown as `\u{1b}` escapes, so that a
/// user name or label cannot forge lines or move the cursor. Unchanged when clean.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{061C}'
                    | '\u{180E}'
                    | '\u{200B}'..='\u{200F}'
                    | '\u{2028}'..='\u{202E}'
                    | '\u{2060}'..='\u{2069}'
                    | '\u{FEFF}'
            )
    };
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Longest user name estd creates: a user's name is the CN of their certificates, and X.520
/// bounds a CN at 64 characters.
pub const MAX_USER_NAME: usize = 64;

/// The rule for names estd creates (`estd user add`, the first administrator): 1 to 64 ASCII
/// letters, digits, `.`, `_`, `-` and `@`, starting with a letter or a digit. ASCII only, so
/// that no two names look alike (a Cyrillic `а` in `аdmin`), no control character or space
/// can forge a log line, and none of the characters Active Directory forbids (the CN rule's
/// `[ ] " ; | = , + * ? < >`) can appear. Names are unique regardless of case (`alice` and
/// `Alice` are one name), as the CN rule compares them.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@');
    if name.is_empty() || name.len() > MAX_USER_NAME {
        return Err(format!(
            "user name {:?} is invalid: 1 to {MAX_USER_NAME} characters",
            name.chars().take(80).collect::<String>()
        ));
    }
    if !name.bytes().all(ok_char) || !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(format!(
            "user name {:?} is invalid: ASCII letters, digits, '.', '_', '-' and '@' only, starting with a letter or digit",
            name.chars().take(80).collect::<String>()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_plain_ascii() {
        for ok in [
            "alice",
            "Bob.Smith",
            "mdm-connector_2",
            "joe@corp.example.com",
            "7",
        ] {
            assert!(check_user_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            long.as_str(),
            "\u{430}dmin",
            "ev\u{1b}il",
            "a b",
            "a\nb",
            ".dot",
            "-dash",
            "a;b",
            "a*b",
            "a:b",
            "caf\u{e9}",
        ] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps_read_back() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_795_000_000_123_456);
        assert_eq!(parse_timestamp(&timestamp(t)), Some(t));
        let whole = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let text = timestamp(whole);
        assert_eq!(parse_timestamp(&text.replace(".000000", "")), Some(whole));
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-22T06:00:00",
            "2026-11-22T06:00:00.Z",
            "x026-11-22T06:00:00Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
    use std::time::Duration;

    #[test]
    fn since_units() {
        assert_eq!(parse_since("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_since("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_since("10").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_since("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_since("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_since("m").is_err());
        assert!(parse_since("5w").is_err());
        assert!(parse_since("99999999999999999999d").is_err());
    }

    #[test]
    fn timestamps_are_fixed_width_and_sort() {
        let a = timestamp(SystemTime::UNIX_EPOCH + Duration::from_micros(1));
        let b = timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 365 * 60));
        assert_eq!(a, "1970-01-01T00:00:00.000001Z");
        assert_eq!(a.len(), b.len());
        assert!(a < b);
    }
}
