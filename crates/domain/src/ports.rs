//! The traits adapters implement. Every port is `Send + Sync + 'static` so a
//! service can hold it behind an `Arc<dyn …>` shared by all workers.
//!
//! A [`PortError`] from any method means the backing store failed; the
//! `# Errors` sections list only the other outcomes.

use async_trait::async_trait;
use secrecy::SecretString;
use time::{Duration, OffsetDateTime};

use crate::PortError;
use crate::model::{
    AuditEvent, AuditQuery, ClientInfo, Email, FullName, Mail, MailJob, MailKind, NewSession,
    Notice, Password, PasswordHash, RefreshTokenHash, Session, SessionId, User, UserId, Username,
};

/// Why a new user was not stored.
#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    /// Another user has this e-mail address.
    #[error("email already registered")]
    EmailTaken,
    /// Another user has this username.
    #[error("username already taken")]
    UsernameTaken,
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The columns one change writes; `None` leaves a column as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // each field is the column of the same name
pub struct UserPatch {
    pub email: Option<Email>,
    pub username: Option<Username>,
    /// `Some(None)` clears the name.
    pub full_name: Option<Option<FullName>>,
    pub password_hash: Option<PasswordHash>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub is_verified: Option<bool>,
}

impl UserPatch {
    /// Whether the patch writes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The state a write's rules relied on, checked in the same statement as
/// the write: only what the rules read, so that a write that does not
/// depend on another is never refused because the other landed first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteGuard {
    /// Who asks: the write happens only if they are still active, and
    /// still a superuser if the rules let them act as one.
    pub actor: UserId,
    /// Whether the rules relied on the actor being a superuser.
    pub actor_is_superuser: bool,
    /// Refuse when no other active superuser would remain.
    pub keep_a_superuser: bool,
    /// The password hash a password proof was checked against: the write
    /// happens only if it is still the user's.
    pub password_hash: Option<PasswordHash>,
    /// The user's `is_active` the write expects (a deletion needs an active
    /// user, a restore a deactivated one); `None` for either.
    pub target_active: Option<bool>,
}

/// Why a conditional update of a user wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum PatchUserError {
    /// No user has this id.
    #[error("user not found")]
    NotFound,
    /// The user's version is no longer the one the change was computed from.
    #[error("the user changed since it was read")]
    Stale,
    /// Another user has this e-mail address.
    #[error("email already registered")]
    EmailTaken,
    /// Another user has this username.
    #[error("username already taken")]
    UsernameTaken,
    /// The change would leave no active superuser.
    #[error("the last active superuser must stay")]
    LastSuperuser,
    /// The actor was deactivated or demoted since the rules were checked.
    #[error("the acting user lost the rights the change relied on")]
    ActorChanged,
    /// The password a proof was checked against is no longer the user's.
    #[error("the password changed since it was checked")]
    PasswordChanged,
    /// The user's `is_active` is not the one the guard expects.
    #[error("the user was deactivated or restored meanwhile")]
    ActiveChanged,
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Column a user listing is ordered by; ties always break on id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserSortField {
    /// Creation time (the default).
    #[default]
    CreatedAt,
    /// Username.
    Username,
    /// E-mail address.
    Email,
}

/// A listing order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserSort {
    /// The column.
    pub field: UserSortField,
    /// Largest first.
    pub descending: bool,
}

/// Filters, order and window of a user listing, already authorised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Rows to skip.
    pub skip: u64,
    /// Rows to return at most.
    pub limit: u64,
    /// Lower-cased substring to find in username or full name; matched literally.
    pub search: Option<String>,
    /// Whether `search` also looks at e-mail addresses.
    pub search_email: bool,
    /// Order.
    pub sort: UserSort,
    /// Only users with this `is_active`.
    pub is_active: Option<bool>,
    /// Only users with this `is_superuser`.
    pub is_superuser: Option<bool>,
    /// Keyset pagination: start right after this position in `sort` order
    /// (then apply `skip`). A deep page costs as little as the first this way.
    pub after: Option<UserCursor>,
}

/// The value a listing is ordered by, of one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortValue {
    /// `created_at`.
    Time(OffsetDateTime),
    /// `username` or `email`.
    Text(String),
}

