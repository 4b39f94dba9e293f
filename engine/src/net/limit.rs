//! Rate limits: one token bucket per direction per endpoint, shared by all
//! its connections.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket of `rate` bytes per second holding at most a burst of
/// a tenth of a second at that rate (at least 64 KiB, so a capped node
/// still sends full pieces without stalling between them). A rate of 0 is
/// no limit; the rate can change while it runs (a reloaded config).
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: AtomicU64,
    state: Mutex<(f64, Instant)>,
}

fn burst(rate: f64) -> f64 {
    (rate / 10.0).max(64.0 * 1024.0)
}

impl Bucket {
    /// A bucket for `rate` bytes per second; `None` (or 0) is no limit.
    pub(crate) fn new(rate: Option<u64>) -> Self {
        let rate = rate.unwrap_or(0);
        Self {
            rate: AtomicU64::new(rate),
            state: Mutex::new((burst(rate as f64), Instant::now())),
        }
    }

    /// Bytes per second; `None` for no limit.
    pub(crate) fn rate(&self) -> Option<u64> {
        Some(self.rate.load(Ordering::Relaxed)).filter(|&r| r > 0)
    }

    /// Change the rate from now on; what was owed is forgiven.
    pub(crate) fn set_rate(&self, rate: Option<u64>) {
        let rate = rate.unwrap_or(0);
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *g = (burst(rate as f64), Instant::now());
        self.rate.store(rate, Ordering::Relaxed);
    }

    /// Take `n` bytes' worth of tokens, waiting until they are there. The
    /// debt may go below zero for a single large `n`; later takers wait it
    /// off, so the long-run rate holds.
    pub(crate) async fn take(&self, n: u64) {
        let Some(rate) = self.rate() else {
            return;
        };
        let rate = rate as f64;
        let wait = {
            let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let (tokens, last) = &mut *g;
            let now = Instant::now();
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst(rate));
            *last = now;
            *tokens -= n as f64;
            if *tokens >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-*tokens / rate)
        };
        tokio::time::sleep(wait).await;
    }
}

/// Take `n` bytes' worth from `bucket` (at once when it has no limit).
pub(crate) async fn take(bucket: &Bucket, n: u64) {
    bucket.take(n).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate_over_time() {
        let b = Bucket::new(Some(1 << 20));
        let start = Instant::now();
        // 10 MiB through a 1 MiB/s bucket with a 102 KiB burst: ~9.9 s.
        for _ in 0..160 {
            b.take(64 << 10).await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!((9.8..10.1).contains(&took), "took {took} s");
    }

    #[test]
    fn zero_or_none_is_unlimited() {
        assert_eq!(Bucket::new(None).rate(), None);
        assert_eq!(Bucket::new(Some(0)).rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_rate_holds_from_when_it_is_set() {
        let b = Bucket::new(None);
        let start = Instant::now();
        b.take(100 << 20).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "no limit: no wait");
        b.set_rate(Some(1 << 20));
        let start = Instant::now();
        for _ in 0..160 {
            b.take(64 << 10).await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!((9.8..10.1).contains(&took), "took {took} s");
        // Lifted again: what was owed is forgiven.
        b.take(10 << 20).await;
        b.set_rate(None);
        let start = Instant::now();
        b.take(10 << 20).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
