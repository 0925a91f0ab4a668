//! Persistence of users.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::PortError;
use crate::model::{AuditEvent, Email, FullName, PasswordHash, User, UserId, Username};

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
    /// With an email change: the address replaced, reserved for this
    /// account until the link that undoes the change dies.
    pub reserve_old_email: Option<(Email, OffsetDateTime)>,
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
    /// when the store's unique constraint refuses the row, whatever the race,
    /// and `EmailTaken` when the address is reserved for another account
    /// (see [`UserPatch::reserve_old_email`]), checked atomically with the
    /// insert.
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
    /// when `guard` fails, and the outcomes the constraints decide; a new
    /// email reserved for another account is [`PatchUserError::EmailTaken`]. This is
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
