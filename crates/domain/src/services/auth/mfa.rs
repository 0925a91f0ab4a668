//! The second factor: enrolment, status, turning it off, new recovery
//! codes, a superuser's reset for a lost device, and the login step that
//! exchanges an `mfa_token` and a code for the usual tokens.
//!
//! Every check of a password or a code by a signed-in user counts against
//! the same lockout as a login (the caller's username from this address),
//! so that a stolen access token is no guessing oracle for either.

use secrecy::SecretString;
use time::Duration;
use tracing::{info, warn};

use super::password::Proof;
use super::{AuthConfig, Authenticated};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, MailKind, MfaStatus, SecondFactorCode, TotpSecret, User,
    UserId,
};
use crate::services::MfaPorts;
use crate::services::throttle::Throttle;

/// What an enrolment shows once: the secret and its `otpauth://` URI.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// Base32, for typing into an authenticator app.
    pub secret: TotpSecret,
    /// For a QR code.
    pub uri: String,
}

/// Why a change of the caller's own second factor was refused.
#[derive(Debug, thiserror::Error)]
pub enum MfaChangeError {
    /// The current password was wrong (counted as a failed login).
    #[error("wrong password")]
    WrongPassword,
    /// The code was wrong, or already used (counted as a failed login,
    /// except at confirmation).
    #[error("invalid code")]
    InvalidCode,
    /// Enrolment while TOTP is on.
    #[error("already on")]
    AlreadyOn,
    /// Confirmation without a pending secret.
    #[error("nothing pending")]
    NothingPending,
    /// Turning off or new codes while TOTP is off.
    #[error("not on")]
    NotOn,
    /// Too many failed checks: refused for this long.
    #[error("locked")]
    Locked {
        /// Time left on the lock.
        retry_after: Duration,
    },
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a superuser's reset of someone's second factor was refused.
#[derive(Debug, thiserror::Error)]
pub enum MfaResetError {
    /// The caller is not a superuser.
    #[error("forbidden")]
    Forbidden,
    /// No such user.
    #[error("not found")]
    NotFound,
    /// The user has no second factor.
    #[error("not on")]
    NotOn,
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The caller's second factor (enrolment, turning it off, recovery codes)
/// and a superuser's reset of someone's.
#[derive(Clone)]
pub struct MfaService {
    pub(super) ports: MfaPorts,
    pub(super) throttle: Throttle,
}

impl MfaService {
    /// Checks of passwords and codes count against `config.lockout`.
    #[must_use]
    pub fn new(ports: MfaPorts, config: AuthConfig) -> Self {
        let throttle = Throttle::new(ports.throttle.clone(), ports.audit.clone(), config.lockout);
        Self { ports, throttle }
    }

    /// Mails the caller's account a notice of a change of its second factor.
    async fn notify(&self, user: &User, kind: MailKind, client: &ClientInfo) {
        super::notify(self.ports.outbox(), user, kind, None, client).await;
    }

    /// Whether the caller's TOTP is on, and how many recovery codes are left.
    pub async fn mfa_status(&self, caller: &Authenticated) -> Result<MfaStatus, PortError> {
        self.ports.mfa.status(caller.user.id).await
    }

    /// Starts an enrolment: a new secret, pending until confirmed with a
    /// code (a new enrolment replaces a pending one).
    #[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
    pub async fn begin_totp(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
        current_password: &SecretString,
    ) -> Result<TotpEnrolment, MfaChangeError> {
        self.check_password(caller, client, current_password)
            .await?;
        let user = &caller.user;
        let secret = self.ports.second_factor.new_secret()?;
        let sealed = self.ports.second_factor.seal(&secret)?;
        let now = self.ports.clock.now();
        if !self.ports.mfa.set_pending(user.id, &sealed, now).await? {
            return Err(MfaChangeError::AlreadyOn);
        }
        let uri = self.ports.second_factor.uri(&secret, user.email.as_str());
        info!("TOTP enrolment started");
        Ok(TotpEnrolment { secret, uri })
    }

