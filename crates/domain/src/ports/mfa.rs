//! The second factor: stored secrets, recovery codes and login challenges,
//! and the TOTP arithmetic and sealing behind them.

use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::PortError;
use crate::model::{
    AuditEvent, MfaStatus, PendingLogin, SealedSecret, SessionId, StoredTotp, TokenHash,
    TotpSecret, UserId,
};

/// Persistence of TOTP secrets, recovery codes and the challenges of
/// logins waiting for their second factor. Every change that a rule
/// depends on is conditional on the state the rule read, in one statement.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MfaRepository: Send + Sync + 'static {
    /// Whether TOTP is on, and how many recovery codes are left.
    async fn status(&self, user: UserId) -> Result<MfaStatus, PortError>;

    /// The user's secret, on or pending.
    async fn secret(&self, user: UserId) -> Result<Option<StoredTotp>, PortError>;

    /// Stores a pending secret, replacing a pending one; `false` (nothing
    /// written) when TOTP is already on.
    async fn set_pending(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        now: OffsetDateTime,
    ) -> Result<bool, PortError>;

    /// Turns TOTP on with the pending secret, if it is still `sealed`,
    /// spends `step` (the code that confirmed it), stores the recovery
    /// codes and `event`; `false` when nothing was pending any more.
    async fn enable(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        step: i64,
        recovery_codes: &[TokenHash],
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError>;

    /// Spends a TOTP time step: `true` only when TOTP is on and no code of
    /// this step or a later one was accepted before (no replay).
    async fn spend_step(&self, user: UserId, step: i64) -> Result<bool, PortError>;

    /// Spends an unused recovery code of the user and stores `event` with
    /// it; `false` (nothing written) when there is none.
    async fn spend_recovery_code(
        &self,
        user: UserId,
        code: &TokenHash,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError>;

    /// Turns TOTP off, deletes the secret and recovery codes and ends the
    /// user's sessions but `keep`, with `event`; `false` when it was not on,
    /// when `superuser` is given and is no longer an active superuser as
    /// the write lands, or when `step` is given and it or a later step was
    /// used already (checked atomically with the write, so that of two
    /// turn-offs with one code, one wins).
    async fn disable(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        superuser: Option<UserId>,
        step: Option<i64>,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError>;

    /// Replaces the recovery codes while TOTP is on; `false` when it is not.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery_codes: &[TokenHash],
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError>;

    /// Stores the challenge of a login whose first step was right, with
    /// the password hash of the user then (a password change meanwhile
    /// ends the challenge) and whether that step was a provider sign-in.
    async fn create_challenge(
        &self,
        token: &TokenHash,
        login: &PendingLogin,
        expires_at: OffsetDateTime,
    ) -> Result<(), PortError>;

    /// Counts one attempt at a live challenge; the login it holds while
    /// fewer than `max_attempts` were made, `None` for an unknown,
    /// expired, spent or used-up challenge.
    async fn attempt_challenge(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> Result<Option<PendingLogin>, PortError>;

    /// Spends a challenge; `false` when another request spent it first.
    async fn spend_challenge(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<bool, PortError>;

    /// Deletes challenges that expired before `before`.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError>;
}

/// TOTP codes (RFC 6238: SHA-1, six digits, 30-second steps) and the
/// sealing of secrets at rest.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecondFactor: Send + Sync + 'static {
    /// A new random secret.
    ///
    /// # Errors
    /// [`PortError`] when the system's randomness fails.
    fn new_secret(&self) -> Result<TotpSecret, PortError>;

    /// The `otpauth://` URI an authenticator app reads (as a QR code).
    fn uri(&self, secret: &TotpSecret, account: &str) -> String;

    /// The secret encrypted for storage.
    ///
    /// # Errors
    /// [`PortError`] when encryption fails.
    fn seal(&self, secret: &TotpSecret) -> Result<SealedSecret, PortError>;

    /// The secret of a sealed one.
    ///
    /// # Errors
    /// [`PortError`] when no configured key opens it.
    fn open(&self, sealed: &SealedSecret) -> Result<TotpSecret, PortError>;

    /// The time step whose code `code` is, among the one of `now` and one
    /// either side; `None` when it is none of them.
    fn matching_step(&self, secret: &TotpSecret, code: &str, now: OffsetDateTime) -> Option<i64>;

    /// A new recovery code, as shown to the user (`xxxxx-xxxxx`).
    ///
    /// # Errors
    /// [`PortError`] when the system's randomness fails.
    fn new_recovery_code(&self) -> Result<SecretString, PortError>;
}
