//! A per-client-IP budget on the public auth endpoints (register, login,
//! refresh), using governor's GCRA limiter.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Beyond this many tracked addresses, idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;

/// One budget of `n` requests per minute per client IP, shared by all workers.
#[derive(Clone)]
pub struct AuthRateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl AuthRateLimit {
    /// A limit of `n` requests per minute (bursts of up to `n`); `None` when `n` is 0.
    #[must_use]
    pub fn per_minute(n: u32) -> Option<Self> {
        NonZeroU32::new(n).map(|n| Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(n))),
            clock: DefaultClock::default(),
        })
    }

    /// Takes one request from `ip`'s budget, or says how long to wait.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// A budget of password-hash work per caller (an account, or an address
/// for anonymous calls), so that no single caller can keep the hashing
/// workers busy for everyone else.
#[derive(Clone)]
pub struct HashBudget {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl HashBudget {
    /// `n` hashing requests per minute per caller (bursts of up to `n`);
    /// `None` when `n` is 0.
    #[must_use]
    pub fn per_minute(n: u32) -> Option<Self> {
        NonZeroU32::new(n).map(|n| Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(n))),
            clock: DefaultClock::default(),
        })
    }

    /// Takes one hashing request from `caller`'s budget, or says how long to wait.
    pub(crate) fn check(&self, caller: String) -> Result<(), Duration> {
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&caller)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

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