    /// Confirms the pending secret with a code from it: TOTP is on, and
    /// the recovery codes, shown only here, are returned.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
    pub async fn confirm_totp(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
        code: &str,
    ) -> Result<Vec<SecretString>, MfaChangeError> {
        let user = &caller.user;
        let stored = self.ports.mfa.secret(user.id).await?;
        let Some(stored) = stored.filter(|s| !s.enabled) else {
            return Err(MfaChangeError::NothingPending);
        };
        let Some(secret) = self.codes().open(&stored.sealed) else {
            return Err(MfaChangeError::InvalidCode);
        };
        let now = self.ports.clock.now();
        let SecondFactorCode::Totp(digits) = SecondFactorCode::parse(code) else {
            return Err(MfaChangeError::InvalidCode);
        };
        let Some(step) = self
            .ports
            .second_factor
            .matching_step(&secret, &digits, now)
        else {
            return Err(MfaChangeError::InvalidCode);
        };
        let (codes, hashes) = self.codes().recovery_codes()?;
        let event = AuditEvent::new(AuditKind::MfaEnabled, now, client).own(user.id);
        if !self
            .ports
            .mfa
            .enable(user.id, &stored.sealed, step, &hashes, now, &event)
            .await?
        {
            // Replaced or confirmed by a concurrent request.
            return Err(MfaChangeError::NothingPending);
        }
        info!("TOTP on");
        self.notify(user, MailKind::SecondFactorOn, client).await;
        Ok(codes)
    }

    /// Turns the caller's TOTP off with the password and a code; every
    /// other session ends. Of concurrent turn-offs with valid codes one
    /// succeeds and the others find TOTP off: none counts as a wrong code.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
    pub async fn disable_totp(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
        current_password: &SecretString,
        code: &str,
    ) -> Result<(), MfaChangeError> {
        let user = &caller.user;
        if !self.ports.mfa.status(user.id).await?.totp {
            return Err(MfaChangeError::NotOn);
        }
        self.check_password(caller, client, current_password)
            .await?;
        let now = self.ports.clock.now();
        self.codes().check_code_lock(user, client, now).await?;
        let event = AuditEvent::new(AuditKind::MfaDisabled, now, client).own(user.id);
        let keep = caller.session_id();
        let off = match SecondFactorCode::parse(code) {
            // The step is spent by the turn-off itself, atomically: a
            // concurrent one with the same code waits, then finds TOTP off.
            SecondFactorCode::Totp(digits) => {
                match self.codes().totp_step(user.id, &digits, now).await? {
                    Some(step) => {
                        self.ports
                            .mfa
                            .disable(user.id, keep, None, Some(step), now, &event)
                            .await?
                    }
                    // No secret to match: a concurrent turn-off may have just
                    // landed, which is no wrong code.
                    None if !self.ports.mfa.status(user.id).await?.totp => {
                        return Err(MfaChangeError::NotOn);
                    }
                    None => return Err(self.codes().code_failed(user, client, now).await?),
                }
            }
            SecondFactorCode::Recovery(code) => {
                if !self
                    .codes()
                    .spend_recovery_code(user.id, &code, client, now)
                    .await?
                {
                    if !self.ports.mfa.status(user.id).await?.totp {
                        return Err(MfaChangeError::NotOn);
                    }
                    return Err(self.codes().code_failed(user, client, now).await?);
                }
                self.ports
                    .mfa
                    .disable(user.id, keep, None, None, now, &event)
                    .await?
            }
        };
        if !off {
            // Off already (a concurrent turn-off won), or the code's step
            // was used meanwhile: a replay of a right code, not a guess.
            return Err(if self.ports.mfa.status(user.id).await?.totp {
                MfaChangeError::InvalidCode
            } else {
                MfaChangeError::NotOn
            });
        }
        info!("TOTP off; other sessions ended");
        self.notify(user, MailKind::SecondFactorOff, client).await;
        Ok(())
    }

    /// A new set of recovery codes; the old set is spent.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
        current_password: &SecretString,
        code: &str,
    ) -> Result<Vec<SecretString>, MfaChangeError> {
        self.check_password_and_code(caller, client, current_password, code)
            .await?;
        let (codes, hashes) = self.codes().recovery_codes()?;
        let now = self.ports.clock.now();
        let user = caller.user.id;
        let event = AuditEvent::new(AuditKind::MfaRecoveryCodesRegenerated, now, client).own(user);
        if !self
            .ports
            .mfa
            .replace_recovery_codes(user, &hashes, now, &event)
            .await?
        {
            return Err(MfaChangeError::NotOn);
        }
        Ok(codes)
    }

