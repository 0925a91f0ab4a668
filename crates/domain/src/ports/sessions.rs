//! Sessions, refresh tokens and failed-login counts.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::PortError;
use crate::model::{
    AuditEvent, NewSession, PasswordHash, Session, SessionId, TokenHash, User, UserId,
};

/// Failed-login state of one login name, as the throttle holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleState {
    /// Failures from this (name, address) pair since its last lock or success.
    pub pair_failures: u32,
    /// Locks of this pair since its last success (each lasts twice the last).
    pub pair_lockouts: u32,
    /// The pair is refused until then.
    pub pair_locked_until: Option<OffsetDateTime>,
    /// Failures of the name from every address within the current window.
    pub name_failures: u32,
    /// When the name's current window began.
    pub name_window_start: Option<OffsetDateTime>,
}

/// Failed logins, counted per login name as typed (whether or not an
/// account has it) and per (name, client address), shared by every server
/// instance.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait LoginThrottle: Send + Sync + 'static {
    /// The state of `name` and of the pair (`name`, `address`).
    async fn state(&self, name: &str, address: &str) -> Result<ThrottleState, PortError>;

    /// Counts one failure, atomically: the pair's count only if the pair is
    /// not locked at `now` (failures in flight when a lock lands neither
    /// re-lock nor escalate it), the name's count in a window of `window`
    /// that restarts once it has passed. Returns the new state. Stores
    /// `event` (a `login.failed`) with the count.
    async fn record_failure(
        &self,
        name: &str,
        address: &str,
        now: OffsetDateTime,
        window: Duration,
        event: &AuditEvent,
    ) -> Result<ThrottleState, PortError>;

    /// Locks the pair until `until`, counts the lock and restarts its
    /// failure count, unless it is already locked at `now`; returns whether
    /// this call locked it. Stores `event` (a `login.locked`) only if it did.
    async fn lock_pair(
        &self,
        name: &str,
        address: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError>;

    /// Forgets the pair's failures and locks (after a successful login).
    async fn clear_pair(&self, name: &str, address: &str) -> Result<(), PortError>;

    /// Forgets every failure and lock of these names (an administrator's
    /// unlock, a password reset), and stores `event`, if any, with it.
    async fn clear_names(
        &self,
        names: &[String],
        event: Option<AuditEvent>,
    ) -> Result<(), PortError>;

    /// Deletes state last touched before `before`; returns how many rows.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError>;
}

/// Persistence of sessions and their refresh tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// Stores a new session if its user is still active and still has
    /// `password_hash`, checked atomically with the insert; returns whether
    /// it did. A login whose password was checked just before a
    /// deactivation or password reset landed gets no session. Stores
    /// `event` (a `login.succeeded`) only with the session.
    async fn create(
        &self,
        session: &NewSession,
        password_hash: &PasswordHash,
        event: &AuditEvent,
    ) -> Result<bool, PortError>;

    /// The session whose *current* refresh token has this hash, live or not.
    async fn find_by_refresh_token(&self, hash: &TokenHash) -> Result<Option<Session>, PortError>;

    /// The session that once had this refresh token and has since rotated
    /// it, and when it was spent.
    async fn find_by_spent_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(SessionId, OffsetDateTime)>, PortError>;

    /// Replaces the current token `old` by `new` and records `old` as spent,
    /// atomically: returns `false`, changing nothing, when `old` is no longer
    /// the session's current token (a concurrent refresh won) or the session
    /// is revoked.
    async fn rotate(
        &self,
        id: SessionId,
        old: &TokenHash,
        new: &TokenHash,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<bool, PortError>;

    /// Ends one session; ending an ended session changes nothing. Stores
    /// `event`, if any, about the session's user when it names no subject.
    async fn revoke(
        &self,
        id: SessionId,
        now: OffsetDateTime,
        event: Option<AuditEvent>,
    ) -> Result<(), PortError>;

    /// Ends every live session of a user, except `keep` if given, and
    /// stores `event`, if any.
    async fn revoke_all_for_user(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: OffsetDateTime,
        event: Option<AuditEvent>,
    ) -> Result<(), PortError>;

    /// Ends session `session` if it is a live session of `user`; returns
    /// whether it was. Stores `event` only if it was.
    async fn revoke_for_user(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError>;

    /// Deletes sessions that ended (revoked, or expired before `now`) with
    /// their spent tokens; returns how many.
    async fn purge_ended(&self, now: OffsetDateTime) -> Result<u64, PortError>;

    /// The user's live sessions, newest first.
    async fn list_live_for_user(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, PortError>;

    /// In one round trip: the user owning live session `session` if that user
    /// is `user` and is active. This is what authenticates every request.
    async fn find_active_user(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<User>, PortError>;

    /// In one round trip: what [`SessionRepository::find_active_user`]
    /// answers, and, if that is a user, the user `other` as stored (in any
    /// state), so that a read by id costs one query with its authentication.
    async fn find_active_user_and(
        &self,
        user: UserId,
        session: SessionId,
        other: UserId,
        now: OffsetDateTime,
    ) -> Result<Option<(User, Option<User>)>, PortError>;
}
