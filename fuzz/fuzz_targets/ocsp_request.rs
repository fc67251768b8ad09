//! OCSP requests (RFC 6960) as the responder reads them: DER by POST, and base64 in the
//! path by GET. What parses is also matched against an issuer and turned into a serial.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use base64::Engine;
    let mut inputs = vec![data.to_vec()];
    if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(data) {
        inputs.push(der);
    }
    for der in inputs {
        if let Ok(req) = estd::ca::ocsp::parse_request(&der) {
            for id in &req.ids {
                let _ = id.serial_hex();
            }
        }
    }
});