    /// A superuser turns off the second factor of a user who lost their
    /// device; every session of that user ends.
    #[tracing::instrument(skip_all, fields(actor = %caller.user.id, user_id = %target))]
    pub async fn reset_mfa(
        &self,
        caller: &Authenticated,
        target: UserId,
        client: &ClientInfo,
    ) -> Result<(), MfaResetError> {
        if !caller.user.is_superuser {
            return Err(MfaResetError::Forbidden);
        }
        let Some(user) = self.ports.users.find_by_id(target).await? else {
            return Err(MfaResetError::NotFound);
        };
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::MfaDisabled, now, client)
            .by(caller.user.id)
            .about(target);
        // Conditional on the caller still being an active superuser when
        // the write lands: a demotion that lands first wins.
        let actor = caller.user.id;
        if !self
            .ports
            .mfa
            .disable(target, None, Some(actor), None, now, &event)
            .await?
        {
            let still = self.ports.users.find_by_id(actor).await?;
            if !still.is_some_and(|u| u.is_active && u.is_superuser) {
                return Err(MfaResetError::Forbidden);
            }
            return Err(MfaResetError::NotOn);
        }
        info!("TOTP reset by a superuser; every session of the user ended");
        self.notify(&user, MailKind::SecondFactorOff, client).await;
        Ok(())
    }

    /// The caller's password, checked under the login lockout.
    async fn check_password(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
        password: &SecretString,
    ) -> Result<(), MfaChangeError> {
        match self
            .password_check()
            .prove(&caller.user, client, password)
            .await?
        {
            Proof::Proven => Ok(()),
            Proof::Locked { retry_after } => Err(MfaChangeError::Locked { retry_after }),
            Proof::Wrong => {
                warn!("second-factor change refused: wrong password");
                Err(MfaChangeError::WrongPassword)
            }
        }
    }

