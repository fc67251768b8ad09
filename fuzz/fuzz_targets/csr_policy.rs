//! A DER CSR through every shipped template's policy (as a user and as an admin).
#![no_main]
use std::path::Path;
use std::sync::OnceLock;

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

fuzz_target!(|data: &[u8]| {
    let Ok(csr) = estd::est::Csr::parse(data) else {
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
