//! The MDM connector's *test certificate* (seed 002, "Certificate Integration Finish"): given
//! a template, a certificate name, a user name, a domain and an email address, issue one
//! certificate through the same enrollment path a device uses, with the SAN the template's
//! style makes of those values. A value the caller did not give becomes the template's
//! `fill_missing` (`Test`), or, when that is empty, leaves out the SAN entry that needs it.
//! The certificate is recorded with the operation `test-certificate`.

use serde::Serialize;

use super::Context;
use super::single::{Field, SingleError};
use crate::auth::Principal;
use crate::enroll::EnrollRequest;
use crate::est::SanEntry;
pub use crate::fields::TestRequest;
use crate::fields::{PatternEntry, SanVars, check_fields};
use crate::model::RequestMeta;
use crate::policy::{SanStyle, Template};

/// The operation test certificates are recorded under.
pub const OPERATION: &str = "test-certificate";

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
        .map(|p| crate::fields::build_pattern(&p, &vars, &template.fill_missing))
        .unwrap_or_default();
    (vars, san)
}

/// Issues the test certificate through the enrollment service (same rules, same audit).
pub async fn issue_test(
    ctx: &Context<'_>,
    meta: &RequestMeta,
    principal: &Principal,
    req: &TestRequest,
) -> Result<TestCertificate, SingleError> {
    let template = super::single::find_template(ctx, &req.template)?;
    let vars = check_fields(req).map_err(SingleError::from)?;
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
    let outcome = ctx
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
    let record = ctx
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
        ca_chain_pem: ctx
            .bundle
            .chain
            .iter()
            .map(|c| crate::est::pem("CERTIFICATE", c))
            .collect(),
        request_id: meta.request_id.clone(),
    })
}
