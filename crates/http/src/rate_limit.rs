//! Per-key request budgets, using governor's GCRA limiter: per client IP on
//! the public auth endpoints, per account on the endpoints that hash a
//! password behind authentication.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Beyond this many tracked keys, idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;

/// A budget of `n` requests per minute per key (bursts of up to `n`),
/// shared by all workers of this process.
#[derive(Clone)]
pub struct KeyedBudget<K: Clone + Eq + std::hash::Hash> {
    limiter: Arc<DefaultKeyedRateLimiter<K>>,
    clock: DefaultClock,
}

impl<K: Clone + Eq + std::hash::Hash> KeyedBudget<K> {
    /// `n` requests per minute per key; `None` when `n` is 0.
    #[must_use]
    pub fn per_minute(n: u32) -> Option<Self> {
        NonZeroU32::new(n).map(|n| Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(n))),
            clock: DefaultClock::default(),
        })
    }

    /// Takes one request from `key`'s budget, or says how long to wait.
    pub(crate) fn check(&self, key: K) -> Result<(), Duration> {
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Per client IP, on the public auth endpoints (register, login, refresh).
pub type AuthRateLimit = KeyedBudget<IpAddr>;

/// Password-hash work per caller (an account), so that no single caller
/// can keep the hashing workers busy for everyone else.
pub type HashBudget = KeyedBudget<String>;

/// The client's address: the TCP peer, or, when the server sits behind a
/// trusted proxy, the last address that proxy appended to `X-Forwarded-For`
/// (earlier entries are whatever the client claimed, so they are ignored).
pub(crate) fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    let forwarded = trust_forwarded_for
        .then(|| {
            req.headers()
                .get("x-forwarded-for")?
                .to_str()
                .ok()?
                .rsplit(',')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .flatten();
    forwarded.or_else(|| req.peer_addr().map(|addr| addr.ip()))
}
