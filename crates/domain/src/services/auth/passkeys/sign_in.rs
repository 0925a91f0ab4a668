//! Signing in with a passkey: alone (usernameless), or as the second step
//! of a login whose password (or provider) was right.

use secrecy::{ExposeSecret, SecretString};
use tracing::warn;

use super::super::IssuedTokens;
use super::{CeremonyOptions, PasskeyLoginError, PasskeyService};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, CEREMONY_TTL, CeremonyKind, ClientInfo, MFA_CHALLENGE_ATTEMPTS,
    PasskeyId, SignInProof, User, UserId,
};
use crate::ports::{CeremonyError, CheckedAssertion};

impl PasskeyService {
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
        let session = super::super::login::new_session(
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
        Ok(super::super::signed_in(
            &self.ports.users,
            &self.ports.tokens,
            &session,
            refresh,
            now,
            "login with a passkey succeeded",
        )
        .await?)
    }
}
