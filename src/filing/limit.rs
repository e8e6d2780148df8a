//! Per-carrier limits, so that one carrier's flood costs the others nothing: two token buckets
//! per authenticated carrier (writes: filings, amendments, invalidations, arrivals, answers;
//! reads: status and notification feeds, with their own, larger budget) and a bound on the
//! filings one carrier has in flight (being validated or stored) at once. A call beyond them is
//! refused at once with `RESOURCE_EXHAUSTED`, a `retry-after` header (seconds) and a
//! `google.rpc.RetryInfo`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids::Eori;

/// A sustained rate and the burst allowed above it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// One carrier's bucket: tokens left, as of `at`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every carrier seen (one small entry per authenticated identity).
#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<Eori, Bucket>>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `carrier`, or says how long until one is there.
    pub fn admit(&self, carrier: &Eori) -> Result<(), Duration> {
        self.admit_at(carrier, Instant::now())
    }

    fn admit_at(&self, carrier: &Eori, now: Instant) -> Result<(), Duration> {
        // Held for a few arithmetic operations.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(carrier.clone()).or_insert(Bucket {
            tokens: self.rate.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.rate.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(
                Duration::try_from_secs_f64((1.0 - bucket.tokens) / self.rate.per_second)
                    .unwrap_or(Duration::from_secs(3600)),
            )
        }
    }
}

/// What each carrier may do (`[carrier_api]`): `None` turns a limit off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CarrierLimits {
    /// Filings, amendments and other changes.
    pub writes: Option<Rate>,
    /// Status queries and notification feeds.
    pub reads: Option<Rate>,
    /// Filings being validated or stored at once.
    pub in_flight: Option<usize>,
}

impl Default for CarrierLimits {
    /// Generous enough for a carrier's bulk load, low enough that one cannot take the gateway.
    fn default() -> Self {
        CarrierLimits {
            writes: Some(Rate {
                per_second: 5000.0,
                burst: 10_000.0,
            }),
            reads: Some(Rate {
                per_second: 10_000.0,
                burst: 20_000.0,
            }),
            in_flight: Some(256),
        }
    }
}

/// Filings in flight per carrier.
#[derive(Debug, Default)]
pub struct InFlight {
    counts: Mutex<HashMap<Eori, usize>>,
}

/// One filing in flight; counted until dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    owner: std::sync::Arc<InFlight>,
    carrier: Eori,
}

impl InFlight {
    /// Counts one more filing of `carrier`, unless it has `limit` in flight already.
    pub fn enter(
        self: &std::sync::Arc<Self>,
        carrier: &Eori,
        limit: usize,
    ) -> Option<InFlightGuard> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(carrier.clone()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(InFlightGuard {
            owner: std::sync::Arc::clone(self),
            carrier: carrier.clone(),
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut counts = self
            .owner
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.carrier) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.carrier);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_and_each_carrier_alone() {
        let limiter = Limiter::new(Rate {
            per_second: 10.0,
            burst: 5.0,
        });
        let (a, b) = (
            Eori::parse("GB123456789000").expect("eori"),
            Eori::parse("DE987654321").expect("eori"),
        );
        let start = Instant::now();
        for _ in 0..5 {
            assert!(limiter.admit_at(&a, start).is_ok());
        }
        let wait = limiter.admit_at(&a, start).expect_err("the burst is spent");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // Another carrier has its own bucket.
        assert!(limiter.admit_at(&b, start).is_ok());
        // A tenth of a second later, one more.
        let later = start + Duration::from_millis(100);
        assert!(limiter.admit_at(&a, later).is_ok());
        assert!(limiter.admit_at(&a, later).is_err());
        // Idle time refills up to the burst, not beyond.
        let much_later = start + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(limiter.admit_at(&a, much_later).is_ok());
        }
        assert!(limiter.admit_at(&a, much_later).is_err());
    }

    #[test]
    fn filings_in_flight_are_counted_per_carrier_until_their_guards_drop() {
        let in_flight = std::sync::Arc::new(InFlight::default());
        let (a, b) = (
            Eori::parse("GB123456789000").expect("eori"),
            Eori::parse("DE987654321").expect("eori"),
        );
        let first = in_flight.enter(&a, 2).expect("first");
        let _second = in_flight.enter(&a, 2).expect("second");
        assert!(
            in_flight.enter(&a, 2).is_none(),
            "a third is over the limit"
        );
        assert!(
            in_flight.enter(&b, 2).is_some(),
            "another carrier has its own count"
        );
        drop(first);
        assert!(
            in_flight.enter(&a, 2).is_some(),
            "a finished filing frees its place"
        );
    }
}
