//! Checking a second-factor code: a TOTP step or a recovery code, spent
//! once, and the count of wrong codes, kept per user and per (user,
//! address) under a name no login can type.

use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tracing::warn;

use super::mfa::MfaChangeError;
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, RECOVERY_CODES, SecondFactorCode, TokenHash, TotpSecret,
    User, UserId,
};
use crate::ports::{MfaRepository, SecondFactor, TokenIssuer};
use crate::services::throttle::Throttle;

/// The name a user's wrong second-factor codes are counted under. Login
/// names are lower-cased before they are counted, so none can be this.
pub(super) fn code_counter(user: UserId) -> String {
    format!("MFA {user}")
}

/// What checking a code uses: borrowed from the service that checks one.
#[derive(Clone, Copy)]
pub(super) struct Codes<'a> {
    pub(super) mfa: &'a dyn MfaRepository,
    pub(super) second_factor: &'a dyn SecondFactor,
    pub(super) tokens: &'a dyn TokenIssuer,
    pub(super) throttle: &'a Throttle,
}

impl Codes<'_> {
    /// Refuses a code check while the user's wrong codes have them locked.
    pub(super) async fn check_code_lock(
        &self,
        user: &User,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(), MfaChangeError> {
        let address = client.address_key();
        match self
            .throttle
            .refusal(&code_counter(user.id), address.as_deref(), now)
            .await?
        {
            Some(retry_after) => Err(MfaChangeError::Locked { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a wrong code of `user`; the error to answer with.
    pub(super) async fn code_failed(
        &self,
        user: &User,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<MfaChangeError, PortError> {
        self.count_wrong_code(user, client, now).await?;
        Ok(MfaChangeError::InvalidCode)
    }

    /// Counts a wrong code per user and per (user, address), under a name
    /// no login can type: proving the password, with whatever name, never
    /// clears it.
    async fn count_wrong_code(
        &self,
        user: &User,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<(), PortError> {
        warn!(user_id = %user.id, "second factor refused");
        let address = client.address_key();
        let event = AuditEvent::new(AuditKind::MfaFailed, now, client).about(user.id);
        self.throttle
            .failed(&code_counter(user.id), address.as_deref(), now, event)
            .await
    }

    /// Whether `code` is a TOTP code of `user` (its step spent, so never
    /// twice) or one of their recovery codes (spent, with its audit event);
    /// a wrong one is counted.
    pub(super) async fn accept_code(
        &self,
        user: &User,
        code: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, PortError> {
        let accepted = match SecondFactorCode::parse(code) {
            SecondFactorCode::Totp(digits) => match self.totp_step(user.id, &digits, now).await? {
                // Conditional on no later step having been used: of two
                // requests with one code, one wins.
                Some(step) => self.mfa.spend_step(user.id, step).await?,
                None => false,
            },
            SecondFactorCode::Recovery(code) => {
                self.spend_recovery_code(user.id, &code, client, now)
                    .await?
            }
        };
        if !accepted {
            self.count_wrong_code(user, client, now).await?;
        }
        Ok(accepted)
    }

    pub(super) async fn spend_recovery_code(
        &self,
        user: UserId,
        code: &SecretString,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<bool, PortError> {
        let hash = self.recovery_hash(code);
        let event = AuditEvent::new(AuditKind::MfaRecoveryCodeUsed, now, client).own(user);
        self.mfa.spend_recovery_code(user, &hash, now, &event).await
    }

    /// The step of `user`'s secret that `digits` matches, if TOTP is on.
    pub(super) async fn totp_step(
        &self,
        user: UserId,
        digits: &str,
        now: OffsetDateTime,
    ) -> Result<Option<i64>, PortError> {
        let stored = self.mfa.secret(user).await?;
        let Some(stored) = stored.filter(|s| s.enabled) else {
            return Ok(None);
        };
        let Some(secret) = self.open(&stored.sealed) else {
            return Ok(None);
        };
        Ok(self.second_factor.matching_step(&secret, digits, now))
    }

    /// The secret, or `None` (logged) when no configured key opens it: its
    /// key was dropped too early after a rotation. The user can still sign
    /// in with a recovery code, or a superuser can reset the second factor.
    pub(super) fn open(&self, sealed: &crate::model::SealedSecret) -> Option<TotpSecret> {
        match self.second_factor.open(sealed) {
            Ok(secret) => Some(secret),
            Err(err) => {
                tracing::error!(error = %err, "a TOTP secret does not open: is MFA_PREVIOUS_ENCRYPTION_KEY still set?");
                None
            }
        }
    }

    /// A fresh set of recovery codes and their hashes.
    pub(super) fn recovery_codes(&self) -> Result<(Vec<SecretString>, Vec<TokenHash>), PortError> {
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        let mut hashes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let code = self.second_factor.new_recovery_code()?;
            let SecondFactorCode::Recovery(normal) = SecondFactorCode::parse(code.expose_secret())
            else {
                return Err(PortError::unexpected(
                    "a recovery code that reads as a TOTP code",
                ));
            };
            hashes.push(self.recovery_hash(&normal));
            codes.push(code);
        }
        Ok((codes, hashes))
    }

    fn recovery_hash(&self, normal: &SecretString) -> TokenHash {
        self.tokens.hash_token(normal.expose_secret())
    }
}
