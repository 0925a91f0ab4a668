//! Linking a provider's account to the signed-in user (who proves it is
//! them first), the notice with its undo link, and listing and unlinking
//! identities.

use secrecy::SecretString;
use tracing::info;

use super::oauth::linked_event;
use super::password::Proof;
use super::{Authenticated, OAuthCallback, OAuthError, OAuthService};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, LinkedIdentity, MailKind, OAuthFlow, ProviderIdentity,
    UndoTarget, User, UserId,
};
use crate::ports::{Authorization, LinkIdentityError, Unlinked};

/// Why an identity was not unlinked.
#[derive(Debug, thiserror::Error)]
pub enum UnlinkError {
    /// The caller has no identity at that provider.
    #[error("not linked")]
    NotLinked,
    /// It is the caller's last way in.
    #[error("cannot remove the last sign-in method")]
    LastMethod,
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl OAuthService {
    /// Starts linking an account at `provider` to the caller, who proves
    /// it is them: with their password, or (`password` none) by a session
    /// that signed in within the re-authentication window. A stolen access
    /// token alone opens no new way in.
    ///
    /// # Errors
    /// [`OAuthError::ReauthenticationRequired`], [`OAuthError::WrongPassword`],
    /// [`OAuthError::Locked`], and those of [`Self::oauth_authorize`].
    pub async fn oauth_authorize_link(
        &self,
        caller: &Authenticated,
        provider: &str,
        scopes: Option<String>,
        password: Option<&SecretString>,
        client: &ClientInfo,
    ) -> Result<Authorization, OAuthError> {
        if !self.ports.providers.knows(provider) {
            return Err(OAuthError::UnknownProvider);
        }
        match password {
            Some(password) => match self
                .password_check()
                .prove(&caller.user, client, password)
                .await?
            {
                Proof::Proven => {}
                Proof::Wrong => return Err(OAuthError::WrongPassword),
                Proof::Locked { retry_after } => return Err(OAuthError::Locked { retry_after }),
            },
            None => {
                if !self.signed_in_recently(caller).await? {
                    return Err(OAuthError::ReauthenticationRequired);
                }
            }
        }
        self.oauth_authorize(provider, Some(caller.user.id), scopes)
            .await
    }

    /// Whether the caller's session signed in within the re-authentication
    /// window (a refresh keeps the sign-in's time).
    pub(super) async fn signed_in_recently(
        &self,
        caller: &Authenticated,
    ) -> Result<bool, PortError> {
        super::signed_in_within(
            self.ports.sessions.as_ref(),
            self.ports.clock.now(),
            caller,
            self.config.reauth_window,
        )
        .await
    }

    /// The callback of a link: the provider's account becomes a way in to
    /// `user`, the caller, who started it.
    #[tracing::instrument(skip_all, fields(provider = callback.provider))]
    pub async fn oauth_associate(
        &self,
        callback: OAuthCallback<'_>,
        user: UserId,
    ) -> Result<User, OAuthError> {
        let identity = self
            .oauth_identity(&callback, OAuthFlow::Associate, Some(user))
            .await?;
        let now = self.ports.clock.now();
        let event = linked_event(&identity, now, callback.client, user);
        let linked = self
            .ports
            .identities
            .link(user, &identity, now, &event)
            .await;
        let caller = self
            .ports
            .users
            .find_by_id(user)
            .await?
            .ok_or(OAuthError::BadCredentials)?;
        match linked {
            Ok(()) => {
                info!(user_id = %user, provider = %identity.provider, "identity linked");
                self.notify_linked(&caller, &identity, callback.client)
                    .await;
            }
            // Linked to the caller already: nothing to do.
            Err(LinkIdentityError::LinkedTo(owner)) if owner == user => {}
            Err(LinkIdentityError::LinkedTo(_)) => return Err(OAuthError::LinkedElsewhere),
            Err(LinkIdentityError::ProviderLinked) => return Err(OAuthError::ProviderLinked),
            Err(LinkIdentityError::Inactive) => return Err(OAuthError::BadCredentials),
            Err(LinkIdentityError::Port(err)) => return Err(err.into()),
        }
        Ok(caller)
    }

    /// Mails the account that `identity` was linked, with a link that
    /// unlinks it.
    pub(super) async fn notify_linked(
        &self,
        user: &User,
        identity: &ProviderIdentity,
        client: &ClientInfo,
    ) {
        let target = UndoTarget::Identity {
            provider: identity.provider.clone(),
            subject: identity.subject.clone(),
        };
        super::notify(
            self.ports.outbox(),
            user,
            MailKind::IdentityLinked,
            Some(target),
            client,
        )
        .await;
    }

    /// The caller's linked identities.
    pub async fn identities(&self, user: UserId) -> Result<Vec<LinkedIdentity>, PortError> {
        self.ports.identities.list(user).await
    }

    /// Unlinks the caller's identity at `provider`, unless it is their
    /// last way in.
    pub async fn unlink_identity(
        &self,
        user: UserId,
        provider: &str,
        client: &ClientInfo,
    ) -> Result<(), UnlinkError> {
        let now = self.ports.clock.now();
        let mut event = AuditEvent::new(AuditKind::IdentityUnlinked, now, client).own(user);
        event.details.provider = Some(provider.to_owned());
        match self.ports.identities.unlink(user, provider, &event).await? {
            Unlinked::Done => {
                info!(user_id = %user, provider, "identity unlinked");
                Ok(())
            }
            Unlinked::NotLinked => Err(UnlinkError::NotLinked),
            Unlinked::LastMethod => Err(UnlinkError::LastMethod),
        }
    }
}
