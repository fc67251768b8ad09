//! `estd client bench`: N concurrent clients enroll for T seconds against any EST server(s)
//! — a new TLS connection per enrollment, or one kept-alive connection per client — with
//! CSRs made before the clock starts. Reports enrollments per second, latency percentiles,
//! errors, and, given the servers' process ids, their CPU time per enrollment (from
//! `/proc/PID/stat`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{ClientError, EstClient};

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Sorted latencies of the successful enrollments, microseconds.
    pub latencies_us: Vec<u64>,
    /// Servers' user + system CPU over the run, when their pids were given.
    pub server_cpu: Option<Duration>,
}

impl Report {
    /// The figures every load mode prints: enrollments, rate, latency percentiles and the
    /// servers' CPU per enrollment (`pids`: whose).
    pub fn print_figures(&self, pids: &[u32]) {
        crate::outln!(
            "enrollments: {} ok, {} errors → {:.1} per second",
            self.ok,
            self.errors,
            self.per_second()
        );
        crate::outln!(
            "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            self.percentile_ms(0.5),
            self.percentile_ms(0.9),
            self.percentile_ms(0.99),
            self.percentile_ms(1.0)
        );
        if let (Some(cpu), Some(per)) = (self.server_cpu, self.cpu_per_enrollment_us()) {
            crate::outln!(
                "server CPU: {:.2} s → {:.0} µs per enrollment (pid {})",
                cpu.as_secs_f64(),
                per,
                pids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0–1), milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_us[i.min(self.latencies_us.len() - 1)] as f64 / 1000.0
    }

    /// Server CPU per successful enrollment, microseconds.
    pub fn cpu_per_enrollment_us(&self) -> Option<f64> {
        self.server_cpu
            .filter(|_| self.ok > 0)
            .map(|c| c.as_secs_f64() * 1e6 / self.ok as f64)
    }
}

/// Clock ticks per second of `/proc/PID/stat` times.
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(100)
}

/// User + system CPU time a process has used so far.
pub fn process_cpu(pid: u32) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // the command name may contain spaces: fields start after its closing parenthesis
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // after ")": state is field 3 of the full line, utime 14, stime 15
    let tick = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("/proc/{pid}/stat: no field {}", i + 3))
    };
    let ticks = tick(11)? + tick(12)?;
    Ok(Duration::from_micros(ticks * 1_000_000 / clock_ticks()))
}

/// A process's resident memory (VmRSS), KiB.
pub fn resident_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/status: no VmRSS"))
}

fn total_cpu(pids: &[u32]) -> Result<Duration, String> {
    pids.iter().map(|p| process_cpu(*p)).sum()
}

/// The servers' CPU time now, when their pids were given: the start of a measured window.
pub fn cpu_now(pids: &[u32]) -> Result<Option<Duration>, String> {
    (!pids.is_empty()).then(|| total_cpu(pids)).transpose()
}

/// A load worker: what it hands back when stopped (its latencies in µs, its error count,
/// its first error).
pub type Worker = tokio::task::JoinHandle<(Vec<u64>, u64, Option<String>)>;

/// Lets the workers run for `duration`, stops them and waits for each, and reports: the
/// run ends when the last in-flight enrollment does; the servers' CPU is counted from
/// `cpu_before` (`cpu_now` at the start).
pub async fn finish(
    workers: Vec<Worker>,
    stop: &AtomicBool,
    duration: Duration,
    started: Instant,
    pids: &[u32],
    cpu_before: Option<Duration>,
) -> Result<Report, String> {
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut report = Report {
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        server_cpu: None,
    };
    for t in workers {
        let (lat, errors, first) = t.await.map_err(|e| format!("a worker: {e}"))?;
        report.latencies_us.extend(lat);
        report.errors += errors;
        if report.first_error.is_none() {
            report.first_error = first;
        }
    }
    report.elapsed = started.elapsed();
    if let Some(before) = cpu_before {
        report.server_cpu = Some(total_cpu(pids)?.saturating_sub(before));
    }
    report.ok = report.latencies_us.len() as u64;
    report.latencies_us.sort_unstable();
    Ok(report)
}

/// Runs `clients` tasks for `duration`, spreading them over `targets` round robin; each
/// enrollment posts the next prepared CSR (DER) to `simpleenroll`.
pub async fn run(
    targets: Vec<Arc<EstClient>>,
    csrs: Arc<Vec<Vec<u8>>>,
    clients: usize,
    duration: Duration,
    keep_alive: bool,
    pids: &[u32],
) -> Result<Report, String> {
    if targets.is_empty() || csrs.is_empty() || clients == 0 {
        return Err("nothing to run: no server, no CSR or no client".into());
    }
    let bodies: Arc<Vec<Vec<u8>>> =
        Arc::new(csrs.iter().map(|c| crate::est::encode_body(c)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = cpu_now(pids)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for n in 0..clients {
        let target = targets[n % targets.len()].clone();
        let (bodies, stop) = (bodies.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut errors, mut first_error) = (0u64, None::<String>);
            let mut conn = None;
            let mut i = n;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[i % bodies.len()].clone();
                i += clients;
                let t0 = Instant::now();
                let result: Result<super::Answer, ClientError> = async {
                    if keep_alive {
                        if conn.is_none() {
                            conn = Some(target.connect().await?);
                        }
                        let c = conn
                            .as_mut()
                            .ok_or_else(|| ClientError::Http("no connection".into()))?;
                        target
                            .send_on(
                                c,
                                hyper::Method::POST,
                                "simpleenroll",
                                Some(crate::est::CT_PKCS10),
                                body,
                            )
                            .await
                    } else {
                        target
                            .send(
                                hyper::Method::POST,
                                "simpleenroll",
                                Some(crate::est::CT_PKCS10),
                                body,
                            )
                            .await
                    }
                }
                .await;
                match result {
                    Ok(a) if a.status == 200 => lat.push(t0.elapsed().as_micros() as u64),
                    Ok(a) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{}: {}", a.status, a.reason()));
                    }
                    Err(e) => {
                        errors += 1;
                        conn = None;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    finish(tasks, &stop, duration, started, pids, cpu_before).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_rates() {
        let r = Report {
            ok: 100,
            errors: 0,
            first_error: None,
            elapsed: Duration::from_secs(2),
            latencies_us: (1..=100).map(|i| i * 1000).collect(),
            server_cpu: Some(Duration::from_millis(50)),
        };
        assert_eq!(r.per_second(), 50.0);
        assert_eq!(r.percentile_ms(0.5), 51.0);
        assert_eq!(r.percentile_ms(0.99), 99.0);
        assert_eq!(r.percentile_ms(1.0), 100.0);
        assert_eq!(r.cpu_per_enrollment_us(), Some(500.0));
    }

    #[test]
    fn this_process_uses_cpu() {
        let me = std::process::id();
        let before = process_cpu(me).unwrap();
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(process_cpu(me).unwrap() > before);
        assert!(process_cpu(u32::MAX).is_err());
        assert!(resident_kib(me).unwrap() > 100);
    }
}