/// A position in a listing: the sort value and id of a row the caller was
/// shown. It holds values, not a reference to a row, so a listing is never
/// positioned relative to a row the caller cannot see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserCursor {
    /// The row's value of the sort column.
    pub value: SortValue,
    /// The row's id, which breaks ties.
    pub id: UserId,
}

impl UserCursor {
    /// The position of `user` in a listing ordered by `field`.
    #[must_use]
    pub fn of(user: &User, field: UserSortField) -> Self {
        let value = match field {
            UserSortField::CreatedAt => SortValue::Time(user.created_at),
            UserSortField::Username => SortValue::Text(user.username.as_str().to_owned()),
            UserSortField::Email => SortValue::Text(user.email.as_str().to_owned()),
        };
        Self { value, id: user.id }
    }
}

/// One page of users and the number of users matching the filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserPage {
    /// The page.
    pub items: Vec<User>,
    /// All matches, ignoring `skip` and `limit`.
    pub total: u64,
}

/// Persistence of users. Every write names the columns it changes and the
/// state it depends on, so that no write can undo a concurrent one it did
/// not see, and stores its audit event in the same transaction: if the
/// event cannot be written, neither is the change.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new user.
    ///
    /// # Errors
    /// MUST return [`InsertUserError::EmailTaken`] or [`InsertUserError::UsernameTaken`]
    /// when the store's unique constraint refuses the row, whatever the race.
    async fn insert(&self, user: &User, event: &AuditEvent) -> Result<(), InsertUserError>;

    /// Writes the columns of `patch` (and `updated_at`) if `guard` holds
    /// and, when `version` is given (a client's `If-Match`), the user is
    /// still at it, all checked atomically with the write; bumps the
    /// version and returns the user as stored afterwards. A write that
    /// changes the email or password or deactivates the user spends their
    /// live reset tokens in the same transaction.
    ///
    /// # Errors
    /// [`PatchUserError::Stale`] when the version moved on,
    /// [`PatchUserError::ActorChanged`], [`PatchUserError::PasswordChanged`],
    /// [`PatchUserError::ActiveChanged`] and [`PatchUserError::LastSuperuser`]
    /// when `guard` fails, and the outcomes the constraints decide. This is
    /// the one write of a user's fields: deletion and restore are patches
    /// of `is_active` too.
    async fn update(
        &self,
        id: UserId,
        version: Option<u64>,
        patch: &UserPatch,
        guard: &WriteGuard,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<User, PatchUserError>;

    /// Replaces the password hash if it is still `old` and the user is
    /// active; returns whether it did. A password reset or deactivation that
    /// landed in between wins. `event`, if any, is stored only with a write;
    /// with an event (a password change, not a rehash of the same password)
    /// the user's live reset tokens are spent in the same transaction.
    async fn replace_password_hash(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: &PasswordHash,
        at: OffsetDateTime,
        event: Option<AuditEvent>,
    ) -> Result<bool, PortError>;

    /// The user with this id, active or not.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, PortError>;

    /// The user whose e-mail or username equals `login` (already lower-cased).
    async fn find_by_login(&self, login: &str) -> Result<Option<User>, PortError>;

    /// A page of users matching `query`, and how many match in all.
    async fn list(&self, query: &UserQuery) -> Result<UserPage, PortError>;

    /// Sets `last_login_at`; the version stays (a login is no change a
    /// conditional write must see).
    async fn record_login(&self, id: UserId, at: OffsetDateTime) -> Result<(), PortError>;
}

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
    async fn find_by_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<Session>, PortError>;

    /// The session that once had this refresh token and has since rotated
    /// it, and when it was spent.
    async fn find_by_spent_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<(SessionId, OffsetDateTime)>, PortError>;

    /// Replaces the current token `old` by `new` and records `old` as spent,
    /// atomically: returns `false`, changing nothing, when `old` is no longer
    /// the session's current token (a concurrent refresh won) or the session
    /// is revoked.
    async fn rotate(
        &self,
        id: SessionId,
        old: &RefreshTokenHash,
        new: &RefreshTokenHash,
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

/// Slow, salted password hashing.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// Hashes a new password. Implementations MUST NOT block the async executor.
    ///
    /// # Errors
    /// [`PortError`] when hashing fails.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, PortError>;

    /// Whether `password` matches `hash`; a password the scheme cannot hold
    /// (too long, say) simply does not match.
    ///
    /// # Errors
    /// [`PortError`] when the hash is unreadable or hashing fails.
    async fn verify(&self, password: &SecretString, hash: &PasswordHash)
    -> Result<bool, PortError>;

    /// Whether `hash` was made with other parameters (an older cost, say)
    /// than new hashes get, so it should be replaced at the next login.
    fn needs_rehash(&self, hash: &PasswordHash) -> bool;

    /// A valid hash of a random secret at the configured cost, verified
    /// against when no account matches so that every failed login costs the same.
    fn dummy_hash(&self) -> PasswordHash;
}

