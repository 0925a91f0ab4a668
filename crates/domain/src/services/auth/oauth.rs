//! Sign-in with an OpenID provider: the authorization request and the
//! callback that signs a user in (or up). Linking is in `linking`.

use tracing::{info, warn};
use uuid::Uuid;

use super::{AuthConfig, IssuedTokens};
use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, Email, OAuthFlow, OAuthState, PasswordHash,
    ProviderIdentity, SignInProof, User, UserId, Username, username_base,
};
use crate::ports::{Authorization, LinkIdentityError, NewIdentityUserError, ProviderError};
use crate::services::OAuthPorts;
use crate::services::throttle::Throttle;

/// Why a provider step failed. The HTTP layer answers each with the
/// contract's code.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// No provider of that name is configured.
    #[error("unknown provider")]
    UnknownProvider,
    /// The `state` is forged, expired, spent, of another flow, provider or
    /// user, or not bound to the browser's cookie; or the ID token's
    /// `nonce` is not this sign-in's.
    #[error("invalid state")]
    InvalidState,
    /// The provider refused the code.
    #[error("invalid code")]
    InvalidCode,
    /// The ID token failed its checks.
    #[error("invalid ID token")]
    InvalidIdToken,
    /// The provider gave no usable address for a new user.
    #[error("no email from the provider")]
    NoEmail,
    /// The address is a local account's and may not be linked by it.
    #[error("user already exists")]
    UserAlreadyExists,
    /// The linked user is deactivated.
    #[error("bad credentials")]
    BadCredentials,
    /// The linked user's address is not verified and must be.
    #[error("email not verified")]
    EmailNotVerified,
    /// The user has a second factor: this token for `login_mfa`.
    #[error("second factor required")]
    MfaRequired {
        /// The opaque `mfa_token`.
        mfa_token: secrecy::SecretString,
        /// Whose sign-in it is (for the passkey options of the second step).
        user: crate::model::UserId,
    },
    /// The identity is linked to another account.
    #[error("identity linked to another account")]
    LinkedElsewhere,
    /// The caller has another identity at this provider.
    #[error("provider linked already")]
    ProviderLinked,
    /// The provider could not be reached.
    #[error("provider unavailable")]
    Unavailable,
    /// Linking without the password from a session older than the
    /// re-authentication window.
    #[error("reauthentication required")]
    ReauthenticationRequired,
    /// The password sent to link was wrong (counted as a failed login).
    #[error("wrong password")]
    WrongPassword,
    /// Too many failed checks: refused for this long.
    #[error("locked")]
    Locked {
        /// Time left on the lock.
        retry_after: time::Duration,
    },
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl From<ProviderError> for OAuthError {
    fn from(err: ProviderError) -> Self {
        warn!(error = %err, "provider step failed");
        match err {
            ProviderError::Unavailable(_) => Self::Unavailable,
            ProviderError::CodeRefused(_) => Self::InvalidCode,
            ProviderError::TokenRejected(_) => Self::InvalidIdToken,
            ProviderError::NonceMismatch => Self::InvalidState,
        }
    }
}

/// A callback's query and the browser's cookie.
#[derive(Debug)]
pub struct OAuthCallback<'a> {
    /// The provider in the path.
    pub provider: &'a str,
    /// The provider's authorization code.
    pub code: &'a str,
    /// The `state` as the provider sent it back.
    pub state: &'a str,
    /// The cookie the authorization request set, if the browser sent it.
    pub binding: Option<&'a str>,
    /// Where the request came from.
    pub client: &'a ClientInfo,
}

/// Candidates tried for a new user's username before giving up.
const USERNAME_TRIES: usize = 8;

/// Sign-in with a provider, and linking a provider's account to the
/// signed-in user.
#[derive(Clone)]
pub struct OAuthService {
    pub(super) ports: OAuthPorts,
    pub(super) config: AuthConfig,
    pub(super) throttle: Throttle,
}

