//! Filings on their way to the writer, so group commit can wait for them (and only them).
//!
//! A carrier's filing is counted from the moment its handler starts until it goes into the
//! writer's queue or is answered without it (refused, cancelled). After taking what is queued,
//! the writer waits while any are still on their way — briefly, at most [`GATHER_LIMIT`] — so a
//! burst of filings shares one fdatasync instead of paying one each. It never waits for filings
//! that are not yet inside the gateway: one carrier filing one at a time is synced at once.
//!
//! Like PostgreSQL's `commit_delay`, which delays only when `commit_siblings` other transactions
//! are active; here the siblings are counted exactly, and the wait ends as soon as they arrive.
//!
//! The waiting writer is woken only when the wait should end: the last filing on its way is
//! handed over or drops out, or enough are handed over to fill the batch. Not at every filing:
//! on a busy core a woken writer preempts the handlers, takes one filing, and parks again, two
//! context switches per filing where one pair per batch will do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// The longest a batch waits for filings still on their way.
pub const GATHER_LIMIT: Duration = Duration::from_millis(2);

/// How many filings are on their way to the writer.
#[derive(Debug)]
pub struct Arrivals {
    on_the_way: AtomicUsize,
    /// Filings handed over to the writer's queue so far: a running count.
    handed_over: AtomicUsize,
    /// While the writer waits: the `handed_over` count at which its batch is full. `usize::MAX`
    /// otherwise.
    full_at: AtomicUsize,
    /// The writer's thread, woken when its wait should end.
    writer: OnceLock<Thread>,
}

impl Default for Arrivals {
    fn default() -> Arrivals {
        Arrivals {
            on_the_way: AtomicUsize::new(0),
            handed_over: AtomicUsize::new(0),
            full_at: AtomicUsize::new(usize::MAX),
            writer: OnceLock::new(),
        }
    }
}

/// One filing on its way, until it is handed over or dropped (refused, cancelled).
#[derive(Debug)]
#[must_use = "an arrival counts until it is handed over or dropped"]
pub struct Arrival {
    arrivals: Arc<Arrivals>,
    /// Once the filing no longer counts as on its way (it is going into the queue): whether it
    /// was the last one.
    left: Option<bool>,
    handed_over: bool,
}

