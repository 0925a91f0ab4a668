//! Sign-in with OpenID providers: the linked identities, and the providers
//! themselves.

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::PortError;
use crate::model::{AuditEvent, LinkedIdentity, OAuthState, ProviderIdentity, User, UserId};

/// Why a user signing up through a provider was not stored.
#[derive(Debug, thiserror::Error)]
pub enum NewIdentityUserError {
    /// Another user has the address.
    #[error("email taken")]
    EmailTaken,
    /// Another user has the username.
    #[error("username taken")]
    UsernameTaken,
    /// The identity was linked meanwhile (a racing first sign-in).
    #[error("identity taken")]
    IdentityTaken,
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why an identity was not linked.
#[derive(Debug, thiserror::Error)]
pub enum LinkIdentityError {
    /// The identity is linked already, to this user.
    #[error("identity linked to a user")]
    LinkedTo(UserId),
    /// The user has another identity at this provider.
    #[error("provider linked already")]
    ProviderLinked,
    /// The user is gone or deactivated.
    #[error("user inactive")]
    Inactive,
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// What an unlink did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unlinked {
    /// The identity is gone.
    Done,
    /// The user has no identity at this provider.
    NotLinked,
    /// Refused: it is the user's last way in (no password, no other identity).
    LastMethod,
}

/// Persistence of linked identities and of spent sign-in states.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdentityRepository: Send + Sync + 'static {
    /// The user linked to `(provider, subject)`.
    async fn find_user(&self, provider: &str, subject: &str) -> Result<Option<UserId>, PortError>;

    /// Stores a new user and its first identity with `events`, all or nothing.
    async fn create_user(
        &self,
        user: &User,
        identity: &ProviderIdentity,
        events: &[AuditEvent],
    ) -> Result<(), NewIdentityUserError>;

    /// Links `identity` to `user`, if the user is still active, with `event`.
    async fn link(
        &self,
        user: UserId,
        identity: &ProviderIdentity,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), LinkIdentityError>;

    /// The user's identities, oldest first.
    async fn list(&self, user: UserId) -> Result<Vec<LinkedIdentity>, PortError>;

    /// Removes the user's identity at `provider` with `event`, unless it is
    /// the last way in: checked atomically with the delete.
    async fn unlink(
        &self,
        user: UserId,
        provider: &str,
        event: &AuditEvent,
    ) -> Result<Unlinked, PortError>;

    /// Spends a sign-in state: `true` the first time, `false` ever after.
    async fn spend_state(&self, id: &str, expires_at: OffsetDateTime) -> Result<bool, PortError>;

    /// Forgets spent states that expired before `now`.
    async fn purge(&self, now: OffsetDateTime) -> Result<u64, PortError>;
}

/// Where to send the browser, and what binds the answer to it.
#[derive(Debug)]
pub struct Authorization {
    /// The provider's authorization URL, with `state`, `nonce` and the PKCE challenge.
    pub url: String,
    /// The value of the browser's cookie that the `state` is bound to.
    pub binding: SecretString,
    /// When the `state` (and so the cookie) stops being accepted.
    pub expires_at: OffsetDateTime,
}

/// Why a provider step failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached, or answered nonsense: retry later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the code (spent, expired, or not ours).
    #[error("code refused: {0}")]
    CodeRefused(String),
    /// The ID token failed a check (signature, `iss`, `aud`, `exp`).
    #[error("ID token rejected: {0}")]
    TokenRejected(String),
    /// The ID token's `nonce` is not the one this sign-in sent.
    #[error("nonce mismatch")]
    NonceMismatch,
}

/// The configured OpenID providers: discovery, the authorization request,
/// the code exchange and the ID token's checks.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait IdentityProviders: Send + Sync + 'static {
    /// Whether `provider` is configured.
    fn knows(&self, provider: &str) -> bool;

    /// An authorization request for a new `state`, bound to a fresh
    /// browser binding.
    async fn authorize(
        &self,
        state: &OAuthState,
        scopes: Option<String>,
    ) -> Result<Authorization, ProviderError>;

    /// The state `raw` says, if its signature holds and it is bound to
    /// `binding`; expiry is the caller's check.
    fn open_state(&self, raw: &str, binding: &str) -> Option<OAuthState>;

    /// Exchanges `code` (with the PKCE verifier of `state` and `binding`)
    /// and verifies the ID token against the `nonce` of the same.
    async fn exchange(
        &self,
        state: &OAuthState,
        binding: &str,
        code: &str,
    ) -> Result<ProviderIdentity, ProviderError>;
}
