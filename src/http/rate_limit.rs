//! Rate limiting per key pair, as Bento documents it: by default 100 requests
//! a minute on `/fetch/*` and `/batch/*`, and 60 an hour on `/stats/*`, each
//! family with its own allowance. A GCRA limiter (governor) allows the full
//! allowance as a burst and then refills it evenly; over the limit the answer
//! is `429 {"error":"Too Many Requests"}` with `Retry-After` in whole seconds.
//! A limit of 0 turns that family's limiting off.
//!
//! Every answer of a limited family to an authenticated key pair (2xx, 4xx
//! and the 429 alike) says what is left of the allowance ([`Allowance`]), in
//! the three headers most clients and gateways read today:
//! `RateLimit-Limit` (the allowance), `RateLimit-Remaining` (requests that
//! would be let in now) and `RateLimit-Reset` (seconds). They are the fields
//! of the IETF httpapi draft up to its -06 revision, as Klaviyo, GitLab,
//! Kong, Envoy and express-rate-limit's `draft-6` send them, and what client
//! code reads: ky and the Rust `rate-limits` crate, among others, fall back
//! to `RateLimit-Reset` for how long to wait. The draft's later
//! `RateLimit-Policy`/`RateLimit` structured fields have, as yet, next to no
//! readers, and a client meets both names nowhere else. The reset follows
//! the draft's rule that it and `Retry-After` name the same moment: on the
//! 429 it is `Retry-After` (when the next request is let in); on an answer
//! let in, it is when the allowance is whole again (at most that: the
//! limiter tells what is left to the request, so this rounds up by less
//! than one request's refill). A client that spends `Remaining` requests
//! over `Reset` seconds is never refused. A family whose limit is 0 sends
//! none of them, nor do routes outside the families (`/healthz`, the
//! console, the OpenAPI document) or a request refused before its key pair
//! is known (401, 413).
//!
//! Failed authentications are limited per client address
//! ([`FailedAuthentications`]): an address that keeps failing is refused
//! with the same 429, whatever credentials it sends, until its failures have
//! aged.

use super::ApiError;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The allowance of the request's family.
pub const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// Requests that would be let in now.
pub const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// Seconds until the allowance is whole again, or, on a 429, until the next
/// request is let in (the same as `Retry-After`).
pub const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// One limiter shared by every request, keyed by key pair.
pub struct KeyLimiter {
    limiter: DefaultKeyedRateLimiter<i64, StateInformationMiddleware>,
    /// The allowance: requests let in at once.
    limit: u32,
    /// How long the limiter takes to give one request back.
    refill: Duration,
}

/// What a key pair has of its family's allowance, as an answer tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub limit: u32,
    pub remaining: u32,
    /// Whole seconds, rounded up.
    pub reset_secs: u64,
}

impl Allowance {
    /// Puts the three `RateLimit-*` headers on an answer.
    pub fn stamp(&self, headers: &mut HeaderMap) {
        headers.insert(LIMIT, HeaderValue::from(self.limit));
        headers.insert(REMAINING, HeaderValue::from(self.remaining));
        headers.insert(RESET, HeaderValue::from(self.reset_secs));
    }
}

/// `response` with the allowance's headers, when its family is limited.
pub fn stamped(allowance: Option<Allowance>, mut response: Response) -> Response {
    if let Some(allowance) = allowance {
        allowance.stamp(response.headers_mut());
    }
    response
}

/// A request refused because its key pair used its allowance up.
#[derive(Debug)]
pub struct Refused(Allowance);

impl IntoResponse for Refused {
    /// The 429, `Retry-After` and `RateLimit-Reset` naming the same second.
    fn into_response(self) -> Response {
        let Refused(allowance) = self;
        let mut response = ApiError::RateLimited {
            retry_after_secs: allowance.reset_secs,
        }
        .into_response();
        allowance.stamp(response.headers_mut());
        response
    }
}

