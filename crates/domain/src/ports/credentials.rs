//! Password hashing and access tokens.

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::PortError;
use crate::model::{Password, PasswordHash, SessionId, SignInProof, TokenHash, UserId};

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
    /// (too long, say) simply does not match. No password matches an unset
    /// hash ([`PasswordHash::none`]: an account that signs in only through
    /// a provider), and refusing it takes as long as a wrong password.
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
    pub hash: TokenHash,
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
    /// Signs an access token for this user and session, issued at `now`;
    /// `proof` is what the session's sign-in proved (its `amr`).
    ///
    /// # Errors
    /// [`TokenError::Port`] when signing fails.
    fn issue_access_token(
        &self,
        user: UserId,
        session: SessionId,
        proof: SignInProof,
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
    fn hash_token(&self, token: &str) -> TokenHash;

    /// A new random personal access token (`uhp_`, its random part and
    /// its checksum) and its SHA-256 hash.
    ///
    /// # Errors
    /// [`PortError`] when the system's randomness fails.
    fn new_personal_token(&self) -> Result<RefreshToken, PortError>;

    /// The hash of `presented` if it has the form of a personal access
    /// token and its checksum is right; `None` (no lookup needed) otherwise.
    fn personal_token_hash(&self, presented: &str) -> Option<TokenHash>;
}

/// The prefix every personal access token starts with.
pub const PERSONAL_TOKEN_PREFIX: &str = "uhp_";
