//! A SCEP pkiMessage: parsed and checked, and its envelope opened with a fixed RA key.
//! Seed with tests/fixtures/scep/*.der.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = estd::scep_wire::parse(data) {
        let _ = estd::scep_wire::open(&msg.envelope, &[]);
    }
    // the envelope parser on its own, with no recipient
    let _ = estd::scep_wire::open(data, &[]);
});