impl OAuthService {
    /// Reads `config`'s provider settings, refresh lifetime, verification
    /// rule and re-authentication window; a linking's password check counts
    /// against `config.lockout`.
    #[must_use]
    pub fn new(ports: OAuthPorts, config: AuthConfig) -> Self {
        let throttle = Throttle::new(ports.throttle.clone(), ports.audit.clone(), config.lockout);
        Self {
            ports,
            config,
            throttle,
        }
    }

    /// Deletes spent sign-in states that expired, so that the table does
    /// not grow without bound.
    pub async fn purge_spent_states(&self) -> Result<u64, PortError> {
        let purged = self.ports.identities.purge(self.ports.clock.now()).await?;
        if purged > 0 {
            info!(purged, "expired sign-in states deleted");
        }
        Ok(purged)
    }

    /// Starts a sign-in (`user` none) or a link to `user` at `provider`.
    ///
    /// # Errors
    /// [`OAuthError::UnknownProvider`], or [`OAuthError::Unavailable`]
    /// when the provider's discovery document cannot be had.
    pub async fn oauth_authorize(
        &self,
        provider: &str,
        user: Option<UserId>,
        scopes: Option<String>,
    ) -> Result<Authorization, OAuthError> {
        if !self.ports.providers.knows(provider) {
            return Err(OAuthError::UnknownProvider);
        }
        let state = OAuthState {
            id: Uuid::new_v4().simple().to_string(),
            provider: provider.to_owned(),
            flow: if user.is_some() {
                OAuthFlow::Associate
            } else {
                OAuthFlow::SignIn
            },
            user_id: user,
            expires_at: self.ports.clock.now() + self.config.oauth_state_ttl,
        };
        Ok(self.ports.providers.authorize(&state, scopes).await?)
    }

    /// Checks the state (bound to the cookie, unexpired, of this provider,
    /// flow and user), spends it, and has the provider exchange the code.
    pub(super) async fn oauth_identity(
        &self,
        callback: &OAuthCallback<'_>,
        flow: OAuthFlow,
        user: Option<UserId>,
    ) -> Result<ProviderIdentity, OAuthError> {
        let providers = &self.ports.providers;
        if !providers.knows(callback.provider) {
            return Err(OAuthError::UnknownProvider);
        }
        let binding = callback.binding.ok_or(OAuthError::InvalidState)?;
        let state = providers
            .open_state(callback.state, binding)
            .ok_or(OAuthError::InvalidState)?;
        let now = self.ports.clock.now();
        if state.provider != callback.provider
            || state.flow != flow
            || state.user_id != user
            || state.expires_at <= now
        {
            return Err(OAuthError::InvalidState);
        }
        if !self
            .ports
            .identities
            .spend_state(&state.id, state.expires_at)
            .await?
        {
            return Err(OAuthError::InvalidState);
        }
        Ok(providers.exchange(&state, binding, callback.code).await?)
    }

    /// The callback of a sign-in: the identity's user, created on a first
    /// sign-in, gets tokens, or the `mfa_required` answer when they have a
    /// second factor.
    #[tracing::instrument(skip_all, fields(provider = callback.provider))]
    pub async fn oauth_sign_in(
        &self,
        callback: OAuthCallback<'_>,
    ) -> Result<IssuedTokens, OAuthError> {
        let identity = self
            .oauth_identity(&callback, OAuthFlow::SignIn, None)
            .await?;
        let user = self.identity_user(&identity, callback.client).await?;
        let Some(user) = user.filter(|u| u.is_active) else {
            warn!(provider = %identity.provider, reason = "inactive", "provider sign-in refused");
            return Err(OAuthError::BadCredentials);
        };
        if self.config.require_verified_email && !user.is_verified {
            return Err(OAuthError::EmailNotVerified);
        }
        let now = self.ports.clock.now();
        if self.ports.mfa.status(user.id).await?.totp {
            let mfa_token = super::login::mfa_challenge(
                self.ports.tokens.as_ref(),
                self.ports.mfa.as_ref(),
                &user,
                true,
                now,
            )
            .await?;
            info!(user_id = %user.id, "provider sign-in; second factor required");
            return Err(OAuthError::MfaRequired {
                mfa_token,
                user: user.id,
            });
        }
        let refresh = self.ports.tokens.new_refresh_token()?;
        let proof = SignInProof {
            federated: true,
            second_factor: false,
            passkey: false,
        };
        let session = super::login::new_session(
            self.config.refresh_token_ttl,
            user.id,
            &refresh,
            now,
            callback.client.clone(),
            proof,
        );
        let mut event = AuditEvent::new(AuditKind::LoginSucceeded, now, callback.client)
            .own(user.id)
            .session(session.id);
        event.details.method = Some(format!("oauth:{}", identity.provider));
        if !self
            .ports
            .sessions
            .create(&session, &user.password_hash, &event)
            .await?
        {
            // Deactivated meanwhile.
            return Err(OAuthError::BadCredentials);
        }
        Ok(super::signed_in(
            &self.ports.users,
            &self.ports.tokens,
            &session,
            refresh,
            now,
            "provider sign-in succeeded",
        )
        .await?)
    }

