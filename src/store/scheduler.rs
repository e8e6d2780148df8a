//! The timer scheduler: fires the filings' timers (referral answer deadlines, incomplete
//! partial filings, automatic invalidation) when they come due.
//!
//! Timers live in the index (`timers`, derived from the records that set them), so they survive
//! a restart: after a crash the index catches up with the log and the scheduler finds every
//! timer still due. A timer fires through the writer like any change: its decision writes a
//! record only if the timer still applies and has not fired (the filing's history says), and
//! that record takes the timer out of the index. So a timer fires once, even when the gateway
//! dies between the record and the index, or between the deadline and the notification.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{Change, Changed, Store};

/// Timers fired per pass (the rest wait for the next one, a moment later).
const PASS: usize = 256;
/// The longest the scheduler sleeps without looking (a clock change, a missed wake-up).
const IDLE: Duration = Duration::from_secs(1);

/// Runs the scheduler until `shutdown`.
pub async fn run(store: Store, shutdown: CancellationToken) {
    loop {
        let next = match fire_due(&store).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "timers could not fire; trying again");
                Some(SystemTime::now() + IDLE)
            }
        };
        let wait = next
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .unwrap_or(if next.is_some() { Duration::ZERO } else { IDLE })
            .min(IDLE);
        if wait.is_zero() {
            continue;
        }
        // At most IDLE, so a timer a new record sets is fired within a second of its time;
        // nothing here runs per commit.
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Fires every timer due now (a pass at a time); returns when the next one is due.
async fn fire_due(store: &Store) -> Result<Option<SystemTime>, super::StoreError> {
    loop {
        let now = SystemTime::now();
        let (due, next) = store.due_timers(now, PASS)?;
        if due.is_empty() {
            return Ok(next);
        }
        let full = due.len() == PASS;
        // Concurrently, so that a pass shares one commit.
        let mut firing = tokio::task::JoinSet::new();
        for (mrn, timer) in due {
            let store = store.clone();
            firing.spawn(async move {
                let kind = timer.kind().as_str_name();
                let fired = store
                    .change(mrn.clone(), Change::Fire(timer.clone()), String::new())
                    .await;
                match fired {
                    Ok(Changed::Applied(_)) => {
                        tracing::info!(%mrn, timer = kind, "timer fired");
                        Ok(())
                    }
                    // No longer applies: forgotten, so it is not looked at again.
                    Ok(_) => store.drop_timer(&mrn, &timer),
                    Err(e) => Err(e),
                }
            });
        }
        while let Some(joined) = firing.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                // A bug; waiting before the next pass keeps it from spinning.
                Err(e) => {
                    return Err(super::StoreError::Inconsistent(format!(
                        "a timer task failed: {e}"
                    )));
                }
            }
        }
        if !full {
            return Ok(store.due_timers(SystemTime::now(), 0)?.1);
        }
    }
}