    /// The password, then a code, both under the login lockout, while
    /// TOTP is on.
    async fn check_password_and_code(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
        password: &SecretString,
        code: &str,
    ) -> Result<(), MfaChangeError> {
        if !self.ports.mfa.status(caller.user.id).await?.totp {
            return Err(MfaChangeError::NotOn);
        }
        self.check_password(caller, client, password).await?;
        let now = self.ports.clock.now();
        self.codes()
            .check_code_lock(&caller.user, client, now)
            .await?;
        if !self
            .codes()
            .accept_code(&caller.user, code, client, now)
            .await?
        {
            return Err(MfaChangeError::InvalidCode);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::{always, eq};

    use secrecy::ExposeSecret;

    use super::*;
    use crate::model::{MfaStatus, SealedSecret, StoredTotp, TokenHash, User};
    use crate::services::auth::test_support::*;
    use crate::services::auth::*;
    use crate::services::fixtures::{Mocks, NOW, superuser, user};

    fn stored(enabled: bool) -> Option<StoredTotp> {
        Some(StoredTotp {
            sealed: SealedSecret(vec![1]),
            enabled,
        })
    }

    /// A user with TOTP on, whose secret opens and whose code `123456`
    /// matches step 7.
    fn with_totp(mocks: &mut Mocks) {
        mocks.mfa.expect_status().returning(|_| {
            Ok(MfaStatus {
                totp: true,
                recovery_codes_left: 10,
            })
        });
        mocks.mfa.expect_secret().returning(|_| Ok(stored(true)));
        mocks
            .second_factor
            .expect_open()
            .returning(|_| Ok(TotpSecret::new(SecretString::from("SECRET"))));
        mocks
            .second_factor
            .expect_matching_step()
            .returning(|_, code, _| (code == "123456").then_some(7));
    }

    #[tokio::test]
    async fn the_right_password_of_an_mfa_user_gets_a_challenge_and_no_session() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.finds_by_login(&ada);
        mocks.password_matches(true);
        mocks.throttle_permissive();
        with_totp(&mut mocks);
        mocks.issues_refresh_tokens("challenge");
        mocks
            .mfa
            .expect_create_challenge()
            .withf(move |_, login, expires| {
                login.user == ada.id
                    && login.password_hash.as_str() == "hash-of-ada"
                    && !login.federated
                    && *expires == NOW + Duration::minutes(5)
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        // The sessions mock expects nothing: no session is opened.
        let err = service(mocks).login(login("ada", "pw")).await.unwrap_err();
        let LoginError::MfaRequired { mfa_token, .. } = err else {
            panic!("{err:?}");
        };
        assert_eq!(mfa_token.expose_secret(), "challenge");
    }

    #[tokio::test]
    async fn a_wrong_code_counts_against_the_user_not_a_login_name_and_opens_nothing() {
        let ada = user("ada");
        let counter = format!("MFA {}", ada.id);
        let mut mocks = Mocks::default();
        hashes_tokens(&mut mocks);
        mocks
            .mfa
            .expect_attempt_challenge()
            .with(always(), eq(NOW), eq(5))
            .returning(move |_, _, _| Ok(Some(pending_of(ada.id, false))));
        mocks.finds_by_id(&user_with_id("ada", ada.id));
        mocks.throttle_clear();
        with_totp(&mut mocks);
        mocks
            .throttle
            .expect_record_failure()
            .withf(move |name, _, _, _, event| {
                *name == counter && event.kind == AuditKind::MfaFailed
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(crate::ports::ThrottleState::default()));
        let err = service(mocks)
            .login_mfa("token", "654321", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, MfaLoginError::InvalidCode));
    }

    #[tokio::test]
    async fn a_right_code_spends_its_step_and_the_challenge_and_opens_a_second_factor_session() {
        let ada = user("ada");
        let id = ada.id;
        let mut mocks = pending_login(&ada);
        mocks
            .mfa
            .expect_spend_step()
            .with(eq(id), eq(7))
            .times(1)
            .returning(|_, _| Ok(true));
        mocks
            .mfa
            .expect_spend_challenge()
            .times(1)
            .returning(|_, _| Ok(true));
        mocks
            .sessions
            .expect_create()
            .withf(|session, proven, event| {
                session.proof.second_factor
                    && !session.proof.federated
                    && proven.as_str() == "hash-of-ada"
                    && event.kind == AuditKind::LoginSucceeded
            })
            .times(1)
            .returning(|_, _, _| Ok(true));
        mocks.users.expect_record_login().returning(|_, _| Ok(()));
        mocks.issues_refresh_tokens("fresh");
        mocks
            .tokens
            .expect_issue_access_token()
            .withf(|_, _, proof, _| proof.amr() == ["pwd", "otp"])
            .returning(|_, _, _, _| {
                Ok(crate::ports::AccessToken {
                    token: "jwt".into(),
                    expires_in: 1800,
                })
            });
        let tokens = service(mocks)
            .login_mfa("token", "123 456", &ClientInfo::default())
            .await
            .unwrap();
        assert_eq!(tokens.user_id, id);
    }

    #[tokio::test]
    async fn a_replayed_code_is_refused() {
        let ada = user("ada");
        let mut mocks = pending_login(&ada);
        // Another login spent step 7 first.
        mocks.mfa.expect_spend_step().returning(|_, _| Ok(false));
        let err = service(mocks)
            .login_mfa("token", "123456", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, MfaLoginError::InvalidCode));
    }

    #[tokio::test]
    async fn a_wrong_confirmation_code_turns_nothing_on() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.mfa.expect_secret().returning(|_| Ok(stored(false)));
        mocks
            .second_factor
            .expect_open()
            .returning(|_| Ok(TotpSecret::new(SecretString::from("SECRET"))));
        mocks
            .second_factor
            .expect_matching_step()
            .returning(|_, _, _| None);
        // `enable` is never called.
        let err = mfa_service(mocks)
            .confirm_totp(&caller(&ada), &ClientInfo::default(), "111111")
            .await
            .unwrap_err();
        assert!(matches!(err, MfaChangeError::InvalidCode));
        // Nothing pending: 409, whatever the code.
        let mut mocks = Mocks::default();
        mocks.mfa.expect_secret().returning(|_| Ok(stored(true)));
        let err = mfa_service(mocks)
            .confirm_totp(&caller(&ada), &ClientInfo::default(), "111111")
            .await
            .unwrap_err();
        assert!(matches!(err, MfaChangeError::NothingPending));
    }

    #[tokio::test]
    async fn turning_it_off_when_it_is_off_checks_no_password() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks
            .mfa
            .expect_status()
            .returning(|_| Ok(MfaStatus::default()));
        // The hasher expects nothing.
        let err = mfa_service(mocks)
            .disable_totp(
                &caller(&ada),
                &ClientInfo::default(),
                &SecretString::from("pw"),
                "123456",
            )
            .await
            .unwrap_err();
        assert!(matches!(err, MfaChangeError::NotOn));
    }

