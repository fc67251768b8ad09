//! estd: an EST (RFC 7030, RFC 8951) server with its own internal CA.
#![forbid(unsafe_code)]

pub mod ca;
pub mod est;
pub mod auth;
pub mod policy;
pub mod store;
