//! Registration, login, token refresh and request authentication.

use secrecy::SecretString;
use time::{Duration, OffsetDateTime};
use tracing::{info, warn};

use super::throttle::{LockoutPolicy, Throttle};
use super::{CreateUser, NewUserError, Ports};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, Email, FullName, NewSession, Password, PasswordError,
    PasswordPolicy, SessionId, SessionSummary, User, UserId, Username,
};
use crate::ports::{AccessClaims, RefreshToken, TokenError};

/// Settings of the authentication use cases.
#[derive(Clone, Copy, Debug)]
pub struct AuthConfig {
    /// How long a refresh token (and so an idle session) lives.
    pub refresh_token_ttl: Duration,
    /// How long after a refresh the spent token still yields the same
    /// successor (for clients that raced two refreshes); zero means never.
    pub refresh_reuse_grace: Duration,
    /// When failed password checks refuse further tries.
    pub lockout: LockoutPolicy,
    /// What a new password must be.
    pub password_policy: PasswordPolicy,
    /// Refuse logins of users whose address is not verified.
    pub require_verified_email: bool,
}

/// A self-registration.
#[derive(Debug)]
pub struct RegisterUser {
    /// Address.
    pub email: Email,
    /// Login name.
    pub username: Username,
    /// Password, length-checked.
    pub password: Password,
    /// Display name.
    pub full_name: Option<FullName>,
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The address belongs to another account.
    #[error("email already registered")]
    EmailTaken,
    /// The username belongs to another account.
    #[error("username already taken")]
    UsernameTaken,
    /// The password contains personal information.
    #[error(transparent)]
    WeakPassword(PasswordError),
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl From<NewUserError> for RegisterError {
    fn from(err: NewUserError) -> Self {
        match err {
            NewUserError::EmailTaken => Self::EmailTaken,
            NewUserError::UsernameTaken => Self::UsernameTaken,
            NewUserError::WeakPassword(err) => Self::WeakPassword(err),
            NewUserError::Port(err) => Self::Port(err),
        }
    }
}

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

/// Tokens handed out at login and refresh.
#[derive(Clone, Debug)]
pub struct IssuedTokens {
    /// Signed access token.
    pub access_token: String,
    /// Opaque refresh token.
    pub refresh_token: SecretString,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
    /// Whose tokens these are.
    pub user_id: UserId,
    /// The session they belong to.
    pub session_id: SessionId,
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
    /// Too many failed logins: refused, even with the right password, for this long.
    #[error("account locked")]
    Locked {
        /// Time left on the lock.
        retry_after: Duration,
    },
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, revoked or spent token, or a deactivated user.
    #[error("invalid refresh token")]
    InvalidToken,
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The caller behind a valid access token.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The caller, active.
    pub user: User,
    /// The session their token belongs to.
    pub session_id: SessionId,
}

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    /// Bad token, ended session or deactivated user.
    #[error("could not validate credentials")]
    InvalidToken,
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a session could not be ended.
#[derive(Debug, thiserror::Error)]
pub enum EndSessionError {
    /// No live session with this id belongs to the caller.
    #[error("session not found")]
    NotFound,
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a password change failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The current password given is wrong (or no longer current).
    #[error("incorrect password")]
    WrongPassword,
    /// Too many wrong passwords for this user from this address: refused
    /// before any check, for this long.
    #[error("too many failed password checks")]
    Locked {
        /// Time left on the lock.
        retry_after: Duration,
    },
    /// The new password contains personal information.
    #[error(transparent)]
    WeakPassword(PasswordError),
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The authentication use cases.
#[derive(Clone)]
pub struct AuthService {
    ports: Ports,
    config: AuthConfig,
    throttle: Throttle,
}

impl AuthService {
    /// Builds the service.
    #[must_use]
    pub fn new(ports: Ports, config: AuthConfig) -> Self {
        let throttle = Throttle::new(ports.throttle.clone(), ports.audit.clone(), config.lockout);
        Self {
            ports,
            config,
            throttle,
        }
    }

    /// Creates an ordinary, active account.
    ///
    /// # Errors
    /// [`RegisterError`].
    #[tracing::instrument(skip_all, fields(username = %cmd.username))]
    pub async fn register(
        &self,
        cmd: RegisterUser,
        client: &ClientInfo,
    ) -> Result<User, RegisterError> {
        let cmd = CreateUser {
            email: cmd.email,
            username: cmd.username,
            password: cmd.password,
            full_name: cmd.full_name,
            is_active: None,
            is_superuser: None,
            is_verified: None,
        };
        let event = AuditEvent::new(AuditKind::UserRegistered, self.ports.clock.now(), client);
        let user = super::insert_user(&self.ports, self.config.password_policy, cmd, event).await?;
        info!(user_id = %user.id, "user registered");
        Ok(user)
    }

