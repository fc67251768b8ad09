//! MAC addresses as the portal FAQ accepts them, normalised to `00-11-22-33-44-55`.

use std::fmt;

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses one of the five accepted forms (hex digits in either case):
    /// `00-11-22-33-44-55`, `00:11:22:33:44:55`, `0011.2233.4455`, `001122-334455`,
    /// `001122334455`. Anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let groups: Vec<&str> = match s.len() {
            17 if s.as_bytes()[2] == b'-' => s.split('-').collect(),
            17 if s.as_bytes()[2] == b':' => s.split(':').collect(),
            14 => s.split('.').collect(),
            13 => s.split('-').collect(),
            12 => vec![s],
            _ => return None,
        };
        let widths: &[usize] = match groups.len() {
            6 => &[2, 2, 2, 2, 2, 2],
            3 => &[4, 4, 4],
            2 => &[6, 6],
            1 => &[12],
            _ => return None,
        };
        if groups.iter().zip(widths).any(|(g, w)| g.len() != *w) {
            return None;
        }
        let hex: String = groups.concat();
        if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Mac(out))
    }

    /// The normalised form, `00-11-22-33-44-55` (upper-case hex).
    pub fn normalized(&self) -> String {
        self.0
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// RFC 9039 device URN: `urn:dev:mac:001122334455` (lower-case hex, no separators).
    pub fn urn(&self) -> String {
        format!("urn:dev:mac:{}", crate::est::hex(&self.0))
    }

    /// Parses a SAN value that should hold a MAC: any accepted form, or an RFC 9039 URN.
    pub fn from_san_value(v: &str) -> Option<Self> {
        let v = v.trim();
        let bare = v
            .get(..12)
            .filter(|p| p.eq_ignore_ascii_case("urn:dev:mac:"))
            .map_or(v, |_| &v[12..]);
        Self::parse(bare)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANT: Mac = Mac([0x00, 0x11, 0x22, 0xAA, 0xBB, 0xCC]);

    #[test]
    fn each_of_the_five_forms_in_either_case() {
        for form in [
            "00-11-22-AA-BB-CC",
            "00:11:22:AA:BB:CC",
            "0011.22AA.BBCC",
            "001122-AABBCC",
            "001122AABBCC",
        ] {
            assert_eq!(Mac::parse(form), Some(WANT), "{form}");
            assert_eq!(
                Mac::parse(&form.to_lowercase()),
                Some(WANT),
                "{form} lower case"
            );
        }
        assert_eq!(WANT.normalized(), "00-11-22-AA-BB-CC");
        assert_eq!(WANT.urn(), "urn:dev:mac:001122aabbcc");
    }

    #[test]
    fn everything_else_is_invalid() {
        for bad in [
            "",
            "00-11-22-33-44",
            "00-11-22-33-44-55-66",
            "00-11-22-33-44-5G",
            "00:11-22:33-44:55",
            "0011:2233:4455",
            "00112-2334455",
            "0011.2233.445",
            "00112233445",
            "0011223344556",
            "001122.334455",
            "00 11 22 33 44 55",
            "g01122334455",
            "+0-11-22-33-44-55",
            "00-11-22-33-44-55x",
            "ÄÄ-11-22-33-44-55",
        ] {
            assert_eq!(Mac::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn san_values_may_be_urns() {
        assert_eq!(Mac::from_san_value("urn:dev:mac:001122aabbcc"), Some(WANT));
        assert_eq!(Mac::from_san_value("URN:DEV:MAC:001122AABBCC"), Some(WANT));
        assert_eq!(Mac::from_san_value("00:11:22:aa:bb:cc"), Some(WANT));
        assert_eq!(Mac::from_san_value("urn:dev:mac:0011223344556677"), None);
        assert_eq!(Mac::from_san_value("urn:dev:ow:0011"), None);
    }
}
