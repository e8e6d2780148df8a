//! Filings on their way to the writer, so group commit can wait for them (and only them).
//!
//! A carrier's filing is counted from the moment its handler starts until it is in the writer's
//! queue or answered without it (refused, cancelled). After taking what is queued, the writer
//! waits while any are still on their way — briefly, at most [`GATHER_LIMIT`] — so a burst of
//! filings shares one fdatasync instead of paying one each. It never waits for filings that are
//! not yet inside the gateway: one carrier filing one at a time is synced at once.
//!
//! Like PostgreSQL's `commit_delay`, which delays only when `commit_siblings` other transactions
//! are active; here the siblings are counted exactly, and the wait ends as soon as they arrive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// The longest a batch waits for filings still on their way.
pub const GATHER_LIMIT: Duration = Duration::from_millis(2);

/// How many filings are on their way to the writer.
#[derive(Debug, Default)]
pub struct Arrivals {
    on_the_way: AtomicUsize,
    /// The writer's thread, woken when a filing drops out without reaching it.
    writer: OnceLock<Thread>,
}

/// One filing on its way, until it is handed over or dropped (refused, cancelled).
#[derive(Debug)]
#[must_use = "an arrival counts until it is handed over or dropped"]
pub struct Arrival {
    arrivals: Arc<Arrivals>,
}

impl Arrivals {
    /// Counts a filing as on its way until the guard is handed over or dropped.
    pub fn arrival(self: &Arc<Self>) -> Arrival {
        self.on_the_way.fetch_add(1, Ordering::AcqRel);
        Arrival {
            arrivals: Arc::clone(self),
        }
    }

    pub fn on_the_way(&self) -> usize {
        self.on_the_way.load(Ordering::Acquire)
    }

    /// Called on the writer's thread before it first waits.
    pub(super) fn set_writer(&self) {
        let _ = self.writer.set(std::thread::current());
    }

    /// Takes into `batch` every command already queued, then, while filings are still on their
    /// way, whatever arrives, until none is on its way, the batch holds `max_batch`, or `limit`
    /// has passed.
    pub(super) fn gather<T>(
        &self,
        commands: &mut mpsc::Receiver<T>,
        batch: &mut Vec<T>,
        max_batch: usize,
        limit: Duration,
    ) {
        // Set up at the first wait: most turns under light load never wait.
        let mut waiting: Option<(Instant, Waker)> = None;
        loop {
            while batch.len() < max_batch {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            if batch.len() >= max_batch || self.on_the_way() == 0 {
                return;
            }
            let (deadline, waker) = waiting.get_or_insert_with(|| {
                let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
                (Instant::now() + limit, waker)
            });
            // Registers the waker, so a command sent from now on unparks this thread.
            match commands.poll_recv(&mut Context::from_waker(waker)) {
                Poll::Ready(Some(command)) => {
                    batch.push(command);
                    continue;
                }
                Poll::Ready(None) => return,
                Poll::Pending => {}
            }
            let now = Instant::now();
            if now >= *deadline {
                return;
            }
            // Woken by a command, a filing handed over or dropping out, or the deadline.
            std::thread::park_timeout(*deadline - now);
        }
    }
}

impl Arrival {
    /// The filing is in the writer's queue (or will never be): stop waiting for it.
    pub fn hand_over(self) {
        drop(self);
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        self.arrivals.on_the_way.fetch_sub(1, Ordering::AcqRel);
        // Cheap unless the writer is parked in `gather`, where this may end its wait.
        if let Some(writer) = self.arrivals.writer.get() {
            writer.unpark();
        }
    }
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough that a test only passes if the wait ended for its reason, not at the limit.
    const FOREVER: Duration = Duration::from_secs(60);

    fn ended_early(started: Instant) -> bool {
        started.elapsed() < FOREVER / 2
    }

    #[test]
    fn nothing_on_the_way_means_no_wait() {
        let arrivals = Arc::new(Arrivals::default());
        let (_sender, mut commands) = mpsc::channel::<u32>(4);
        let mut batch = vec![1];
        let started = Instant::now();
        arrivals.gather(&mut commands, &mut batch, 10, FOREVER);
        assert_eq!(batch, vec![1]);
        assert!(ended_early(started));
    }

    #[test]
    fn a_filing_on_its_way_joins_the_batch() {
        let arrivals = Arc::new(Arrivals::default());
        arrivals.set_writer();
        let (sender, mut commands) = mpsc::channel::<u32>(4);
        let arrival = arrivals.arrival();
        let sending = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(200));
            sender.blocking_send(2).expect("the receiver is open");
            arrival.hand_over();
        });
        let mut batch = vec![1];
        let started = Instant::now();
        arrivals.gather(&mut commands, &mut batch, 10, FOREVER);
        sending.join().expect("sender");
        assert!(ended_early(started));
        assert_eq!(batch, vec![1, 2]);
        assert_eq!(arrivals.on_the_way(), 0);
    }

    #[test]
    fn a_filing_that_drops_out_ends_the_wait() {
        let arrivals = Arc::new(Arrivals::default());
        arrivals.set_writer();
        let (_sender, mut commands) = mpsc::channel::<u32>(4);
        let arrival = arrivals.arrival();
        let refusing = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(200));
            drop(arrival);
        });
        let mut batch = vec![1];
        let started = Instant::now();
        arrivals.gather(&mut commands, &mut batch, 10, FOREVER);
        refusing.join().expect("refusing thread");
        assert!(ended_early(started));
        assert_eq!(batch, vec![1]);
        assert_eq!(arrivals.on_the_way(), 0);
    }

    #[test]
    fn a_filing_that_never_comes_is_waited_for_at_most_the_limit() {
        let arrivals = Arc::new(Arrivals::default());
        arrivals.set_writer();
        let (_sender, mut commands) = mpsc::channel::<u32>(4);
        let _stuck = arrivals.arrival();
        let mut batch = vec![1];
        let started = Instant::now();
        arrivals.gather(&mut commands, &mut batch, 10, Duration::from_millis(20));
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert_eq!(batch, vec![1]);
    }
}