    /// Checks credentials and opens a session.
    ///
    /// Every failure path verifies one bcrypt hash, so an unknown account, a
    /// deactivated one and a wrong password take the same time, and all
    /// three count against the login name as typed, so that a lockout says
    /// nothing about which accounts exist either.
    ///
    /// # Errors
    /// [`LoginError`].
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, request: LoginRequest) -> Result<IssuedTokens, LoginError> {
        let login = request.login.trim().to_lowercase();
        let address = request.client.ip.clone();
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
                    None => "unknown_account",
                    Some(_) if matches => "inactive",
                    Some(_) => "wrong_password",
                };
                warn!(
                    user_id = other.as_ref().map(|u| u.id.to_string()),
                    reason, "login failed"
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
                .reason("email_not_verified");
            self.ports.audit.record(&event).await?;
            return Err(LoginError::EmailNotVerified);
        }
        let refresh = self.ports.tokens.new_refresh_token()?;
        let event = AuditEvent::new(AuditKind::LoginSucceeded, now, &request.client).own(user.id);
        let session = NewSession {
            id: SessionId::generate(),
            user_id: user.id,
            refresh_token_hash: refresh.hash.clone(),
            created_at: now,
            expires_at: now + self.config.refresh_token_ttl,
            client: request.client,
        };
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
        self.ports.users.record_login(user.id, now).await?;
        info!(user_id = %user.id, session_id = %session.id, "login succeeded");
        Ok(self.issue(user.id, session.id, refresh, now)?)
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

    /// Deletes ended sessions and stale failed-login state, so that neither
    /// table grows without bound.
    ///
    /// # Errors
    /// [`PortError`].
    pub async fn purge_ended_sessions(&self) -> Result<u64, PortError> {
        let now = self.ports.clock.now();
        let purged = self.ports.sessions.purge_ended(now).await?;
        let forgotten = self.throttle.purge(now).await?;
        if purged > 0 || forgotten > 0 {
            info!(
                purged,
                forgotten, "ended sessions and old login failures deleted"
            );
        }
        Ok(purged + forgotten)
    }

    /// Spends a refresh token for a new token pair in the same session.
    ///
    /// A token that was already spent is taken as stolen and its whole
    /// session is revoked, unless it was spent less than the grace window
    /// ago and its successor is still current: then the caller raced its own
    /// refresh and gets that same successor. Of concurrent refreshes of one
    /// token exactly one rotates; the others are reuse.
    ///
    /// # Errors
    /// [`RefreshError`].
    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        presented: &str,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, RefreshError> {
        let hash = self.ports.tokens.hash_refresh_token(presented);
        let now = self.ports.clock.now();
        if let Some(session) = self.ports.sessions.find_by_refresh_token(&hash).await? {
            if !session.is_live(now) {
                return Err(RefreshError::InvalidToken);
            }
            self.ensure_active(session.user_id, session.id, now).await?;
            let next = self.ports.tokens.successor_refresh_token(presented);
            let expires_at = now + self.config.refresh_token_ttl;
            if self
                .ports
                .sessions
                .rotate(session.id, &hash, &next.hash, now, expires_at)
                .await?
            {
                return Ok(self.issue(session.user_id, session.id, next, now)?);
            }
            // Another request spent the same token between our read and write.
        }
        let Some((session_id, spent_at)) = self.ports.sessions.find_by_spent_token(&hash).await?
        else {
            return Err(RefreshError::InvalidToken);
        };
        let grace = self.config.refresh_reuse_grace;
        if grace.is_positive() && now - spent_at <= grace {
            let next = self.ports.tokens.successor_refresh_token(presented);
            let current = self
                .ports
                .sessions
                .find_by_refresh_token(&next.hash)
                .await?;
            if let Some(session) = current.filter(|s| s.id == session_id && s.is_live(now)) {
                self.ensure_active(session.user_id, session.id, now).await?;
                return Ok(self.issue(session.user_id, session.id, next, now)?);
            }
        }
        warn!(%session_id, "spent refresh token presented again; revoking its session");
        let event = AuditEvent::new(AuditKind::TokenReuseDetected, now, client).session(session_id);
        self.ports
            .sessions
            .revoke(session_id, now, Some(event))
            .await?;
        Err(RefreshError::InvalidToken)
    }

    /// Refuses (and ends) the session of a user who is no longer active.
    async fn ensure_active(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
    ) -> Result<(), RefreshError> {
        let active = self
            .ports
            .users
            .find_by_id(user)
            .await?
            .is_some_and(|u| u.is_active);
        if !active {
            self.ports.sessions.revoke(session, now, None).await?;
            return Err(RefreshError::InvalidToken);
        }
        Ok(())
    }

