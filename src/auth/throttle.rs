//! Repeated failed log-ins slow the guesser and never lock out the victim (in memory, per
//! instance):
//! - failures are counted per client address and per (user name, address), and kept until
//!   the window passes: a success does not erase them, so a busy account's own log-ins do
//!   not make room for more guesses;
//! - after `per_address` failures, password checks from that address run at most once per
//!   `slowed_interval` (one a second): devices behind one NAT address keep enrolling while a
//!   guesser there gets one guess a second;
//! - after `per_pair` failures for one user from one address, checks for that user from
//!   there run at most once per `slowed_user_interval` (a minute): a guesser aiming at one
//!   account gets one guess a minute at it; the same user from any other address is not
//!   affected;
//! - a check that comes too soon gets 429 with `Retry-After`; nothing is refused for good.
//!
//! Credentials the credential cache remembers (verified lately) are no password check and
//! pass. Addresses are IP addresses without the port.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The throttle's settings (`[auth]` in estd.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    pub per_pair: u32,
    pub per_address: u32,
    pub window: Duration,
    pub slowed_interval: Duration,
    pub slowed_user_interval: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            per_pair: 5,
            per_address: 20,
            window: Duration::from_secs(900),
            slowed_interval: Duration::from_secs(1),
            slowed_user_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, IpAddr),
    Address(IpAddr),
}

#[derive(Debug, Default)]
struct Entry {
    /// The latest failures (at most the limit's worth).
    failures: VecDeque<Instant>,
    /// A slowed address: when its next check may run.
    next_check: Option<Instant>,
}

/// Entries kept at most (each stands for recent failures); beyond it, expired ones go, then
/// the least recent.
const MAX_ENTRIES: usize = 100_000;

pub struct Throttle {
    s: ThrottleSettings,
    entries: Mutex<HashMap<Key, Entry>>,
}

/// The address part of a peer (`192.0.2.7:51234` → `192.0.2.7`).
pub fn address_of(peer: &str) -> Option<IpAddr> {
    peer.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_canonical())
        .or_else(|_| peer.parse::<IpAddr>().map(|ip| ip.to_canonical()))
        .ok()
}

