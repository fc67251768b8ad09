//! The one place an EST error becomes an HTTP response (status, plain-text body, headers).
//! No logging here: the audit layer logs each outcome once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::enroll::EnrollError;
use crate::est::WireError;

/// The portal FAQ's text for a CSR that cannot be read.
use crate::est::MALFORMED_CSR;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EstError {
    #[error("{0}")]
    BadRequest(String),
    /// An unreadable CSR: the client sees the FAQ's text, the audit log the detail.
    #[error("{MALFORMED_CSR} ({0})")]
    MalformedCsr(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method {method} is not allowed here; use {allow}")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotImplemented(String),
    /// Too many failed authentications lately, for this user or from this address.
    #[error("Too many failed log-ins; try again in {retry_after} seconds")]
    TooManyRequests { retry_after: u64 },
    /// At the bound for work of this kind (password checks, key generation): come back.
    #[error("The server is busy; try again in {retry_after} seconds")]
    Unavailable { retry_after: u64 },
    /// The database is unreachable for a moment (a restart, a reset connection): come back.
    /// `detail` only to the log and audit.
    #[error("The certificate store is unavailable; try again in {retry_after} seconds ({detail})")]
    StoreUnavailable { retry_after: u64, detail: String },
    /// The template's upstream CA cannot be used now (registration-authority mode): come
    /// back. `detail` only to the log and audit.
    #[error(
        "The certificate authority is unavailable; try again in {retry_after} seconds ({detail})"
    )]
    UpstreamUnavailable { retry_after: u64, detail: String },
    /// Our own fault. `public` goes to the client; `detail` only to the log and audit.
    #[error("{public} ({detail})")]
    Internal { public: String, detail: String },
}

impl EstError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::MalformedCsr(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. }
            | Self::StoreUnavailable { .. }
            | Self::UpstreamUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text the client sees.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal { public, .. } => public.clone(),
            Self::StoreUnavailable { retry_after, .. } => {
                format!("The certificate store is unavailable; try again in {retry_after} seconds")
            }
            Self::UpstreamUnavailable { retry_after, .. } => format!(
                "The certificate authority is unavailable; try again in {retry_after} seconds"
            ),
            Self::MalformedCsr(_) => MALFORMED_CSR.to_string(),
            other => other.to_string(),
        }
    }
}

impl From<WireError> for EstError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Encode(detail) => EstError::Internal {
                public: "internal error encoding the response".into(),
                detail,
            },
            e @ (WireError::Empty
            | WireError::Base64
            | WireError::Pem
            | WireError::Der(_)
            | WireError::BadExtension(_)) => EstError::MalformedCsr(e.to_string()),
            other => EstError::BadRequest(other.to_string()),
        }
    }
}

impl From<EnrollError> for EstError {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::Unauthorized(m) => EstError::Unauthorized(m),
            EnrollError::Policy(p) if !p.is_forbidden() => EstError::BadRequest(p.to_string()),
            e @ (EnrollError::TemplateDenied { .. }
            | EnrollError::RenewalTemplate { .. }
            | EnrollError::Policy(_)
            | EnrollError::ReenrollMismatch(_)
            | EnrollError::Revoked(_)
            | EnrollError::DeviceRefused(_)
            | EnrollError::CodeBinding(_)
            | EnrollError::Rejected { .. }) => EstError::Forbidden(e.to_string()),
            EnrollError::BadRequest(m) => EstError::BadRequest(m),
            EnrollError::Ca { cn, detail } => EstError::Internal {
                public: crate::enroll::ca_failure_message(&cn),
                detail,
            },
            EnrollError::Cancelled => EstError::BadRequest("the request was cancelled".into()),
            EnrollError::Throttled { retry_after } => EstError::TooManyRequests { retry_after },
            EnrollError::Busy { retry_after } => EstError::Unavailable { retry_after },
            EnrollError::UpstreamUnavailable {
                detail,
                retry_after,
            } => EstError::UpstreamUnavailable {
                retry_after,
                detail,
            },
            e @ EnrollError::UpstreamRefused { status: 400, .. } => {
                EstError::BadRequest(e.to_string())
            }
            e @ EnrollError::UpstreamRefused { .. } => EstError::Forbidden(e.to_string()),
            EnrollError::Store(e) if e.is_unavailable() => EstError::StoreUnavailable {
                retry_after: crate::store::StoreError::RETRY_AFTER_SECS,
                detail: e.to_string(),
            },
            EnrollError::Store(e) => EstError::Internal {
                public: "internal error: the certificate store is unavailable".into(),
                detail: e.to_string(),
            },
        }
    }
}

impl IntoResponse for EstError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = self.public_message();
        body.push('\n');
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        match &self {
            Self::Unauthorized(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"estd\""),
                );
            }
            Self::MethodNotAllowed { allow, .. } => {
                h.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::TooManyRequests { retry_after }
            | Self::Unavailable { retry_after }
            | Self::StoreUnavailable { retry_after, .. }
            | Self::UpstreamUnavailable { retry_after, .. } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        resp
    }
}

/// A refused single or test certificate as the JSON API's error.
pub(super) fn single_error(e: crate::service::single::SingleError) -> super::json::ApiError {
    (
        crate::web::status_of(e.kind),
        e.field.as_str().to_string(),
        e.message,
        e.detail,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyError;

    #[test]
    fn statuses_and_headers() {
        let r = EstError::Unauthorized("x".into()).into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"estd\""
        );
        let r = EstError::MethodNotAllowed {
            method: "GET".into(),
            allow: "POST",
        }
        .into_response();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "POST");
        let e = EstError::from(EnrollError::Ca {
            cn: "joe".into(),
            detail: "key on fire".into(),
        });
        assert_eq!(e.status(), 500);
        assert_eq!(
            e.public_message(),
            "CA server error - Certificate request to internal CA failed CN=joe"
        );
        assert!(
            e.to_string().contains("fire"),
            "the detail is kept for the audit log"
        );
        // a database that went away for a moment: 503 with Retry-After, the detail kept
        // for the audit log only; any other store error stays a 500
        let gone = crate::store::StoreError::from(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        let e = EstError::from(EnrollError::Store(gone));
        assert!(e.to_string().contains("reset"), "{e}");
        let r = e.into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        let broken = crate::store::StoreError::from(sqlx::Error::RowNotFound);
        assert_eq!(EstError::from(EnrollError::Store(broken)).status(), 500);
        assert_eq!(EstError::from(WireError::BadSignature).status(), 400);
        let m = EstError::from(WireError::Base64);
        assert_eq!(
            (m.status().as_u16(), m.public_message().as_str()),
            (400, MALFORMED_CSR)
        );
        let p = EstError::from(EnrollError::Policy(PolicyError::InvalidMac));
        assert_eq!(
            (p.status().as_u16(), p.public_message().as_str()),
            (400, "Invalid MAC address")
        );
        let p = EstError::from(EnrollError::Policy(PolicyError::CnMismatch));
        assert_eq!(p.status(), 403);
    }
}
