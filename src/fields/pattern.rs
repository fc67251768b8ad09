//! The SAN patterns of the `other` style and of MDM connectors: `upn:%uname%@%domain%`,
//! filled in from the values a request gives.

use crate::est::SanEntry;
use crate::est::oids::UPN_OID;

/// The kind of one pattern entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    Upn,
    Email,
    Dns,
    Uri,
}

/// One SAN of an `other` pattern: `upn:%uname%@%domain%`, `email:%email%`, …
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternEntry {
    pub kind: PatternKind,
    pub text: String,
}

pub const VARIABLES: &[&str] = &["%uname%", "%email%", "%domain%", "%cn%"];

impl PatternEntry {
    /// Parses `kind:text`; every `%…%` in the text must be a known variable.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (kind, text) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not KIND:TEXT (KIND is upn, email, dns or uri)"))?;
        let kind = match kind {
            "upn" => PatternKind::Upn,
            "email" => PatternKind::Email,
            "dns" => PatternKind::Dns,
            "uri" => PatternKind::Uri,
            other => return Err(format!("{other:?} is not upn, email, dns or uri")),
        };
        let mut rest = text;
        while let Some(start) = rest.find('%') {
            let after = &rest[start + 1..];
            let end = after
                .find('%')
                .ok_or_else(|| format!("{s:?} has an unclosed %"))?;
            let var = &rest[start..start + end + 2];
            if !VARIABLES.contains(&var) {
                return Err(format!(
                    "{var} is not a variable (use %uname%, %email%, %domain%, %cn%)"
                ));
            }
            rest = &after[end + 1..];
        }
        if text.is_empty() {
            return Err(format!("{s:?} has no text"));
        }
        Ok(Self {
            kind,
            text: text.to_string(),
        })
    }
}

/// The values the `other` pattern's variables take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanVars {
    pub uname: Option<String>,
    pub email: Option<String>,
    pub domain: Option<String>,
    pub cn: Option<String>,
}

/// Builds the SANs of an `other` pattern. A variable without a value becomes `fill`
/// (`Test`, say); with an empty `fill`, an entry that needs a missing variable is left out.
pub fn build_pattern(pattern: &[PatternEntry], vars: &SanVars, fill: &str) -> Vec<SanEntry> {
    let mut out = Vec::new();
    'entries: for p in pattern {
        let mut text = p.text.clone();
        for (var, value) in [
            ("%uname%", &vars.uname),
            ("%email%", &vars.email),
            ("%domain%", &vars.domain),
            ("%cn%", &vars.cn),
        ] {
            if !text.contains(var) {
                continue;
            }
            match value.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => text = text.replace(var, v),
                None if fill.is_empty() => continue 'entries,
                None => text = text.replace(var, fill),
            }
        }
        out.push(match p.kind {
            PatternKind::Upn => SanEntry::OtherName(UPN_OID.into(), text),
            PatternKind::Email => SanEntry::Email(text),
            PatternKind::Dns => SanEntry::Dns(text),
            PatternKind::Uri => SanEntry::Uri(text),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_checked() {
        assert!(PatternEntry::parse("upn:%uname%@%domain%").is_ok());
        for bad in [
            "%uname%",
            "x400:%uname%",
            "upn:%user%",
            "upn:%uname",
            "dns:",
        ] {
            assert!(PatternEntry::parse(bad).is_err(), "{bad}");
        }
    }
}
