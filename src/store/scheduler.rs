//! The timer scheduler: fires the filings' timers (referral answer deadlines, incomplete
//! partial filings, automatic invalidation) when they come due.
//!
//! Timers live in the index (`timers`, derived from the records that set them), so they survive
//! a restart: after a crash the index catches up with the log and the scheduler finds every
//! timer still due. All but one kind: every filing has an automatic invalidation, due a fixed
//! time after it was received, so those come due in the order of the log, and the scheduler
//! reads them from it (`Sweep`, its place kept in the index) instead of keeping millions of them
//! in the index.
//!
//! A timer fires through the writer like any change: its decision writes a record only if the
//! timer still applies and has not fired (the filing's history says), and that record takes the
//! timer out of the index. So a timer fires once, even when the gateway
//! dies between the record and the index, or between the deadline and the notification.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::record::RecordHead;
use super::{Change, Changed, LogCursor, Store, StoreError};
use crate::ids::{Mrn, Seq};
use crate::pb::store::{RecordKind, Timer};

/// Timers fired per pass (the rest wait for the next one, a moment later).
const PASS: usize = 256;
/// The longest the scheduler sleeps without looking (a clock change, a missed wake-up).
const IDLE: Duration = Duration::from_secs(1);
/// Records the sweep reads from the log at a time.
const READ: usize = 256;

/// Runs the scheduler until `shutdown`.
pub async fn run(store: Store, shutdown: CancellationToken) {
    let mut sweep = None;
    loop {
        if sweep.is_none() && store.invalidates_automatically() {
            match Sweep::open(&store) {
                Ok(opened) => sweep = Some(opened),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the log for automatic invalidations; trying again")
                }
            }
        }
        let next = match fire_due(&store, &mut sweep).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "timers could not fire; trying again");
                // Read again from where the last complete pass left the log.
                sweep = None;
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
async fn fire_due(
    store: &Store,
    sweep: &mut Option<Sweep>,
) -> Result<Option<SystemTime>, StoreError> {
    loop {
        let now = SystemTime::now();
        let (mut due, _) = store.due_timers(now, PASS)?;
        let (swept, next_swept) = match sweep.take() {
            // Off the async workers: reading the log blocks (at the first read, it skips to
            // the sweep's place in its segment).
            Some(mut reading) => {
                let (store, limit) = (store.clone(), PASS - due.len());
                let (reading, found) = tokio::task::spawn_blocking(move || {
                    let found = reading.due(&store, now, limit);
                    (reading, found)
                })
                .await
                .map_err(|e| StoreError::Inconsistent(format!("the sweep failed: {e}")))?;
                *sweep = Some(reading);
                found?
            }
            None => (Swept::default(), None),
        };
        due.extend(swept.due);
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
                    return Err(StoreError::Inconsistent(format!(
                        "a timer task failed: {e}"
                    )));
                }
            }
        }
        // Only once every one of them fired (or no longer applied).
        if let Some(through) = swept.through {
            store.set_swept(through)?;
        }
        if !full {
            let next = store.due_timers(SystemTime::now(), 0)?.1;
            return Ok(earliest(next, next_swept));
        }
    }
}

fn earliest(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The automatic invalidations, read from the log in its order: a reader from where the last
/// complete pass ended, and what it read that is not due yet (at its front, the next filing).
/// A clock set back while filings came in delays the ones behind by as much.
struct Sweep {
    reader: Box<dyn LogCursor>,
    /// Records read and not passed yet: sequence, and the filing's invalidation if it has one.
    read: VecDeque<(u64, Option<(Mrn, Timer)>)>,
}

/// What one look at the log found due.
#[derive(Default)]
struct Swept {
    due: Vec<(Mrn, Timer)>,
    /// The log is done with up to here once those fired.
    through: Option<u64>,
}

impl Sweep {
    /// A sweep from where the last one recorded it ended.
    fn open(store: &Store) -> Result<Sweep, StoreError> {
        Ok(Sweep {
            reader: store.reader(Seq(store.swept()? + 1)),
            read: VecDeque::new(),
        })
    }

    /// The invalidations due by `now`, at most `limit`, and when the next is due. Only what the
    /// index has is read: a timer's decision needs its filing's entry.
    fn due(
        &mut self,
        store: &Store,
        now: SystemTime,
        limit: usize,
    ) -> Result<(Swept, Option<SystemTime>), StoreError> {
        let indexed = *store.durable().borrow();
        let mut swept = Swept::default();
        loop {
            let Some((sequence, invalidation)) = self.read.pop_front() else {
                let records = self.reader.read_heads(indexed, READ)?;
                if records.is_empty() {
                    return Ok((swept, None));
                }
                self.read
                    .extend(records.iter().map(|r| (r.sequence, invalidation_of(r))));
                continue;
            };
            if let Some((mrn, timer)) = &invalidation {
                let at = timer
                    .due
                    .and_then(|t| SystemTime::try_from(t).ok())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                if at > now || swept.due.len() >= limit {
                    // Not yet: it stays first, for the next look.
                    self.read.push_front((sequence, invalidation));
                    return Ok((swept, Some(at)));
                }
                swept.due.push((mrn.clone(), timer.clone()));
            }
            swept.through = Some(sequence);
        }
    }
}

/// A filing record's automatic invalidation, if it has one.
fn invalidation_of(record: &RecordHead) -> Option<(Mrn, Timer)> {
    if record.kind() != RecordKind::Filing {
        return None;
    }
    let timer = record
        .timers
        .iter()
        .find(|t| super::index::is_read_from_the_log(t))?;
    Some((Mrn::parse(&record.mrn).ok()?, timer.clone()))
}