impl Arrivals {
    /// Counts a filing as on its way until the guard is handed over or dropped.
    pub fn arrival(self: &Arc<Self>) -> Arrival {
        self.on_the_way.fetch_add(1, Ordering::AcqRel);
        Arrival {
            arrivals: Arc::clone(self),
            left: None,
            handed_over: false,
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
    /// way, waits for them and takes them too, until none is on its way, enough were handed over
    /// to fill the batch to `max_batch`, or `limit` has passed. Other commands (lifecycle
    /// changes, closing) wake nobody: they join when the wait ends.
    pub(super) fn gather<T>(
        &self,
        commands: &mut mpsc::Receiver<T>,
        batch: &mut Vec<T>,
        max_batch: usize,
        limit: Duration,
    ) {
        // Set at the first wait: most turns under light load never wait.
        let mut deadline: Option<Instant> = None;
        loop {
            // Read before taking: a filing handed over after this is either taken now or
            // counted towards the batch being full, so the writer may wake early, never late.
            let handed_before = self.handed_over.load(Ordering::SeqCst);
            while batch.len() < max_batch {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            if batch.len() >= max_batch || self.on_the_way() == 0 {
                break;
            }
            // Hand-overs beyond the queue's capacity would block their senders, not fill the
            // batch: wake for what the queue can hold.
            let room = (max_batch - batch.len()).min(commands.max_capacity());
            self.full_at.store(handed_before + room, Ordering::SeqCst);
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + limit);
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // Woken when the last filing on its way is handed over or drops out, when the batch
            // is full, or at the deadline (and perhaps spuriously: the loop looks again). An
            // unpark between the checks above and this park is not lost: it lets the park
            // return at once.
            std::thread::park_timeout(deadline - now);
        }
        self.full_at.store(usize::MAX, Ordering::SeqCst);
    }
}

impl Arrival {
    /// Puts the filing into the writer's queue with `into_queue`. It stops counting as on its
    /// way just before, so that a writer woken by its entry goes straight on instead of waiting
    /// for it (on one core it would wake, find it still on its way, park, and be woken again: a
    /// futex round and two context switches on every lone filing). A writer already waiting is
    /// woken once the filing is in the queue. The price: a writer looking in the moment between
    /// syncs without it, and it joins the next batch.
    pub async fn hand_over<T>(mut self, into_queue: impl Future<Output = T>) -> T {
        self.left = Some(self.arrivals.on_the_way.fetch_sub(1, Ordering::SeqCst) == 1);
        let queued = into_queue.await;
        self.handed_over = true;
        queued
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        let arrivals = &self.arrivals;
        let batch_full = self.handed_over
            && arrivals.handed_over.fetch_add(1, Ordering::SeqCst) + 1
                >= arrivals.full_at.load(Ordering::SeqCst);
        let last = match self.left {
            Some(last) => last,
            None => arrivals.on_the_way.fetch_sub(1, Ordering::SeqCst) == 1,
        };
        if (last || batch_full)
            && let Some(writer) = arrivals.writer.get()
        {
            // Cheap unless the writer is parked in `gather`, where this ends its wait.
            writer.unpark();
        }
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

    /// Hands `arrival` over as the store does: into the writer's queue with `sender`.
    fn hand_over(arrival: Arrival, sender: &mpsc::Sender<u32>, command: u32) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(arrival.hand_over(sender.send(command)))
            .expect("the receiver is open");
    }

    #[test]
    fn a_filing_stops_counting_as_on_its_way_before_it_is_in_the_queue() {
        let arrivals = Arc::new(Arrivals::default());
        let arrival = arrivals.arrival();
        let seen_from_the_queue = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(arrival.hand_over(async { arrivals.on_the_way() }));
        assert_eq!(
            seen_from_the_queue, 0,
            "a writer woken by its entry waits for nothing"
        );
        assert_eq!(arrivals.handed_over.load(Ordering::SeqCst), 1);
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
            hand_over(arrival, &sender, 2);
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
    fn filings_that_fill_the_batch_end_the_wait_while_others_are_on_their_way() {
        let arrivals = Arc::new(Arrivals::default());
        arrivals.set_writer();
        let (sender, mut commands) = mpsc::channel::<u32>(8);
        let _stuck = arrivals.arrival();
        let coming: Vec<Arrival> = (0..2).map(|_| arrivals.arrival()).collect();
        let sending = std::thread::spawn(move || {
            for (command, arrival) in (2..).zip(coming) {
                std::thread::sleep(Duration::from_micros(200));
                hand_over(arrival, &sender, command);
            }
        });
        let mut batch = vec![1];
        let started = Instant::now();
        arrivals.gather(&mut commands, &mut batch, 3, FOREVER);
        sending.join().expect("sender");
        assert!(ended_early(started));
        assert_eq!(batch, vec![1, 2, 3]);
        assert_eq!(arrivals.on_the_way(), 1);
    }

    #[test]
    fn a_command_that_is_no_filing_on_its_way_joins_when_the_wait_ends() {
        let arrivals = Arc::new(Arrivals::default());
        arrivals.set_writer();
        let (sender, mut commands) = mpsc::channel::<u32>(4);
        let _stuck = arrivals.arrival();
        let sending = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(200));
            sender.blocking_send(2).expect("the receiver is open");
        });
        let mut batch = vec![1];
        let started = Instant::now();
        let limit = Duration::from_millis(20);
        arrivals.gather(&mut commands, &mut batch, 10, limit);
        sending.join().expect("sender");
        assert!(
            started.elapsed() >= limit,
            "the wait lasted until the limit"
        );
        assert_eq!(batch, vec![1, 2]);
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
