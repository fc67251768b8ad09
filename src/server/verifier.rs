//! The TLS client-certificate check: estd's own (a chain to its CA or an upstream CA's,
//! unchanged), or else a chain to a manufacturer CA that some template trusts
//! (`trust_vendor_cas`). A vendor certificate only reaches the handler: the template the
//! request names verifies it again against its own vendors, CRLs and lists, and refuses
//! with a 403 naming the device (`enroll::device`). So an expired IDevID is let through the
//! handshake here, to be refused there with its serial.

use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::policy::vendor;

#[derive(Debug)]
pub struct ClientVerifier {
    /// estd's own rules (`WebPkiClientVerifier` over its client roots).
    own: Arc<dyn ClientCertVerifier>,
    /// The union of every template's vendor CAs.
    vendor: Vec<TrustAnchor<'static>>,
    hints: Vec<DistinguishedName>,
}

impl ClientVerifier {
    pub fn new(own: Arc<dyn ClientCertVerifier>, vendor_roots: &[Vec<u8>]) -> Result<Self, String> {
        let vendor = vendor::anchors_of(vendor_roots)?;
        let mut hints = own.root_hint_subjects().to_vec();
        for a in &vendor {
            // a Name, SEQUENCE and all (the anchor keeps only its contents), as rustls'
            // RootCertStore::subjects makes them: OpenSSL clients refuse anything else
            let dn = DistinguishedName::in_sequence(a.subject.as_ref());
            if !hints.iter().any(|h| h.as_ref() == dn.as_ref()) {
                hints.push(dn);
            }
        }
        Ok(Self { own, vendor, hints })
    }

    /// A chain to a vendor CA, valid now or at some time (an expired or not yet valid
    /// IDevID is refused by the template, naming it).
    fn vendor_chain(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), webpki::Error> {
        match vendor::chain_to(&self.vendor, leaf, intermediates, now, &[]) {
            Err(e) if vendor::chains_apart_from_dates(&self.vendor, leaf, intermediates, &e) => {
                Ok(())
            }
            other => other,
        }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.own.verify_client_cert(end_entity, intermediates, now) {
            Ok(v) => Ok(v),
            Err(own) if self.vendor.is_empty() => Err(own),
            // the error told is estd's own: a stranger's certificate fails as it always did
            Err(own) => self
                .vendor_chain(end_entity, intermediates, now)
                .map(|()| ClientCertVerified::assertion())
                .map_err(|_| own),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.own.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.own.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.own.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    //! A vendor root made here with rcgen; an unwrap failing is the test failing.
    use super::*;

    #[test]
    fn the_hints_are_whole_names_with_the_vendors_among_them() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Vendor Root");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let vendor = p.self_signed(&key).unwrap().der().to_vec();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let own = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new({
                let mut r = rustls::RootCertStore::empty();
                r.add(CertificateDer::from(vendor.clone())).unwrap();
                r
            }),
            provider,
        )
        .build()
        .unwrap();
        let v = ClientVerifier::new(own, std::slice::from_ref(&vendor)).unwrap();
        // the same name twice is hinted once; each hint is a DER Name (OpenSSL clients
        // abort the handshake on anything else)
        assert_eq!(v.root_hint_subjects().len(), 1);
        for h in v.root_hint_subjects() {
            let name = <x509_cert::name::Name as der::Decode>::from_der(h.as_ref()).unwrap();
            assert_eq!(name.to_string(), "CN=Vendor Root");
        }
    }
}
