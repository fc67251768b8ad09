//! estd: an EST (RFC 7030, RFC 8951) server with its own internal CA.
#![forbid(unsafe_code)]

/// `println!` for the command line's results that ends the process quietly (status 0) when
/// the reader has gone (`estd template show x | head`) instead of panicking on the closed
/// pipe.
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

/// What `outln!` does with a failed write: a closed pipe ends the process with status 0;
/// anything else (a full disk) is reported once on stderr and ends it with status 2.
#[doc(hidden)]
pub fn out_result(r: std::io::Result<()>) {
    if let Err(e) = r {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("estd: writing the output: {e}");
            std::process::exit(2);
        }
        std::process::exit(0);
    }
}

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
