//! Health and time.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::PortError;

/// Whether the backing store answers, for the health endpoint.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait HealthProbe: Send + Sync + 'static {
    /// Succeeds when the database answers a trivial query in time.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when it does not.
    async fn check_database(&self) -> Result<(), PortError>;

    /// How the connection pool is used right now, for metrics.
    fn pool_status(&self) -> PoolStatus;
}

/// A snapshot of the database connection pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open, idle or in use.
    pub size: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// The most connections the pool may open.
    pub max: u32,
}

/// The time, injectable for tests.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Whole microseconds, the precision PostgreSQL stores, so that a value
    /// reads back exactly as it was written.
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }
}
