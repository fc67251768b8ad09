//! The `Authorization` header.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = estd::auth::parse_basic(data);
});
