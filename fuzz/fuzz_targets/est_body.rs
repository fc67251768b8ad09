//! An EST request body (base64 in any layout, PEM, raw DER) and the CSR inside it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(der) = estd::est::decode_body(data) {
        let _ = estd::est::Csr::parse(&der);
    }
});
