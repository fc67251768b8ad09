//! The fields of the MDM connector's *test certificate* window, checked the same way by
//! the server (JSON API, portal) and by `estd client mdm-test` before it sends anything.

use serde::Deserialize;

use super::SanVars;

/// Which form field an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    CommonName,
    San,
    Template,
    Format,
    Password,
    Csr,
    Description,
    /// The test certificate's fields.
    CertName,
    UserName,
    Domain,
    Email,
    /// Not one field: the request as a whole.
    General,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CommonName => "common_name",
            Self::San => "san",
            Self::Template => "template",
            Self::Format => "format",
            Self::Password => "password",
            Self::Csr => "csr_pem",
            Self::Description => "description",
            Self::CertName => "cert_name",
            Self::UserName => "user_name",
            Self::Domain => "domain",
            Self::Email => "email",
            Self::General => "general",
        }
    }
}

/// A field's value that is refused, and why (the text the connector shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Field,
    pub message: String,
}

/// What the connector's *Test certificate* window collects. Empty means "not given".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    pub template: String,
    pub cert_name: String,
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub email: String,
}

/// The certificate name becomes the CN: no spaces, as the connector says.
pub const NAME_HAS_SPACES: &str = "The certificate name cannot contain spaces";
pub const NAME_MISSING: &str = "Enter the certificate name";
pub const DOMAIN_INVALID: &str =
    "The domain must be a fully qualified domain name, such as example.com";
pub const EMAIL_INVALID: &str = "The email address must look like name@example.com";
pub const USER_INVALID: &str =
    "The user name cannot contain spaces or @ (give the domain in its own field)";

const MAX_FIELD: usize = 128;

/// A fully qualified domain name: at least two dot-separated labels of letters, digits and
/// hyphens (not at either end of a label), at most 253 characters, a top-level label that
/// is not all digits. A trailing dot is allowed.
pub fn valid_fqdn(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|t| !t.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && local
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"@<>()[]\\,;:\"".contains(&b))
                && valid_fqdn(domain)
        }
        None => false,
    }
}

fn given(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Checks the fields; the values the SAN pattern's variables take.
pub fn check_fields(req: &TestRequest) -> Result<SanVars, FieldError> {
    let bad = |field, message: &str| {
        Err(FieldError {
            field,
            message: message.to_string(),
        })
    };
    // blanks around a value are trimmed (a cell pasted from a spreadsheet ends in a TAB or a
    // line break); a control character left inside it is refused, naming the field
    for (field, what, value) in [
        (Field::CertName, "certificate name", &req.cert_name),
        (Field::UserName, "user name", &req.user_name),
        (Field::Domain, "domain", &req.domain),
        (Field::Email, "email address", &req.email),
    ] {
        if super::has_control(value.trim()) {
            return bad(field, &super::control_chars_message(what));
        }
    }
    let name = req.cert_name.trim();
    if name.is_empty() {
        return bad(Field::CertName, NAME_MISSING);
    }
    if name.chars().any(char::is_whitespace) {
        return bad(Field::CertName, NAME_HAS_SPACES);
    }
    for (field, value) in [
        (Field::CertName, name),
        (Field::UserName, req.user_name.trim()),
        (Field::Domain, req.domain.trim()),
        (Field::Email, req.email.trim()),
    ] {
        if value.chars().count() > MAX_FIELD {
            return bad(field, &format!("At most {MAX_FIELD} characters"));
        }
    }
    let user = given(&req.user_name);
    if user
        .as_deref()
        .is_some_and(|u| u.contains('@') || u.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return bad(Field::UserName, USER_INVALID);
    }
    let domain = given(&req.domain);
    if domain.as_deref().is_some_and(|d| !valid_fqdn(d)) {
        return bad(Field::Domain, DOMAIN_INVALID);
    }
    let email = given(&req.email);
    if email.as_deref().is_some_and(|e| !valid_email(e)) {
        return bad(Field::Email, EMAIL_INVALID);
    }
    Ok(SanVars {
        uname: user,
        email,
        domain: domain.map(|d| d.trim_end_matches('.').to_string()),
        cn: Some(name.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdns() {
        for ok in [
            "example.com",
            "a.b.example.co.uk",
            "x-1.example.com.",
            "EXAMPLE.COM",
        ] {
            assert!(valid_fqdn(ok), "{ok}");
        }
        for bad in [
            "",
            "localhost",
            "example",
            ".example.com",
            "example..com",
            "-a.example.com",
            "a-.example.com",
            "exa mple.com",
            "exa_mple.com",
            "10.0.0.1",
            "ex@mple.com",
            "é.example.com",
        ] {
            assert!(!valid_fqdn(bad), "{bad}");
        }
        assert!(!valid_fqdn(&format!("{}.com", "a".repeat(64))));
    }

    fn req(name: &str, user: &str, domain: &str, email: &str) -> TestRequest {
        TestRequest {
            template: "mdm".into(),
            cert_name: name.into(),
            user_name: user.into(),
            domain: domain.into(),
            email: email.into(),
        }
    }

    #[test]
    fn fields_are_checked_with_their_own_messages() {
        let msg = |r: TestRequest| {
            let e = check_fields(&r).unwrap_err();
            (e.field, e.message)
        };
        assert_eq!(
            msg(req("Test Cert", "joe", "example.com", "joe@example.com")),
            (Field::CertName, NAME_HAS_SPACES.to_string())
        );
        assert!(
            check_fields(&req("TestCert\t", "joe", "", "")).is_ok(),
            "surrounding blanks are trimmed"
        );
        for (r, field, what) in [
            (
                req("Test\0Cert", "", "", ""),
                Field::CertName,
                "certificate name",
            ),
            (
                req("Test\nCert", "", "", ""),
                Field::CertName,
                "certificate name",
            ),
            (
                req("TestCert", "jo\u{1b}[31me", "", ""),
                Field::UserName,
                "user name",
            ),
            (
                req("TestCert", "joe", "exa\rmple.com", ""),
                Field::Domain,
                "domain",
            ),
            (
                req("TestCert", "", "", "joe@exa\u{85}mple.com"),
                Field::Email,
                "email address",
            ),
            (
                req("TestCert", "", "", "joe\u{7f}@example.com"),
                Field::Email,
                "email address",
            ),
        ] {
            assert_eq!(
                msg(r),
                (
                    field,
                    format!("The given {what} is invalid. Cannot contain control characters")
                )
            );
        }
        assert_eq!(
            msg(req("  ", "", "", "")),
            (Field::CertName, NAME_MISSING.to_string())
        );
        assert_eq!(
            msg(req("TestCert", "joe", "example", "")),
            (Field::Domain, DOMAIN_INVALID.to_string())
        );
        assert_eq!(
            msg(req("TestCert", "joe", "", "joe")),
            (Field::Email, EMAIL_INVALID.to_string())
        );
        assert_eq!(
            msg(req("TestCert", "joe@example.com", "", "")),
            (Field::UserName, USER_INVALID.to_string())
        );
        let v = check_fields(&req(" TestCert ", "joe", "Example.com.", "joe@example.com")).unwrap();
        assert_eq!(
            v,
            SanVars {
                uname: Some("joe".into()),
                email: Some("joe@example.com".into()),
                domain: Some("Example.com".into()),
                cn: Some("TestCert".into()),
            }
        );
    }
}