/// A duration in whole seconds, rounded up.
fn ceil_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
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
            limiter: RateLimiter::keyed(quota).with_middleware(),
            limit: quota.burst_size().get(),
            refill: quota.replenish_interval(),
        }
    }

    /// Counts a request of key `key_id`: what is left of its allowance, or,
    /// when it is used up, [`Refused`] with the seconds to wait (at least 1).
    fn check(&self, key_id: i64) -> Result<Allowance, Refused> {
        match self.limiter.check_key(&key_id) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity().min(self.limit);
                let spent = self.limit - remaining;
                Ok(Allowance {
                    limit: self.limit,
                    remaining,
                    reset_secs: ceil_secs(self.refill * spent),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Err(Refused(Allowance {
                    limit: self.limit,
                    remaining: 0,
                    reset_secs: ceil_secs(wait).max(1),
                }))
            }
        }
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

    /// Counts a request to `path` (below `/api/v1`) against the allowance
    /// of the key pair `key_id` for that route family: what is left of it
    /// (`None` when the family is not limited), or the refusal.
    pub fn admit(&self, path: &str, key_id: i64) -> Result<Option<Allowance>, Refused> {
        let limiter = if path.starts_with("/stats/") {
            &self.stats
        } else {
            &self.requests
        };
        limiter
            .as_ref()
            .map(|limiter| limiter.check(key_id))
            .transpose()
    }
}

/// Addresses remembered at once; past it, those whose failures have aged
/// are forgotten, and then any one, so that a flood of addresses cannot
/// grow the table without bound.
const MAX_ADDRESSES: usize = 65_536;

/// The failed authentications of each client address, limited as a burst of
/// `per_minute` refilled evenly (a GCRA over the server's clock): each
/// failure adds a minute's `1/per_minute` to what the address owes, and an
/// address owing more than a minute less one failure is refused, before its
/// credentials are looked at, until enough has aged for one more try.
///
/// A refused address is refused whatever it sends, the right credentials
/// too: otherwise the 429 would only tell a guess was wrong, and guessing
/// would go on at full speed. Authentications that succeed cost nothing and
/// forgive nothing.
pub struct FailedAuthentications {
    /// A minute, in milliseconds: the most an address may owe.
    window_ms: i64,
    /// What one failure adds.
    cost_ms: i64,
    clock: Arc<dyn crate::clock::Clock>,
    /// When each address owes nothing any more (Unix milliseconds).
    owed_until: Mutex<HashMap<ClientAddress, i64>>,
}

/// Where failures are counted: an IPv4 address, or an IPv6 address's /64
/// (one host is usually given a whole /64); an IPv4 address written as IPv6
/// is that IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl From<IpAddr> for ClientAddress {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

impl FailedAuthentications {
    /// `None` when `per_minute` is 0: no limit.
    pub fn per_minute(per_minute: u32, clock: Arc<dyn crate::clock::Clock>) -> Option<Self> {
        let per_minute = NonZeroU32::new(per_minute)?;
        let window_ms = 60_000;
        Some(Self {
            window_ms,
            cost_ms: (window_ms / i64::from(per_minute.get())).max(1),
            clock,
            owed_until: Mutex::new(HashMap::new()),
        })
    }

    /// Refuses `client` (429, with `Retry-After`) while it owes too much to
    /// try again.
    pub fn admit(&self, client: ClientAddress) -> Result<(), ApiError> {
        let now = self.clock.now_ms();
        let mut owed_until = self.owed_until.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = owed_until.get_mut(&client) else {
            return Ok(());
        };
        // A clock set back owes no more than a full window.
        *until = (*until).min(now + self.window_ms);
        let owed = *until - now;
        let allowed = self.window_ms - self.cost_ms;
        if owed > allowed {
            let wait_ms = owed - allowed;
            return Err(ApiError::RateLimited {
                retry_after_secs: (wait_ms as u64).div_ceil(1000).max(1),
            });
        }
        if owed <= 0 {
            owed_until.remove(&client);
        }
        Ok(())
    }