    /// The user of `identity`: the linked one; else, by a verified address
    /// and when the settings allow it, the local account it is linked to
    /// now; else a new user. Races with another first sign-in of the same
    /// identity or address settle on the row that won.
    async fn identity_user(
        &self,
        identity: &ProviderIdentity,
        client: &ClientInfo,
    ) -> Result<Option<User>, OAuthError> {
        let users = &self.ports.users;
        let identities = &self.ports.identities;
        for _ in 0..2 {
            if let Some(id) = identities
                .find_user(&identity.provider, &identity.subject)
                .await?
            {
                return Ok(users.find_by_id(id).await?);
            }
            let email = identity
                .email
                .as_deref()
                .and_then(|e| Email::parse(e).ok())
                .ok_or(OAuthError::NoEmail)?;
            if let Some(local) = users.find_by_login(email.as_str()).await? {
                // A racing first sign-in of this identity may have made the
                // account just now: it is this identity's, not a local one.
                if let Some(id) = identities
                    .find_user(&identity.provider, &identity.subject)
                    .await?
                {
                    return Ok(users.find_by_id(id).await?);
                }
                // Only an owner who proved the address may be reached by
                // it: an unverified account may be a squatter's.
                if !(self.config.oauth_associate_by_email
                    && identity.email_trusted()
                    && local.is_verified)
                {
                    return Err(OAuthError::UserAlreadyExists);
                }
                let now = self.ports.clock.now();
                let event = linked_event(identity, now, client, local.id);
                return match identities.link(local.id, identity, now, &event).await {
                    Ok(()) => {
                        info!(user_id = %local.id, provider = %identity.provider, "identity linked by its verified email");
                        self.notify_linked(&local, identity, client).await;
                        Ok(Some(local))
                    }
                    // The local account already has another identity there: not this one.
                    Err(LinkIdentityError::ProviderLinked) => Err(OAuthError::UserAlreadyExists),
                    Err(LinkIdentityError::Inactive) => Ok(None),
                    Err(LinkIdentityError::LinkedTo(id)) => Ok(users.find_by_id(id).await?),
                    Err(LinkIdentityError::Port(err)) => Err(err.into()),
                };
            }
            match self
                .create_identity_user(identity, email.clone(), client)
                .await
            {
                Ok(user) => return Ok(Some(user)),
                // Another sign-in made the identity: look again.
                Err(NewIdentityUserError::IdentityTaken) => {}
                // Taken by nobody, yet refused: the address is reserved for
                // the account an email change took it from.
                Err(NewIdentityUserError::EmailTaken)
                    if users.find_by_login(email.as_str()).await?.is_none() =>
                {
                    return Err(OAuthError::UserAlreadyExists);
                }
                // Another sign-in took the address: look again.
                Err(NewIdentityUserError::EmailTaken) => {}
                Err(NewIdentityUserError::UsernameTaken) => {
                    return Err(PortError::unexpected("no free username").into());
                }
                Err(NewIdentityUserError::Port(err)) => return Err(err.into()),
            }
        }
        Err(PortError::Unavailable("a racing sign-in of the same identity".into()).into())
    }

