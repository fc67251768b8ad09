//! estd: an EST (RFC 7030, RFC 8951) server with its own internal CA.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod ca;
pub mod client;
pub mod config;
pub mod enroll;
pub mod est;
pub mod gate;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod pack;
pub mod policy;
pub mod portal;
pub mod revocation;
pub mod server;
pub mod store;
