//! Upstream CAs (registration-authority mode): a template with `issuer = "NAME"` has its
//! certificates signed by another CA's EST server, which estd reaches as a registration
//! authority (its own TLS client certificate and/or HTTP Basic). estd keeps the device-facing
//! protocols, the templates' access and name rules, the records and the audit; the upstream
//! decides what the certificate says, and estd checks what comes back (`check`) before a
//! device sees it.
//!
//! Bounded and failing fast: at most `max_in_flight` requests to an upstream at once
//! (`gate::Gate`), connect and request timeouts (the transport's), and a circuit breaker
//! that answers at once for a while after repeated failures. The HTTP itself is
//! `outbound::HttpsTransport`, handed in as a `Transport`.

mod breaker;
pub mod challenge;
pub mod check;
pub mod est;
pub mod scep;
mod transport;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use zeroize::Zeroizing;

pub use breaker::Breaker;
pub use check::Approved;
pub use scep::ScepSettings;
pub use transport::*;

/// How an upstream is reached and bounded (`[upstream.NAME]`, read by `config`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub protocol: Protocol,
    pub max_in_flight: usize,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    /// How often `/cacerts` is fetched again.
    pub cacerts_refresh: Duration,
    /// A request the upstream holds is asked about again after at most this long.
    pub poll_max: Duration,
    /// After this long a request the upstream still holds is given up (rejected).
    pub pending_max_age: Duration,
}

/// How the upstream is spoken to.
#[derive(Clone)]
pub enum Protocol {
    Est {
        /// `/.well-known/est`, with `/<label>` when the upstream wants one.
        path: String,
        /// HTTP Basic credentials, when the upstream wants them besides (or instead of) the
        /// TLS client certificate.
        basic: Option<(String, Zeroizing<String>)>,
        /// How a device's renewal is sent on.
        reenroll: Reenroll,
    },
    Scep {
        scep: ScepSettings,
        /// Where the challenge of the CSRs estd makes comes from.
        challenge: challenge::Source,
    },
}

impl std::fmt::Debug for Protocol {
    // the Basic password is never printed
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Est {
                path,
                basic,
                reenroll,
            } => f
                .debug_struct("Est")
                .field("path", path)
                .field("user", &basic.as_ref().map(|(user, _)| user))
                .field("reenroll", reenroll)
                .finish(),
            Self::Scep { scep, challenge } => f
                .debug_struct("Scep")
                .field("scep", scep)
                .field("challenge", challenge)
                .finish(),
        }
    }
}

/// What the upstream is asked for a renewal estd has checked by its own rules (RFC 7030
/// §4.2.2): `simpleenroll` (the default: the upstream sees the RA, not the device, and an
/// estd upstream renews only a certificate's own holder) or `simplereenroll`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reenroll {
    SimpleEnroll,
    SimpleReenroll,
}

/// What the upstream made of a request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Issued, and checked: the request's key, signed by the upstream's CA, valid now.
    Issued(crate::ca::SignedCert),
    /// Held (for approval, say): ask again after `retry_after`.
    Pending { retry_after: Duration },
    /// Refused, with the upstream's status and reason.
    Refused { status: u16, reason: String },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// Down, slow, refusing the RA, at its bound, or its breaker open: try again later.
    #[error("the upstream CA {name} is unavailable: {detail}")]
    Unavailable {
        name: String,
        detail: String,
        retry_after: u64,
    },
    /// It answered with a certificate estd will not hand out (another key, another CA,
    /// expired): nothing is recorded.
    #[error("the upstream CA {name} returned an unacceptable certificate: {detail}")]
    Invalid { name: String, detail: String },
}

/// What `/readyz` says of an upstream.
#[derive(Debug, Clone, Default)]
struct Health {
    /// The last failure and when, until a request succeeds.
    failing: Option<(SystemTime, String)>,
}

