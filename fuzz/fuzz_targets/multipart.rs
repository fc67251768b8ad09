//! Multipart bodies: the parser the server's tests and the client share, and the client's
//! reading of a `/serverkeygen` answer (first byte: whether a boundary header is given).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = estd::est::multipart::parse_multipart(data, "est-boundary");
    let ct = if data.first().is_some_and(|b| b & 1 == 1) {
        "multipart/mixed; boundary=est-boundary"
    } else {
        "multipart/mixed"
    };
    let _ = estd::client::wire::parse_serverkeygen(ct, data);
});
