//! Prometheus metrics (text exposition format 0.0.4), kept in the process: requests by
//! operation, label and status; enrollment latency; certificates issued and revoked;
//! authentication and TLS handshake failures. Bulk jobs by state are read from the store
//! when scraped. One registry per process (`metrics()`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds of the enrollment latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// At most this many distinct (operation, label, status) series: labels come from request
/// paths, and an unknown label is answered 404 before it is counted under its own name.
const MAX_SERIES: usize = 2_000;

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    issued: AtomicU64,
    revoked: AtomicU64,
    auth_failures: AtomicU64,
    tls_handshake_failures: AtomicU64,
    /// Work refused at its bound (503), by kind of work.
    busy: Mutex<BTreeMap<&'static str, u64>>,
    /// Password checks refused or delayed by the throttle.
    throttled: AtomicU64,
    /// Connections closed at accept (the total or per-address cap) or for idling.
    connections_refused: AtomicU64,
    connections_idle_closed: AtomicU64,
    /// Audit rows not written for unauthenticated failures over the per-address rate.
    audit_suppressed: AtomicU64,
    /// SCEP messages answered, by message type and pkiStatus (with failInfo).
    scep: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Exchanges with upstream CAs (registration-authority mode), by upstream and outcome.
    upstream: Mutex<BTreeMap<(String, &'static str), u64>>,
}

pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::default)
}

/// The operations whose latency is an enrollment's.
pub fn is_enrollment(operation: &str) -> bool {
    matches!(
        operation,
        "simpleenroll" | "simplereenroll" | "serverkeygen" | "scep-pkcsreq" | "scep-renewal"
    )
}

