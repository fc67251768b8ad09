//! The one place an EST error becomes an HTTP response (status, plain-text body, headers).
//! No logging here: the audit layer logs each outcome once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::enroll::EnrollError;
use crate::est::WireError;

/// The seed FAQ's text for a failure of the internal CA.
pub const CA_FAILURE: &str = "CA server error - Certificate request to internal CA failed CN";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EstError {
    #[error("{0}")]
    BadRequest(String),
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
    /// Our own fault. `public` goes to the client; `detail` only to the log and audit.
    #[error("{detail}")]
    Internal {
        public: &'static str,
        detail: String,
    },
}

impl EstError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text the client sees.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal { public, .. } => (*public).to_string(),
            other => other.to_string(),
        }
    }
}

impl From<WireError> for EstError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Encode(detail) => EstError::Internal {
                public: "internal error encoding the response",
                detail,
            },
            other => EstError::BadRequest(other.to_string()),
        }
    }
}

impl From<EnrollError> for EstError {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::Unauthorized(m) => EstError::Unauthorized(m),
            e @ (EnrollError::NotInGroup { .. }
            | EnrollError::Policy(_)
            | EnrollError::ReenrollMismatch(_)) => EstError::Forbidden(e.to_string()),
            EnrollError::BadRequest(m) => EstError::BadRequest(m),
            EnrollError::Ca(detail) => EstError::Internal {
                public: CA_FAILURE,
                detail,
            },
            EnrollError::Store(e) => EstError::Internal {
                public: "internal error: the certificate store is unavailable",
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
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = EstError::from(EnrollError::Ca("key on fire".into()));
        assert_eq!(e.status(), 500);
        assert_eq!(e.public_message(), CA_FAILURE);
        assert!(!e.public_message().contains("fire"));
        assert_eq!(EstError::from(WireError::BadSignature).status(), 400);
    }
}
