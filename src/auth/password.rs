//! Password checks with bounded memory: argon2id needs 19 MiB per verification, so at most
//! `max` run at once (the number of cores by default), each in one of `max` memory blocks
//! kept for reuse, and at most `queue` more wait; beyond that the caller gets `Busy` (503).
//! Requests with the same credentials at the same moment (a fleet sharing one account that
//! starts together) share one verification.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHash;
use argon2::{Argon2, Block};

use crate::gate::{Busy, Gate};

/// A stored hash asking for more memory than this (in 1 KiB blocks) is not verified: it
/// would let one bad row in the users table cost gigabytes.
const MAX_BLOCKS: usize = 64 * 1024;

pub struct PasswordChecker {
    gate: Gate,
    /// Memory blocks of finished verifications, for the next ones (at most `max`).
    spare: Mutex<Vec<Vec<Block>>>,
    max: usize,
    /// Verifications in progress, by a SHA-256 of user, password and stored hash (kept only
    /// while the verification runs).
    inflight: Mutex<HashMap<Vec<u8>, Arc<tokio::sync::OnceCell<bool>>>>,
}

impl PasswordChecker {
    pub fn new(max: usize, queue: usize) -> Self {
        Self {
            gate: Gate::new("argon2", max, queue),
            spare: Mutex::new(Vec::new()),
            max: max.max(1),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, user: &str, password: &str, phc: &str) -> Vec<u8> {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in [user, password, phc] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        ctx.finish().as_ref().to_vec()
    }

    /// Does `password` match the stored PHC hash? Concurrent calls with the same user,
    /// password and hash share one argon2 run.
    pub async fn verify(&self, user: &str, password: &str, phc: &str) -> Result<bool, Busy> {
        let tag = self.tag(user, password, phc);
        let cell = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            // (entries exist only while a verification runs: at most max + queue)
            map.entry(tag.clone())
                .or_insert_with(|| Arc::new(tokio::sync::OnceCell::new()))
                .clone()
        };
        let result = cell
            .get_or_try_init(|| self.run(password.to_string(), phc.to_string()))
            .await
            .copied();
        {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            if map.get(&tag).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                map.remove(&tag);
            }
        }
        result
    }

    async fn run(&self, password: String, phc: String) -> Result<bool, Busy> {
        let slot = self.gate.enter().await?;
        let mut memory = self
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        let password = zeroize::Zeroizing::new(password);
        let done = tokio::task::spawn_blocking(move || {
            let ok = verify_with_memory(&password, &phc, &mut memory);
            (ok, memory)
        })
        .await;
        drop(slot);
        match done {
            Ok((ok, memory)) => {
                let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
                if spare.len() < self.max && memory.len() <= MAX_BLOCKS {
                    spare.push(memory);
                }
                Ok(ok)
            }
            Err(e) => {
                tracing::error!(error = %e, "password check task failed");
                Ok(false)
            }
        }
    }

    /// Hashes a new password (argon2id, default parameters) within the same bound.
    pub async fn hash(&self, password: &str) -> Result<Result<String, super::AuthError>, Busy> {
        let password = zeroize::Zeroizing::new(password.to_string());
        self.gate.run(move || super::hash_password(&password)).await
    }
}

/// argon2 verification of `password` against a PHC string, in `memory` (grown as needed,
/// kept by the caller for the next one). A malformed hash never matches.
pub fn verify_with_memory(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version {
        Some(v) => match argon2::Version::try_from(v) {
            Ok(v) => v,
            Err(_) => return false,
        },
        None => argon2::Version::default(),
    };
    let Ok(params) = argon2::Params::try_from(&hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let need = params.block_count();
    if need > MAX_BLOCKS {
        tracing::warn!(
            blocks = need,
            "a stored password hash asks for too much memory; not verified"
        );
        return false;
    }
    if memory.len() < need {
        memory.resize(need, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        &mut memory[..need],
    );
    computed.is_ok()
        && aws_lc_rs::constant_time::verify_slices_are_equal(&out, expected.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_like_the_argon2_crate_in_reused_memory() {
        let h = super::super::hash_password("s3cret").unwrap();
        let mut memory = Vec::new();
        assert!(verify_with_memory("s3cret", &h, &mut memory));
        let size = memory.len();
        assert_eq!(size, 19 * 1024, "19 MiB of 1 KiB blocks");
        assert!(!verify_with_memory("s3cret ", &h, &mut memory));
        assert!(!verify_with_memory("s3cret", "not a hash", &mut memory));
        assert_eq!(memory.len(), size, "the same memory, not grown");
        // a hash from elsewhere (other parameters) verifies too
        let other = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8192, 3, 1, None).unwrap(),
        );
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = other.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(verify_with_memory("pw", &phc, &mut memory));
        assert!(!verify_with_memory("px", &phc, &mut memory));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bounded_and_shared() {
        let h = super::super::hash_password("s3cret").unwrap();
        let checker = Arc::new(PasswordChecker::new(1, 2));
        // 16 requests with the same credentials at once: one verification, all answered
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (c, h) = (checker.clone(), h.clone());
            set.spawn(async move { c.verify("joe", "s3cret", &h).await });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap(), Ok(true));
        }
        // different wrong passwords at once: one runs, two wait, the rest are refused
        let mut set = tokio::task::JoinSet::new();
        for i in 0..40 {
            let (c, h) = (checker.clone(), h.clone());
            set.spawn(async move { c.verify("joe", &format!("wrong{i}"), &h).await });
        }
        let (mut checked, mut busy) = (0, 0);
        while let Some(r) = set.join_next().await {
            match r.unwrap() {
                Ok(false) => checked += 1,
                Err(Busy { retry_after: 1 }) => busy += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(busy >= 20, "{checked} checked, {busy} refused");
        assert!(checked >= 1);
        assert!(
            checker.spare.lock().unwrap().len() <= 1,
            "memory kept: one block set"
        );
        assert!(checker.inflight.lock().unwrap().is_empty());
    }
}
