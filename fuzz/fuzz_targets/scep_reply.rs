//! What a SCEP client reads from a server (`estd client scep`): a GetCACert answer (one
//! certificate or a degenerate PKCS#7) and a CertRep answering a PKCSReq. Seed with
//! tests/fixtures/scep/*.der.
#![no_main]
use std::sync::OnceLock;

use estd::scep_wire::request::{self, Requester, Sent};
use libfuzzer_sys::fuzz_target;

fn requester() -> &'static Requester {
    static R: OnceLock<Requester> = OnceLock::new();
    R.get_or_init(|| {
        let key = estd::est::generate_key(estd::est::KeyType::Rsa(2048)).expect("a key");
        let subject = "CN=fuzz".parse().expect("a name");
        Requester::self_signed(&key.pkcs8, &subject).expect("a requester")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = request::ca_certs("application/x-x509-ca-ra-cert", data);
    let _ = request::ca_certs("application/x-x509-ca-cert", data);
    let _ = request::degenerate_contents(data);
    let sent = Sent {
        message_type: estd::scep_wire::MessageType::PkcsReq,
        transaction_id: "fuzz".into(),
        sender_nonce: vec![0; 16],
        der: Vec::new(),
    };
    let trusted = vec![data.to_vec()];
    let _ = request::read_reply(data, &sent, &trusted, requester());
});