pub struct Upstream {
    settings: Settings,
    transport: Arc<dyn Transport>,
    /// Where challenges are fetched (a SCEP upstream's `challenge_url`).
    challenge_transport: Option<Arc<dyn Transport>>,
    /// A SCEP upstream's RA and what its GetCACaps and GetCACert said.
    scep: Option<(
        crate::scep_wire::Requester,
        RwLock<Option<scep::Discovered>>,
    )>,
    /// `Authorization: Basic …`, made once.
    basic: Option<Zeroizing<String>>,
    /// The upstream's `/cacerts`, DER each: what its certificates must chain to, and what
    /// estd's `/cacerts` for the templates it signs returns.
    chain: RwLock<Arc<Vec<Vec<u8>>>>,
    gate: crate::gate::Gate,
    breaker: Breaker,
    health: Mutex<Health>,
}

impl Upstream {
    /// `challenge_transport`: where a SCEP upstream's challenges are fetched from.
    pub fn new(
        settings: Settings,
        transport: Arc<dyn Transport>,
        challenge_transport: Option<Arc<dyn Transport>>,
    ) -> Result<Self, String> {
        let (basic, scep) = match &settings.protocol {
            Protocol::Est { basic, .. } => (
                basic
                    .as_ref()
                    .map(|(user, password)| basic_header(user, password)),
                None,
            ),
            Protocol::Scep { scep, .. } => {
                (None, Some((scep::requester(scep)?, RwLock::new(None))))
            }
        };
        // one name per configured upstream, for the gate's log lines and metrics
        let what: &'static str = Box::leak(format!("upstream {}", settings.name).into_boxed_str());
        Ok(Self {
            challenge_transport,
            scep,
            gate: crate::gate::Gate::new(what, settings.max_in_flight, settings.max_in_flight * 2),
            breaker: Breaker::new(settings.breaker_failures, settings.breaker_open),
            basic,
            transport,
            chain: RwLock::new(Arc::new(Vec::new())),
            health: Mutex::new(Health::default()),
            settings,
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The upstream's CA certificates as last fetched (empty before the first success).
    pub fn chain(&self) -> Arc<Vec<Vec<u8>>> {
        self.chain
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// `None` when the last exchange went well; else since when and why not.
    pub fn health(&self) -> Option<String> {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let (since, why) = h.failing.as_ref()?;
        Some(format!(
            "upstream {}: unreachable since {}: {why}",
            self.settings.name,
            crate::model::timestamp(*since)
        ))
    }

    fn unavailable(&self, detail: String, retry_after: Option<u64>) -> UpstreamError {
        let now = Instant::now();
        if self.breaker.failure(now) {
            tracing::warn!(upstream = %self.settings.name, open_secs = self.settings.breaker_open.as_secs(), "circuit breaker open: requests to this upstream fail at once for a while");
        }
        self.failed(&detail);
        UpstreamError::Unavailable {
            name: self.settings.name.clone(),
            detail,
            retry_after: retry_after
                .unwrap_or(self.settings.breaker_open.as_secs())
                .clamp(1, 3600),
        }
    }

    fn failed(&self, detail: &str) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if h.failing.is_none() {
            h.failing = Some((SystemTime::now(), detail.to_string()));
        } else if let Some((_, why)) = h.failing.as_mut() {
            *why = detail.to_string();
        }
    }

    fn succeeded(&self) {
        self.breaker.success();
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if h.failing.take().is_some() {
            tracing::info!(upstream = %self.settings.name, "upstream reachable again");
        }
    }

    /// A place among the `max_in_flight` requests to this upstream.
    async fn slot(&self) -> Result<crate::gate::Slot, UpstreamError> {
        self.gate
            .enter()
            .await
            .map_err(|b| UpstreamError::Unavailable {
                name: self.settings.name.clone(),
                detail: format!(
                    "{} requests to it are in flight",
                    self.settings.max_in_flight
                ),
                retry_after: b.retry_after,
            })
    }

    /// One exchange within the bounds: the breaker, then a place in the gate.
    async fn exchange(&self, req: OutboundRequest) -> Result<OutboundAnswer, UpstreamError> {
        if let Err(retry_after) = self.breaker.allow(Instant::now()) {
            return Err(UpstreamError::Unavailable {
                name: self.settings.name.clone(),
                detail: "its circuit breaker is open after repeated failures".into(),
                retry_after,
            });
        }
        let _slot = self.slot().await?;
        let started = Instant::now();
        let answer = self.transport.send(req).await;
        crate::metrics::metrics().upstream(
            &self.settings.name,
            match &answer {
                Ok(a) => status_class(a.status),
                Err(TransportError::Timeout(_)) => "timeout",
                Err(_) => "unreachable",
            },
        );
        tracing::debug!(upstream = %self.settings.name, ms = started.elapsed().as_millis() as u64, "upstream exchange");
        answer.map_err(|e| self.unavailable(e.to_string(), None))
    }

    /// Fetches the upstream's CA certificates again (EST `/cacerts`; SCEP GetCACaps and
    /// GetCACert); at start, then every `cacerts_refresh`.
    pub async fn refresh_cacerts(&self) -> Result<usize, UpstreamError> {
        let certs = match &self.settings.protocol {
            Protocol::Est { path, .. } => {
                let answer = self.exchange(est::cacerts(path, self.basic())).await?;
                est::read_cacerts(&answer).map_err(|e| self.unavailable(e, None))?
            }
            Protocol::Scep { scep: s, .. } => {
                let caps = self.exchange(scep::get(&s.path, "GetCACaps")).await?;
                let caps = crate::scep_wire::operations::Caps::parse(&caps.body);
                let answer = self.exchange(scep::get(&s.path, "GetCACert")).await?;
                let ca = scep::read_cacert(&answer, s.ca_fingerprint.as_deref())
                    .map_err(|e| self.unavailable(e, None))?;
                let found = scep::Discovered { caps, ca };
                let chain = found.chain();
                if let Some((_, d)) = &self.scep
                    && let Ok(mut d) = d.write()
                {
                    *d = Some(found);
                }
                chain
            }
        };
        let n = certs.len();
        let changed = *self.chain() != certs;
        if let Ok(mut c) = self.chain.write() {
            *c = Arc::new(certs);
        }
        self.succeeded();
        if changed {
            tracing::info!(upstream = %self.settings.name, certificates = n, "upstream CA certificates loaded");
        }
        Ok(n)
    }

    fn basic(&self) -> Option<&str> {
        self.basic.as_deref().map(String::as_str)
    }

    /// Sends a CSR on (`renewal`: as the settings say renewals go) and checks what comes
    /// back against `public_key`, the key the certificate must certify.
    pub async fn enroll(
        &self,
        csr_der: &[u8],
        public_key: &[u8],
        approved: &Approved<'_>,
        renewal: bool,
    ) -> Result<Answer, UpstreamError> {
        self.ask(csr_der, public_key, approved, renewal, false)
            .await
    }

    /// Asks again about a request the upstream holds: EST repeats the request (the
    /// upstream finds it by its key); SCEP sends a CertPoll in the same transaction.
    pub async fn poll(
        &self,
        csr_der: &[u8],
        public_key: &[u8],
        approved: &Approved<'_>,
        renewal: bool,
    ) -> Result<Answer, UpstreamError> {
        self.ask(csr_der, public_key, approved, renewal, true).await
    }

    async fn ask(
        &self,
        csr_der: &[u8],
        public_key: &[u8],
        approved: &Approved<'_>,
        renewal: bool,
        poll: bool,
    ) -> Result<Answer, UpstreamError> {
        if self.chain().is_empty() {
            // not fetched yet (the upstream was down at start): without it nothing returned
            // can be checked
            self.refresh_cacerts().await?;
        }
        match &self.settings.protocol {
            Protocol::Est { path, reenroll, .. } => {
                let op = match (renewal, reenroll) {
                    (true, Reenroll::SimpleReenroll) => "simplereenroll",
                    _ => "simpleenroll",
                };
                let answer = self
                    .exchange(est::enroll(path, op, csr_der, self.basic()))
                    .await?;
                match est::read_enroll(&answer) {
                    est::Read::Certs(certs) => self.accept(&certs, public_key, approved),
                    est::Read::Pending(retry_after) => {
                        self.succeeded();
                        Ok(Answer::Pending { retry_after })
                    }
                    est::Read::Refused { status, reason } => {
                        // the upstream's verdict on this request, not a failure of it
                        self.succeeded();
                        Ok(Answer::Refused { status, reason })
                    }
                    est::Read::Failed {
                        detail,
                        retry_after,
                    } => Err(self.unavailable(detail, retry_after)),
                }
            }
            Protocol::Scep { scep: s, .. } => {
                let Some((requester, found)) = &self.scep else {
                    return Err(self.unavailable("no SCEP requester".into(), None));
                };
                let found = found
                    .read()
                    .ok()
                    .and_then(|d| d.clone())
                    .ok_or_else(|| self.unavailable("GetCACert not read yet".into(), None))?;
                let sent = scep::message(&found, requester, csr_der, public_key, poll)
                    .map_err(|e| self.unavailable(e, None))?;
                let answer = self
                    .exchange(scep::pki_operation(&s.path, &found.caps, &sent.der))
                    .await?;
                match scep::read(&answer, &sent, &found, requester) {
                    Ok(crate::scep_wire::Reply::Success { certs, .. }) => {
                        self.accept(&certs, public_key, approved)
                    }
                    Ok(crate::scep_wire::Reply::Pending) => {
                        self.succeeded();
                        Ok(Answer::Pending {
                            retry_after: est::DEFAULT_RETRY,
                        })
                    }
                    Ok(crate::scep_wire::Reply::Failure(info)) => {
                        self.succeeded();
                        Ok(Answer::Refused {
                            status: 403,
                            reason: format!(
                                "SCEP FAILURE ({})",
                                info.map_or("no failInfo", crate::scep_wire::request::fail_name)
                            ),
                        })
                    }
                    Err(detail) => Err(self.unavailable(detail, None)),
                }
            }
        }
    }

    /// What the upstream returned, checked (`check::accept`); a wrong answer counts
    /// against the upstream, as a failure does.
    fn accept(
        &self,
        certs: &[Vec<u8>],
        public_key: &[u8],
        approved: &Approved<'_>,
    ) -> Result<Answer, UpstreamError> {
        match check::accept(
            certs,
            public_key,
            approved,
            &self.chain(),
            SystemTime::now(),
        ) {
            Ok(accepted) => {
                self.succeeded();
                Ok(Answer::Issued(accepted))
            }
            Err(detail) => {
                self.breaker.failure(Instant::now());
                self.failed(&detail);
                Err(UpstreamError::Invalid {
                    name: self.settings.name.clone(),
                    detail,
                })
            }
        }
    }

    /// The challenge password a CSR estd makes for this upstream must carry (a SCEP
    /// upstream's, fetched now when it is one-time); `None` when it wants none.
    pub async fn challenge(&self, cn: &str) -> Result<Option<Zeroizing<String>>, UpstreamError> {
        let Protocol::Scep {
            challenge: source, ..
        } = &self.settings.protocol
        else {
            return Ok(None);
        };
        if let challenge::Source::Static(secret) = source {
            return Ok(Some(secret.clone()));
        }
        let (Some(req), Some(transport)) =
            (challenge::request(source, cn), &self.challenge_transport)
        else {
            return Ok(None);
        };
        // within the upstream's bound on requests in flight, as its own requests are
        let _slot = self.slot().await?;
        let answer = transport
            .send(req)
            .await
            .map_err(|e| self.unavailable(format!("fetching a challenge: {e}"), None))?;
        challenge::read(source, &answer)
            .map(Some)
            .map_err(|e| self.unavailable(format!("fetching a challenge: {e}"), None))
    }
}

/// `Basic base64(user:password)`.
pub fn basic_header(user: &str, password: &str) -> Zeroizing<String> {
    use base64::Engine;
    let pair = Zeroizing::new(format!("{user}:{password}"));
    Zeroizing::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
    ))
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
