//! estd: an EST (RFC 7030, RFC 8951) server with its own internal CA.
#![forbid(unsafe_code)]

/// `println!` for the command line's results that does not panic when the reader has gone
/// (`estd template show x | head`): the rest of the output is dropped, the command carries
/// on and ends with its own status. Output that must not be lost (a generated password)
/// is written with `write_out`, which reports the failure.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        $crate::out_result(::std::io::Write::write_fmt(
            &mut ::std::io::stdout().lock(),
            format_args!("{}\n", format_args!($($arg)*)),
        ))
    }};
}

/// `print!` likewise.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        $crate::out_result(::std::io::Write::write_fmt(
            &mut ::std::io::stdout().lock(),
            format_args!($($arg)*),
        ))
    }};
}

/// What `outln!` does with a failed write: nothing for a closed pipe; anything else (a
/// full disk) is said on stderr, once.
#[doc(hidden)]
pub fn out_result(r: std::io::Result<()>) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Err(e) = r
        && e.kind() != std::io::ErrorKind::BrokenPipe
        && !SAID.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!("estd: writing the output: {e}\n"),
        );
    }
}

/// Writes a line that must reach the reader (a generated password), or says why not.
pub fn write_out(line: &str) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("the output could not be written ({e})"))
}

pub mod api;
pub mod app;
pub mod auth;
pub mod ca;
pub mod client;
pub mod config;
pub mod enroll;
pub mod est;
pub mod fields;
pub mod gate;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod outbound;
pub mod pack;
pub mod policy;
pub mod portal;
pub mod revocation;
pub mod scep_wire;
pub mod server;
pub mod service;
pub mod store;
pub mod web;
