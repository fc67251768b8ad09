//! How long SCEP's rows are kept: challenges a month after they were used or expired (long
//! enough to read who used one and when), transactions a little more than a year after
//! they started (a lost answer is asked again within minutes; certmonger renews under its
//! first transactionID, which then starts over anyway). Deleted hourly.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::store::{Store, timestamp};

/// Used or expired challenges are kept this long.
pub const CHALLENGES_KEPT: Duration = Duration::from_secs(30 * 86_400);
/// Transactions are kept this long after they started.
pub const TRANSACTIONS_KEPT: Duration = Duration::from_secs(400 * 86_400);
const EVERY: Duration = Duration::from_secs(3600);

/// Deletes what is older than the limits now; returns how many challenges and
/// transactions.
pub async fn purge(
    store: &dyn Store,
    now: SystemTime,
) -> Result<(u64, u64), crate::store::StoreError> {
    let before =
        |kept: Duration| timestamp(now.checked_sub(kept).unwrap_or(SystemTime::UNIX_EPOCH));
    store
        .purge_scep(&before(CHALLENGES_KEPT), &before(TRANSACTIONS_KEPT))
        .await
}

/// Purges every hour, the first time a minute after start.
pub fn spawn_purger(store: Arc<dyn Store>) {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        loop {
            match purge(store.as_ref(), SystemTime::now()).await {
                Ok((0, 0)) => {}
                Ok((c, t)) => {
                    tracing::info!(
                        challenges = c,
                        transactions = t,
                        "old SCEP challenges and transactions deleted"
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete old SCEP challenges and transactions")
                }
            }
            tokio::time::sleep(EVERY).await;
        }
    });
}
