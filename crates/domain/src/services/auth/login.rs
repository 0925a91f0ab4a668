//! Login: the password check, the lockout, the session it opens, and the
//! second step of a login whose user has a second factor.

use secrecy::SecretString;
use time::{Duration, OffsetDateTime};
use tracing::{info, warn};

use super::{AuthService, IssuedTokens, signed_in};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, FailureReason, MFA_CHALLENGE_ATTEMPTS, MFA_CHALLENGE_TTL,
    NewSession, Password, PendingLogin, SessionId, SignInProof, User, UserId,
};
use crate::ports::{MfaRepository, RefreshToken, TokenIssuer};

/// Credentials presented at login.
#[derive(Debug)]
pub struct LoginRequest {
    /// E-mail address or username, any case.
    pub login: String,
    /// The password as typed.
    pub password: SecretString,
    /// Where the request came from.
    pub client: ClientInfo,
}

/// Why a login failed. Unknown, wrong and deactivated look the same.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown account, wrong password or deactivated account.
    #[error("incorrect email or password")]
    InvalidCredentials,
    /// The password was right, but the address is not verified and the
    /// settings require it.
    #[error("email not verified")]
    EmailNotVerified,
    /// The password was right and the user has a second factor: no
    /// tokens yet, but this token for `login_mfa` (5 minutes, 5 codes).
    #[error("second factor required")]
    MfaRequired {
        /// The opaque `mfa_token`.
        mfa_token: SecretString,
        /// Whose login it is (for the passkey options of the second step).
        user: UserId,
    },
    /// Too many failed logins: refused, even with the right password, for this long.
    #[error("account locked")]
    Locked {
        /// Time left on the lock.
        retry_after: Duration,
    },
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl AuthService {
    /// Checks credentials and opens a session.
    ///
    /// Every failure path verifies one bcrypt hash, so an unknown account, a
    /// deactivated one and a wrong password take the same time, and all
    /// three count against the login name as typed, so that a lockout says
    /// nothing about which accounts exist either.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, request: LoginRequest) -> Result<IssuedTokens, LoginError> {
        let login = request.login.trim().to_lowercase();
        let address = request.client.address_key();
        let address = address.as_deref();
        let now = self.ports.clock.now();
        if let Some(retry_after) = self.throttle.refusal(&login, address, now).await? {
            // Refused before any bcrypt work, whatever the password.
            warn!(reason = "locked", "login refused");
            return Err(LoginError::Locked { retry_after });
        }
        let found = self.ports.users.find_by_login(&login).await?;
        let hash = found.as_ref().map_or_else(
            || self.ports.hasher.dummy_hash(),
            |user| user.password_hash.clone(),
        );
        let matches = self.ports.hasher.verify(&request.password, &hash).await?;
        let user = match found {
            Some(user) if matches && user.is_active => user,
            other => {
                let reason = match &other {
                    None => FailureReason::UnknownAccount,
                    Some(_) if matches => FailureReason::Inactive,
                    Some(_) => FailureReason::WrongPassword,
                };
                warn!(
                    user_id = other.as_ref().map(|u| u.id.to_string()),
                    reason = reason.as_str(),
                    "login failed"
                );
                let mut event =
                    AuditEvent::new(AuditKind::LoginFailed, now, &request.client).reason(reason);
                event.subject_id = other.map(|u| u.id);
                self.throttle.failed(&login, address, now, event).await?;
                return Err(LoginError::InvalidCredentials);
            }
        };
        // Only after the password check: the refusal tells nothing to
        // someone who does not know the password.
        if self.config.require_verified_email && !user.is_verified {
            warn!(user_id = %user.id, reason = "email not verified", "login refused");
            self.throttle.succeeded(&login, address).await?;
            let event = AuditEvent::new(AuditKind::LoginFailed, now, &request.client)
                .about(user.id)
                .reason(FailureReason::EmailNotVerified);
            self.ports.audit.record(&event).await?;
            return Err(LoginError::EmailNotVerified);
        }
        if self.ports.mfa.status(user.id).await?.totp {
            // The password is proven; the lockout of the name as typed is
            // over, and wrong codes now count against the user's own name.
            self.throttle.succeeded(&login, address).await?;
            // Wrong codes lock the user's second step from this address
            // whatever name proves the password; said only to someone who
            // knows the password.
            let codes = super::codes::code_counter(user.id);
            if let Some(retry_after) = self.throttle.refusal(&codes, address, now).await? {
                warn!(user_id = %user.id, reason = "second factor locked", "login refused");
                return Err(LoginError::Locked { retry_after });
            }
            let mfa_token = mfa_challenge(
                self.ports.tokens.as_ref(),
                self.ports.mfa.as_ref(),
                &user,
                false,
                now,
            )
            .await?;
            info!(user_id = %user.id, "password right; second factor required");
            return Err(LoginError::MfaRequired {
                mfa_token,
                user: user.id,
            });
        }
        let refresh = self.ports.tokens.new_refresh_token()?;
        let event = AuditEvent::new(AuditKind::LoginSucceeded, now, &request.client).own(user.id);
        let session = new_session(
            self.config.refresh_token_ttl,
            user.id,
            &refresh,
            now,
            request.client,
            SignInProof::PASSWORD,
        );
        if !self
            .ports
            .sessions
            .create(&session, &user.password_hash, &event.session(session.id))
            .await?
        {
            // Deactivated, or given a new password, while bcrypt ran.
            warn!(user_id = %user.id, reason = "changed meanwhile", "login failed");
            return Err(LoginError::InvalidCredentials);
        }
        self.throttle.succeeded(&login, address).await?;
        self.rehash_if_outdated(&user, request.password).await?;
        Ok(signed_in(
            &self.ports.users,
            &self.ports.tokens,
            &session,
            refresh,
            now,
            "login succeeded",
        )
        .await?)
    }

    /// Replaces a hash made at an older cost, now that the password is
    /// known, unless the password changed meanwhile.
    async fn rehash_if_outdated(
        &self,
        user: &User,
        password: SecretString,
    ) -> Result<(), PortError> {
        if !self.ports.hasher.needs_rehash(&user.password_hash) {
            return Ok(());
        }
        // A stored password always meets the length rules; if not, keep the old hash.
        let Ok(password) = Password::new(password) else {
            return Ok(());
        };
        let new = self.ports.hasher.hash(&password).await?;
        let now = self.ports.clock.now();
        if self
            .ports
            .users
            .replace_password_hash(user.id, &user.password_hash, &new, now, None)
            .await?
        {
            info!(user_id = %user.id, "password re-hashed at the configured cost");
        }
        Ok(())
    }

    /// The second step of a login: a live `mfa_token` and a code of its
    /// user open a session whose tokens say `amr: ["pwd", "otp"]`.
    #[tracing::instrument(skip_all)]
    pub async fn login_mfa(
        &self,
        mfa_token: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, MfaLoginError> {
        let hash = self.ports.tokens.hash_token(mfa_token);
        let now = self.ports.clock.now();
        let Some(pending) = self
            .ports
            .mfa
            .attempt_challenge(&hash, now, MFA_CHALLENGE_ATTEMPTS)
            .await?
        else {
            return Err(MfaLoginError::InvalidCode);
        };
        let user = self.ports.users.find_by_id(pending.user).await?;
        let Some(user) = user.filter(|u| u.is_active) else {
            return Err(MfaLoginError::InvalidCode);
        };
        let name = user.username.as_str();
        let address = client.address_key();
        let address = address.as_deref();
        // Wrong codes lock the user's second factor, whatever name their
        // password was proven with; failed passwords lock their name.
        let codes = super::codes::code_counter(user.id);
        for counted in [name, codes.as_str()] {
            if let Some(retry_after) = self.throttle.refusal(counted, address, now).await? {
                return Err(MfaLoginError::Locked { retry_after });
            }
        }
        if !self.codes().accept_code(&user, code, client, now).await? {
            return Err(MfaLoginError::InvalidCode);
        }
        if !self.ports.mfa.spend_challenge(&hash, now).await? {
            return Err(MfaLoginError::InvalidCode);
        }
        let refresh = self.ports.tokens.new_refresh_token()?;
        let proof = SignInProof {
            federated: pending.federated,
            second_factor: true,
            passkey: false,
        };
        let session = new_session(
            self.config.refresh_token_ttl,
            user.id,
            &refresh,
            now,
            client.clone(),
            proof,
        );
        let event = AuditEvent::new(AuditKind::LoginSucceeded, now, client)
            .own(user.id)
            .session(session.id);
        // Conditional on the password proven at the first step: a password
        // change since then ends the challenge.
        if !self
            .ports
            .sessions
            .create(&session, &pending.password_hash, &event)
            .await?
        {
            warn!(user_id = %user.id, reason = "changed meanwhile", "login failed");
            return Err(MfaLoginError::InvalidCode);
        }
        self.throttle.succeeded(name, address).await?;
        self.throttle.succeeded(&codes, address).await?;
        Ok(signed_in(
            &self.ports.users,
            &self.ports.tokens,
            &session,
            refresh,
            now,
            "login with a second factor succeeded",
        )
        .await?)
    }
}