    /// A new user for `identity`, verified if the provider says so, with
    /// no password and the first free username of a few candidates.
    async fn create_identity_user(
        &self,
        identity: &ProviderIdentity,
        email: Email,
        client: &ClientInfo,
    ) -> Result<User, NewIdentityUserError> {
        let now = self.ports.clock.now();
        // Room for "-" and four digits.
        let base = username_base(identity, Username::MAX_LEN - 5);
        let mut user = User {
            id: UserId::generate(),
            email,
            username: Username::parse(&base).map_err(PortError::unexpected)?,
            full_name: identity
                .name
                .as_deref()
                .and_then(|n| crate::model::FullName::parse(n).ok()),
            password_hash: PasswordHash::none(),
            is_active: true,
            is_superuser: false,
            is_verified: identity.email_trusted(),
            created_at: now,
            updated_at: now,
            last_login_at: None,
            version: 1,
        };
        let registered = AuditEvent::new(AuditKind::UserRegistered, now, client).own(user.id);
        let linked = linked_event(identity, now, client, user.id);
        for attempt in 0..USERNAME_TRIES {
            if attempt > 0 {
                let suffix = Uuid::new_v4().as_u128() % 10_000;
                user.username =
                    Username::parse(&format!("{base}-{suffix}")).map_err(PortError::unexpected)?;
            }
            match self
                .ports
                .identities
                .create_user(&user, identity, &[registered.clone(), linked.clone()])
                .await
            {
                Err(NewIdentityUserError::UsernameTaken) => {}
                Ok(()) => {
                    info!(user_id = %user.id, provider = %identity.provider, "user created by a provider sign-in");
                    if !user.is_verified {
                        // As after a registration: the address can still be shown to be theirs.
                        crate::services::queue_verification(
                            self.ports.outbox(),
                            &user.email,
                            client,
                        )
                        .await;
                    }
                    return Ok(user);
                }
                Err(other) => return Err(other),
            }
        }
        Err(NewIdentityUserError::UsernameTaken)
    }
}

