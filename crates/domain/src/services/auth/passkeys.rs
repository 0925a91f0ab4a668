//! Passkeys: added by a signed-in user who proves it is them, listed,
//! renamed and removed (never the last way in), and signing in alone.

use secrecy::{ExposeSecret, SecretString};
use time::Duration;
use tracing::{info, warn};

use super::password::Proof;
use super::{AuthConfig, Authenticated, IssuedTokens};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, CEREMONY_TTL, CeremonyKind, ClientInfo, MAX_PASSKEYS_PER_USER,
    MFA_CHALLENGE_ATTEMPTS, MailKind, NewPasskey, Passkey, PasskeyId, PasskeyName, SignInProof,
    UndoTarget, User, UserId,
};
use crate::ports::{CeremonyError, CheckedAssertion, CreatePasskeyError, PasskeyRemoval};
use crate::services::PasskeyPorts;
use crate::services::throttle::Throttle;

/// Why a passkey could not be added, renamed or removed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The request came with a personal access token.
    #[error("not allowed with a personal access token")]
    NotWithToken,
    /// An account with a password sent none.
    #[error("the current password is required")]
    PasswordRequired,
    /// The current password was wrong (counted as a failed login).
    #[error("wrong password")]
    WrongPassword,
    /// Too many failed password checks: refused for this long.
    #[error("locked")]
    Locked {
        /// Time left on the lock.
        retry_after: Duration,
    },
    /// An account without a password whose session signed in too long ago.
    #[error("sign in again first")]
    ReauthenticationRequired,
    /// The account holds the most passkeys allowed already.
    #[error("too many passkeys")]
    TooMany,
    /// The browser's answer failed a check, or the token is unknown,
    /// spent, expired or another user's.
    #[error("invalid passkey")]
    Invalid,
    /// The credential is registered already.
    #[error("credential already registered")]
    AlreadyRegistered,
    /// No such passkey of the caller's.
    #[error("not found")]
    NotFound,
    /// No such user (a superuser's removal).
    #[error("user not found")]
    UnknownUser,
    /// It is the caller's last way in.
    #[error("cannot remove the last sign-in method")]
    LastMethod,
    /// Someone not a superuser acting on another user's passkeys.
    #[error("forbidden")]
    Forbidden,
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a sign-in with a passkey failed: every reason looks the same.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyLoginError {
    /// Unknown credential, failed check, spent or expired token, inactive user.
    #[error("invalid passkey")]
    Invalid,
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Options for the browser and the opaque token that finishes the ceremony.
#[derive(Debug)]
pub struct CeremonyOptions {
    /// `{"publicKey": …}`, WebAuthn Level 3's JSON form.
    pub options: String,
    /// Single use, for 5 minutes.
    pub token: SecretString,
}

/// Passkeys.
#[derive(Clone)]
pub struct PasskeyService {
    pub(super) ports: PasskeyPorts,
    pub(super) throttle: Throttle,
    config: AuthConfig,
}

impl PasskeyService {
    /// A wrong password counts against `config.lockout`; an account without
    /// one re-authenticates within `config.reauth_window`.
    #[must_use]
    pub fn new(ports: PasskeyPorts, config: AuthConfig) -> Self {
        let throttle = Throttle::new(ports.throttle.clone(), ports.audit.clone(), config.lockout);
        Self {
            ports,
            throttle,
            config,
        }
    }

    /// The caller's passkeys, oldest first.
    pub async fn list(&self, caller: &Authenticated) -> Result<Vec<Passkey>, PortError> {
        self.ports.passkeys.list(caller.user.id).await
    }

    /// Starts adding a passkey to the caller, who proves it is them: with
    /// their password, or, for an account without one, by a session that
    /// signed in within the re-authentication window. A stolen access
    /// token alone opens no new way in.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
    pub async fn registration_options(
        &self,
        caller: &Authenticated,
        current_password: Option<&SecretString>,
        client: &ClientInfo,
    ) -> Result<CeremonyOptions, PasskeyError> {
        if caller.token().is_some() {
            return Err(PasskeyError::NotWithToken);
        }
        let user = &caller.user;
        if user.password_hash.is_set() {
            let password = current_password.ok_or(PasskeyError::PasswordRequired)?;
            match self.password_check().prove(user, client, password).await? {
                Proof::Proven => {}
                Proof::Wrong => {
                    warn!("passkey registration refused: wrong password");
                    return Err(PasskeyError::WrongPassword);
                }
                Proof::Locked { retry_after } => return Err(PasskeyError::Locked { retry_after }),
            }
        } else if !super::signed_in_within(
            self.ports.sessions.as_ref(),
            self.ports.clock.now(),
            caller,
            self.config.reauth_window,
        )
        .await?
        {
            return Err(PasskeyError::ReauthenticationRequired);
        }
        let existing = self.ports.passkeys.credentials(user.id).await?;
        if existing.len() as u64 >= MAX_PASSKEYS_PER_USER {
            return Err(PasskeyError::TooMany);
        }
        let start = self.ports.ceremonies.start_registration(user, &existing)?;
        let token = self
            .begin(CeremonyKind::Register, Some(user.id), start.state)
            .await?;
        Ok(CeremonyOptions {
            options: start.options,
            token,
        })
    }

    /// Finishes adding a passkey: the token must be the caller's live
    /// registration, and the browser's answer must pass every check.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user.id))]
    pub async fn register(
        &self,
        caller: &Authenticated,
        token: &str,
        response: &str,
        name: Option<PasskeyName>,
        client: &ClientInfo,
    ) -> Result<Passkey, PasskeyError> {
        if caller.token().is_some() {
            return Err(PasskeyError::NotWithToken);
        }
        let user = &caller.user;
        let now = self.ports.clock.now();
        let hash = self.ports.tokens.hash_token(token);
        let state = match self
            .ports
            .passkeys
            .take_ceremony(&hash, CeremonyKind::Register, now)
            .await?
        {
            Some((Some(owner), state)) if owner == user.id => state,
            _ => return Err(PasskeyError::Invalid),
        };
        // A credential registered already is 409, whatever else the
        // answer fails (a replayed answer fails the challenge, say).
        if let Ok(id) = self.ports.ceremonies.registered_id(response)
            && self.ports.passkeys.find_by_credential(&id).await?.is_some()
        {
            return Err(PasskeyError::AlreadyRegistered);
        }
        let registered = self
            .ports
            .ceremonies
            .finish_registration(&state, response)
            .map_err(|err| {
                warn!(%err, "passkey registration refused");
                PasskeyError::Invalid
            })?;
        let name = match name {
            Some(name) => name,
            None => {
                let held = self.ports.passkeys.list(user.id).await?.len() as u64;
                PasskeyName::numbered(held + 1)
            }
        };
        let passkey = Passkey {
            id: PasskeyId::generate(),
            user_id: user.id,
            name,
            created_at: now,
            last_used_at: None,
            backed_up: registered.backed_up,
        };
        let event = AuditEvent::new(AuditKind::PasskeyAdded, now, client).own(user.id);
        let new = NewPasskey {
            passkey: passkey.clone(),
            credential: registered.credential,
        };
        match self
            .ports
            .passkeys
            .create(&new, MAX_PASSKEYS_PER_USER, &event)
            .await
        {
            Ok(()) => {}
            Err(CreatePasskeyError::TooMany) => return Err(PasskeyError::TooMany),
            Err(CreatePasskeyError::Duplicate) => return Err(PasskeyError::AlreadyRegistered),
            Err(CreatePasskeyError::OwnerInactive) => return Err(PasskeyError::Invalid),
            Err(CreatePasskeyError::Port(err)) => return Err(err.into()),
        }
        info!(passkey_id = %passkey.id, "passkey added");
        let target = UndoTarget::Passkey { id: passkey.id };
        super::notify(
            self.ports.outbox(),
            user,
            MailKind::PasskeyAdded,
            Some(target),
            client,
        )
        .await;
        Ok(passkey)
    }

    /// Renames one of the caller's passkeys.
    pub async fn rename(
        &self,
        caller: &Authenticated,
        id: PasskeyId,
        name: &PasskeyName,
        client: &ClientInfo,
    ) -> Result<Passkey, PasskeyError> {
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::PasskeyRenamed, now, client).own(caller.user.id);
        self.ports
            .passkeys
            .rename(caller.user.id, id, name, &event)
            .await?
            .ok_or(PasskeyError::NotFound)
    }

    /// Removes one of the caller's passkeys, unless it is their last way in.
    pub async fn remove(
        &self,
        caller: &Authenticated,
        id: PasskeyId,
        client: &ClientInfo,
    ) -> Result<(), PasskeyError> {
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::PasskeyRemoved, now, client).own(caller.user.id);
        match self
            .ports
            .passkeys
            .remove(caller.user.id, id, &event)
            .await?
        {
            PasskeyRemoval::Removed => Ok(()),
            PasskeyRemoval::NotFound => Err(PasskeyError::NotFound),
            PasskeyRemoval::LastMethod => Err(PasskeyError::LastMethod),
        }
    }

    /// A superuser removes every passkey of a user who lost theirs; every
    /// session of that user ends.
    pub async fn remove_all(
        &self,
        actor: &Authenticated,
        user: UserId,
        client: &ClientInfo,
    ) -> Result<(), PasskeyError> {
        if !actor.user.is_superuser {
            return Err(PasskeyError::Forbidden);
        }
        if self.ports.users.find_by_id(user).await?.is_none() {
            return Err(PasskeyError::UnknownUser);
        }
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::PasskeyRemoved, now, client)
            .by(actor.user.id)
            .about(user);
        let removed = self.ports.passkeys.remove_all(user, &event).await?;
        self.ports
            .sessions
            .revoke_all_for_user(user, None, now, None)
            .await?;
        info!(%user, removed, "passkeys removed by a superuser");
        Ok(())
    }

    /// Starts a sign-in with any of the browser's passkeys: the options
    /// name no account.
    pub async fn login_options(&self) -> Result<CeremonyOptions, PortError> {
        let start = self.ports.ceremonies.start_login()?;
        let token = self.begin(CeremonyKind::Login, None, start.state).await?;
        Ok(CeremonyOptions {
            options: start.options,
            token,
        })
    }

    /// Signs in with a passkey: the token must be a live sign-in ceremony,
    /// the credential a passkey of an active user, the answer must pass
    /// every check, and its signature counter must not go back (a cloned
    /// authenticator; audited). The tokens say `amr: ["pop", "mfa"]`.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        token: &str,
        response: &str,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, PasskeyLoginError> {
        let now = self.ports.clock.now();
        let hash = self.ports.tokens.hash_token(token);
        let Some((_, state)) = self
            .ports
            .passkeys
            .take_ceremony(&hash, CeremonyKind::Login, now)
            .await?
        else {
            return Err(PasskeyLoginError::Invalid);
        };
        let (credential_id, handle) = self
            .ports
            .ceremonies
            .identify(response)
            .map_err(|_| PasskeyLoginError::Invalid)?;
        let Some((passkey, credential, user)) = self
            .ports
            .passkeys
            .find_by_credential(&credential_id)
            .await?
        else {
            warn!("passkey sign-in refused: unknown credential");
            return Err(PasskeyLoginError::Invalid);
        };
        if handle.is_some_and(|h| h != user.id) || !user.is_active {
            warn!(user_id = %user.id, "passkey sign-in refused: user handle or inactive user");
            return Err(PasskeyLoginError::Invalid);
        }
        let outcome = self
            .ports
            .ceremonies
            .finish_login(&state, response, &credential);
        self.record(outcome, &user, passkey.id, credential.counter, client)
            .await?;
        // Conditional on the account as read: a deactivation or a reset
        // since then opens no session.
        self.open_session(
            &user,
            SignInProof::PASSKEY,
            &user.password_hash,
            client,
            now,
        )
        .await
    }

    /// The passkey options of a login's second step, when `user` (whose
    /// password was right) has passkeys: a ceremony kept under the
    /// `mfa_token`'s hash, listing exactly their passkeys; `None` otherwise.
    pub async fn second_factor_options(
        &self,
        user: UserId,
        mfa_token: &SecretString,
    ) -> Result<Option<String>, PortError> {
        let credentials = self.ports.passkeys.credentials(user).await?;
        if credentials.is_empty() {
            return Ok(None);
        }
        let start = self.ports.ceremonies.start_second_factor(&credentials)?;
        let hash = self.ports.tokens.hash_token(mfa_token.expose_secret());
        let expires_at = self.ports.clock.now() + CEREMONY_TTL;
        self.ports
            .passkeys
            .begin_ceremony(
                &hash,
                CeremonyKind::SecondFactor,
                Some(user),
                &start.state,
                expires_at,
            )
            .await?;
        Ok(Some(start.options))
    }

    /// The second step of a login answered with a passkey instead of a
    /// code: a live `mfa_token`, and an answer by one of its user's
    /// passkeys. The tokens say `amr: ["pwd", "pop"]` (`fed` after a
    /// provider).
    #[tracing::instrument(skip_all)]
    pub async fn login_second_factor(
        &self,
        mfa_token: &str,
        response: &str,
        client: &ClientInfo,
    ) -> Result<IssuedTokens, PasskeyLoginError> {
        let now = self.ports.clock.now();
        let hash = self.ports.tokens.hash_token(mfa_token);
        let Some((Some(owner), state)) = self
            .ports
            .passkeys
            .take_ceremony(&hash, CeremonyKind::SecondFactor, now)
            .await?
        else {
            return Err(PasskeyLoginError::Invalid);
        };
        let Some(pending) = self
            .ports
            .mfa
            .attempt_challenge(&hash, now, MFA_CHALLENGE_ATTEMPTS)
            .await?
            .filter(|p| p.user == owner)
        else {
            return Err(PasskeyLoginError::Invalid);
        };
        let (credential_id, _) = self
            .ports
            .ceremonies
            .identify(response)
            .map_err(|_| PasskeyLoginError::Invalid)?;
        let Some((passkey, credential, user)) = self
            .ports
            .passkeys
            .find_by_credential(&credential_id)
            .await?
            .filter(|(_, _, user)| user.id == owner && user.is_active)
        else {
            warn!(user_id = %owner, "second step refused: not a passkey of the user");
            return Err(PasskeyLoginError::Invalid);
        };
        let outcome = self
            .ports
            .ceremonies
            .finish_second_factor(&state, response, &credential);
        self.record(outcome, &user, passkey.id, credential.counter, client)
            .await?;
        if !self.ports.mfa.spend_challenge(&hash, now).await? {
            return Err(PasskeyLoginError::Invalid);
        }
        let proof = SignInProof {
            federated: pending.federated,
            second_factor: true,
            passkey: true,
        };
        self.open_session(&user, proof, &pending.password_hash, client, now)
            .await
    }

    /// Records a checked assertion of passkey `id` (its new counter),
    /// conditional on the counter `seen` when it was read: of two sign-ins
    /// with one counter value, one is recorded. A refused one is an
    /// error; a counter that went back is audited.
    async fn record(
        &self,
        outcome: Result<CheckedAssertion, CeremonyError>,
        user: &User,
        id: PasskeyId,
        seen: u32,
        client: &ClientInfo,
    ) -> Result<(), PasskeyLoginError> {
        let now = self.ports.clock.now();
        let checked = match outcome {
            Ok(checked) => checked,
            Err(CeremonyError::CounterRegressed) => {
                warn!(user_id = %user.id, passkey_id = %id, "passkey counter went back");
                let event =
                    AuditEvent::new(AuditKind::PasskeyCounterRegressed, now, client).about(user.id);
                self.ports.audit.record(&event).await?;
                return Err(PasskeyLoginError::Invalid);
            }
            Err(CeremonyError::Invalid(reason)) => {
                warn!(user_id = %user.id, %reason, "passkey refused");
                return Err(PasskeyLoginError::Invalid);
            }
        };
        let recorded = self
            .ports
            .passkeys
            .record_use(id, seen, &checked.credential, checked.backed_up, now)
            .await?;
        if recorded {
            Ok(())
        } else {
            Err(PasskeyLoginError::Invalid)
        }
    }

    /// Opens the session of a sign-in that `proof` proved, conditional on
    /// the account's password hash as `proven` (a reset since ends it).
    async fn open_session(
        &self,
        user: &User,
        proof: SignInProof,
        proven: &crate::model::PasswordHash,
        client: &ClientInfo,
        now: time::OffsetDateTime,
    ) -> Result<IssuedTokens, PasskeyLoginError> {
        let refresh = self.ports.tokens.new_refresh_token()?;
        let session = super::login::new_session(
            self.config.refresh_token_ttl,
            user.id,
            &refresh,
            now,
            client.clone(),
            proof,
        );
        let mut event = AuditEvent::new(AuditKind::LoginSucceeded, now, client)
            .own(user.id)
            .session(session.id);
        event.details.method = Some("passkey".to_owned());
        if !self.ports.sessions.create(&session, proven, &event).await? {
            return Err(PasskeyLoginError::Invalid);
        }
        Ok(super::signed_in(
            &self.ports.users,
            &self.ports.tokens,
            &session,
            refresh,
            now,
            "login with a passkey succeeded",
        )
        .await?)
    }

    /// Keeps a ceremony's state under a new token's hash; the token.
    async fn begin(
        &self,
        kind: CeremonyKind,
        user: Option<UserId>,
        state: crate::model::CeremonyState,
    ) -> Result<SecretString, PortError> {
        let token = self.ports.tokens.new_refresh_token()?;
        let expires_at = self.ports.clock.now() + CEREMONY_TTL;
        self.ports
            .passkeys
            .begin_ceremony(&token.hash, kind, user, &state, expires_at)
            .await?;
        Ok(token.secret)
    }

    /// Forgets ceremonies that expired.
    pub async fn purge_ceremonies(&self) -> Result<u64, PortError> {
        self.ports
            .passkeys
            .purge_ceremonies(self.ports.clock.now())
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;
    use secrecy::{ExposeSecret, SecretString};

    use super::*;
    use crate::model::{
        CeremonyState, PasskeyCredential, PasswordHash, Scopes, SessionId, TokenGrant, TokenHash,
        TokenId,
    };
    use crate::ports::{CeremonyStart, CheckedAssertion};
    use crate::services::auth::test_support::{caller, config, session};
    use crate::services::fixtures::{Mocks, NOW, superuser, user};

    fn service(mocks: Mocks) -> PasskeyService {
        PasskeyService::new(mocks.ports().for_passkeys(), config(Duration::ZERO))
    }

    fn key(owner: UserId) -> (Passkey, PasskeyCredential) {
        (
            Passkey {
                id: PasskeyId::generate(),
                user_id: owner,
                name: PasskeyName::numbered(1),
                created_at: NOW,
                last_used_at: None,
                backed_up: false,
            },
            PasskeyCredential {
                credential_id: "cred".into(),
                counter: 5,
                data: "{}".into(),
            },
        )
    }

    /// A live sign-in ceremony behind token `t`, and an answer naming
    /// credential `cred` of `owner` (`handle` the user handle it carries).
    fn signing_in(mocks: &mut Mocks, owner: &crate::model::User, handle: Option<UserId>) {
        mocks
            .tokens
            .expect_hash_token()
            .returning(|t| TokenHash::new(t.into()));
        mocks
            .passkeys
            .expect_take_ceremony()
            .with(
                eq(TokenHash::new("t".into())),
                eq(CeremonyKind::Login),
                eq(NOW),
            )
            .returning(|_, _, _| Ok(Some((None, CeremonyState("state".into())))));
        mocks
            .ceremonies
            .expect_identify()
            .returning(move |_| Ok(("cred".into(), handle)));
        let (passkey, credential) = key(owner.id);
        let owner = owner.clone();
        mocks
            .passkeys
            .expect_find_by_credential()
            .with(eq("cred"))
            .returning(move |_| Ok(Some((passkey.clone(), credential.clone(), owner.clone()))));
    }

    #[tokio::test]
    async fn adding_a_passkey_needs_the_password_of_an_account_that_has_one() {
        let ada = user("ada");
        let err = service(Mocks::default())
            .registration_options(&caller(&ada), None, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, PasskeyError::PasswordRequired), "{err:?}");

        let mut mocks = Mocks::default();
        mocks.throttle_permissive();
        mocks.password_matches(false);
        let err = service(mocks)
            .registration_options(
                &caller(&ada),
                Some(&SecretString::from("wrong")),
                &ClientInfo::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, PasskeyError::WrongPassword), "{err:?}");
    }

    #[tokio::test]
    async fn a_personal_access_token_adds_no_passkey() {
        let ada = user("ada");
        let grant = TokenGrant {
            id: TokenId::generate(),
            scopes: Scopes::default(),
            last_used_at: None,
        };
        let by_token = Authenticated {
            user: ada,
            credential: crate::services::Credential::Token(grant),
        };
        let err = service(Mocks::default())
            .registration_options(
                &by_token,
                Some(&SecretString::from("pw")),
                &ClientInfo::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, PasskeyError::NotWithToken), "{err:?}");
    }

    #[tokio::test]
    async fn an_account_without_a_password_adds_one_only_soon_after_signing_in() {
        let ada = crate::model::User {
            password_hash: PasswordHash::none(),
            ..user("ada")
        };
        let me = caller(&ada);
        let mut old = session(&ada);
        old.id = me.session_id().unwrap();
        old.created_at = NOW - Duration::minutes(11);
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_list_live_for_user()
            .returning(move |_, _| Ok(vec![old.clone()]));
        let err = service(mocks)
            .registration_options(&me, None, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PasskeyError::ReauthenticationRequired),
            "{err:?}"
        );

        // Within the window: options, with the ceremony kept for the caller.
        let mut fresh = session(&ada);
        fresh.id = me.session_id().unwrap();
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_list_live_for_user()
            .returning(move |_, _| Ok(vec![fresh.clone()]));
        mocks
            .passkeys
            .expect_credentials()
            .returning(|_| Ok(vec![]));
        mocks
            .ceremonies
            .expect_start_registration()
            .returning(|_, _| {
                Ok(CeremonyStart {
                    options: "{\"publicKey\":{}}".into(),
                    state: CeremonyState("s".into()),
                })
            });
        mocks.issues_refresh_tokens("ceremony");
        let owner = ada.id;
        mocks
            .passkeys
            .expect_begin_ceremony()
            .withf(move |_, kind, user, state, expires| {
                *kind == CeremonyKind::Register
                    && *user == Some(owner)
                    && state.0 == "s"
                    && *expires == NOW + CEREMONY_TTL
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(()));
        let options = service(mocks)
            .registration_options(&me, None, &ClientInfo::default())
            .await
            .unwrap();
        assert_eq!(options.token.expose_secret(), "ceremony");
    }

    #[tokio::test]
    async fn a_registration_token_of_another_user_finishes_nothing() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_token()
            .returning(|t| TokenHash::new(t.into()));
        mocks
            .passkeys
            .expect_take_ceremony()
            .returning(|_, _, _| Ok(Some((Some(UserId::generate()), CeremonyState("s".into())))));
        mocks.ceremonies.expect_finish_registration().times(0);
        let err = service(mocks)
            .register(&caller(&ada), "t", "{}", None, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, PasskeyError::Invalid), "{err:?}");
    }

    #[tokio::test]
    async fn a_passkey_added_is_stored_with_its_event_and_mailed_with_an_undo_link() {
        let ada = user("ada");
        let owner = ada.id;
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_token()
            .returning(|t| TokenHash::new(t.into()));
        mocks
            .passkeys
            .expect_take_ceremony()
            .returning(move |_, _, _| Ok(Some((Some(owner), CeremonyState("s".into())))));
        mocks
            .ceremonies
            .expect_registered_id()
            .returning(|_| Ok("new".into()));
        mocks
            .passkeys
            .expect_find_by_credential()
            .with(eq("new"))
            .returning(|_| Ok(None));
        mocks
            .ceremonies
            .expect_finish_registration()
            .returning(|_, _| {
                Ok(crate::ports::RegisteredCredential {
                    credential: PasskeyCredential {
                        credential_id: "new".into(),
                        counter: 0,
                        data: "{}".into(),
                    },
                    backed_up: true,
                })
            });
        mocks.passkeys.expect_list().returning(|_| Ok(vec![]));
        mocks
            .passkeys
            .expect_create()
            .withf(move |new, max, event| {
                new.passkey.name.as_str() == "Passkey 1"
                    && new.passkey.backed_up
                    && *max == MAX_PASSKEYS_PER_USER
                    && event.kind == AuditKind::PasskeyAdded
                    && event.subject_id == Some(owner)
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        mocks
            .mail
            .expect_notify()
            .withf(move |notice, _, _| {
                notice.kind == MailKind::PasskeyAdded
                    && notice.user_id == owner
                    && matches!(notice.target, Some(UndoTarget::Passkey { .. }))
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let key = service(mocks)
            .register(&caller(&ada), "t", "{}", None, &ClientInfo::default())
            .await
            .unwrap();
        assert_eq!(key.name.as_str(), "Passkey 1");
    }

    #[tokio::test]
    async fn a_credential_registered_already_is_409_before_any_other_check() {
        let ada = user("ada");
        let owner = ada.id;
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_token()
            .returning(|t| TokenHash::new(t.into()));
        mocks
            .passkeys
            .expect_take_ceremony()
            .returning(move |_, _, _| Ok(Some((Some(owner), CeremonyState("s".into())))));
        mocks
            .ceremonies
            .expect_registered_id()
            .returning(|_| Ok("cred".into()));
        let (passkey, credential) = key(owner);
        mocks
            .passkeys
            .expect_find_by_credential()
            .returning(move |_| Ok(Some((passkey.clone(), credential.clone(), ada_again()))));
        mocks.ceremonies.expect_finish_registration().times(0);
        let err = service(mocks)
            .register(&caller(&ada), "t", "{}", None, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, PasskeyError::AlreadyRegistered), "{err:?}");
    }

    fn ada_again() -> crate::model::User {
        user("ada")
    }

    #[tokio::test]
    async fn a_counter_that_went_back_refuses_the_sign_in_and_is_audited() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        signing_in(&mut mocks, &ada, Some(ada.id));
        mocks
            .ceremonies
            .expect_finish_login()
            .returning(|_, _, _| Err(CeremonyError::CounterRegressed));
        let subject = ada.id;
        mocks
            .audit
            .expect_record()
            .withf(move |e| {
                e.kind == AuditKind::PasskeyCounterRegressed && e.subject_id == Some(subject)
            })
            .times(1)
            .returning(|_| Ok(()));
        mocks.passkeys.expect_record_use().times(0);
        mocks.sessions.expect_create().times(0);
        let err = service(mocks)
            .login("t", "{}", &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, PasskeyLoginError::Invalid), "{err:?}");
    }

    #[tokio::test]
    async fn an_inactive_user_or_a_foreign_user_handle_signs_nobody_in() {
        let inactive = crate::model::User {
            is_active: false,
            ..user("ada")
        };
        let mut mocks = Mocks::default();
        signing_in(&mut mocks, &inactive, None);
        mocks.ceremonies.expect_finish_login().times(0);
        let err = service(mocks)
            .login("t", "{}", &ClientInfo::default())
            .await;
        assert!(matches!(err, Err(PasskeyLoginError::Invalid)));

        let ada = user("ada");
        let mut mocks = Mocks::default();
        signing_in(&mut mocks, &ada, Some(UserId::generate()));
        mocks.ceremonies.expect_finish_login().times(0);
        let err = service(mocks)
            .login("t", "{}", &ClientInfo::default())
            .await;
        assert!(matches!(err, Err(PasskeyLoginError::Invalid)));
    }

    #[tokio::test]
    async fn a_sign_in_records_the_counter_then_opens_a_passkey_session() {
        let ada = user("ada");
        let mut mocks = Mocks::default();
        signing_in(&mut mocks, &ada, Some(ada.id));
        mocks.ceremonies.expect_finish_login().returning(|_, _, _| {
            Ok(CheckedAssertion {
                credential: PasskeyCredential {
                    credential_id: "cred".into(),
                    counter: 6,
                    data: "{}".into(),
                },
                backed_up: true,
            })
        });
        // Conditional on the counter read (5).
        mocks
            .passkeys
            .expect_record_use()
            .withf(|_, seen, credential, backed_up, at| {
                *seen == 5 && credential.counter == 6 && *backed_up && *at == NOW
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(true));
        mocks.issues_refresh_tokens("refresh");
        mocks.issues_access_tokens();
        let hash = ada.password_hash.clone();
        mocks
            .sessions
            .expect_create()
            .withf(move |session, proven, event| {
                session.proof == crate::model::SignInProof::PASSKEY
                    && *proven == hash
                    && event.kind == AuditKind::LoginSucceeded
                    && event.details.method.as_deref() == Some("passkey")
            })
            .times(1)
            .returning(|_, _, _| Ok(true));
        mocks.users.expect_record_login().returning(|_, _| Ok(()));
        let tokens = service(mocks)
            .login("t", "{}", &ClientInfo::default())
            .await
            .unwrap();
        assert_eq!(tokens.user_id, ada.id);
        assert_eq!(crate::model::SignInProof::PASSKEY.amr(), vec!["pop", "mfa"]);
    }

    #[tokio::test]
    async fn a_passkey_answers_a_second_step_only_for_the_challenges_user() {
        let ada = user("ada");
        let pending = crate::model::PendingLogin {
            user: ada.id,
            password_hash: ada.password_hash.clone(),
            federated: false,
        };
        // The ceremony under the mfa_token was begun for someone else.
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_token()
            .returning(|t| TokenHash::new(t.into()));
        mocks
            .passkeys
            .expect_take_ceremony()
            .with(
                eq(TokenHash::new("m".into())),
                eq(CeremonyKind::SecondFactor),
                eq(NOW),
            )
            .returning(|_, _, _| Ok(Some((Some(UserId::generate()), CeremonyState("s".into())))));
        let answer = pending.clone();
        mocks
            .mfa
            .expect_attempt_challenge()
            .returning(move |_, _, _| Ok(Some(answer.clone())));
        mocks.ceremonies.expect_finish_second_factor().times(0);
        let err = service(mocks)
            .login_second_factor("m", "{}", &ClientInfo::default())
            .await;
        assert!(matches!(err, Err(PasskeyLoginError::Invalid)));

        // Its own: the challenge is spent and the session says pwd + pop.
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_token()
            .returning(|t| TokenHash::new(t.into()));
        let owner = ada.id;
        mocks
            .passkeys
            .expect_take_ceremony()
            .returning(move |_, _, _| Ok(Some((Some(owner), CeremonyState("s".into())))));
        mocks
            .mfa
            .expect_attempt_challenge()
            .returning(move |_, _, _| Ok(Some(pending.clone())));
        mocks
            .ceremonies
            .expect_identify()
            .returning(|_| Ok(("cred".into(), None)));
        let (passkey, credential) = key(ada.id);
        let found = ada.clone();
        mocks
            .passkeys
            .expect_find_by_credential()
            .returning(move |_| Ok(Some((passkey.clone(), credential.clone(), found.clone()))));
        mocks
            .ceremonies
            .expect_finish_second_factor()
            .returning(|_, _, _| {
                Ok(CheckedAssertion {
                    credential: PasskeyCredential {
                        credential_id: "cred".into(),
                        counter: 6,
                        data: "{}".into(),
                    },
                    backed_up: false,
                })
            });
        mocks
            .passkeys
            .expect_record_use()
            .returning(|_, _, _, _, _| Ok(true));
        mocks
            .mfa
            .expect_spend_challenge()
            .times(1)
            .returning(|_, _| Ok(true));
        mocks.issues_refresh_tokens("refresh");
        mocks.issues_access_tokens();
        mocks
            .sessions
            .expect_create()
            .withf(|session, _, _| session.proof.amr() == vec!["pwd", "pop"])
            .times(1)
            .returning(|_, _, _| Ok(true));
        mocks.users.expect_record_login().returning(|_, _| Ok(()));
        service(mocks)
            .login_second_factor("m", "{}", &ClientInfo::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn only_a_superuser_removes_someone_elses_passkeys_and_their_sessions_end() {
        let bob = user("bob");
        let err = service(Mocks::default())
            .remove_all(&caller(&user("ada")), bob.id, &ClientInfo::default())
            .await
            .unwrap_err();
        assert!(matches!(err, PasskeyError::Forbidden), "{err:?}");

        let mut mocks = Mocks::default();
        mocks.finds_by_id(&bob);
        mocks
            .passkeys
            .expect_remove_all()
            .with(eq(bob.id), mockall::predicate::always())
            .times(1)
            .returning(|_, _| Ok(2));
        mocks
            .sessions
            .expect_revoke_all_for_user()
            .with(eq(bob.id), eq(None::<SessionId>), eq(NOW), eq(None))
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        service(mocks)
            .remove_all(&caller(&superuser("root")), bob.id, &ClientInfo::default())
            .await
            .unwrap();
    }
}