impl Metrics {
    /// One answered request.
    pub fn request(&self, operation: &str, label: &str, status: u16, took: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            let key = (operation.to_string(), label.to_string(), status);
            if m.len() < MAX_SERIES || m.contains_key(&key) {
                *m.entry(key).or_insert(0) += 1;
            }
        }
        if status == 401 {
            self.auth_failures.fetch_add(1, Ordering::Relaxed);
        }
        if is_enrollment(operation) {
            let secs = took.as_secs_f64();
            for (i, le) in BUCKETS.iter().enumerate() {
                if secs <= *le {
                    self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
                }
            }
            self.latency_count.fetch_add(1, Ordering::Relaxed);
            self.latency_micros.fetch_add(
                u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
    }

    /// One SCEP message answered: its type (`pkcsreq`, `renewalreq`, `certpoll`, `getcert`,
    /// `getcrl`, `unreadable`) and the answer (`success`, `pending`, `failure-badRequest`, …).
    pub fn scep(&self, message: &'static str, answer: &'static str) {
        if let Ok(mut m) = self.scep.lock() {
            *m.entry((message, answer)).or_insert(0) += 1;
        }
    }

    /// One exchange with an upstream CA: `2xx`, `4xx`, `5xx`, `timeout` or `unreachable`
    /// (upstream names come from the configuration: a bounded set).
    pub fn upstream(&self, name: &str, outcome: &'static str) {
        if let Ok(mut m) = self.upstream.lock() {
            *m.entry((name.to_string(), outcome)).or_insert(0) += 1;
        }
    }

    pub fn issued(&self) {
        self.issued.fetch_add(1, Ordering::Relaxed);
    }

    pub fn revoked(&self) {
        self.revoked.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn busy(&self, work: &'static str) {
        if let Ok(mut m) = self.busy.lock() {
            *m.entry(work).or_insert(0) += 1;
        }
    }

    pub fn throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_idle_closed(&self) {
        self.connections_idle_closed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn audit_suppressed(&self) {
        self.audit_suppressed.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text; `jobs` are the bulk jobs by state (from the store).
    pub fn render(&self, jobs: &[(String, i64)]) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP estd_requests_total Requests answered, by operation, CA label and HTTP status.\n# TYPE estd_requests_total counter"
        );
        if let Ok(m) = self.requests.lock() {
            for ((op, label, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "estd_requests_total{{operation=\"{}\",label=\"{}\",status=\"{status}\"}} {n}",
                    escape(op),
                    escape(label)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP estd_scep_messages_total SCEP messages answered, by message type and answer (pkiStatus, failInfo).\n# TYPE estd_scep_messages_total counter"
        );
        if let Ok(m) = self.scep.lock() {
            for ((message, answer), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "estd_scep_messages_total{{message=\"{message}\",answer=\"{answer}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP estd_upstream_requests_total Exchanges with upstream CAs (registration-authority mode), by upstream and outcome.\n# TYPE estd_upstream_requests_total counter"
        );
        if let Ok(m) = self.upstream.lock() {
            for ((name, outcome), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "estd_upstream_requests_total{{upstream=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(name)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP estd_enrollment_duration_seconds Time to answer simpleenroll, simplereenroll and serverkeygen.\n# TYPE estd_enrollment_duration_seconds histogram"
        );
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "estd_enrollment_duration_seconds_bucket{{le=\"{le}\"}} {}",
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "estd_enrollment_duration_seconds_bucket{{le=\"+Inf\"}} {count}\nestd_enrollment_duration_seconds_sum {}\nestd_enrollment_duration_seconds_count {count}",
            self.latency_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        counter(
            &mut out,
            "estd_certificates_issued_total",
            "Certificates issued by this process.",
            self.issued.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "estd_certificates_revoked_total",
            "Certificates revoked through this process.",
            self.revoked.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "estd_auth_failures_total",
            "Requests refused with 401 (wrong or missing credentials).",
            self.auth_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "estd_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out.",
            self.tls_handshake_failures.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP estd_busy_total Work refused at its bound with 503 (argon2, key generation, packaging).\n# TYPE estd_busy_total counter"
        );
        if let Ok(m) = self.busy.lock() {
            for (work, n) in m.iter() {
                let _ = writeln!(out, "estd_busy_total{{work=\"{work}\"}} {n}");
            }
        }
        counter(
            &mut out,
            "estd_throttled_total",
            "Password checks refused or delayed after repeated failures.",
            self.throttled.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "estd_connections_refused_total",
            "Connections closed at accept: over the total or the per-address cap.",
            self.connections_refused.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "estd_connections_idle_closed_total",
            "Connections closed for sending no request in time.",
            self.connections_idle_closed.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "estd_audit_suppressed_total",
            "Audit rows not written for unauthenticated failures over the per-address rate (still counted and logged).",
            self.audit_suppressed.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP estd_bulk_jobs Bulk jobs in the store, by state.\n# TYPE estd_bulk_jobs gauge"
        );
        for state in ["queued", "running", "completed", "cancelled", "failed"] {
            let n = jobs.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "estd_bulk_jobs{{state=\"{state}\"}} {n}");
        }
        for (state, n) in jobs {
            if !["queued", "running", "completed", "cancelled", "failed"].contains(&state.as_str())
            {
                let _ = writeln!(out, "estd_bulk_jobs{{state=\"{}\"}} {n}", escape(state));
            }
        }
        out
    }
}

/// A label value as the text format wants it.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::default();
        m.request("simpleenroll", "default", 200, Duration::from_millis(3));
        m.request("simpleenroll", "default", 200, Duration::from_millis(30));
        m.request("cacerts", "", 200, Duration::from_millis(1));
        m.request("simpleenroll", "a\"b", 401, Duration::from_millis(1));
        m.issued();
        let t = m.render(&[("completed".into(), 2)]);
        assert!(t.contains(
            "estd_requests_total{operation=\"simpleenroll\",label=\"default\",status=\"200\"} 2\n"
        ));
        assert!(t.contains(
            "estd_requests_total{operation=\"simpleenroll\",label=\"a\\\"b\",status=\"401\"} 1\n"
        ));
        assert!(t.contains("estd_enrollment_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(t.contains("estd_enrollment_duration_seconds_bucket{le=\"0.05\"} 3\n"));
        assert!(t.contains("estd_enrollment_duration_seconds_count 3\n"));
        assert!(t.contains("estd_auth_failures_total 1\n"));
        assert!(t.contains("estd_certificates_issued_total 1\n"));
        assert!(t.contains("estd_bulk_jobs{state=\"completed\"} 2\n"));
        assert!(t.contains("estd_bulk_jobs{state=\"running\"} 0\n"));
    }
}