    #[tokio::test]
    async fn only_a_superuser_resets_someone_elses_second_factor() {
        let ada = user("ada");
        let err = mfa_service(Mocks::default())
            .reset_mfa(&caller(&ada), UserId::generate(), &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, MfaResetError::Forbidden));
        let root = superuser("root");
        let mut mocks = Mocks::default();
        mocks.finds_by_id(&ada);
        mocks
            .mfa
            .expect_disable()
            .withf(move |user, keep, superuser, step, _, event| {
                *user == ada.id
                    && keep.is_none()
                    && *superuser == Some(root.id)
                    && step.is_none()
                    && event.kind == AuditKind::MfaDisabled
                    && event.actor_id == Some(root.id)
            })
            .times(1)
            .returning(|_, _, _, _, _, _| Ok(true));
        mocks
            .mail
            .expect_notify()
            .withf(move |notice, _, _| {
                notice.kind == MailKind::SecondFactorOff && notice.user_id == ada.id
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        mfa_service(mocks)
            .reset_mfa(
                &caller(&superuser_with_id(root.id)),
                ada.id,
                &ClientInfo::default(),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn turning_it_off_needs_a_right_code_after_the_password() {
        let ada = user("ada");
        let id = ada.id;
        // A wrong code: refused, counted, nothing turned off.
        let mut mocks = Mocks::default();
        mocks.throttle_clear();
        mocks.password_matches(true);
        with_totp(&mut mocks);
        mocks
            .throttle
            .expect_record_failure()
            .withf(move |name, _, _, _, event| {
                event.kind == AuditKind::MfaFailed && name == format!("MFA {id}")
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(crate::ports::ThrottleState::default()));
        let err = mfa_service(mocks)
            .disable_totp(
                &caller(&ada),
                &ClientInfo::default(),
                &SecretString::from("pw"),
                "654321",
            )
            .await
            .unwrap_err();
        assert!(matches!(err, MfaChangeError::InvalidCode));
        // The right code: off, the caller's own session kept.
        let me = caller(&ada);
        let session = me.session_id().unwrap();
        let mut mocks = Mocks::default();
        mocks.throttle_permissive();
        mocks.password_matches(true);
        with_totp(&mut mocks);
        // The turn-off spends the step itself.
        mocks.mfa.expect_spend_step().never();
        mocks
            .mfa
            .expect_disable()
            .withf(move |user, keep, superuser, step, _, _| {
                *user == id && *keep == Some(session) && superuser.is_none() && *step == Some(7)
            })
            .times(1)
            .returning(|_, _, _, _, _, _| Ok(true));
        // The account is told, without a link.
        mocks
            .mail
            .expect_notify()
            .withf(move |notice, _, _| {
                notice.kind == MailKind::SecondFactorOff
                    && notice.user_id == id
                    && notice.target.is_none()
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        mfa_service(mocks)
            .disable_totp(
                &me,
                &ClientInfo::default(),
                &SecretString::from("pw"),
                "123456",
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_turn_off_that_loses_a_race_with_a_valid_code_is_409_and_not_counted() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.throttle_clear();
        mocks.password_matches(true);
        // On when asked first, off once the other turn-off has landed.
        let mut asked = 0;
        mocks.mfa.expect_status().returning(move |_| {
            asked += 1;
            Ok(MfaStatus {
                totp: asked == 1,
                recovery_codes_left: 10,
            })
        });
        mocks.mfa.expect_secret().returning(|_| Ok(stored(true)));
        mocks
            .second_factor
            .expect_open()
            .returning(|_| Ok(TotpSecret::new(SecretString::from("SECRET"))));
        mocks
            .second_factor
            .expect_matching_step()
            .returning(|_, _, _| Some(7));
        mocks
            .mfa
            .expect_disable()
            .times(1)
            .returning(|_, _, _, _, _, _| Ok(false));
        // Nothing counted as a wrong code.
        mocks.throttle.expect_record_failure().never();
        let err = mfa_service(mocks)
            .disable_totp(
                &caller(&ada),
                &ClientInfo::default(),
                &SecretString::from("pw"),
                "123456",
            )
            .await
            .unwrap_err();
        assert!(matches!(err, MfaChangeError::NotOn), "{err:?}");
    }

    #[tokio::test]
    async fn a_replayed_step_that_leaves_totp_on_is_refused_but_not_counted() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.throttle_clear();
        mocks.password_matches(true);
        with_totp(&mut mocks);
        mocks
            .mfa
            .expect_disable()
            .times(1)
            .returning(|_, _, _, _, _, _| Ok(false));
        mocks.throttle.expect_record_failure().never();
        let err = mfa_service(mocks)
            .disable_totp(
                &caller(&ada),
                &ClientInfo::default(),
                &SecretString::from("pw"),
                "123456",
            )
            .await
            .unwrap_err();
        assert!(matches!(err, MfaChangeError::InvalidCode), "{err:?}");
    }

    #[tokio::test]
    async fn a_lock_on_wrong_codes_refuses_the_code_step_whatever_name_proved_the_password() {
        let ada = user("ada");
        let id = ada.id;
        let mut mocks = pending_login(&ada);
        mocks.throttle.checkpoint();
        // The name's pair is clear; the user's code counter is locked.
        mocks.throttle.expect_state().returning(move |name, _| {
            Ok(if name == format!("MFA {id}") {
                crate::ports::ThrottleState {
                    pair_locked_until: Some(NOW + Duration::minutes(1)),
                    ..crate::ports::ThrottleState::default()
                }
            } else {
                crate::ports::ThrottleState::default()
            })
        });
        mocks.mfa.expect_spend_step().never();
        let err = service(mocks)
            .login_mfa("token", "123456", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, MfaLoginError::Locked { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_superuser_demoted_before_the_reset_lands_is_refused() {
        let ada = user("ada");
        // Demoted by the time the conditional write lands.
        let demoted = user("root");
        let root = superuser_with_id(demoted.id);
        let mut mocks = Mocks::default();
        mocks.reads_in_turn(vec![ada.clone(), demoted]);
        mocks
            .mfa
            .expect_disable()
            .times(1)
            .returning(|_, _, _, _, _, _| Ok(false));
        let err = mfa_service(mocks)
            .reset_mfa(&caller(&root), ada.id, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, MfaResetError::Forbidden));
    }

    #[tokio::test]
    async fn a_secret_no_key_opens_is_a_wrong_code_not_a_failure_of_the_server() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        hashes_tokens(&mut mocks);
        let id = ada.id;
        mocks
            .mfa
            .expect_attempt_challenge()
            .returning(move |_, _, _| Ok(Some(pending_of(id, false))));
        mocks.finds_by_id(&ada);
        mocks.throttle_permissive();
        mocks.mfa.expect_secret().returning(|_| Ok(stored(true)));
        mocks
            .second_factor
            .expect_open()
            .returning(|_| Err(PortError::unexpected("no key opens it")));
        // Nothing is spent and no session opens.
        let err = service(mocks)
            .login_mfa("token", "123456", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, MfaLoginError::InvalidCode));
    }

    /// A live challenge of `ada`, who has TOTP on and is not locked.
    fn pending_login(ada: &User) -> Mocks {
        let id = ada.id;
        let mut mocks = Mocks::default();
        hashes_tokens(&mut mocks);
        mocks
            .mfa
            .expect_attempt_challenge()
            .returning(move |_, _, _| Ok(Some(pending_of(id, false))));
        mocks.finds_by_id(ada);
        mocks.throttle_permissive();
        with_totp(&mut mocks);
        mocks
    }

    fn pending_of(user: UserId, federated: bool) -> crate::model::PendingLogin {
        crate::model::PendingLogin {
            user,
            password_hash: ada_hash(),
            federated,
        }
    }

    fn ada_hash() -> crate::model::PasswordHash {
        crate::model::PasswordHash::new("hash-of-ada".into())
    }

    /// Tokens hash as themselves.
    fn hashes_tokens(mocks: &mut Mocks) {
        mocks
            .tokens
            .expect_hash_token()
            .returning(|token| TokenHash::new(token.into()));
    }

    fn user_with_id(name: &str, id: UserId) -> User {
        User { id, ..user(name) }
    }

    fn superuser_with_id(id: UserId) -> User {
        User {
            id,
            ..superuser("root")
        }
    }
}
