//! SCEP as the registration authority speaks it to its upstream (AD CS through NDES,
//! another estd): GetCACaps and GetCACert (the CA pinned by its fingerprint), a PKCSReq
//! with the device's or estd's CSR signed by the RA's RSA certificate and enveloped to
//! the upstream's encryption certificate, CertPoll for a request it holds. The
//! transactionID is the SHA-256 of the CSR's key, so a repeated request (a lost answer, a
//! poll) is the same transaction.

use zeroize::Zeroizing;

use super::{Method, OutboundAnswer, OutboundRequest};
use crate::scep_wire::operations::{CT_PKI_MESSAGE, Caps, target};
use crate::scep_wire::request::{self, CaCerts, Reply, Requester};

/// What a SCEP upstream is configured with.
#[derive(Clone)]
pub struct ScepSettings {
    /// The SCEP URL's path (`/certsrv/mscep/mscep.dll`, `/scep/routers`).
    pub path: String,
    /// The RA's RSA certificate (DER) and PKCS#8 key: it signs the requests and the
    /// upstream envelopes its replies to it.
    pub ra_cert: Vec<u8>,
    pub ra_key: Zeroizing<Vec<u8>>,
    /// SHA-256 (hex) of the upstream CA's certificate, when GetCACert comes over plain HTTP.
    pub ca_fingerprint: Option<String>,
}

impl std::fmt::Debug for ScepSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScepSettings")
            .field("path", &self.path)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish_non_exhaustive()
    }
}

/// What GetCACaps and GetCACert said, kept between requests.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub caps: Caps,
    pub ca: CaCerts,
}

impl Discovered {
    /// The CA certificates (not the RA's): what returned certificates chain to, and what
    /// estd's `/cacerts` for the label returns.
    pub fn chain(&self) -> Vec<Vec<u8>> {
        let mut out = vec![self.ca.ca.clone()];
        out.extend(
            self.ca
                .all
                .iter()
                .filter(|c| {
                    **c != self.ca.ca && **c != self.ca.encryption && **c != self.ca.signing
                })
                .cloned(),
        );
        out
    }
}

pub fn get(path: &str, operation: &str) -> OutboundRequest {
    OutboundRequest {
        method: Method::Get,
        path: target(path, None, operation, None),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// Reads GetCACert and checks it: the certificates linked by their signatures, and the CA
/// the configured fingerprint (when one is).
pub fn read_cacert(a: &OutboundAnswer, fingerprint: Option<&str>) -> Result<CaCerts, String> {
    if a.status != 200 {
        return Err(format!("GetCACert answered {}", a.status));
    }
    let ca = request::ca_certs(a.header("content-type").unwrap_or(""), &a.body)
        .map_err(|e| format!("GetCACert: {e}"))?;
    ca.verify_chain().map_err(|e| format!("GetCACert: {e}"))?;
    if let Some(want) = fingerprint {
        let got =
            crate::est::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &ca.ca).as_ref());
        if !got.eq_ignore_ascii_case(&want.replace(':', "")) {
            return Err(format!(
                "GetCACert: the CA's SHA-256 fingerprint is {got}, not the configured ca_fingerprint"
            ));
        }
    }
    Ok(ca)
}

/// The transactionID of a request for this key: the same for every message about it.
pub fn transaction_id(public_key: &[u8]) -> String {
    crate::est::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_key).as_ref())
}

/// A PKCSReq for `csr_der` (or a CertPoll for its subject, `poll`), signed by the RA.
pub fn message(
    d: &Discovered,
    requester: &Requester,
    csr_der: &[u8],
    public_key: &[u8],
    poll: bool,
) -> Result<request::Sent, String> {
    let txid = transaction_id(public_key);
    let cipher = d.caps.cipher();
    let sent = if poll {
        let csr = crate::est::Csr::parse(csr_der).map_err(|e| format!("the CSR: {e}"))?;
        let issuer = d.ca.ca_subject().map_err(|e| e.to_string())?;
        request::cert_poll(
            &issuer,
            &csr.subject,
            requester,
            &d.ca.encryption,
            cipher,
            &txid,
        )
    } else {
        request::pkcs_req(csr_der, requester, &d.ca.encryption, cipher, Some(&txid))
    };
    sent.map_err(|e| e.to_string())
}

pub fn pki_operation(path: &str, caps: &Caps, der: &[u8]) -> OutboundRequest {
    if caps.post() {
        OutboundRequest {
            method: Method::Post,
            path: target(path, None, "PKIOperation", None),
            headers: vec![("Content-Type".into(), CT_PKI_MESSAGE.into())],
            body: der.to_vec(),
        }
    } else {
        OutboundRequest {
            method: Method::Get,
            path: target(path, None, "PKIOperation", Some(der)),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

/// How a CertRep reads: the certificates, PENDING, or FAILURE with its failInfo.
pub fn read(
    a: &OutboundAnswer,
    sent: &request::Sent,
    d: &Discovered,
    requester: &Requester,
) -> Result<Reply, String> {
    if a.status != 200 {
        return Err(format!("PKIOperation answered {}", a.status));
    }
    request::read_reply(&a.body, sent, &d.ca.reply_signers(), requester)
        .map_err(|e| format!("its CertRep: {e}"))
}

/// The RA's requester (its certificate must be RSA: replies are enveloped to it).
pub fn requester(s: &ScepSettings) -> Result<Requester, String> {
    Requester::new(&s.ra_cert, &s.ra_key).map_err(|e| format!("ra_cert/ra_key: {e}"))
}