impl Throttle {
    pub fn new(s: ThrottleSettings) -> Self {
        Self {
            s,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn pair(user: &str, ip: IpAddr) -> Key {
        Key::Pair(user.to_lowercase(), ip)
    }

    /// Failures within the window: `Some(seconds until the oldest counted one expires)` when
    /// there are at least `limit`.
    fn over(&self, entry: &Entry, limit: u32, now: Instant) -> Option<u64> {
        let recent: Vec<&Instant> = entry
            .failures
            .iter()
            .filter(|t| now.duration_since(**t) < self.s.window)
            .collect();
        if recent.len() < limit as usize {
            return None;
        }
        let oldest = recent[recent.len() - limit as usize];
        Some(
            self.s
                .window
                .saturating_sub(now.duration_since(*oldest))
                .as_secs()
                .max(1),
        )
    }

    /// Before a password check (argon2) for `user` from this address: `Some(seconds to
    /// wait)` when the address, or this user from it, has failed often lately and its next
    /// check is not due yet. Otherwise the check may run (and uses the slot of both).
    pub fn take_check(&self, user: &str, peer: &str) -> Option<u64> {
        let ip = address_of(peer)?;
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let keys = [
            (
                Self::pair(user, ip),
                self.s.per_pair,
                self.s.slowed_user_interval,
            ),
            (Key::Address(ip), self.s.per_address, self.s.slowed_interval),
        ];
        let mut wait = None;
        let mut slowed = Vec::new();
        for (key, limit, interval) in &keys {
            let Some(entry) = map.get(key) else {
                continue;
            };
            if self.over(entry, *limit, now).is_none() {
                continue;
            }
            match entry.next_check {
                Some(at) if at > now => {
                    let w = (at - now).as_secs().max(1);
                    wait = Some(wait.map_or(w, |x: u64| x.max(w)));
                }
                _ => slowed.push((key.clone(), *interval)),
            }
        }
        if wait.is_some() {
            crate::metrics::metrics().throttled();
            return wait;
        }
        for (key, interval) in slowed {
            if let Some(entry) = map.get_mut(&key) {
                entry.next_check = Some(now + interval);
            }
        }
        None
    }

    /// A password check failed.
    pub fn failed(&self, user: &str, peer: &str) {
        let Some(ip) = address_of(peer) else {
            return;
        };
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            self.prune(&mut map, now);
        }
        for (key, limit) in [
            (Self::pair(user, ip), self.s.per_pair),
            (Key::Address(ip), self.s.per_address),
        ] {
            let entry = map.entry(key).or_default();
            entry.failures.push_back(now);
            while entry.failures.len() > limit.max(1) as usize {
                entry.failures.pop_front();
            }
        }
    }

    /// Expired entries go; if that is not enough, the tenth with the oldest failures.
    fn prune(&self, map: &mut HashMap<Key, Entry>, now: Instant) {
        let window = self.s.window;
        map.retain(|_, e| {
            e.failures
                .back()
                .is_some_and(|t| now.duration_since(*t) < window)
        });
        if map.len() >= MAX_ENTRIES {
            let mut ages: Vec<(Instant, Key)> = map
                .iter()
                .filter_map(|(k, e)| e.failures.back().map(|t| (*t, k.clone())))
                .collect();
            ages.sort_by_key(|(t, _)| *t);
            for (_, k) in ages.into_iter().take(MAX_ENTRIES / 10) {
                map.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(ThrottleSettings {
            per_pair: 3,
            per_address: 5,
            window: Duration::from_secs(60),
            slowed_interval: Duration::from_millis(200),
            slowed_user_interval: Duration::from_millis(600),
        })
    }

    #[test]
    fn a_guessed_user_is_slowed_only_at_the_guessers_address() {
        let t = throttle();
        for i in 0..3 {
            assert_eq!(
                t.take_check("alice", &format!("10.0.0.1:{}", 1000 + i)),
                None
            );
            t.failed("alice", &format!("10.0.0.1:{}", 1000 + i));
        }
        assert_eq!(
            t.take_check("ALICE", "10.0.0.1:2000"),
            None,
            "one check now"
        );
        assert!(
            t.take_check("alice", "10.0.0.1:2001").is_some(),
            "the next must wait"
        );
        assert_eq!(t.take_check("alice", "10.0.0.2:1"), None, "her own address");
        assert_eq!(
            t.take_check("alice", "10.0.0.2:1"),
            None,
            "as often as she likes"
        );
        assert_eq!(
            t.take_check("bob", "10.0.0.1:1"),
            None,
            "another user there"
        );
        std::thread::sleep(Duration::from_millis(650));
        assert_eq!(
            t.take_check("alice", "10.0.0.1:3"),
            None,
            "after the interval, one more"
        );
    }

    #[test]
    fn a_busy_address_is_slowed_not_refused() {
        let t = throttle();
        for i in 0..5 {
            t.failed(&format!("user{i}"), "10.0.0.9:1");
        }
        assert_eq!(t.take_check("x", "10.0.0.9:1"), None, "one check");
        assert!(
            t.take_check("y", "10.0.0.9:2").is_some(),
            "the next must wait"
        );
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(
            t.take_check("z", "10.0.0.9:3"),
            None,
            "after the interval, one more"
        );
        assert_eq!(
            t.take_check("y", "10.0.0.8:1"),
            None,
            "another address is not slowed"
        );
    }

    #[test]
    fn success_does_not_erase_failures() {
        let t = throttle();
        // failures, then (no record of) a success, then more: all counted
        for _ in 0..2 {
            t.failed("mdm", "10.0.0.5:1");
        }
        assert_eq!(t.take_check("mdm", "10.0.0.5:1"), None);
        t.failed("mdm", "10.0.0.5:1");
        assert_eq!(
            t.take_check("mdm", "10.0.0.5:1"),
            None,
            "slowed: this one runs"
        );
        assert!(t.take_check("mdm", "10.0.0.5:1").is_some());
    }

    #[test]
    fn addresses() {
        assert_eq!(address_of("192.0.2.1:443"), "192.0.2.1".parse().ok());
        assert_eq!(
            address_of("[::ffff:192.0.2.1]:443"),
            "192.0.2.1".parse().ok()
        );
        assert_eq!(address_of("2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(address_of("unknown"), None);
    }
}
