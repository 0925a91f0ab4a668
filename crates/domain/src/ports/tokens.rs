//! Personal access tokens.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::PortError;
use crate::model::{
    AuditEvent, NewPersonalToken, PersonalToken, TokenGrant, TokenHash, TokenId, User, UserId,
};

/// Why a token was not stored.
#[derive(Debug, thiserror::Error)]
pub enum CreateTokenError {
    /// The owner holds the most live tokens allowed already.
    #[error("too many tokens")]
    TooMany,
    /// The owner is no longer active, or their password is no longer the
    /// one the creation proved (a reset landed meanwhile).
    #[error("owner changed")]
    OwnerChanged,
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Where personal access tokens are kept (as hashes).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PersonalTokenRepository: Send + Sync + 'static {
    /// Stores `token` with `event`, unless its owner is inactive, no longer
    /// has the password hash `token.proven`, or holds `max` live
    /// (unexpired) tokens already: those checks and the insert are one
    /// decision, so concurrent creations never exceed `max` and a creation
    /// that proved a password a reset has since replaced stores nothing.
    async fn create(
        &self,
        token: &NewPersonalToken,
        max: u64,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), CreateTokenError>;

    /// `user`'s live tokens, newest first.
    async fn list(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<PersonalToken>, PortError>;

    /// Deletes `user`'s token `id` with `event`; whether there was one.
    async fn revoke(
        &self,
        user: UserId,
        id: TokenId,
        event: &AuditEvent,
    ) -> Result<bool, PortError>;

    /// In one round trip: the active owner of the live token with this
    /// hash, and what the token grants.
    async fn authenticate(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<(User, TokenGrant)>, PortError>;

    /// Records that token `id` was used at `now`, unless that was recorded
    /// less than `resolution` ago (so a busy token costs one write a minute).
    async fn touch(
        &self,
        id: TokenId,
        now: OffsetDateTime,
        resolution: time::Duration,
    ) -> Result<(), PortError>;

    /// Deletes every token of `user` (a deactivation: a restored account
    /// gets none of them back); how many.
    async fn revoke_all(&self, user: UserId) -> Result<u64, PortError>;

    /// Deletes tokens that expired before `now`; how many.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, PortError>;
}
