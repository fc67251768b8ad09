//! One certificate, zipped: the portal's two single-certificate forms and the JSON API's two
//! calls. Everything goes through the enrollment service (same rules, same audit as EST).

use std::sync::Arc;

use super::{Context, Kind};
use crate::auth::Principal;
use crate::enroll::{EnrollError, EnrollRequest, Outcome};
use crate::est::{self, Csr, SanEntry, WireError};
pub use crate::fields::Field;
use crate::model::RequestMeta;
use crate::pack::{self, Entity, Format, PackError, PackOptions};
use crate::policy::{PolicyError, Template, rules};

/// Why no certificate: the message (the FAQ's text where it has one), the field it belongs
/// to, and what kind of refusal it is (the adapters make a status of it).
#[derive(Debug, Clone)]
pub struct SingleError {
    pub field: Field,
    pub kind: Kind,
    pub message: String,
    /// For the audit log and the server log only.
    pub detail: Option<String>,
}

impl From<crate::fields::FieldError> for SingleError {
    fn from(e: crate::fields::FieldError) -> Self {
        Self::new(e.field, Kind::Invalid, e.message)
    }
}

impl SingleError {
    pub(crate) fn new(field: Field, kind: Kind, message: impl Into<String>) -> Self {
        Self {
            field,
            kind,
            message: message.into(),
            detail: None,
        }
    }

    /// Our own fault: a generic message for the client, the detail for the audit log.
    pub(crate) fn internal(public: &str, detail: impl std::fmt::Display) -> Self {
        Self {
            detail: Some(detail.to_string()),
            ..Self::new(Field::General, Kind::Internal, public)
        }
    }
}

/// What a single-certificate request carries. (`Debug` leaves the password out.)
#[derive(Clone, Default)]
pub struct SingleRequest {
    pub template: String,
    /// Attribute requests: the CN and the SAN as typed.
    pub common_name: String,
    pub san: String,
    /// CSR requests: the PEM text.
    pub csr_pem: Option<String>,
    pub description: String,
    pub format: String,
    pub password: String,
}

impl std::fmt::Debug for SingleRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleRequest")
            .field("template", &self.template)
            .field("common_name", &self.common_name)
            .field("san", &self.san)
            .field("csr_pem", &self.csr_pem.as_ref().map(|p| p.len()))
            .field("description", &self.description)
            .field("format", &self.format)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The zip and its file name.
pub struct SingleZip {
    pub file_name: String,
    pub zip: Vec<u8>,
    pub serial: String,
}

const MAX_DESCRIPTION: usize = 256;

fn from_policy(e: &PolicyError) -> Field {
    match e {
        PolicyError::CnMismatch | PolicyError::CnInvalid | PolicyError::RdnMismatch { .. } => {
            Field::CommonName
        }
        PolicyError::ControlChars { field } | PolicyError::TooLong { field, .. }
            if field == rules::SAN_FIELD =>
        {
            Field::San
        }
        PolicyError::ControlChars { .. }
        | PolicyError::TooLong { .. }
        | PolicyError::InvalidValue { .. }
        | PolicyError::RdnNotAllowed { .. }
        | PolicyError::RdnRepeated { .. }
        | PolicyError::MultiValuedRdn { .. } => Field::CommonName,
        PolicyError::ServerName { entry } if entry.starts_with("CN=") => Field::CommonName,
        PolicyError::NameNotAllowed { .. }
        | PolicyError::WildcardNotAllowed { .. }
        | PolicyError::WildcardTooBroad { .. }
        | PolicyError::ServerName { .. } => Field::San,
        PolicyError::InvalidMac
        | PolicyError::SanMissing { .. }
        | PolicyError::SanNotAllowed { .. }
        | PolicyError::SanInvalid { .. } => Field::San,
        _ => Field::General,
    }
}

