//! Rate limits: one token bucket per direction per endpoint, shared by all
//! its connections.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket of `rate` bytes per second holding at most `burst`.
#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A bucket for `rate` bytes per second, `None` if unlimited. The burst
    /// is a tenth of a second at that rate, at least 64 KiB, so a capped
    /// node still sends full pieces without stalling between them.
    pub(crate) fn new(rate: Option<u64>) -> Option<Self> {
        let rate = rate.filter(|&r| r > 0)? as f64;
        let burst = (rate / 10.0).max(64.0 * 1024.0);
        Some(Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        })
    }

    /// Bytes per second.
    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    /// Take `n` bytes' worth of tokens, waiting until they are there. The
    /// debt may go below zero for a single large `n`; later takers wait it
    /// off, so the long-run rate holds.
    pub(crate) async fn take(&self, n: u64) {
        let wait = {
            let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let (tokens, last) = &mut *g;
            let now = Instant::now();
            *tokens =
                (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
            *last = now;
            *tokens -= n as f64;
            if *tokens >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-*tokens / self.rate)
        };
        tokio::time::sleep(wait).await;
    }
}

/// Take from `bucket` if there is one.
pub(crate) async fn take(bucket: &Option<Bucket>, n: u64) {
    if let Some(b) = bucket {
        b.take(n).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate_over_time() {
        let b = Bucket::new(Some(1 << 20)).unwrap();
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
        assert!(Bucket::new(None).is_none());
        assert!(Bucket::new(Some(0)).is_none());
    }
}
