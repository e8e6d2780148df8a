//! The validation pool: a few threads of their own where large filings are validated, off the
//! async workers that serve every call. One carrier's large XML filings then wait their turn in
//! the pool's queue (bounded: a full queue makes the handler wait) while other carriers' status
//! queries, notification feeds and small filings are answered by the async workers as usual.
//! A small filing (under [`LARGE_FILING`]) is validated where it is: its validation costs tens of
//! microseconds, less than the hand-over to another thread (measured: the hop for every filing
//! cost the protobuf and XML paths 5 to 20 % of their throughput on one core).
//!
//! The pool's threads run at a lower scheduling priority ([`POOL_NICE`]): where they and the
//! async workers want the same core, the workers answering everyone else come first, and a
//! flood of large filings takes what CPU is left over (measured in `benches/hostile.rs`).

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::store::LARGE_FILING;

/// How much lower the pool threads' priority is than the async workers' (a nice value, per
/// thread on Linux): at 10, a worker gets about nine tenths of a core both want.
const POOL_NICE: i32 = 10;

/// Work waiting for a thread, at most.
const QUEUE: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

/// Why work sent to the pool came back without a result.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the validation pool has stopped")]
    Stopped,
    #[error("the validation of this filing failed unexpectedly")]
    Panicked,
}

/// A fixed set of threads running validation jobs in arrival order.
#[derive(Clone, Debug)]
pub struct ValidationPool {
    jobs: mpsc::Sender<Job>,
}

impl ValidationPool {
    /// A pool of one thread per core the process may use, less one left to the async workers
    /// (at least one). The threads end when the last handle on the pool is dropped.
    pub fn start() -> std::io::Result<ValidationPool> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = cores.saturating_sub(1).max(1);
        let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("aci-validate-{i}"))
                .spawn(move || {
                    // Best effort: a system that refuses it runs the pool at normal priority.
                    // Linux only: elsewhere a nice value is the whole process's.
                    #[cfg(target_os = "linux")]
                    if let Err(e) = rustix::process::nice(POOL_NICE) {
                        tracing::debug!(error = %e, "the validation pool keeps normal priority");
                    }
                    loop {
                        // One thread waits on the queue at a time; the others wait for it.
                        let job = queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .blocking_recv();
                        match job {
                            Some(job) => job(),
                            None => return,
                        }
                    }
                })?;
        }
        Ok(ValidationPool { jobs })
    }

    /// Validates a filing of `bytes` bytes: at once on the calling task if it is small, else
    /// on a pool thread.
    pub async fn validate<T: Send + 'static>(
        &self,
        bytes: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        if bytes < LARGE_FILING {
            return Ok(work());
        }
        self.run(work).await
    }

    /// Runs `work` on a pool thread and returns its result. Work whose caller went away (a
    /// reset stream, a timed-out call) before a thread took it is not done at all; work that
    /// panics is an error for its caller alone, and the thread goes on.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (answer, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            if answer.is_closed() {
                return;
            }
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
                Ok(done) => {
                    let _ = answer.send(Ok(done));
                }
                Err(_) => {
                    tracing::error!("validation panicked; the filing is refused, the pool goes on");
                    let _ = answer.send(Err(PoolError::Panicked));
                }
            }
        });
        self.jobs.send(job).await.map_err(|_| PoolError::Stopped)?;
        result.await.map_err(|_| PoolError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_a_pool_thread_and_its_result_comes_back() {
        let pool = ValidationPool::start().expect("pool");
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .expect("ran");
        assert!(
            name.as_deref()
                .is_some_and(|n| n.starts_with("aci-validate-")),
            "{name:?}"
        );
    }

    #[tokio::test]
    async fn a_panic_fails_its_own_work_and_the_pool_goes_on() {
        let pool = ValidationPool::start().expect("pool");
        for _ in 0..4 {
            let failed = pool.run(|| -> u32 { panic!("a bug") }).await;
            assert!(matches!(failed, Err(PoolError::Panicked)), "{failed:?}");
        }
        assert_eq!(pool.run(|| 7).await.expect("still working"), 7);
    }
}