/// The session a login opens, its first refresh token `refresh`, living
/// `ttl`.
pub(super) fn new_session(
    ttl: Duration,
    user: UserId,
    refresh: &RefreshToken,
    now: OffsetDateTime,
    client: ClientInfo,
    proof: SignInProof,
) -> NewSession {
    NewSession {
        id: SessionId::generate(),
        user_id: user,
        refresh_token_hash: refresh.hash.clone(),
        created_at: now,
        expires_at: now + ttl,
        client,
        proof,
    }
}

/// Opens the challenge of a login whose first step was right (the
/// password, or a provider when `federated`); its token.
pub(super) async fn mfa_challenge(
    tokens: &dyn TokenIssuer,
    mfa: &dyn MfaRepository,
    user: &User,
    federated: bool,
    now: OffsetDateTime,
) -> Result<SecretString, PortError> {
    let token = tokens.new_refresh_token()?;
    let expires_at = now + MFA_CHALLENGE_TTL;
    let login = PendingLogin {
        user: user.id,
        password_hash: user.password_hash.clone(),
        federated,
    };
    mfa.create_challenge(&token.hash, &login, expires_at)
        .await?;
    Ok(token.secret)
}

/// Why the second step of a login failed. A wrong code and an unknown,
/// expired, spent or used-up `mfa_token` look the same.
#[derive(Debug, thiserror::Error)]
pub enum MfaLoginError {
    /// Wrong code, or no live challenge.
    #[error("invalid code")]
    InvalidCode,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;

