//! Rate limiting per key pair, as Bento documents it: by default 100 requests
//! a minute on `/fetch/*` and `/batch/*`, and 60 an hour on `/stats/*`, each
//! family with its own allowance. A GCRA limiter (governor) allows the full
//! allowance as a burst and then refills it evenly; over the limit the answer
//! is `429 {"error":"Too Many Requests"}` with `Retry-After` in whole seconds.
//! A limit of 0 turns that family's limiting off.

use super::ApiError;
use super::auth::Caller;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;

/// One limiter shared by every request, keyed by key pair.
pub struct KeyLimiter {
    limiter: DefaultKeyedRateLimiter<i64>,
}

impl KeyLimiter {
    /// `None` when `per_minute` is 0: no limit.
    pub fn per_minute(per_minute: u32) -> Option<Self> {
        Some(Self::with(Quota::per_minute(NonZeroU32::new(per_minute)?)))
    }

    /// `None` when `per_hour` is 0: no limit.
    pub fn per_hour(per_hour: u32) -> Option<Self> {
        Some(Self::with(Quota::per_hour(NonZeroU32::new(per_hour)?)))
    }

    fn with(quota: Quota) -> Self {
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    /// `Err(seconds to wait)` when key `key_id` is over its limit.
    fn check(&self, key_id: i64) -> Result<(), u64> {
        self.limiter.check_key(&key_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// The allowances of every route family.
pub struct RateLimits {
    requests: Option<KeyLimiter>,
    stats: Option<KeyLimiter>,
}

impl RateLimits {
    pub fn new(requests_per_minute: u32, stats_per_hour: u32) -> Self {
        Self {
            requests: KeyLimiter::per_minute(requests_per_minute),
            stats: KeyLimiter::per_hour(stats_per_hour),
        }
    }

    /// Counts a request to `path` (below `/api/v1`) against its key pair's
    /// allowance for that route family, or refuses it.
    pub fn admit(&self, path: &str, caller: &Caller) -> Result<(), ApiError> {
        let limiter = if path.starts_with("/stats/") {
            &self.stats
        } else {
            &self.requests
        };
        admit(limiter.as_ref(), caller)
    }
}

/// Counts a request against its key pair's allowance, or refuses it.
fn admit(limiter: Option<&KeyLimiter>, caller: &Caller) -> Result<(), ApiError> {
    match limiter {
        Some(limiter) => limiter
            .check(caller.key_id)
            .map_err(|secs| ApiError::RateLimited {
                retry_after_secs: secs.max(1),
            }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_no_limit() {
        assert!(KeyLimiter::per_minute(0).is_none());
    }

    #[test]
    fn each_key_has_its_own_allowance() {
        let limiter = KeyLimiter::per_minute(2).unwrap();
        assert!(limiter.check(1).is_ok());
        assert!(limiter.check(1).is_ok());
        let wait = limiter.check(1).unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(limiter.check(2).is_ok());
    }
}
