//! Passkeys: where they are kept, and the WebAuthn ceremonies that make
//! and check them.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::PortError;
use crate::model::{
    AuditEvent, CeremonyKind, CeremonyState, NewPasskey, Passkey, PasskeyCredential, PasskeyId,
    PasskeyName, TokenHash, User, UserId,
};

/// Why a passkey was not stored.
#[derive(Debug, thiserror::Error)]
pub enum CreatePasskeyError {
    /// The owner holds the most passkeys allowed already.
    #[error("too many passkeys")]
    TooMany,
    /// That credential is registered already (to this account or another).
    #[error("credential already registered")]
    Duplicate,
    /// The owner is gone or deactivated.
    #[error("owner inactive")]
    OwnerInactive,
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// What a removal did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasskeyRemoval {
    /// The passkey is gone.
    Removed,
    /// The user has no such passkey.
    NotFound,
    /// Refused: it is the user's last way in (no password, no linked
    /// identity, no other passkey).
    LastMethod,
}

/// Where passkeys and the ceremonies under way are kept.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasskeyRepository: Send + Sync + 'static {
    /// Stores `new` with `event`, unless its owner is inactive, holds `max`
    /// passkeys already, or the credential is registered: one decision,
    /// so concurrent registrations never exceed `max`.
    async fn create(
        &self,
        new: &NewPasskey,
        max: u64,
        event: &AuditEvent,
    ) -> Result<(), CreatePasskeyError>;

    /// `user`'s passkeys, oldest first.
    async fn list(&self, user: UserId) -> Result<Vec<Passkey>, PortError>;

    /// The credentials of `user`'s passkeys (for `excludeCredentials`).
    async fn credentials(&self, user: UserId) -> Result<Vec<PasskeyCredential>, PortError>;

    /// Renames `user`'s passkey `id` with `event`; the passkey, if there is one.
    async fn rename(
        &self,
        user: UserId,
        id: PasskeyId,
        name: &PasskeyName,
        event: &AuditEvent,
    ) -> Result<Option<Passkey>, PortError>;

    /// Deletes `user`'s passkey `id` with `event`, unless it is their last
    /// way in (checked with the delete, as one decision).
    async fn remove(
        &self,
        user: UserId,
        id: PasskeyId,
        event: &AuditEvent,
    ) -> Result<PasskeyRemoval, PortError>;

    /// Deletes every passkey of `user` with `event`; how many.
    async fn remove_all(&self, user: UserId, event: &AuditEvent) -> Result<u64, PortError>;

    /// The passkey with this credential id, its credential, and its owner.
    async fn find_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<(Passkey, PasskeyCredential, User)>, PortError>;

    /// Records a sign-in with passkey `id`: its new counter and credential,
    /// only if the stored counter is still `seen` (a concurrent sign-in
    /// with the same counter records nothing); whether it was recorded.
    async fn record_use(
        &self,
        id: PasskeyId,
        seen: u32,
        credential: &PasskeyCredential,
        backed_up: bool,
        at: OffsetDateTime,
    ) -> Result<bool, PortError>;

    /// Keeps the server's half of a ceremony until `expires_at`, under the
    /// hash of the token the browser carries.
    async fn begin_ceremony(
        &self,
        token: &TokenHash,
        kind: CeremonyKind,
        user: Option<UserId>,
        state: &CeremonyState,
        expires_at: OffsetDateTime,
    ) -> Result<(), PortError>;

    /// Spends a ceremony of `kind`: its user and state the first time,
    /// while it lives; `None` ever after, and for a token of another kind.
    async fn take_ceremony(
        &self,
        token: &TokenHash,
        kind: CeremonyKind,
        now: OffsetDateTime,
    ) -> Result<Option<(Option<UserId>, CeremonyState)>, PortError>;

    /// Forgets ceremonies that expired before `now`; how many.
    async fn purge_ceremonies(&self, now: OffsetDateTime) -> Result<u64, PortError>;
}

/// Options for the browser and the state to keep, from starting a ceremony.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CeremonyStart {
    /// `{"publicKey": …}` as WebAuthn Level 3's JSON form, for the browser.
    pub options: String,
    /// The server's half, to keep until the answer.
    pub state: CeremonyState,
}

/// A credential a registration made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredCredential {
    /// What sign-ins check.
    pub credential: PasskeyCredential,
    /// Whether the authenticator said it is synced.
    pub backed_up: bool,
}

/// What a checked sign-in assertion says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedAssertion {
    /// The credential with its new counter.
    pub credential: PasskeyCredential,
    /// Whether the authenticator says it is synced now.
    pub backed_up: bool,
}

/// Why a ceremony's answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    /// Malformed, or a check failed (origin, RP ID, challenge, signature,
    /// user verification); the reason is for logs only.
    #[error("invalid passkey: {0}")]
    Invalid(String),
    /// The signature counter went back: the authenticator may be cloned.
    #[error("signature counter went back")]
    CounterRegressed,
}

/// The WebAuthn ceremonies (a well-kept library behind this port).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait PasskeyCeremonies: Send + Sync + 'static {
    /// Starts adding a discoverable credential with user verification to
    /// `user`, excluding the credentials they have.
    fn start_registration(
        &self,
        user: &User,
        existing: &[PasskeyCredential],
    ) -> Result<CeremonyStart, PortError>;

    /// The credential id a registration answer names, before any check.
    fn registered_id(&self, response: &str) -> Result<String, CeremonyError>;

    /// Checks the browser's answer (`RegistrationResponseJSON`).
    fn finish_registration(
        &self,
        state: &CeremonyState,
        response: &str,
    ) -> Result<RegisteredCredential, CeremonyError>;

    /// Starts a sign-in with any discoverable credential (empty `allowCredentials`).
    fn start_login(&self) -> Result<CeremonyStart, PortError>;

    /// The credential id an answer (`AuthenticationResponseJSON`) names, and
    /// the user handle it carries, before any check.
    fn identify(&self, response: &str) -> Result<(String, Option<UserId>), CeremonyError>;

    /// Starts the second step of a login with one of `credentials` (the
    /// user's passkeys, listed in `allowCredentials`).
    fn start_second_factor(
        &self,
        credentials: &[PasskeyCredential],
    ) -> Result<CeremonyStart, PortError>;

    /// Checks a second step's answer against the stored credential.
    fn finish_second_factor(
        &self,
        state: &CeremonyState,
        response: &str,
        credential: &PasskeyCredential,
    ) -> Result<CheckedAssertion, CeremonyError>;

    /// Checks a sign-in answer against the stored credential.
    fn finish_login(
        &self,
        state: &CeremonyState,
        response: &str,
        credential: &PasskeyCredential,
    ) -> Result<CheckedAssertion, CeremonyError>;
}
