//! Per-key request budgets: per client IP on the public auth endpoints, per
//! account on the endpoints that hash a password behind authentication.
//! Kept in this process (governor's GCRA limiter), or in the database so
//! that every instance behind a load balancer spends the same budget.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use userhub_domain::ports::RequestCounter;

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

/// A budget of `n` requests per minute per key, in this process or shared.
#[derive(Clone)]
pub enum Budget<K: Clone + Eq + std::hash::Hash> {
    /// In this process: smooth (GCRA), bursts of up to `n`.
    Local(KeyedBudget<K>),
    /// In the database, for every instance: fixed one-minute windows.
    Shared {
        /// Where the counts are kept.
        counter: Arc<dyn RequestCounter>,
        /// Requests per key per minute.
        per_minute: u32,
        /// Prefix of the keys, so that budgets do not share counts.
        scope: &'static str,
    },
}

impl<K: Clone + Eq + std::hash::Hash + std::fmt::Display> Budget<K> {
    /// `n` requests per minute per key in this process; `None` when `n` is 0.
    #[must_use]
    pub fn local(n: u32) -> Option<Self> {
        KeyedBudget::per_minute(n).map(Self::Local)
    }

    /// `n` requests per minute per key, counted in `counter` under
    /// `scope`; `None` when `n` is 0.
    #[must_use]
    pub fn shared(counter: Arc<dyn RequestCounter>, n: u32, scope: &'static str) -> Option<Self> {
        (n > 0).then_some(Self::Shared {
            counter,
            per_minute: n,
            scope,
        })
    }

    /// Takes one request from `key`'s budget, or says how long to wait.
    pub(crate) async fn check(&self, key: K) -> Result<(), Duration> {
        match self {
            Self::Local(budget) => budget.check(key),
            Self::Shared {
                counter,
                per_minute,
                scope,
            } => {
                let now = time::OffsetDateTime::now_utc();
                match counter
                    .count(&format!("{scope}:{key}"), time::Duration::MINUTE, now)
                    .await
                {
                    Ok(hits) if hits > *per_minute => {
                        let into_window = now.unix_timestamp().rem_euclid(60).unsigned_abs();
                        Err(Duration::from_secs(60 - into_window.min(59)))
                    }
                    Ok(_) => Ok(()),
                    Err(err) => {
                        // The request goes on: the endpoint behind the
                        // limit needs the database too and answers 503 if
                        // it is down; a limit must not turn a blip into one.
                        tracing::warn!(error = %err, "shared rate limit unavailable; request let through");
                        Ok(())
                    }
                }
            }
        }
    }
}

/// Per client IP, on the public auth endpoints (register, login, refresh,
/// password reset and verification).
pub type AuthRateLimit = Budget<IpAddr>;

/// Password-hash work per caller (an account), so that no single caller
/// can keep the hashing workers busy for everyone else.
pub type HashBudget = Budget<String>;

/// The client's address: the TCP peer, or, when the server sits behind a
/// trusted proxy, the last address of the last `X-Forwarded-For` line (the
/// one that proxy appended: lines and entries before it are whatever the
/// client claimed, so they are ignored). An IPv4-mapped IPv6 address is
/// that IPv4 address.
pub(crate) fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    let forwarded = trust_forwarded_for
        .then(|| {
            req.headers()
                .get_all("x-forwarded-for")
                .last()?
                .to_str()
                .ok()?
                .rsplit(',')
                .next()?
                .trim()
                .parse::<IpAddr>()
                .ok()
        })
        .flatten();
    forwarded
        .or_else(|| req.peer_addr().map(|addr| addr.ip()))
        .map(|ip| ip.to_canonical())
}

/// The key of a client in the per-address limits: its IPv4 address, or
/// its IPv6 /64 network.
pub(crate) fn client_network(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    client_ip(req, trust_forwarded_for).map(userhub_domain::model::network_of)
}
