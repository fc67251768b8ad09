//! A bound on work a client can start that costs much CPU or memory (argon2, RSA key
//! generation, PKCS#12 and zip packaging): at most `max` at once on the blocking pool, at
//! most `queue` more waiting; beyond that the caller is told to come back (`Busy`, which
//! the HTTP layers answer with 503 and `Retry-After`), so a burst never turns into
//! unbounded threads and memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The server is at its bound for this kind of work: try again in a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server is busy; try again in {retry_after} s")]
pub struct Busy {
    pub retry_after: u64,
}

/// At most this long in the queue; then `Busy`.
const MAX_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Gate {
    what: &'static str,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

/// A place in the gate; work runs while it is held.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Gate {
    /// `max` at once (at least 1), `queue` waiting.
    pub fn new(what: &'static str, max: usize, queue: usize) -> Self {
        Self {
            what,
            slots: Arc::new(Semaphore::new(max.max(1))),
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    /// Waits for a slot, unless `queue` others already wait (or the wait passes `MAX_WAIT`).
    pub async fn enter(&self) -> Result<Slot, Busy> {
        let busy = || {
            crate::metrics::metrics().busy(self.what);
            tracing::warn!(
                work = self.what,
                "refused: at the bound for this work (503)"
            );
            Busy { retry_after: 1 }
        };
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Slot { _permit: permit });
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(busy());
        }
        let permit = tokio::time::timeout(MAX_WAIT, self.slots.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match permit {
            Ok(Ok(permit)) => Ok(Slot { _permit: permit }),
            _ => Err(busy()),
        }
    }

    /// Runs `work` on the blocking pool inside a slot.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Busy>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = self.enter().await?;
        let out = tokio::task::spawn_blocking(work).await;
        drop(slot);
        out.map_err(|e| {
            tracing::error!(work = self.what, error = %e, "blocking task failed");
            Busy { retry_after: 1 }
        })
    }
}