    /// Resolves a bearer token to an active user with a live session.
    ///
    /// # Errors
    /// [`AuthenticateError`].
    pub async fn authenticate(
        &self,
        access_token: &str,
    ) -> Result<Authenticated, AuthenticateError> {
        let claims = self.claimed_user(access_token)?;
        let now = self.ports.clock.now();
        let user = self
            .ports
            .sessions
            .find_active_user(claims.user_id, claims.session_id, now)
            .await?
            .ok_or(AuthenticateError::InvalidToken)?;
        Ok(Authenticated {
            user,
            session_id: claims.session_id,
        })
    }

    /// Whom a validly signed access token names, without asking the store
    /// whether its session is still live: enough to charge a per-caller
    /// budget before any database work, never enough to authorise.
    ///
    /// # Errors
    /// [`AuthenticateError::InvalidToken`] for a token that is not a valid access token.
    pub fn claimed_user(&self, access_token: &str) -> Result<AccessClaims, AuthenticateError> {
        self.ports
            .tokens
            .verify_access_token(access_token)
            .map_err(|err| match err {
                TokenError::Invalid(reason) => {
                    tracing::debug!(%reason, "access token refused");
                    AuthenticateError::InvalidToken
                }
                TokenError::Port(err) => AuthenticateError::Port(err),
            })
    }

    /// Ends the caller's own session: its refresh token and every access
    /// token carrying its id stop working at once.
    ///
    /// # Errors
    /// [`PortError`].
    pub async fn logout(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
    ) -> Result<(), PortError> {
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::SessionEnded, now, client)
            .own(caller.user.id)
            .session(caller.session_id);
        self.ports
            .sessions
            .revoke(caller.session_id, now, Some(event))
            .await?;
        info!(user_id = %caller.user.id, session_id = %caller.session_id, "logged out");
        Ok(())
    }

