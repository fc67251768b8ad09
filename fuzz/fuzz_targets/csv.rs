//! The bulk CSV upload.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = estd::jobs::csv::parse(data);
});