pub(super) fn linked_event(
    identity: &ProviderIdentity,
    now: time::OffsetDateTime,
    client: &ClientInfo,
    user: UserId,
) -> AuditEvent {
    let mut event = AuditEvent::new(AuditKind::IdentityLinked, now, client).own(user);
    event.details.provider = Some(identity.provider.clone());
    event
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mockall::predicate::eq;
    use time::Duration;

    use super::*;
    use crate::model::{MailKind, MfaStatus, UndoTarget};
    use crate::ports::{LinkIdentityError, Unlinked};
    use crate::services::auth::UnlinkError;
    use crate::services::auth::test_support::{expect_tokens, oauth_service};
    use crate::services::fixtures::{Mocks, NOW, user};

    const BINDING: &str = "cookie";

    fn state(flow: OAuthFlow, user_id: Option<UserId>) -> OAuthState {
        OAuthState {
            id: "state-1".into(),
            provider: "corp".into(),
            flow,
            user_id,
            expires_at: NOW + Duration::minutes(5),
        }
    }

    fn identity(subject: &str, email: &str, verified: bool) -> ProviderIdentity {
        ProviderIdentity {
            provider: "corp".into(),
            subject: subject.into(),
            email: Some(email.into()),
            email_verified: verified,
            preferred_username: Some(subject.into()),
            name: None,
        }
    }

    fn callback(client: &ClientInfo) -> OAuthCallback<'_> {
        OAuthCallback {
            provider: "corp",
            code: "code",
            state: "signed",
            binding: Some(BINDING),
            client,
        }
    }

    /// A provider that knows `corp`, opens `opened` and, once spent, hands
    /// over `identity`.
    fn provider_says(mocks: &mut Mocks, opened: OAuthState, identity: ProviderIdentity) {
        mocks.providers.expect_knows().returning(|p| p == "corp");
        mocks
            .providers
            .expect_open_state()
            .with(eq("signed"), eq(BINDING))
            .returning(move |_, _| Some(opened.clone()));
        mocks
            .identities
            .expect_spend_state()
            .with(eq("state-1"), eq(NOW + Duration::minutes(5)))
            .times(1)
            .returning(|_, _| Ok(true));
        mocks
            .providers
            .expect_exchange()
            .times(1)
            .returning(move |_, _, _| Ok(identity.clone()));
    }

    fn service(mocks: Mocks, associate_by_email: bool) -> OAuthService {
        oauth_service(mocks, associate_by_email)
    }

    #[tokio::test]
    async fn a_state_without_its_cookie_expired_or_of_another_flow_is_refused_unspent() {
        let ada = user("ada");
        let cases = [
            (None, state(OAuthFlow::SignIn, None)),
            (Some(BINDING), {
                let mut old = state(OAuthFlow::SignIn, None);
                old.expires_at = NOW;
                old
            }),
            (Some(BINDING), state(OAuthFlow::Associate, Some(ada.id))),
            (Some(BINDING), {
                let mut other = state(OAuthFlow::SignIn, None);
                other.provider = "other".into();
                other
            }),
        ];
        for (binding, opened) in cases {
            let mut mocks = Mocks::default();
            mocks.providers.expect_knows().return_const(true);
            mocks
                .providers
                .expect_open_state()
                .returning(move |_, _| Some(opened.clone()));
            // Nothing is spent, nothing exchanged.
            mocks.identities.expect_spend_state().never();
            mocks.providers.expect_exchange().never();
            let client = ClientInfo::default();
            let mut call = callback(&client);
            call.binding = binding;
            let err = service(mocks, false).oauth_sign_in(call).await.unwrap_err();
            assert!(matches!(err, OAuthError::InvalidState), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_spent_state_is_refused_before_the_code_is_exchanged() {
        let mut mocks = Mocks::default();
        mocks.providers.expect_knows().return_const(true);
        let opened = state(OAuthFlow::SignIn, None);
        mocks
            .providers
            .expect_open_state()
            .returning(move |_, _| Some(opened.clone()));
        mocks
            .identities
            .expect_spend_state()
            .returning(|_, _| Ok(false));
        mocks.providers.expect_exchange().never();
        let client = ClientInfo::default();
        let err = service(mocks, false)
            .oauth_sign_in(callback(&client))
            .await
            .unwrap_err();
        assert!(matches!(err, OAuthError::InvalidState));
    }

    #[tokio::test]
    async fn a_first_sign_in_creates_a_user_without_a_password_verified_as_the_provider_says() {
        let mut mocks = Mocks::default();
        provider_says(
            &mut mocks,
            state(OAuthFlow::SignIn, None),
            identity("sub-1", "Ada@Example.com", true),
        );
        mocks
            .identities
            .expect_find_user()
            .returning(|_, _| Ok(None));
        mocks.users.expect_find_by_login().returning(|_| Ok(None));
        mocks
            .identities
            .expect_create_user()
            .withf(|user, identity, events| {
                !user.password_hash.is_set()
                    && user.is_verified
                    && user.email.as_str() == "ada@example.com"
                    && user.username.as_str() == "sub-1"
                    && identity.subject == "sub-1"
                    && events[0].kind == AuditKind::UserRegistered
                    && events[1].kind == AuditKind::IdentityLinked
                    && events[1].details.provider.as_deref() == Some("corp")
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        mocks.without_second_factor();
        expect_tokens(&mut mocks);
        mocks
            .sessions
            .expect_create()
            .withf(|_, hash, event| {
                !hash.is_set()
                    && event.kind == AuditKind::LoginSucceeded
                    && event.details.method.as_deref() == Some("oauth:corp")
            })
            .times(1)
            .returning(|_, _, _| Ok(true));
        mocks.users.expect_record_login().returning(|_, _| Ok(()));
        let client = ClientInfo::default();
        service(mocks, false)
            .oauth_sign_in(callback(&client))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_taken_username_gets_a_suffix() {
        let mut mocks = Mocks::default();
        provider_says(
            &mut mocks,
            state(OAuthFlow::SignIn, None),
            identity("ada", "ada@example.com", false),
        );
        mocks
            .identities
            .expect_find_user()
            .returning(|_, _| Ok(None));
        mocks.users.expect_find_by_login().returning(|_| Ok(None));
        let mut tries = mockall::Sequence::new();
        mocks
            .identities
            .expect_create_user()
            .withf(|user, _, _| user.username.as_str() == "ada")
            .times(1)
            .in_sequence(&mut tries)
            .returning(|_, _, _| Err(NewIdentityUserError::UsernameTaken));
        mocks
            .identities
            .expect_create_user()
            .withf(|user, _, _| user.username.as_str().starts_with("ada-") && !user.is_verified)
            .times(1)
            .in_sequence(&mut tries)
            .returning(|_, _, _| Ok(()));
        // Not verified by the provider: a verification mail, as after a registration.
        mocks
            .mail
            .expect_enqueue()
            .withf(|kind, to, _, _| {
                *kind == crate::model::MailKind::VerifyEmail && to == "ada@example.com"
            })
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        mocks.without_second_factor();
        expect_tokens(&mut mocks);
        mocks.sessions.expect_create().returning(|_, _, _| Ok(true));
        mocks.users.expect_record_login().returning(|_, _| Ok(()));
        let client = ClientInfo::default();
        service(mocks, false)
            .oauth_sign_in(callback(&client))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_local_accounts_address_links_only_when_allowed_verified_on_both_sides_and_normal() {
        // (linking allowed, provider verified, local verified, address, links)
        for (allowed, verified, local_verified, address, links) in [
            (false, true, true, "ada@example.com", false),
            (true, false, true, "ada@example.com", false),
            // A squatter's unverified account is never reached by address.
            (true, true, false, "ada@example.com", false),
            // A Kelvin sign folds to `k`: a lookalike, not in normal form.
            (true, true, true, "\u{212A}ada@example.com", false),
            (true, true, true, "Ada@Example.com", true),
        ] {
            let local = User {
                is_verified: local_verified,
                ..user(if address.is_ascii() { "ada" } else { "kada" })
            };
            let mut mocks = Mocks::default();
            provider_says(
                &mut mocks,
                state(OAuthFlow::SignIn, None),
                identity("sub-1", address, verified),
            );
            mocks
                .identities
                .expect_find_user()
                .returning(|_, _| Ok(None));
            mocks.finds_by_login(&local);
            mocks.identities.expect_create_user().never();
            let id = local.id;
            mocks
                .identities
                .expect_link()
                .withf(move |user, _, _, event| {
                    *user == id && event.kind == AuditKind::IdentityLinked
                })
                .times(usize::from(links))
                .returning(|_, _, _, _| Ok(()));
            // A link made by address is mailed to the account, with a link
            // that undoes it.
            mocks
                .mail
                .expect_notify()
                .withf(move |notice, _, _| {
                    notice.kind == MailKind::IdentityLinked
                        && notice.user_id == id
                        && notice.target
                            == Some(UndoTarget::Identity {
                                provider: "corp".into(),
                                subject: "sub-1".into(),
                            })
                })
                .times(usize::from(links))
                .returning(|_, _, _| Ok(()));
            mocks.without_second_factor();
            expect_tokens(&mut mocks);
            mocks.sessions.expect_create().returning(|_, _, _| Ok(true));
            mocks.users.expect_record_login().returning(|_, _| Ok(()));
            let client = ClientInfo::default();
            let outcome = service(mocks, allowed)
                .oauth_sign_in(callback(&client))
                .await;
            if links {
                assert_eq!(outcome.unwrap().user_id, id);
            } else {
                assert!(matches!(outcome, Err(OAuthError::UserAlreadyExists)));
            }
        }
    }

    #[tokio::test]
    async fn a_racing_first_sign_in_of_the_same_identity_reaches_its_account() {
        // The other sign-in made the account between this one's two reads:
        // its address is taken, and the identity is linked to it.
        let made = User {
            is_verified: false,
            ..user("ada")
        };
        let mut mocks = Mocks::default();
        provider_says(
            &mut mocks,
            state(OAuthFlow::SignIn, None),
            identity("sub-1", "ada@example.com", true),
        );
        let id = made.id;
        let mut lookups = 0;
        mocks.identities.expect_find_user().returning(move |_, _| {
            lookups += 1;
            Ok((lookups > 1).then_some(id))
        });
        mocks.finds_by_login(&made);
        mocks.finds_by_id(&made);
        mocks.identities.expect_link().never();
        mocks.identities.expect_create_user().never();
        mocks.without_second_factor();
        expect_tokens(&mut mocks);
        mocks.sessions.expect_create().returning(|_, _, _| Ok(true));
        mocks.users.expect_record_login().returning(|_, _| Ok(()));
        let client = ClientInfo::default();
        // Linking by address is off: still no OAUTH_USER_ALREADY_EXISTS.
        let tokens = service(mocks, false)
            .oauth_sign_in(callback(&client))
            .await
            .unwrap();
        assert_eq!(tokens.user_id, id);
    }

    #[tokio::test]
    async fn an_inactive_user_is_refused_and_a_second_factor_is_asked_for() {
        for (active, totp) in [(false, false), (true, true)] {
            let mut ada = user("ada");
            ada.is_active = active;
            let mut mocks = Mocks::default();
            provider_says(
                &mut mocks,
                state(OAuthFlow::SignIn, None),
                identity("sub-1", "ada@example.com", true),
            );
            let id = ada.id;
            mocks
                .identities
                .expect_find_user()
                .returning(move |_, _| Ok(Some(id)));
            mocks.finds_by_id(&ada);
            mocks.mfa.expect_status().returning(move |_| {
                Ok(MfaStatus {
                    totp,
                    recovery_codes_left: 10,
                })
            });
            mocks.issues_refresh_tokens("challenge");
            mocks
                .mfa
                .expect_create_challenge()
                .withf(|_, login, _| login.federated)
                .times(usize::from(totp))
                .returning(|_, _, _| Ok(()));
            // No session either way.
            mocks.sessions.expect_create().never();
            let client = ClientInfo::default();
            let err = service(mocks, false)
                .oauth_sign_in(callback(&client))
                .await
                .unwrap_err();
            if active {
                assert!(matches!(err, OAuthError::MfaRequired { .. }), "{err:?}");
            } else {
                assert!(matches!(err, OAuthError::BadCredentials), "{err:?}");
            }
        }
    }

    #[tokio::test]
    async fn linking_to_the_caller_is_refused_when_the_identity_is_anothers() {
        let ada = user("ada");
        let bob = user("bob");
        for (owner, ok) in [(bob.id, false), (ada.id, true)] {
            let mut mocks = Mocks::default();
            provider_says(
                &mut mocks,
                state(OAuthFlow::Associate, Some(ada.id)),
                identity("sub-1", "ada@corp.example", true),
            );
            mocks
                .identities
                .expect_link()
                .returning(move |_, _, _, _| Err(LinkIdentityError::LinkedTo(owner)));
            mocks.finds_by_id(&ada);
            let client = ClientInfo::default();
            let outcome = service(mocks, false)
                .oauth_associate(callback(&client), ada.id)
                .await;
            if ok {
                assert_eq!(outcome.unwrap().id, ada.id);
            } else {
                assert!(matches!(outcome, Err(OAuthError::LinkedElsewhere)));
            }
        }
    }

    #[tokio::test]
    async fn the_last_way_in_is_not_unlinked() {
        let ada = user("ada");
        for (outcome, refused) in [(Unlinked::Done, false), (Unlinked::LastMethod, true)] {
            let mut mocks = Mocks::default();
            mocks
                .identities
                .expect_unlink()
                .withf(|_, provider, event| {
                    provider == "corp" && event.kind == AuditKind::IdentityUnlinked
                })
                .returning(move |_, _, _| Ok(outcome));
            let result = service(mocks, false)
                .unlink_identity(ada.id, "corp", &ClientInfo::default())
                .await;
            assert_eq!(matches!(result, Err(UnlinkError::LastMethod)), refused);
        }
    }
}