    /// Ends every session of the caller, this one included.
    ///
    /// # Errors
    /// [`PortError`].
    pub async fn logout_all(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
    ) -> Result<(), PortError> {
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::SessionsEndedAll, now, client).own(caller.user.id);
        self.ports
            .sessions
            .revoke_all_for_user(caller.user.id, None, now, Some(event))
            .await?;
        info!(user_id = %caller.user.id, "logged out everywhere");
        Ok(())
    }

    /// The caller's live sessions, the current one marked.
    ///
    /// # Errors
    /// [`PortError`].
    pub async fn sessions(&self, caller: &Authenticated) -> Result<Vec<SessionSummary>, PortError> {
        let now = self.ports.clock.now();
        let sessions = self
            .ports
            .sessions
            .list_live_for_user(caller.user.id, now)
            .await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionSummary {
                current: session.id == caller.session_id,
                session,
            })
            .collect())
    }

    /// Ends one of the caller's sessions.
    ///
    /// # Errors
    /// [`EndSessionError::NotFound`] for a session that is not a live one of the caller.
    pub async fn end_session(
        &self,
        caller: &Authenticated,
        session: SessionId,
        client: &ClientInfo,
    ) -> Result<(), EndSessionError> {
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::SessionEnded, now, client)
            .own(caller.user.id)
            .session(session);
        if !self
            .ports
            .sessions
            .revoke_for_user(caller.user.id, session, now, &event)
            .await?
        {
            return Err(EndSessionError::NotFound);
        }
        info!(user_id = %caller.user.id, session_id = %session, "session ended");
        Ok(())
    }

    /// Replaces the caller's password after checking the current one, and
    /// ends every other session (the caller's stays). A wrong current
    /// password counts as a failed login of the caller's username from this
    /// address, so a stolen access token is no password-guessing oracle.
    /// The write succeeds only if the password is still the one checked: of
    /// concurrent changes one wins, and a reset that landed meanwhile stands.
    ///
    /// # Errors
    /// [`ChangePasswordError`].
    #[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
    pub async fn change_password(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
        current: &SecretString,
        new: Password,
    ) -> Result<(), ChangePasswordError> {
        let user = &caller.user;
        let name = user.username.as_str();
        let address = client.ip.as_deref();
        let now = self.ports.clock.now();
        if let Some(retry_after) = self.throttle.refusal(name, address, now).await? {
            return Err(ChangePasswordError::Locked { retry_after });
        }
        if !self
            .ports
            .hasher
            .verify(current, &user.password_hash)
            .await?
        {
            warn!("password change refused: wrong current password");
            let event = AuditEvent::new(AuditKind::LoginFailed, now, client)
                .about(user.id)
                .reason("wrong_current_password");
            self.throttle.failed(name, address, now, event).await?;
            return Err(ChangePasswordError::WrongPassword);
        }
        self.config
            .password_policy
            .check(&new, &user.username, &user.email)
            .map_err(ChangePasswordError::WeakPassword)?;
        let hash = self.ports.hasher.hash(&new).await?;
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::PasswordChanged, now, client).own(user.id);
        if !self
            .ports
            .users
            .replace_password_hash(user.id, &user.password_hash, &hash, now, Some(event))
            .await?
        {
            warn!("password change refused: the password changed meanwhile");
            return Err(ChangePasswordError::WrongPassword);
        }
        self.ports
            .sessions
            .revoke_all_for_user(user.id, Some(caller.session_id), now, None)
            .await?;
        info!("password changed; other sessions ended");
        Ok(())
    }

    fn issue(
        &self,
        user_id: UserId,
        session_id: SessionId,
        refresh: RefreshToken,
        now: OffsetDateTime,
    ) -> Result<IssuedTokens, PortError> {
        let access = self
            .ports
            .tokens
            .issue_access_token(user_id, session_id, now)
            .map_err(|err| match err {
                TokenError::Port(err) => err,
                TokenError::Invalid(reason) => PortError::unexpected(reason),
            })?;
        Ok(IssuedTokens {
            access_token: access.token,
            refresh_token: refresh.secret,
            expires_in: access.expires_in,
            user_id,
            session_id,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::model::{PasswordHash, RefreshTokenHash, Session};
    use crate::ports::{AccessClaims, AccessToken};
    use crate::ports::{InsertUserError, ThrottleState};
    use crate::services::fixtures::{Mocks, NOW, password, user};

    fn service(mocks: Mocks) -> AuthService {
        service_with_grace(mocks, Duration::ZERO)
    }

    fn service_with_grace(mocks: Mocks, grace: Duration) -> AuthService {
        AuthService::new(mocks.ports(), config(grace))
    }

    fn config(grace: Duration) -> AuthConfig {
        AuthConfig {
            refresh_token_ttl: Duration::days(7),
            refresh_reuse_grace: grace,
            lockout: LockoutPolicy::default(),
            password_policy: PasswordPolicy::default(),
            require_verified_email: false,
        }
    }

    fn registration(name: &str, pw: &str) -> RegisterUser {
        RegisterUser {
            email: Email::parse(&format!("{name}@example.com")).unwrap(),
            username: Username::parse(name).unwrap(),
            password: password(pw),
            full_name: None,
        }
    }

    fn expect_tokens(mocks: &mut Mocks) {
        mocks
            .tokens
            .expect_successor_refresh_token()
            .returning(|_| RefreshToken {
                secret: SecretString::from("fresh"),
                hash: RefreshTokenHash::new("fresh-hash".into()),
            });
        // Hashes are current unless a test says otherwise.
        mocks.hasher.expect_needs_rehash().return_const(false);
        mocks.tokens.expect_new_refresh_token().returning(|| {
            Ok(RefreshToken {
                secret: SecretString::from("fresh"),
                hash: RefreshTokenHash::new("fresh-hash".into()),
            })
        });
        mocks
            .tokens
            .expect_issue_access_token()
            .returning(|_, _, _| {
                Ok(AccessToken {
                    token: "jwt".into(),
                    expires_in: 1800,
                })
            });
    }

    fn login(login: &str, pw: &str) -> LoginRequest {
        LoginRequest {
            login: login.into(),
            password: SecretString::from(pw),
            client: ClientInfo::default(),
        }
    }

    fn session(user: &User) -> Session {
        Session {
            id: SessionId::generate(),
            user_id: user.id,
            created_at: NOW,
            last_used_at: NOW,
            expires_at: NOW + Duration::days(1),
            revoked_at: None,
            client: ClientInfo::default(),
        }
    }

    #[tokio::test]
    async fn register_stores_an_active_ordinary_user_with_a_hashed_password() {
        let mut mocks = Mocks::default();
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("bcrypt".into())));
        mocks
            .users
            .expect_insert()
            .withf(|u, _| {
                u.is_active
                    && !u.is_superuser
                    && !u.is_verified
                    && u.password_hash.as_str() == "bcrypt"
                    && u.created_at == NOW
            })
            .times(1)
            .returning(|_, _| Ok(()));
        mocks
            .mail
            .expect_enqueue()
            .with(
                eq(crate::model::MailKind::VerifyEmail),
                eq("ada@example.com"),
                eq(NOW),
                mockall::predicate::always(),
            )
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let user = service(mocks)
            .register(
                registration("ada", "correct horse battery"),
                &ClientInfo::default(),
            )
            .await
            .unwrap();
        assert_eq!(user.username.as_str(), "ada");
        assert_eq!(user.last_login_at, None);
    }

    #[tokio::test]
    async fn a_registration_stands_when_its_verification_mail_cannot_be_queued() {
        let mut mocks = Mocks::default();
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("bcrypt".into())));
        mocks.users.expect_insert().returning(|_, _| Ok(()));
        mocks
            .mail
            .expect_enqueue()
            .returning(|_, _, _, _| Err(PortError::Unavailable("down".into())));
        let user = service(mocks)
            .register(
                registration("ada", "correct horse battery"),
                &ClientInfo::default(),
            )
            .await
            .unwrap();
        assert!(!user.is_verified);
    }

    /// Mocks of a login with the right password by `user`.
    fn right_password(user: User) -> Mocks {
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_login()
            .returning(move |_| Ok(Some(user.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(true));
        mocks.throttle_permissive();
        mocks
    }

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
                    && e.details.reason.as_deref() == Some("email_not_verified")
                    && e.subject_id.is_some()
                    && e.actor_id.is_none()
            })
            .times(1)
            .returning(|_| Ok(()));
        let err = AuthService::new(mocks.ports(), strict)
            .login(login("ada", "pw"))
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::EmailNotVerified));

        // A wrong password says nothing about verification.
        let mut mocks = Mocks::default();
        let ada = user("ada");
        mocks
            .users
            .expect_find_by_login()
            .returning(move |_| Ok(Some(ada.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(false));
        mocks.throttle_permissive();
        let err = AuthService::new(mocks.ports(), strict)
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
        AuthService::new(mocks.ports(), strict)
            .login(login("ada", "pw"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn register_refuses_a_password_containing_the_username_before_hashing() {
        let mocks = Mocks::default(); // no hash or insert expected
        let err = service(mocks)
            .register(registration("ada", "xx-ADA-1234"), &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            RegisterError::WeakPassword(PasswordError::ContainsUsername)
        ));
    }

    #[tokio::test]
    async fn register_reports_the_unique_constraint_that_refused_the_row() {
        for (save, expected) in [
            (InsertUserError::EmailTaken, "email"),
            (InsertUserError::UsernameTaken, "username"),
        ] {
            let mut mocks = Mocks::default();
            mocks
                .hasher
                .expect_hash()
                .returning(|_| Ok(PasswordHash::new("h".into())));
            let mut save = Some(save);
            mocks
                .users
                .expect_insert()
                .returning(move |_, _| Err(save.take().unwrap()));
            let err = service(mocks)
                .register(registration("ada", "correct horse"), &ClientInfo::default())
                .await
                .unwrap_err();
            match (err, expected) {
                (RegisterError::EmailTaken, "email")
                | (RegisterError::UsernameTaken, "username") => {}
                (err, _) => panic!("unexpected {err:?}"),
            }
        }
    }

    #[tokio::test]
    async fn login_with_the_right_password_opens_a_session_and_records_the_login() {
        let ada = user("ada");
        let id = ada.id;
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_login()
            .with(eq("ada@example.com"))
            .returning(move |_| Ok(Some(ada.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(true));
        mocks
            .sessions
            .expect_create()
            .withf(move |s, hash, event| {
                s.user_id == id
                    && s.expires_at == NOW + Duration::days(7)
                    && s.refresh_token_hash.as_str() == "fresh-hash"
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
        let tokens = service(mocks)
            .login(login("  Ada@Example.com ", "pw"))
            .await
            .unwrap();
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
                    && event.details.reason.as_deref() == Some("unknown_account")
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
        let err = service(mocks)
            .login(login("nobody", "pw"))
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn login_refuses_a_wrong_password_after_verifying_it() {
        let ada = user("ada");
        let id = ada.id;
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_login()
            .returning(move |_| Ok(Some(ada.clone())));
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
                    && event.details.reason.as_deref() == Some("wrong_password")
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(ThrottleState::default()));
        let err = service(mocks)
            .login(login("ada", "wrong"))
            .await
            .unwrap_err();
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
        mocks
            .users
            .expect_find_by_login()
            .returning(move |_| Ok(Some(ada.clone())));
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));
        let err = service(mocks)
            .login(login("ada", "right"))
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn refresh_rotates_the_token_within_the_same_session() {
        let ada = user("ada");
        let live = session(&ada);
        let sid = live.id;
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_refresh_token()
            .returning(|_| RefreshTokenHash::new("old".into()));
        mocks
            .sessions
            .expect_find_by_refresh_token()
            .returning(move |_| Ok(Some(live.clone())));
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(ada.clone())));
        mocks
            .sessions
            .expect_rotate()
            .withf(move |id, old, new, now, exp| {
                *id == sid
                    && old.as_str() == "old"
                    && new.as_str() == "fresh-hash"
                    && *now == NOW
                    && *exp == NOW + Duration::days(7)
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(true));
        expect_tokens(&mut mocks);
        let tokens = service(mocks)
            .refresh("old-secret", &ClientInfo::default())
            .await
            .unwrap();
        assert_eq!(tokens.session_id, sid);
    }

    #[tokio::test]
    async fn refresh_with_a_spent_token_revokes_the_whole_session() {
        let sid = SessionId::generate();
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_refresh_token()
            .returning(|_| RefreshTokenHash::new("spent".into()));
        mocks
            .sessions
            .expect_find_by_refresh_token()
            .returning(|_| Ok(None));
        mocks
            .sessions
            .expect_find_by_spent_token()
            .returning(move |_| Ok(Some((sid, NOW - Duration::seconds(10)))));
        mocks
            .sessions
            .expect_revoke()
            .withf(move |id, at, event| {
                *id == sid
                    && *at == NOW
                    && event.as_ref().is_some_and(|e| {
                        e.kind == AuditKind::TokenReuseDetected
                            && e.details.session_id == Some(sid)
                            && e.subject_id.is_none()
                    })
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let err = service(mocks)
            .refresh("spent-secret", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::InvalidToken));
    }

    #[tokio::test]
    async fn refresh_with_an_unknown_token_revokes_nothing() {
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_refresh_token()
            .returning(|_| RefreshTokenHash::new("x".into()));
        mocks
            .sessions
            .expect_find_by_refresh_token()
            .returning(|_| Ok(None));
        mocks
            .sessions
            .expect_find_by_spent_token()
            .returning(|_| Ok(None));
        let err = service(mocks)
            .refresh("garbage", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::InvalidToken));
    }

    #[tokio::test]
    async fn refresh_of_an_expired_or_revoked_session_is_refused() {
        let ada = user("ada");
        for s in [
            Session {
                expires_at: NOW,
                ..session(&ada)
            },
            Session {
                revoked_at: Some(NOW),
                ..session(&ada)
            },
        ] {
            let mut mocks = Mocks::default();
            mocks
                .tokens
                .expect_hash_refresh_token()
                .returning(|_| RefreshTokenHash::new("x".into()));
            mocks
                .sessions
                .expect_find_by_refresh_token()
                .returning(move |_| Ok(Some(s.clone())));
            let err = service(mocks)
                .refresh("t", &ClientInfo::default())
                .await
                .unwrap_err();
            assert!(matches!(err, RefreshError::InvalidToken));
        }
    }

    #[tokio::test]
    async fn refresh_that_loses_a_race_revokes_the_session_instead_of_forking_it() {
        let ada = user("ada");
        let live = session(&ada);
        let sid = live.id;
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_refresh_token()
            .returning(|_| RefreshTokenHash::new("old".into()));
        mocks
            .sessions
            .expect_find_by_refresh_token()
            .returning(move |_| Ok(Some(live.clone())));
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(ada.clone())));
        mocks
            .tokens
            .expect_successor_refresh_token()
            .returning(|_| RefreshToken {
                secret: SecretString::from("n"),
                hash: RefreshTokenHash::new("n".into()),
            });
        mocks
            .sessions
            .expect_rotate()
            .returning(|_, _, _, _, _| Ok(false));
        // The winner recorded the token as spent a moment ago.
        mocks
            .sessions
            .expect_find_by_spent_token()
            .returning(move |_| Ok(Some((sid, NOW))));
        mocks
            .sessions
            .expect_revoke()
            .with(eq(sid), eq(NOW), mockall::predicate::always())
            .times(1)
            .returning(|_, _, _| Ok(()));
        let err = service(mocks)
            .refresh("old", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::InvalidToken));
    }

    #[tokio::test]
    async fn refresh_for_a_deactivated_user_is_refused() {
        let ada = User {
            is_active: false,
            ..user("ada")
        };
        let live = session(&ada);
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_refresh_token()
            .returning(|_| RefreshTokenHash::new("old".into()));
        mocks
            .sessions
            .expect_find_by_refresh_token()
            .returning(move |_| Ok(Some(live.clone())));
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(ada.clone())));
        mocks
            .sessions
            .expect_revoke()
            .withf(|_, _, event| event.is_none())
            .times(1)
            .returning(|_, _, _| Ok(()));
        assert!(matches!(
            service(mocks).refresh("old", &ClientInfo::default()).await,
            Err(RefreshError::InvalidToken)
        ));
    }

    #[tokio::test]
    async fn authenticate_resolves_the_user_of_a_live_session() {
        let ada = user("ada");
        let (uid, sid) = (ada.id, SessionId::generate());
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_verify_access_token()
            .returning(move |_| {
                Ok(AccessClaims {
                    user_id: uid,
                    session_id: sid,
                })
            });
        mocks
            .sessions
            .expect_find_active_user()
            .with(eq(uid), eq(sid), eq(NOW))
            .returning(move |_, _, _| Ok(Some(ada.clone())));
        let auth = service(mocks).authenticate("jwt").await.unwrap();
        assert_eq!((auth.user.id, auth.session_id), (uid, sid));
    }

    #[tokio::test]
    async fn authenticate_refuses_a_valid_token_whose_session_ended() {
        let mut mocks = Mocks::default();
        mocks.tokens.expect_verify_access_token().returning(|_| {
            Ok(AccessClaims {
                user_id: UserId::generate(),
                session_id: SessionId::generate(),
            })
        });
        mocks
            .sessions
            .expect_find_active_user()
            .returning(|_, _, _| Ok(None));
        assert!(matches!(
            service(mocks).authenticate("jwt").await,
            Err(AuthenticateError::InvalidToken)
        ));
    }

    #[tokio::test]
    async fn authenticate_refuses_a_bad_token_without_touching_storage() {
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_verify_access_token()
            .returning(|_| Err(TokenError::Invalid("bad signature".into())));
        assert!(matches!(
            service(mocks).authenticate("jwt").await,
            Err(AuthenticateError::InvalidToken)
        ));
    }

    fn caller(user: &User) -> Authenticated {
        Authenticated {
            user: user.clone(),
            session_id: SessionId::generate(),
        }
    }

    #[tokio::test]
    async fn change_password_checks_the_current_one_and_keeps_only_this_session() {
        let ada = user("ada");
        let me = caller(&ada);
        let (uid, sid) = (ada.id, me.session_id);
        let mut mocks = Mocks::default();
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));
        mocks
            .hasher
            .expect_hash()
            .times(1)
            .returning(|_| Ok(PasswordHash::new("new".into())));
        mocks.throttle_clear();
        // Written only if the hash is still the one the current password matched.
        mocks
            .users
            .expect_replace_password_hash()
            .withf(move |id, old, new, _, event| {
                *id == uid
                    && old.as_str() == "hash-of-ada"
                    && new.as_str() == "new"
                    && event.as_ref().is_some_and(|e| {
                        e.kind == AuditKind::PasswordChanged
                            && e.actor_id == Some(uid)
                            && e.subject_id == Some(uid)
                    })
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(true));
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .with(
                eq(uid),
                eq(Some(sid)),
                eq(NOW),
                mockall::predicate::always(),
            )
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        service(mocks)
            .change_password(
                &me,
                &ClientInfo::default(),
                &SecretString::from("old"),
                password("brand new secret"),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn change_password_refuses_a_wrong_current_password_and_changes_nothing() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.hasher.expect_verify().returning(|_, _| Ok(false));
        // A wrong current password counts as a failed login of the user.
        mocks.throttle_clear();
        mocks
            .throttle
            .expect_record_failure()
            .withf(|name, _, _, _, _| name == "ada")
            .times(1)
            .returning(|_, _, _, _, _| Ok(ThrottleState::default()));
        let err = service(mocks)
            .change_password(
                &caller(&ada),
                &ClientInfo::default(),
                &SecretString::from("wrong"),
                password("brand new secret"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ChangePasswordError::WrongPassword));
    }

    #[tokio::test]
    async fn change_password_refuses_a_new_password_with_the_username() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.throttle_clear();
        mocks.hasher.expect_verify().returning(|_, _| Ok(true));
        let err = service(mocks)
            .change_password(
                &caller(&ada),
                &ClientInfo::default(),
                &SecretString::from("old"),
                password("i-am-ada-1234"),
            )
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            ChangePasswordError::WeakPassword(PasswordError::ContainsUsername)
        ));
    }

    #[tokio::test]
    async fn ending_a_session_that_is_not_the_callers_is_not_found() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_revoke_for_user()
            .returning(|_, _, _, _| Ok(false));
        let err = service(mocks)
            .end_session(&caller(&ada), SessionId::generate(), &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, EndSessionError::NotFound));
    }

    #[tokio::test]
    async fn sessions_marks_the_callers_own_session_as_current() {
        let ada = user("ada");
        let me = caller(&ada);
        let (mine, other) = (
            Session {
                id: me.session_id,
                ..session(&ada)
            },
            session(&ada),
        );
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_list_live_for_user()
            .returning(move |_, _| Ok(vec![mine.clone(), other.clone()]));
        let listed = service(mocks).sessions(&me).await.unwrap();
        assert_eq!(
            listed.iter().map(|s| s.current).collect::<Vec<_>>(),
            [true, false]
        );
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
        let err = service(mocks)
            .login(login("ada", "right"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, LoginError::Locked { retry_after } if retry_after == Duration::seconds(42))
        );
    }

    #[tokio::test]
    async fn an_exhausted_name_budget_refuses_from_every_address() {
        let mut mocks = Mocks::default();
        mocks.throttle.expect_state().returning(|_, _| {
            Ok(ThrottleState {
                name_failures: 100,
                name_window_start: Some(NOW - Duration::minutes(15)),
                ..ThrottleState::default()
            })
        });
        let err = service(mocks)
            .login(login("ada", "right"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, LoginError::Locked { retry_after } if retry_after == Duration::minutes(45))
        );
    }

    #[tokio::test]
    async fn an_expired_lock_no_longer_refuses() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.throttle.expect_state().returning(|_, _| {
            Ok(ThrottleState {
                pair_locked_until: Some(NOW),
                ..ThrottleState::default()
            })
        });
        mocks.throttle.expect_clear_pair().returning(|_, _| Ok(()));
        mocks
            .users
            .expect_find_by_login()
            .returning(move |_| Ok(Some(ada.clone())));
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
        assert!(service(mocks).login(login("ada", "right")).await.is_ok());
    }

    #[tokio::test]
    async fn the_fifth_failure_of_a_pair_locks_it_for_the_next_doubled_period() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_login()
            .returning(move |_| Ok(Some(ada.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(false));
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
        let err = service(mocks)
            .login(login("ada", "wrong"))
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn failures_below_the_limit_are_only_counted() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_login()
            .returning(move |_| Ok(Some(ada.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(false));
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
        let err = service(mocks)
            .login(login("ada", "wrong"))
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn a_login_whose_user_changed_while_bcrypt_ran_gets_no_session() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks.throttle_permissive();
        mocks
            .users
            .expect_find_by_login()
            .returning(move |_| Ok(Some(ada.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(true));
        mocks.tokens.expect_new_refresh_token().returning(|| {
            Ok(RefreshToken {
                secret: SecretString::from("r"),
                hash: RefreshTokenHash::new("r".into()),
            })
        });
        // Deactivated or given a new password meanwhile: the insert's condition fails.
        mocks
            .sessions
            .expect_create()
            .returning(|_, _, _| Ok(false));
        mocks.users.expect_record_login().never();
        let err = service(mocks)
            .login(login("ada", "right"))
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }

    #[tokio::test]
    async fn a_hash_of_an_older_cost_is_replaced_at_a_successful_login() {
        let ada = user("ada");
        let id = ada.id;
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_login()
            .returning(move |_| Ok(Some(ada.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(true));
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
        mocks.tokens.expect_new_refresh_token().returning(|| {
            Ok(RefreshToken {
                secret: SecretString::from("r"),
                hash: RefreshTokenHash::new("r".into()),
            })
        });
        mocks
            .tokens
            .expect_issue_access_token()
            .returning(|_, _, _| {
                Ok(AccessToken {
                    token: "jwt".into(),
                    expires_in: 1800,
                })
            });
        assert!(
            service(mocks)
                .login(login("ada", "correct horse battery"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn purging_deletes_sessions_ended_by_now() {
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_purge_ended()
            .with(eq(NOW))
            .times(1)
            .returning(|_| Ok(3));
        // Failed-login state is kept twice as long as the longest lock or window.
        mocks
            .throttle
            .expect_purge()
            .with(eq(NOW - Duration::hours(2)))
            .times(1)
            .returning(|_| Ok(2));
        assert_eq!(service(mocks).purge_ended_sessions().await.unwrap(), 5);
    }

    /// A spent token `old` of a session whose current token is `succ`.
    fn spent_within(mocks: &mut Mocks, session: &Session, spent_at: OffsetDateTime) {
        let (live, sid) = (session.clone(), session.id);
        mocks
            .tokens
            .expect_hash_refresh_token()
            .returning(|_| RefreshTokenHash::new("old".into()));
        mocks
            .tokens
            .expect_successor_refresh_token()
            .returning(|_| RefreshToken {
                secret: SecretString::from("succ"),
                hash: RefreshTokenHash::new("succ".into()),
            });
        mocks
            .sessions
            .expect_find_by_refresh_token()
            .returning(move |hash| Ok((hash.as_str() == "succ").then(|| live.clone())));
        mocks
            .sessions
            .expect_find_by_spent_token()
            .returning(move |_| Ok(Some((sid, spent_at))));
    }

    #[tokio::test]
    async fn within_the_grace_window_a_spent_token_yields_the_same_successor() {
        let ada = user("ada");
        let live = session(&ada);
        let mut mocks = Mocks::default();
        spent_within(&mut mocks, &live, NOW - Duration::seconds(3));
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(Some(ada.clone())));
        mocks
            .tokens
            .expect_issue_access_token()
            .returning(|_, _, _| {
                Ok(AccessToken {
                    token: "jwt".into(),
                    expires_in: 1800,
                })
            });
        // Neither rotate nor revoke is expected.
        let tokens = service_with_grace(mocks, Duration::seconds(5))
            .refresh("old-secret", &ClientInfo::default())
            .await
            .unwrap();
        assert_eq!(tokens.refresh_token.expose_secret(), "succ");
        assert_eq!(tokens.session_id, live.id);
    }

    #[tokio::test]
    async fn after_the_grace_window_a_spent_token_revokes_the_session() {
        let ada = user("ada");
        let live = session(&ada);
        let sid = live.id;
        let mut mocks = Mocks::default();
        spent_within(&mut mocks, &live, NOW - Duration::seconds(6));
        mocks
            .sessions
            .expect_revoke()
            .with(eq(sid), eq(NOW), mockall::predicate::always())
            .times(1)
            .returning(|_, _, _| Ok(()));
        let err = service_with_grace(mocks, Duration::seconds(5))
            .refresh("old-secret", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, RefreshError::InvalidToken));
    }
}
