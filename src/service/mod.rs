//! The service layer: what a user can ask of estd whatever surface they use (the JSON API,
//! the portal; EST goes straight to `enroll`). Typed requests in, typed results or domain
//! errors out; nothing here knows HTTP. The adapters (`api/`, `portal/`) parse a request,
//! call a service and render its answer; `web::status_of` is the one place a `Kind`
//! becomes a status.

pub mod certs;
pub mod devices;
pub mod scep;
pub mod single;
pub mod testcert;
pub mod tokens;

use std::sync::Arc;

use crate::enroll::EnrollService;
use crate::pack::BundleAssets;
use crate::policy::Templates;
use crate::store::Store;

/// What the issuing services work with, borrowed from the adapters' shared state.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub enroll: &'a EnrollService,
    pub templates: &'a Templates,
    pub store: &'a dyn Store,
    /// The CA chain and EAP trust file every download bundle carries.
    pub bundle: &'a Arc<BundleAssets>,
}

/// What kind of answer a refused or failed request gets. `web::status_of` maps each to one
/// HTTP status for the JSON API and the portal; the service never names a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request is malformed or a value is invalid (400).
    Invalid,
    /// The requester may not have this (403).
    Forbidden,
    /// Accepted, waiting for an administrator (202).
    Pending,
    /// The request was cancelled or conflicts with the current state (409).
    Conflict,
    /// Too many requests from this requester (429).
    Throttled,
    /// Try again later: the store or the bound on heavy work (503).
    Unavailable,
    /// estd's own fault (500).
    Internal,
}
