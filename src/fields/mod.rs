//! Rules and value types the server and the EST client both need: what a typed value may
//! hold, a file name made safe, the SAN patterns, the MDM test certificate's fields. Uses
//! the wire codec only; no I/O, nothing of the server.

mod pattern;
mod testcert;

pub use pattern::{PatternEntry, PatternKind, SanVars, VARIABLES, build_pattern};
pub use testcert::{
    DOMAIN_INVALID, EMAIL_INVALID, Field, FieldError, NAME_HAS_SPACES, NAME_MISSING, TestRequest,
    USER_INVALID, check_fields, valid_fqdn,
};

/// What a value with a control character is told (`what`: "CN", "user name", …).
pub fn control_chars_message(what: &str) -> String {
    format!("The given {what} is invalid. Cannot contain control characters")
}

/// A control character: C0 (NUL … US, so TAB, CR, LF and ESC too), DEL, C1
/// (U+0080–U+009F), and the invisible format characters that reorder or hide text (bidi
/// overrides and isolates, zero-width characters, line and paragraph separators, BOM). None
/// belongs in a name: they forge log lines, split CSV and LDIF exports, and make one name
/// look like another.
pub fn has_control(s: &str) -> bool {
    s.chars().any(|c| {
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
    })
}

/// A name safe as a file name on every common filesystem: ASCII letters, digits, `-`, `_`
/// and `.` only (anything else becomes `_`), no leading dot, at most 100 characters, and not
/// a Windows device name.
pub fn safe_name(s: &str) -> String {
    const RESERVED: &[&str] = &[
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
        "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name: String = mapped
        .trim_start_matches('.')
        .trim_end_matches('.')
        .chars()
        .take(100)
        .collect();
    if name.is_empty() {
        name = "certificate".into();
    }
    let stem = name
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    if RESERVED.contains(&stem.as_str()) {
        name.insert(0, '_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names() {
        assert_eq!(safe_name("a/b\\c:d*e?f\"g<h>i|j"), "a_b_c_d_e_f_g_h_i_j");
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name("..."), "certificate");
        assert_eq!(safe_name("CON"), "_CON");
        assert_eq!(safe_name("lpt1.txt"), "_lpt1.txt");
        assert_eq!(safe_name("Jörg Müller"), "J_rg_M_ller");
        assert_eq!(safe_name(&"x".repeat(300)).len(), 100);
    }

    #[test]
    fn control_characters() {
        assert!(has_control("a\tb") && has_control("a\u{202e}b") && has_control("\u{85}"));
        assert!(!has_control("Jörg Müller-Lüdenscheidt"));
    }
}
