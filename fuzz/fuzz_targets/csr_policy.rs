//! A CSR through every shipped template's policy (as a user and as an admin).
//!
//! First byte odd: the rest is a whole DER CSR (parsing and signature check). First byte even:
//! the rest is a `CertificationRequestInfo`, which the target signs with a fixed P-256 key
//! (`csr_key.p8`, the key of the seed corpus) so that mutated subjects, SANs, attributes and
//! extensions get past the signature check and reach the policy rules.
#![no_main]
use std::path::Path;
use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use estd::est::tlv;
use estd::policy::{EvalContext, Requester, Template};
use libfuzzer_sys::fuzz_target;

fn templates() -> &'static Vec<Template> {
    static T: OnceLock<Vec<Template>> = OnceLock::new();
    T.get_or_init(|| {
        [
            include_str!("../../conf/templates/default.toml"),
            include_str!("../../conf/templates/devices.toml"),
            include_str!("../../conf/templates/eap-tls.toml"),
            include_str!("../../conf/templates/mdm.toml"),
        ]
        .iter()
        .map(|t| Template::from_toml(Path::new("t.toml"), t).expect("shipped template"))
        .collect()
    })
}

fn key() -> &'static EcdsaKeyPair {
    static K: OnceLock<EcdsaKeyPair> = OnceLock::new();
    K.get_or_init(|| {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, include_bytes!("csr_key.p8"))
            .expect("fixed key")
    })
}

/// `info` signed with the fixed key: a CertificationRequest.
fn signed(info: &[u8]) -> Option<Vec<u8>> {
    let sig = key().sign(&SystemRandom::new(), info).ok()?;
    // ecdsa-with-SHA256
    let alg = tlv(0x30, &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
    let mut bits = vec![0u8];
    bits.extend_from_slice(sig.as_ref());
    let mut body = info.to_vec();
    body.extend_from_slice(&alg);
    body.extend_from_slice(&tlv(0x03, &bits));
    Some(tlv(0x30, &body))
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let der = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        match signed(rest) {
            Some(d) => d,
            None => return,
        }
    };
    let Ok(csr) = estd::est::Csr::parse(&der) else {
        return;
    };
    for t in templates() {
        for is_admin in [false, true] {
            let who = Requester {
                name: "joe",
                is_admin,
            };
            let _ = t.evaluate(&csr, &who, &EvalContext::default());
        }
    }
});
