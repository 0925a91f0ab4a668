//! The traits adapters implement. Every port is `Send + Sync + 'static` so a
//! service can hold it behind an `Arc<dyn …>` shared by all workers.

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::PortError;
use crate::model::{
    LoginLockout, NewSession, Password, PasswordHash, RefreshTokenHash, Session, SessionId, User,
    UserId,
};

/// The outcome of writing a user that a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum SaveUserError {
    /// Another user has this e-mail address.
    #[error("email already registered")]
    EmailTaken,
    /// Another user has this username.
    #[error("username already taken")]
    UsernameTaken,
    /// No user has this id (update only).
    #[error("user not found")]
    NotFound,
    /// The change would leave no active superuser.
    #[error("the last active superuser must stay")]
    LastSuperuser,
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
    /// Keyset pagination: start right after this user in `sort` order (then
    /// apply `skip`). A deep page costs as little as the first this way.
    pub after: Option<UserId>,
}

/// One page of users and the number of users matching the filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserPage {
    /// The page.
    pub items: Vec<User>,
    /// All matches, ignoring `skip` and `limit`.
    pub total: u64,
}

/// Persistence of users.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new user.
    ///
    /// # Errors
    /// MUST return [`SaveUserError::EmailTaken`] or [`SaveUserError::UsernameTaken`]
    /// when the store's unique constraint refuses the row, whatever the race.
    async fn insert(&self, user: &User) -> Result<(), SaveUserError>;

    /// Overwrites every field of an existing user.
    ///
    /// # Errors
    /// As [`UserRepository::insert`], plus [`SaveUserError::NotFound`].
    async fn update(&self, user: &User) -> Result<(), SaveUserError>;

    /// The user with this id, active or not.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, PortError>;

    /// The user whose e-mail or username equals `login` (already lower-cased).
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn find_by_login(&self, login: &str) -> Result<Option<User>, PortError>;

    /// A page of users matching `query`, and how many match in all.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn list(&self, query: &UserQuery) -> Result<UserPage, PortError>;

    /// Like [`UserRepository::update`], for a change that takes away an
    /// active superuser (deactivation or demotion).
    ///
    /// # Errors
    /// MUST return [`SaveUserError::LastSuperuser`], changing nothing, when
    /// no other active superuser would remain, checked atomically with the
    /// write so that concurrent demotions cannot remove the last two.
    async fn update_unless_last_superuser(&self, user: &User) -> Result<(), SaveUserError>;

    /// Sets `last_login_at` and clears the failed-login state.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn record_login(&self, id: UserId, at: OffsetDateTime) -> Result<(), PortError>;

    /// Counts one more failed login, atomically, and returns the new state.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn record_failed_login(&self, id: UserId) -> Result<LoginLockout, PortError>;

    /// Locks logins until `until`, counts the lock and restarts the failure count.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn lock(&self, id: UserId, until: OffsetDateTime) -> Result<(), PortError>;

    /// Clears the failed-login state and any lock.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn clear_lockout(&self, id: UserId) -> Result<(), PortError>;
}

/// Persistence of sessions and their refresh tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// Stores a new session.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn create(&self, session: &NewSession) -> Result<(), PortError>;

    /// The session whose *current* refresh token has this hash, live or not.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn find_by_refresh_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<Session>, PortError>;

    /// The session that once had this refresh token and has since rotated
    /// it, and when it was spent.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn find_by_spent_token(
        &self,
        hash: &RefreshTokenHash,
    ) -> Result<Option<(SessionId, OffsetDateTime)>, PortError>;

    /// Replaces the current token `old` by `new` and records `old` as spent,
    /// atomically: returns `false`, changing nothing, when `old` is no longer
    /// the session's current token (a concurrent refresh won) or the session
    /// is revoked.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn rotate(
        &self,
        id: SessionId,
        old: &RefreshTokenHash,
        new: &RefreshTokenHash,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<bool, PortError>;

    /// Ends one session; ending an ended session changes nothing.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn revoke(&self, id: SessionId, now: OffsetDateTime) -> Result<(), PortError>;

    /// Ends every live session of a user, except `keep` if given.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn revoke_all_for_user(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: OffsetDateTime,
    ) -> Result<(), PortError>;

    /// Ends session `session` if it is a live session of `user`; returns
    /// whether it was.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn revoke_for_user(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
    ) -> Result<bool, PortError>;

    /// Deletes sessions that ended (revoked, or expired before `now`) with
    /// their spent tokens; returns how many.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn purge_ended(&self, now: OffsetDateTime) -> Result<u64, PortError>;

    /// The user's live sessions, newest first.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn list_live_for_user(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, PortError>;

    /// In one round trip: the user owning live session `session` if that user
    /// is `user` and is active. This is what authenticates every request.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    async fn find_active_user(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<User>, PortError>;
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