    use super::*;
    use crate::model::PasswordHash;
    use crate::model::*;
    use crate::ports::ThrottleState;
    use crate::services::auth::test_support::*;
    use crate::services::auth::*;
    use crate::services::fixtures::{Mocks, NOW, user};
    use time::Duration;

    #[tokio::test]
    async fn with_verification_required_an_unverified_user_is_refused_after_the_password_check() {
        let strict = AuthConfig {
            require_verified_email: true,
            ..config(Duration::ZERO)
        };
        // No session is created: the sessions mock expects nothing. The
        // refusal is on record.
        let mut mocks = right_password(user("ada"));
        mocks
            .audit
            .expect_record()
            .withf(|e| {
                e.kind == AuditKind::LoginFailed
                    && e.details.reason == Some(FailureReason::EmailNotVerified)
                    && e.subject_id.is_some()
                    && e.actor_id.is_none()
            })
            .times(1)
            .returning(|_| Ok(()));
        let err = AuthService::new(mocks.ports().for_auth(), strict)
            .login(login("ada", "pw"))
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::EmailNotVerified));

        // A wrong password says nothing about verification.
        let mut mocks = Mocks::default();
        let ada = user("ada");
        mocks.finds_by_login(&ada);
        mocks.password_matches(false);
        mocks.throttle_permissive();
        let err = AuthService::new(mocks.ports().for_auth(), strict)
            .login(login("ada", "wrong"))
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));

        // A verified user logs in.
        let verified = User {
            is_verified: true,
            ..user("ada")
        };
        let mut mocks = right_password(verified);
        mocks.sessions.expect_create().returning(|_, _, _| Ok(true));
        mocks.users.expect_record_login().returning(|_, _| Ok(()));
        expect_tokens(&mut mocks);
        AuthService::new(mocks.ports().for_auth(), strict)
            .login(login("ada", "pw"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn login_with_the_right_password_opens_a_session_and_records_the_login() {
        let ada = user("ada");
        let id = ada.id;
        let mut mocks = Mocks::default();
        mocks.without_second_factor();
        mocks
            .users
            .expect_find_by_login()
            .with(eq("ada@example.com"))
            .returning(move |_| Ok(Some(ada.clone())));
        mocks.password_matches(true);
        mocks
            .sessions
            .expect_create()
            .withf(move |s, hash, event| {
                s.user_id == id
                    && s.expires_at == NOW + Duration::days(7)
                    && s.refresh_token_hash.as_str() == "fresh"
                    && hash.as_str() == "hash-of-ada"
                    && event.kind == AuditKind::LoginSucceeded
                    && event.actor_id == Some(id)
                    && event.subject_id == Some(id)
                    && event.details.session_id == Some(s.id)
            })
            .times(1)
            .returning(|_, _, _| Ok(true));
        mocks.throttle_permissive();
        mocks
            .users
            .expect_record_login()
            .with(eq(id), eq(NOW))
            .times(1)
            .returning(|_, _| Ok(()));
        expect_tokens(&mut mocks);
        let tokens = log_in(mocks, "  Ada@Example.com ", "pw").await.unwrap();
        assert_eq!(tokens.access_token, "jwt");
        assert_eq!(tokens.expires_in, 1800);
        assert_eq!(tokens.user_id, id);
    }

    #[tokio::test]
    async fn login_verifies_a_dummy_hash_for_an_unknown_account() {
        let mut mocks = Mocks::default();
        // An unknown name's failures count like a known one's.
        mocks.throttle_clear();
        mocks
            .throttle
            .expect_record_failure()
            .withf(|name, _, _, _, event| {
                name == "nobody"
                    && event.kind == AuditKind::LoginFailed
                    && event.subject_id.is_none()
                    && event.details.reason == Some(FailureReason::UnknownAccount)
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(ThrottleState::default()));
        mocks.users.expect_find_by_login().returning(|_| Ok(None));
        mocks
            .hasher
            .expect_dummy_hash()
            .times(1)
            .returning(|| PasswordHash::new("dummy".into()));
        mocks
            .hasher
            .expect_verify()
            .withf(|_, hash| hash.as_str() == "dummy")
            .times(1)
            .returning(|_, _| Ok(false));
        let err = log_in(mocks, "nobody", "pw").await.unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn login_refuses_a_wrong_password_after_verifying_it() {
        let ada = user("ada");
        let id = ada.id;
        let mut mocks = Mocks::default();
        mocks.finds_by_login(&ada);
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(false));
        mocks.throttle_clear();
        mocks
            .throttle
            .expect_record_failure()
            .withf(move |name, address, at, window, event| {
                name == "ada"
                    && address == "unknown"
                    && *at == NOW
                    && *window == Duration::HOUR
                    && event.kind == AuditKind::LoginFailed
                    && event.subject_id == Some(id)
                    && event.details.reason == Some(FailureReason::WrongPassword)
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(ThrottleState::default()));
        let err = log_in(mocks, "ada", "wrong").await.unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn login_refuses_a_deactivated_user_even_with_the_right_password() {
        let ada = User {
            is_active: false,
            ..user("ada")
        };
        let mut mocks = Mocks::default();
        mocks.throttle_permissive();
        mocks.finds_by_login(&ada);
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));
        let err = log_in(mocks, "ada", "right").await.unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn a_locked_name_is_refused_without_reading_the_account_or_the_password() {
        // No find_by_login or verify expected: calling either would panic.
        let mut mocks = Mocks::default();
        mocks
            .throttle
            .expect_state()
            .withf(|name, address| name == "ada" && address == "unknown")
            .returning(|_, _| {
                Ok(ThrottleState {
                    pair_locked_until: Some(NOW + Duration::seconds(42)),
                    ..ThrottleState::default()
                })
            });
        assert_eq!(locked_for(mocks).await, Duration::seconds(42));
    }

    /// How long a login by ada is refused as locked.
    async fn locked_for(mocks: Mocks) -> Duration {
        match log_in(mocks, "ada", "right").await {
            Err(LoginError::Locked { retry_after }) => retry_after,
            other => panic!("not locked: {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_exhausted_name_budget_refuses_from_every_address() {
        let mut mocks = Mocks::default();
        mocks.throttle_reports(ThrottleState {
            name_failures: 100,
            name_window_start: Some(NOW - Duration::minutes(15)),
            ..ThrottleState::default()
        });
        assert_eq!(locked_for(mocks).await, Duration::minutes(45));
    }

    #[tokio::test]
    async fn an_expired_lock_no_longer_refuses() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.without_second_factor();
        mocks.throttle_reports(ThrottleState {
            pair_locked_until: Some(NOW),
            ..ThrottleState::default()
        });
        mocks.throttle.expect_clear_pair().returning(|_, _| Ok(()));
        mocks.finds_by_login(&ada);
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));
        mocks.sessions.expect_create().returning(|_, _, _| Ok(true));
        mocks
            .users
            .expect_record_login()
            .times(1)
            .returning(|_, _| Ok(()));
        expect_tokens(&mut mocks);
        assert!(log_in(mocks, "ada", "right").await.is_ok());
    }

    #[tokio::test]
    async fn the_fifth_failure_of_a_pair_locks_it_for_the_next_doubled_period() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.finds_by_login(&ada);
        mocks.password_matches(false);
        mocks.throttle_clear();
        mocks
            .throttle
            .expect_record_failure()
            .times(1)
            .returning(|_, _, _, _, _| {
                Ok(ThrottleState {
                    pair_failures: 5,
                    pair_lockouts: 2,
                    ..ThrottleState::default()
                })
            });
        mocks
            .throttle
            .expect_lock_pair()
            .withf(|name, address, now, until, event| {
                name == "ada"
                    && address == "unknown"
                    && *now == NOW
                    && *until == NOW + Duration::seconds(240)
                    && event.kind == AuditKind::LoginLocked
                    && event.subject_id.is_some()
                    && event.details.lock_seconds == Some(240)
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(true));
        let err = log_in(mocks, "ada", "wrong").await.unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn failures_below_the_limit_are_only_counted() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.finds_by_login(&ada);
        mocks.password_matches(false);
        mocks.throttle_clear();
        mocks
            .throttle
            .expect_record_failure()
            .times(1)
            .returning(|_, _, _, _, _| {
                Ok(ThrottleState {
                    pair_failures: 4,
                    ..ThrottleState::default()
                })
            });
        mocks.throttle.expect_lock_pair().never();
        let err = log_in(mocks, "ada", "wrong").await.unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn a_login_whose_user_changed_while_bcrypt_ran_gets_no_session() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.without_second_factor();
        mocks.throttle_permissive();
        mocks.finds_by_login(&ada);
        mocks.password_matches(true);
        mocks.issues_refresh_tokens("r");
        // Deactivated or given a new password meanwhile: the insert's condition fails.
        mocks
            .sessions
            .expect_create()
            .returning(|_, _, _| Ok(false));
        mocks.users.expect_record_login().never();
        let err = log_in(mocks, "ada", "right").await.unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn a_hash_of_an_older_cost_is_replaced_at_a_successful_login() {
        let ada = user("ada");
        let id = ada.id;
        let mut mocks = Mocks::default();
        mocks.without_second_factor();
        mocks.finds_by_login(&ada);
        mocks.password_matches(true);
        mocks.hasher.expect_needs_rehash().return_const(true);
        mocks
            .hasher
            .expect_hash()
            .times(1)
            .returning(|_| Ok(PasswordHash::new("$2b$12$new".into())));
        mocks
            .users
            .expect_replace_password_hash()
            .withf(move |i, old, new, _, _| {
                *i == id && old.as_str() == "hash-of-ada" && new.as_str() == "$2b$12$new"
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(true));
        mocks.sessions.expect_create().returning(|_, _, _| Ok(true));
        mocks.throttle_permissive();
        mocks
            .users
            .expect_record_login()
            .times(1)
            .returning(|_, _| Ok(()));
        mocks.issues_refresh_tokens("r");
        mocks.issues_access_tokens();
        assert!(log_in(mocks, "ada", "correct horse battery").await.is_ok());
    }

    async fn log_in(mocks: Mocks, name: &str, password: &str) -> Result<IssuedTokens, LoginError> {
        service(mocks).login(login(name, password)).await
    }
}
