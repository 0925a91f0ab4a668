//! Request counts and the audit trail.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::PortError;
use crate::model::{AuditEvent, AuditQuery};

/// Request counts shared by every server instance, for rate limits.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RequestCounter: Send + Sync + 'static {
    /// Counts one request of `key` in the fixed window of length `window`
    /// that holds `now`, and returns the window's count, this one included.
    async fn count(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<u32, PortError>;

    /// Deletes counts of windows that started before `before`.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError>;
}

/// The audit trail. Events are written by the ports whose changes they
/// record; this port reads them, stores events that record no change, and
/// forgets old ones.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Stores an event that goes with no stored change (a refused login of
    /// an unverified user, say).
    async fn record(&self, event: &AuditEvent) -> Result<(), PortError>;

    /// The events matching `query`, newest first.
    async fn list(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, PortError>;

    /// Deletes events older than `before`; returns how many.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError>;
}