    /// Counts a failed authentication from `client`; whether the address is
    /// refused from now on.
    pub fn failed(&self, client: ClientAddress) -> bool {
        let now = self.clock.now_ms();
        let mut owed_until = self.owed_until.lock().unwrap_or_else(|e| e.into_inner());
        if owed_until.len() >= MAX_ADDRESSES && !owed_until.contains_key(&client) {
            owed_until.retain(|_, until| *until > now);
            if owed_until.len() >= MAX_ADDRESSES
                && let Some(any) = owed_until.keys().next().copied()
            {
                owed_until.remove(&any);
            }
        }
        let until = owed_until.entry(client).or_insert(now);
        *until = ((*until).max(now) + self.cost_ms).min(now + self.window_ms);
        *until - now > self.window_ms - self.cost_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn failures(per_minute: u32) -> (FailedAuthentications, Arc<ManualClock>) {
        let clock = ManualClock::new(1_000_000);
        let limiter = FailedAuthentications::per_minute(per_minute, clock.clone()).unwrap();
        (limiter, clock)
    }

    fn client(text: &str) -> ClientAddress {
        text.parse::<IpAddr>().unwrap().into()
    }

    #[test]
    fn an_address_is_refused_after_its_allowance_of_failures_until_one_has_aged() {
        let (limiter, clock) = failures(3);
        let (me, other) = (client("192.0.2.1"), client("192.0.2.2"));
        assert!(limiter.admit(me).is_ok());
        assert!(!limiter.failed(me));
        assert!(!limiter.failed(me));
        assert!(limiter.admit(me).is_ok());
        assert!(
            limiter.failed(me),
            "the third failure uses the allowance up"
        );
        match limiter.admit(me) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 20),
            other => panic!("expected a 429, got {other:?}"),
        }
        assert!(limiter.admit(other).is_ok());
        clock.advance_ms(19_999);
        assert!(limiter.admit(me).is_err());
        clock.advance_ms(1);
        assert!(limiter.admit(me).is_ok(), "one failure has aged");
        assert!(limiter.failed(me));
        assert!(limiter.admit(me).is_err(), "and only one");
        clock.advance_ms(60_000);
        for _ in 0..2 {
            assert!(!limiter.failed(me));
        }
    }

    #[test]
    fn a_clock_set_back_does_not_refuse_for_longer_than_a_window() {
        let (limiter, clock) = failures(1);
        let me = client("192.0.2.1");
        assert!(limiter.failed(me));
        clock.set_ms(0);
        match limiter.admit(me) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 60),
            other => panic!("expected a 429, got {other:?}"),
        }
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(client("2001:db8:1:2::1"), client("2001:db8:1:2:ffff::9"));
        assert_ne!(client("2001:db8:1:2::1"), client("2001:db8:1:3::1"));
        assert_eq!(client("::ffff:192.0.2.1"), client("192.0.2.1"));
        assert_eq!(client("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn the_table_of_addresses_is_bounded() {
        let (limiter, _) = failures(1);
        for n in 0..(MAX_ADDRESSES as u32 + 10) {
            limiter.failed(ClientAddress(IpAddr::V4(n.into())));
        }
        assert_eq!(limiter.owed_until.lock().unwrap().len(), MAX_ADDRESSES);
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(KeyLimiter::per_minute(0).is_none());
        let limits = RateLimits::new(0, 0);
        assert_eq!(limits.admit("/fetch/segments", 1).unwrap(), None);
        assert_eq!(limits.admit("/stats/site", 1).unwrap(), None);
    }

    #[test]
    fn each_key_has_its_own_allowance() {
        let limiter = KeyLimiter::per_minute(2).unwrap();
        assert!(limiter.check(1).is_ok());
        assert!(limiter.check(1).is_ok());
        let Refused(refused) = limiter.check(1).unwrap_err();
        assert!((1..=30).contains(&refused.reset_secs), "{refused:?}");
        assert!(limiter.check(2).is_ok());
    }

    #[test]
    fn what_is_left_goes_down_and_the_reset_is_when_it_is_whole_again() {
        // 4 an hour: one request back every 15 minutes, far longer than
        // this test takes.
        let limiter = KeyLimiter::with(Quota::per_hour(NonZeroU32::new(4).unwrap()));
        for (remaining, reset_secs) in [(3, 900), (2, 1800), (1, 2700), (0, 3600)] {
            let allowance = limiter.check(7).unwrap();
            assert_eq!(
                allowance,
                Allowance {
                    limit: 4,
                    remaining,
                    reset_secs
                }
            );
        }
        let Refused(refused) = limiter.check(7).unwrap_err();
        assert_eq!((refused.limit, refused.remaining), (4, 0));
        assert!((899..=900).contains(&refused.reset_secs), "{refused:?}");
    }

    #[test]
    fn the_429_says_the_same_second_in_retry_after_and_ratelimit_reset() {
        let response = Refused(Allowance {
            limit: 5,
            remaining: 0,
            reset_secs: 12,
        })
        .into_response();
        assert_eq!(response.status(), 429);
        let headers = response.headers();
        assert_eq!(headers["retry-after"], "12");
        assert_eq!(headers["ratelimit-reset"], "12");
        assert_eq!(headers["ratelimit-limit"], "5");
        assert_eq!(headers["ratelimit-remaining"], "0");
    }
}