pub(crate) fn from_enroll(e: EnrollError, csr_request: bool) -> SingleError {
    match e {
        EnrollError::Policy(p) => {
            let mut field = from_policy(&p);
            if csr_request && field != Field::General {
                field = Field::Csr;
            }
            let kind = if p.is_forbidden() {
                Kind::Forbidden
            } else {
                Kind::Invalid
            };
            SingleError::new(field, kind, p.to_string())
        }
        e @ EnrollError::TemplateDenied { .. } => {
            SingleError::new(Field::Template, Kind::Forbidden, e.to_string())
        }
        e @ (EnrollError::Rejected { .. }
        | EnrollError::DeviceRefused(_)
        | EnrollError::CodeBinding(_)) => {
            SingleError::new(Field::General, Kind::Forbidden, e.to_string())
        }
        EnrollError::BadRequest(m) => SingleError::new(
            if csr_request {
                Field::Csr
            } else {
                Field::General
            },
            Kind::Invalid,
            m,
        ),
        e @ EnrollError::RenewalTemplate { .. } => {
            SingleError::new(Field::General, Kind::Forbidden, e.to_string())
        }
        EnrollError::Unauthorized(m)
        | EnrollError::ReenrollMismatch(m)
        | EnrollError::Revoked(m) => SingleError::new(Field::General, Kind::Forbidden, m),
        EnrollError::Ca { cn, detail } => SingleError {
            detail: Some(detail),
            ..SingleError::new(
                Field::General,
                Kind::Internal,
                crate::enroll::ca_failure_message(&cn),
            )
        },
        EnrollError::Cancelled => {
            SingleError::new(Field::General, Kind::Conflict, "The request was cancelled")
        }
        e @ EnrollError::Throttled { .. } => {
            SingleError::new(Field::General, Kind::Throttled, e.to_string())
        }
        e @ EnrollError::Busy { .. } => {
            SingleError::new(Field::General, Kind::Unavailable, e.to_string())
        }
        EnrollError::UpstreamUnavailable {
            detail,
            retry_after,
        } => SingleError {
            detail: Some(detail),
            ..SingleError::new(
                Field::General,
                Kind::Unavailable,
                format!(
                    "The certificate authority is unavailable; try again in {retry_after} seconds"
                ),
            )
        },
        e @ EnrollError::UpstreamRefused { .. } => {
            SingleError::new(Field::General, Kind::Forbidden, e.to_string())
        }
        EnrollError::Store(e) if e.is_unavailable() => SingleError {
            detail: Some(e.to_string()),
            ..SingleError::new(
                Field::General,
                Kind::Unavailable,
                format!(
                    "The certificate store is unavailable; try again in {} seconds",
                    crate::store::StoreError::RETRY_AFTER_SECS
                ),
            )
        },
        EnrollError::Store(e) => SingleError {
            detail: Some(e.to_string()),
            ..SingleError::new(
                Field::General,
                Kind::Internal,
                "internal error: the certificate store is unavailable",
            )
        },
    }
}

