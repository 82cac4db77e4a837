//! A token bucket per API key, for event ingress.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets of `burst` tokens refilled at `per_second`, one per key.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter of `per_second` sustained and `burst` at once.
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second: per_second.max(0.001), burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes `cost` tokens for `key`; `Err(wait)` when there are not enough.
    pub fn take(&self, key: &str, cost: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= cost {
            *tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - *tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_per_key() {
        let limiter = RateLimiter::new(1.0, 3.0);
        assert!(limiter.take("a", 2.0).is_ok());
        assert!(limiter.take("a", 1.0).is_ok());
        let wait = limiter.take("a", 1.0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.take("b", 3.0).is_ok(), "keys have buckets of their own");
    }
}
