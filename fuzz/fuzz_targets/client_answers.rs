//! What `estd client` reads from servers: bodies, certs-only PKCS#7, CsrAttrs, keys.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let der = estd::client::wire::decode(data).unwrap_or_else(|_| data.to_vec());
    let _ = estd::client::wire::certs_from_pkcs7(&der);
    let _ = estd::client::wire::describe_csrattrs(&der);
    let _ = estd::client::wire::key_to_pkcs8(&der);
});
