//! Passkeys: added by a signed-in user who proves it is them, listed,
//! renamed and removed (never the last way in), and signing in alone.

use secrecy::SecretString;
use time::Duration;
use tracing::{info, warn};

use super::password::Proof;
use super::{AuthConfig, Authenticated};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, CEREMONY_TTL, CeremonyKind, ClientInfo, MAX_PASSKEYS_PER_USER, MailKind,
    NewPasskey, Passkey, PasskeyId, PasskeyName, UndoTarget, UserId,
};
use crate::ports::{CreatePasskeyError, PasskeyRemoval};
use crate::services::PasskeyPorts;
use crate::services::throttle::Throttle;

mod sign_in;

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
mod tests;
