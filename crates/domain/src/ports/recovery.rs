//! Account recovery and the mail queue.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::PortError;
use crate::model::{
    AuditEvent, ClientInfo, Email, Mail, MailJob, MailKind, Notice, PasswordHash, TokenHash,
    UndoTarget, User, UserId,
};

/// Single-use tokens mailed to users (only their hashes are stored).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RecoveryTokens: Send + Sync + 'static {
    /// Stores a token of this kind for `user`, mailed to `email`, valid
    /// until `expires_at`, and spends every older reset or verification
    /// token of theirs of the same kind (a newer request supersedes; revert
    /// and undo tokens never do: each undoes its own change). An undo
    /// token keeps the `target` it removes. Stores `event`, if any, with it.
    #[allow(clippy::too_many_arguments)] // one row's columns
    async fn issue(
        &self,
        kind: MailKind,
        user: UserId,
        email: &Email,
        hash: &TokenHash,
        target: Option<UndoTarget>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        event: Option<AuditEvent>,
    ) -> Result<(), PortError>;

    /// In one transaction: spends the live undo token with this hash,
    /// removes its target from its user (if it is still theirs) and ends
    /// every session of theirs. Stores `event` with the change, about the
    /// user. Returns the target, or `None` (changing nothing) for an
    /// unknown, expired or spent token.
    async fn undo(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Option<UndoTarget>, PortError>;

    /// The active user of the live (unspent, unexpired) reset token with
    /// this hash, if any. Changes nothing.
    async fn find_reset(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<User>, PortError>;

    /// In one transaction: spends the reset token with this hash if it is
    /// still live, gives its user (if still active) `new_hash`, and ends
    /// every session of theirs. Returns the user as written, or `None`
    /// (changing nothing) when the token was spent, expired or superseded
    /// meanwhile, or the user deactivated. Stores `event` with the change,
    /// by and about the token's user.
    async fn reset_password(
        &self,
        hash: &TokenHash,
        new_hash: &PasswordHash,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Option<User>, PortError>;

    /// In one transaction: spends the live verification token with this hash
    /// and marks its user verified, if the user is active and still has the
    /// address the token was mailed to. Returns the user as written, or
    /// `None` (changing nothing). Stores `event` with the change, by and
    /// about the token's user.
    async fn verify_email(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Option<User>, PortError>;

    /// In one transaction: spends the live revert token with this hash,
    /// gives its user back the address it was mailed to (verified), ends
    /// every session, spends every other live reset and verification
    /// token of theirs, and removes the ways in of the kinds in `evict`
    /// added at or after the change the token undoes (listed in the
    /// event's `details.removed`). Stores `event` with the change, about
    /// the user.
    async fn revert_email(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
        evict: &[WayIn],
        event: &AuditEvent,
    ) -> Result<RevertOutcome, PortError>;

    /// Deletes tokens that expired before `before`; returns how many.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError>;
}

/// A kind of way in to an account that someone with its password could
/// add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WayIn {
    /// Linked provider identities.
    Identity,
    /// A second factor (TOTP, its recovery codes).
    SecondFactor,
    /// Passkeys.
    Passkey,
}

/// What a revert link did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevertOutcome {
    /// The old address is back; the user as written.
    Reverted(User),
    /// Unknown, expired or spent token: nothing changed.
    Invalid,
    /// The old address is another account's now: nothing changed, and the
    /// token stays live.
    Taken,
}

/// Mail to send, kept in the database until it is sent: requests only
/// queue a job, a background task delivers it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MailQueue: Send + Sync + 'static {
    /// Queues a job, due at once, unless one of this kind for this address
    /// waits untaken (a flood of requests queues one mail). The job keeps
    /// where the request came from, for the audit event of its delivery.
    async fn enqueue(
        &self,
        kind: MailKind,
        email: &str,
        now: OffsetDateTime,
        client: &ClientInfo,
    ) -> Result<(), PortError>;

    /// Queues a security notice, due at once; never merged with another
    /// (each change gets its own).
    async fn notify(
        &self,
        notice: &Notice,
        now: OffsetDateTime,
        client: &ClientInfo,
    ) -> Result<(), PortError>;

    /// Takes up to `limit` due jobs for this worker: each counts one more
    /// attempt and is not due again before `lease_until`, so that another
    /// worker (or instance) does not take it meanwhile.
    async fn claim(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<MailJob>, PortError>;

    /// Marks a job done.
    async fn complete(&self, id: uuid::Uuid, now: OffsetDateTime) -> Result<(), PortError>;

    /// Puts a job back, due at `at`, with the error of this attempt.
    async fn retry(&self, id: uuid::Uuid, at: OffsetDateTime, error: &str)
    -> Result<(), PortError>;

    /// Gives a job up, keeping it with its error for operators.
    async fn fail(&self, id: uuid::Uuid, now: OffsetDateTime, error: &str)
    -> Result<(), PortError>;

    /// Deletes finished (done or given up) jobs older than `before`.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError>;
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth another try later: the server was unreachable, busy, or
    /// answered with a temporary (4xx) error.
    #[error("temporary mail failure: {0}")]
    Transient(String),
    /// Will not succeed as it is: a permanent (5xx) answer, a bad address.
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

/// Sends one message.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Hands the message to the mail system.
    ///
    /// # Errors
    /// [`MailError`] with whether a retry may help.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}
