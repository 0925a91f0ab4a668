//! The failed-login rules shared by every use case that checks a password:
//! login, password change and a profile update that proves the password.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use tracing::warn;

use crate::PortError;
use crate::model::{AuditEvent, AuditKind};
use crate::ports::{AuditLog, LoginThrottle, ThrottleState};

/// How long the per-name budget's window lasts.
pub(crate) const NAME_WINDOW: Duration = Duration::HOUR;

/// When failed password checks refuse further tries.
///
/// Failures are counted per login name as typed, whether or not an account
/// has it, so a refusal says nothing about which accounts exist. The short,
/// growing lock applies to a (name, client address) pair only, so nobody
/// elsewhere can lock a user out of their own address; a higher budget per
/// name and hour stops guessing spread over many addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures of one pair that lock it; 0 turns the pair lock off.
    pub max_failures: u32,
    /// Length of a pair's first lock; each further lock doubles it.
    pub base: Duration,
    /// Longest pair lock.
    pub cap: Duration,
    /// Failures of one name per hour, from every address, after which the
    /// name is refused until the hour is over; 0 turns the budget off.
    pub max_failures_per_name_per_hour: u32,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            base: Duration::seconds(60),
            cap: Duration::hours(1),
            max_failures_per_name_per_hour: 100,
        }
    }
}

impl LockoutPolicy {
    /// How long the lock after `previous_locks` earlier ones lasts.
    #[must_use]
    pub fn lock_duration(&self, previous_locks: u32) -> Duration {
        let factor = 2_i32.saturating_pow(previous_locks.min(30));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// How long a password check of this state must wait, if at all.
    #[must_use]
    pub fn retry_after(&self, state: &ThrottleState, now: OffsetDateTime) -> Option<Duration> {
        let pair = state.pair_locked_until.map(|until| until - now);
        let name = state
            .name_window_start
            .filter(|_| {
                self.max_failures_per_name_per_hour > 0
                    && state.name_failures >= self.max_failures_per_name_per_hour
            })
            .map(|start| start + NAME_WINDOW - now);
        pair.into_iter()
            .chain(name)
            .filter(|wait| wait.is_positive())
            .max()
    }

    /// How long state is kept after its last change: past every lock and window.
    #[must_use]
    pub fn retention(&self) -> Duration {
        self.cap.max(NAME_WINDOW) * 2
    }

    fn is_off(&self) -> bool {
        self.max_failures == 0 && self.max_failures_per_name_per_hour == 0
    }
}

/// The policy applied through the throttle store.
#[derive(Clone)]
pub(crate) struct Throttle {
    store: Arc<dyn LoginThrottle>,
    audit: Arc<dyn AuditLog>,
    policy: LockoutPolicy,
}

/// The address counted when a request has none (a test client, say).
const NO_ADDRESS: &str = "unknown";

impl Throttle {
    pub(crate) fn new(
        store: Arc<dyn LoginThrottle>,
        audit: Arc<dyn AuditLog>,
        policy: LockoutPolicy,
    ) -> Self {
        Self {
            store,
            audit,
            policy,
        }
    }

    /// How long `name` must wait before a password check from `address`.
    pub(crate) async fn refusal(
        &self,
        name: &str,
        address: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Option<Duration>, PortError> {
        if self.policy.is_off() {
            return Ok(None);
        }
        let state = self
            .store
            .state(name, address.unwrap_or(NO_ADDRESS))
            .await?;
        Ok(self.policy.retry_after(&state, now))
    }

    /// Counts a failed password check, recorded as `event` (a
    /// `login.failed`), and locks the pair when the policy says so.
    pub(crate) async fn failed(
        &self,
        name: &str,
        address: Option<&str>,
        now: OffsetDateTime,
        event: AuditEvent,
    ) -> Result<(), PortError> {
        if self.policy.is_off() {
            // Nothing is counted, but the attempt is still on record.
            return self.audit.record(&event).await;
        }
        let address = address.unwrap_or(NO_ADDRESS);
        let state = self
            .store
            .record_failure(name, address, now, NAME_WINDOW, &event)
            .await?;
        let max = self.policy.max_failures;
        if max > 0 && state.pair_failures >= max {
            let duration = self.policy.lock_duration(state.pair_lockouts);
            let mut locked = AuditEvent::new(AuditKind::LoginLocked, now, &event.client);
            locked.subject_id = event.subject_id;
            locked.details.lock_seconds = Some(duration.whole_seconds());
            if self
                .store
                .lock_pair(name, address, now, now + duration, &locked)
                .await?
            {
                warn!(
                    seconds = duration.whole_seconds(),
                    "login name locked for this address after failed password checks"
                );
            }
        }
        Ok(())
    }

    /// Forgets the pair's failures after a successful login.
    pub(crate) async fn succeeded(
        &self,
        name: &str,
        address: Option<&str>,
    ) -> Result<(), PortError> {
        if self.policy.is_off() {
            return Ok(());
        }
        self.store
            .clear_pair(name, address.unwrap_or(NO_ADDRESS))
            .await
    }

    /// Lifts every lock on these names, recorded as `event`.
    pub(crate) async fn clear(
        &self,
        names: &[String],
        event: &AuditEvent,
    ) -> Result<(), PortError> {
        self.store.clear_names(names, Some(event.clone())).await
    }

    /// Deletes state nobody has touched for longer than any lock lasts.
    pub(crate) async fn purge(&self, now: OffsetDateTime) -> Result<u64, PortError> {
        self.store.purge(now - self.policy.retention()).await
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-27 10:00 UTC);

    #[test]
    fn locks_double_up_to_the_cap() {
        let policy = LockoutPolicy::default();
        assert_eq!(policy.lock_duration(0), Duration::minutes(1));
        assert_eq!(policy.lock_duration(3), Duration::minutes(8));
        assert_eq!(policy.lock_duration(40), Duration::hours(1));
    }

    #[test]
    fn the_longer_of_the_pair_lock_and_the_name_budget_applies() {
        let policy = LockoutPolicy::default();
        let mut state = ThrottleState {
            pair_locked_until: Some(NOW + Duration::seconds(30)),
            name_failures: 99,
            name_window_start: Some(NOW - Duration::minutes(10)),
            ..ThrottleState::default()
        };
        assert_eq!(policy.retry_after(&state, NOW), Some(Duration::seconds(30)));
        state.name_failures = 100;
        assert_eq!(policy.retry_after(&state, NOW), Some(Duration::minutes(50)));
        state.name_window_start = Some(NOW - Duration::hours(2));
        assert_eq!(policy.retry_after(&state, NOW), Some(Duration::seconds(30)));
        state.pair_locked_until = Some(NOW - Duration::seconds(1));
        assert_eq!(policy.retry_after(&state, NOW), None);
    }
}