/// The template a form or JSON body names, or the error for its field.
pub(crate) fn find_template(ctx: &Context<'_>, name: &str) -> Result<Arc<Template>, SingleError> {
    ctx.templates.get(Some(name)).ok_or_else(|| {
        SingleError::new(
            Field::Template,
            Kind::Invalid,
            format!(
                "There is no certificate template {:?}",
                name.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// The CSR of an attribute request (the server generates the real key later); a SAN that
/// is not ASCII is the fault of `san_field`.
pub(crate) fn attribute_request(
    cn: &str,
    san: &[SanEntry],
    template: &Template,
    san_field: Field,
) -> Result<Csr, SingleError> {
    crate::enroll::attribute_csr(cn, san, template).map_err(|e| {
        if e.contains("ASCII") {
            SingleError::new(
                san_field,
                Kind::Invalid,
                "The Subject alternative name must be ASCII text",
            )
        } else {
            SingleError::internal("internal error building the request", e)
        }
    })
}

/// The certificate, or 202 when the template makes the request wait for an administrator.
pub(crate) fn issued_now(outcome: Outcome) -> Result<crate::enroll::Issued, SingleError> {
    match outcome {
        Outcome::Issued(i) => Ok(i),
        Outcome::Pending { id, .. } => Err(SingleError::new(
            Field::General,
            Kind::Pending,
            format!("The certificate request {id} is waiting for approval by an administrator"),
        )),
    }
}

/// Issues one certificate and packages it; the password is checked before anything else.
pub async fn issue_single(
    ctx: &Context<'_>,
    meta: &RequestMeta,
    principal: &Principal,
    req: &SingleRequest,
    op: &'static str,
) -> Result<SingleZip, SingleError> {
    let format = Format::parse(&req.format)
        .map_err(|e: PackError| SingleError::new(Field::Format, Kind::Invalid, e.to_string()))?;
    pack::check_password(&req.password)
        .map_err(|e| SingleError::new(Field::Password, Kind::Invalid, e.to_string()))?;
    let template = find_template(ctx, &req.template)?;
    if req.description.chars().count() > MAX_DESCRIPTION {
        return Err(SingleError::new(
            Field::Description,
            Kind::Invalid,
            format!("The description is longer than {MAX_DESCRIPTION} characters"),
        ));
    }
    let (csr, server_keygen, cn, san_label) = match &req.csr_pem {
        Some(pem) => {
            let der = est::decode_body(pem.as_bytes()).map_err(|e: WireError| SingleError {
                detail: Some(e.to_string()),
                ..SingleError::new(Field::Csr, Kind::Invalid, est::MALFORMED_CSR)
            })?;
            let csr = Csr::parse(&der).map_err(|e| match e {
                WireError::BadSignature
                | WireError::UnsupportedKey(_)
                | WireError::UnsupportedSignature(_) => {
                    SingleError::new(Field::Csr, Kind::Invalid, e.to_string())
                }
                other => SingleError {
                    detail: Some(other.to_string()),
                    ..SingleError::new(Field::Csr, Kind::Invalid, est::MALFORMED_CSR)
                },
            })?;
            let cn = csr.common_name().unwrap_or_default();
            let label = csr
                .san
                .as_ref()
                .and_then(|s| s.entries.first())
                .map(|e| match e {
                    SanEntry::Dns(v)
                    | SanEntry::Email(v)
                    | SanEntry::Uri(v)
                    | SanEntry::OtherName(_, v) => {
                        template.san_label(v.trim_start_matches("urn:dev:mac:"))
                    }
                    other => other.to_string(),
                })
                .unwrap_or_default();
            (csr, false, cn, label)
        }
        None => {
            // blanks around a value are trimmed; a control character inside it is refused
            rules::check_no_control("CN", req.common_name.trim())
                .map_err(|e| SingleError::new(Field::CommonName, Kind::Invalid, e.to_string()))?;
            rules::check_no_control(rules::SAN_FIELD, req.san.trim())
                .map_err(|e| SingleError::new(Field::San, Kind::Invalid, e.to_string()))?;
            let cn = req.common_name.trim().to_string();
            if cn.is_empty() {
                return Err(SingleError::new(
                    Field::CommonName,
                    Kind::Invalid,
                    "Enter the Common Name",
                ));
            }
            let san = template
                .san_from_field(&req.san)
                .map_err(|e| SingleError::new(Field::San, Kind::Invalid, e.to_string()))?;
            let csr = attribute_request(&cn, &san, &template, Field::San)?;
            (csr, true, cn, template.san_label(&req.san))
        }
    };
    let outcome = ctx
        .enroll
        .enroll(EnrollRequest {
            meta,
            op,
            description: &req.description,
            principal,
            template: &template,
            csr: &csr,
            renewing: None,
            exporter: None,
            server_keygen,
            job_item: None,
            vars: None,
        })
        .await
        .map_err(|e| from_enroll(e, req.csr_pem.is_some()))?;
    let issued = issued_now(outcome)?;
    let entity = Entity {
        cn: cn.clone(),
        san: (!san_label.is_empty()).then_some(san_label.clone()),
        cert_der: issued.der,
        key_pkcs8: issued.key_pkcs8,
    };
    let bundle = ctx.bundle.clone();
    let password = zeroize::Zeroizing::new(req.password.clone());
    let legacy_pkcs12 = template.pkcs12_legacy;
    // PBKDF2 takes about a millisecond per file: off the async executor, within the bound on
    // heavy work.
    let zip = ctx
        .enroll
        .work()
        .run(move || {
            let opts = PackOptions {
                format,
                password: &password,
                legacy_pkcs12,
            };
            pack::zip_bundle(&[entity], &bundle, &opts)
        })
        .await
        .map_err(|b| SingleError::new(Field::General, Kind::Unavailable, b.to_string()))?
        .map_err(|e| SingleError {
            detail: Some(e.to_string()),
            ..SingleError::new(
                Field::General,
                Kind::Internal,
                "internal error packaging the certificate",
            )
        })?;
    Ok(SingleZip {
        file_name: format!(
            "{}.zip",
            pack::base_name(&cn, (!san_label.is_empty()).then_some(san_label.as_str()))
        ),
        zip,
        serial: issued.serial,
    })
}