/// A signed access token and its lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// The encoded token.
    pub token: String,
    /// Seconds from issue to expiry.
    pub expires_in: i64,
}

/// What a verified access token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessClaims {
    /// `sub`.
    pub user_id: UserId,
    /// `sid`.
    pub session_id: SessionId,
}

/// A new refresh token: the secret for the client, the hash for storage.
#[derive(Clone, Debug)]
pub struct RefreshToken {
    /// Handed to the client once, never stored.
    pub secret: SecretString,
    /// Stored.
    pub hash: RefreshTokenHash,
}

/// Why an access token was refused. The reason is for logs, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Malformed, badly signed, expired, not yet valid, wrong issuer, audience or type.
    #[error("invalid access token: {0}")]
    Invalid(String),
    /// Signing failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Issues and checks tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TokenIssuer: Send + Sync + 'static {
    /// Signs an access token for this user and session, issued at `now`.
    ///
    /// # Errors
    /// [`TokenError::Port`] when signing fails.
    fn issue_access_token(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
    ) -> Result<AccessToken, TokenError>;

    /// Checks signature, algorithm, type, issuer, audience and validity period.
    ///
    /// # Errors
    /// [`TokenError::Invalid`] for any token that is not a valid access token.
    fn verify_access_token(&self, token: &str) -> Result<AccessClaims, TokenError>;

    /// A new random refresh token, for a new session.
    ///
    /// # Errors
    /// [`PortError`] when the system's randomness fails.
    fn new_refresh_token(&self) -> Result<RefreshToken, PortError>;

    /// The token that replaces `presented` at its refresh. It MUST be derived
    /// from `presented` with a server-side secret (a keyed hash), so that the
    /// same token always has the same successor and nobody without the
    /// secret can compute it.
    fn successor_refresh_token(&self, presented: &str) -> RefreshToken;

    /// The hash under which a presented refresh token would be stored.
    fn hash_refresh_token(&self, token: &str) -> RefreshTokenHash;
}

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

/// Single-use tokens mailed to users (only their hashes are stored).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RecoveryTokens: Send + Sync + 'static {
    /// Stores a token of this kind for `user`, mailed to `email`, valid
    /// until `expires_at`, and spends every older reset or verification
    /// token of theirs of the same kind (a newer request supersedes; revert
    /// tokens never do: each undoes its own change). Stores `event`, if
    /// any, with it.
    #[allow(clippy::too_many_arguments)] // one row's columns
    async fn issue(
        &self,
        kind: MailKind,
        user: UserId,
        email: &Email,
        hash: &RefreshTokenHash,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        event: Option<AuditEvent>,
    ) -> Result<(), PortError>;

    /// The active user of the live (unspent, unexpired) reset token with
    /// this hash, if any. Changes nothing.
    async fn find_reset(
        &self,
        hash: &RefreshTokenHash,
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
        hash: &RefreshTokenHash,
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
        hash: &RefreshTokenHash,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Option<User>, PortError>;

    /// In one transaction: spends the live revert token with this hash,
    /// gives its user back the address it was mailed to (verified), ends
    /// every session and spends every other live reset and verification
    /// token of theirs. Stores `event` with the change, about the user.
    async fn revert_email(
        &self,
        hash: &RefreshTokenHash,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<RevertOutcome, PortError>;

    /// Deletes tokens that expired before `before`; returns how many.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError>;
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
