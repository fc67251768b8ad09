//! The MDM connector's *test certificate* (seed 002, "Certificate Integration Finish"): given
//! a template, a certificate name, a user name, a domain and an email address, issue one
//! certificate through the same enrollment path a device uses, with the SAN the template's
//! style makes of those values. A value the caller did not give becomes the template's
//! `fill_missing` (`Test`), or, when that is empty, leaves out the SAN entry that needs it.
//! The certificate is recorded with the operation `test-certificate`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::AppState;
use super::single::{Field, SingleError};
use crate::auth::Principal;
use crate::enroll::EnrollRequest;
use crate::est::SanEntry;
use crate::model::RequestMeta;
use crate::policy::{PatternEntry, SanStyle, SanVars, Template};

/// The operation test certificates are recorded under.
pub const OPERATION: &str = "test-certificate";

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

/// The test certificate, its key (generated here), and what it was issued with.
#[derive(Serialize)]
pub struct TestCertificate {
    pub result: &'static str,
    pub template: String,
    pub serial: String,
    pub subject: String,
    pub san: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub certificate_pem: String,
    #[serde(serialize_with = "secret_str")]
    pub private_key_pem: zeroize::Zeroizing<String>,
    /// Issuing CA first, root last.
    pub ca_chain_pem: String,
    pub request_id: String,
}

fn secret_str<S: serde::Serializer>(
    v: &zeroize::Zeroizing<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
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
pub fn check_fields(req: &TestRequest) -> Result<SanVars, SingleError> {
    let bad = |field, message: &str| Err(SingleError::new(field, 400, message));
    // blanks around a value are trimmed (a cell pasted from a spreadsheet ends in a TAB or a
    // line break); a control character left inside it is refused, naming the field
    for (field, what, value) in [
        (Field::CertName, "certificate name", &req.cert_name),
        (Field::UserName, "user name", &req.user_name),
        (Field::Domain, "domain", &req.domain),
        (Field::Email, "email address", &req.email),
    ] {
        if let Err(e) = crate::policy::rules::check_no_control(what, value.trim()) {
            return bad(field, &e.to_string());
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

/// The pattern a SAN style stands for when a connector fills it in: UPN = user@domain,
/// UPN and Email adds the email address, Other is the template's own pattern. `None` for
/// styles the connector's fields cannot fill (MAC: a test sends no MAC address).
fn style_pattern(style: &SanStyle) -> Option<Vec<PatternEntry>> {
    let parse = |specs: &[&str]| {
        specs
            .iter()
            .map(|s| PatternEntry::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .ok()
    };
    match style {
        SanStyle::None => Some(Vec::new()),
        SanStyle::Upn => parse(&["upn:%uname%@%domain%"]),
        SanStyle::UpnEmail => parse(&["upn:%uname%@%domain%", "email:%email%"]),
        SanStyle::Email => parse(&["email:%email%"]),
        SanStyle::Dns => parse(&["dns:%cn%.%domain%"]),
        SanStyle::Other(p) => Some(p.clone()),
        SanStyle::Mac => None,
    }
}

/// The SAN a test request gets under `template`: the style's pattern with the values
/// given, the template's `domain` for a missing domain, and `fill_missing` for the rest.
pub fn test_san(template: &Template, vars: &SanVars) -> (SanVars, Vec<SanEntry>) {
    let mut vars = vars.clone();
    if vars.domain.is_none() {
        vars.domain = template.domain.clone();
    }
    let san = style_pattern(&template.san_style)
        .map(|p| crate::policy::build_pattern(&p, &vars, &template.fill_missing))
        .unwrap_or_default();
    (vars, san)
}

/// Issues the test certificate through the enrollment service (same rules, same audit).
pub async fn issue_test(
    state: &Arc<AppState>,
    meta: &RequestMeta,
    principal: &Principal,
    req: &TestRequest,
) -> Result<TestCertificate, SingleError> {
    let template = super::single::find_template(state, &req.template)?;
    let vars = check_fields(req)?;
    let (vars, san) = test_san(&template, &vars);
    let cn = req.cert_name.trim();
    let csr = super::single::attribute_request(cn, &san, &template, Field::General)?;
    tracing::info!(
        request_id = %meta.request_id,
        template = %template.name,
        cn,
        san = %san.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        "test certificate requested"
    );
    let outcome = state
        .enroll
        .enroll(EnrollRequest {
            meta,
            op: OPERATION,
            description: "test certificate",
            principal,
            template: &template,
            csr: &csr,
            renewing: None,
            exporter: None,
            server_keygen: true,
            job_item: None,
            vars: Some(&vars),
        })
        .await
        .map_err(|e| super::single::from_enroll(e, false))?;
    let issued = super::single::issued_now(outcome)?;
    let record = state
        .store
        .find_certificate(&issued.serial)
        .await
        .map_err(|e| SingleError::internal("internal error reading the certificate", e))?
        .ok_or_else(|| {
            SingleError::internal(
                "internal error reading the certificate",
                "the certificate just issued is not in the store",
            )
        })?;
    let key = issued.key_pkcs8.as_ref().ok_or_else(|| {
        SingleError::internal("internal error: no key was generated", "key_pkcs8 is None")
    })?;
    Ok(TestCertificate {
        result: "PASS",
        template: template.name.clone(),
        serial: issued.serial.clone(),
        subject: record.subject,
        san: san.iter().map(ToString::to_string).collect(),
        not_before: record.not_before,
        not_after: record.not_after,
        certificate_pem: crate::est::pem("CERTIFICATE", &issued.der),
        private_key_pem: zeroize::Zeroizing::new(crate::est::pem("PRIVATE KEY", key)),
        ca_chain_pem: state
            .bundle
            .chain
            .iter()
            .map(|c| crate::est::pem("CERTIFICATE", c))
            .collect(),
        request_id: meta.request_id.clone(),
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
