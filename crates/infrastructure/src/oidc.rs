//! OpenID Connect providers, through the `openidconnect` crate: discovery
//! (cached, refreshed when a token names an unknown key), the
//! authorization request with PKCE and `nonce`, the code exchange and the
//! ID token's checks. The `state` is signed here and bound to a browser
//! cookie; the PKCE verifier and the `nonce` are derived from the cookie,
//! so nothing secret travels in the URL and nothing is stored per request.

mod state;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, SignatureVerificationError, TokenResponse,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::RwLock;
use tracing::{info, warn};
use userhub_domain::model::{OAuthFlow, OAuthState, ProviderIdentity};
use userhub_domain::ports::{Authorization, IdentityProviders, ProviderError};

use state::StateKey;

/// How long a discovery document (with its keys) is used before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// After a failed refresh, how long the old document serves before the next try.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// At most one key-set refresh per provider in this time: a token naming an
/// unknown key cannot make the server hammer the provider.
const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Each request to a provider gives up after this long.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// One provider as configured.
#[derive(Clone, Debug)]
pub struct OidcProviderSettings {
    /// The name in paths (`/api/auth/oauth/{name}/…`).
    pub name: String,
    /// The issuer; discovery is at `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id UserHub is registered under.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
    /// The scopes asked for when the front end names none.
    pub scopes: Vec<String>,
}

/// Every provider, and where the browser comes back to.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    /// The providers.
    pub providers: Vec<OidcProviderSettings>,
    /// The base of the redirect URIs (`<base>/api/auth/oauth/{name}/callback`).
    pub redirect_base: String,
    /// The key that signs `state` and derives the PKCE verifier and `nonce`.
    pub state_key: SecretString,
}

struct Discovered {
    metadata: CoreProviderMetadata,
    /// When this copy stops being fresh.
    fresh_until: Instant,
    jwks_refreshed: Option<Instant>,
}

struct Provider {
    settings: OidcProviderSettings,
    issuer: IssuerUrl,
    discovered: RwLock<Option<Discovered>>,
}

/// The configured providers, as the [`IdentityProviders`] port.
pub struct OidcProviders {
    http: reqwest::Client,
    providers: HashMap<String, Provider>,
    redirect_base: String,
    key: StateKey,
}

impl OidcProviders {
    /// The providers of `settings`; nothing is fetched until first use, so
    /// a provider that is down does not stop the server.
    ///
    /// # Errors
    /// An issuer that is no URL, or no HTTP client.
    pub fn new(settings: OidcSettings) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            // The protocol's responses are never redirects; following one
            // would let a provider point the server elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .connect_timeout(PROVIDER_TIMEOUT / 2)
            .build()
            .map_err(|err| err.to_string())?;
        let mut providers = HashMap::new();
        for provider in settings.providers {
            let issuer = IssuerUrl::new(provider.issuer.clone())
                .map_err(|err| format!("{}: {err}", provider.name))?;
            providers.insert(
                provider.name.clone(),
                Provider {
                    settings: provider,
                    issuer,
                    discovered: RwLock::new(None),
                },
            );
        }
        Ok(Self {
            http,
            providers,
            redirect_base: settings.redirect_base.trim_end_matches('/').to_owned(),
            key: StateKey(settings.state_key.expose_secret().as_bytes().to_vec()),
        })
    }

    fn redirect_uri(&self, provider: &str, flow: OAuthFlow) -> String {
        let tail = match flow {
            OAuthFlow::SignIn => "callback",
            OAuthFlow::Associate => "associate/callback",
        };
        format!("{}/api/auth/oauth/{provider}/{tail}", self.redirect_base)
    }

    fn provider(&self, name: &str) -> Result<&Provider, ProviderError> {
        self.providers
            .get(name)
            .ok_or_else(|| ProviderError::Unavailable(format!("no provider {name}")))
    }

    /// The provider's discovery document: cached, fetched when stale; a
    /// stale copy still serves while the provider cannot be reached.
    async fn metadata(&self, provider: &Provider) -> Result<CoreProviderMetadata, ProviderError> {
        if let Some(found) = provider.discovered.read().await.as_ref()
            && found.fresh_until > Instant::now()
        {
            return Ok(found.metadata.clone());
        }
        let mut slot = provider.discovered.write().await;
        if let Some(found) = slot.as_ref()
            && found.fresh_until > Instant::now()
        {
            return Ok(found.metadata.clone());
        }
        match CoreProviderMetadata::discover_async(provider.issuer.clone(), &self.http).await {
            Ok(metadata) => {
                info!(provider = %provider.settings.name, "provider discovered");
                *slot = Some(Discovered {
                    metadata: metadata.clone(),
                    fresh_until: Instant::now() + DISCOVERY_TTL,
                    jwks_refreshed: None,
                });
                Ok(metadata)
            }
            Err(err) => {
                warn!(provider = %provider.settings.name, error = %err, "provider discovery failed");
                match slot.as_mut() {
                    Some(stale) => {
                        stale.fresh_until = Instant::now() + RETRY_AFTER_FAILURE;
                        Ok(stale.metadata.clone())
                    }
                    None => Err(ProviderError::Unavailable(err.to_string())),
                }
            }
        }
    }

    /// Fetches the provider's key set again (a token named a key it did not
    /// hold), at most once per [`JWKS_REFRESH_INTERVAL`]; the document with
    /// the new keys, or `None` when no refresh was due or it failed.
    async fn refresh_keys(&self, provider: &Provider) -> Option<CoreProviderMetadata> {
        let mut slot = provider.discovered.write().await;
        let found = slot.as_mut()?;
        if found
            .jwks_refreshed
            .is_some_and(|at| at.elapsed() < JWKS_REFRESH_INTERVAL)
        {
            return None;
        }
        found.jwks_refreshed = Some(Instant::now());
        match JsonWebKeySet::fetch_async(found.metadata.jwks_uri(), &self.http).await {
            Ok(keys) => {
                info!(provider = %provider.settings.name, "provider keys refreshed");
                found.metadata = found.metadata.clone().set_jwks(keys);
                Some(found.metadata.clone())
            }
            Err(err) => {
                warn!(provider = %provider.settings.name, error = %err, "refreshing provider keys failed");
                None
            }
        }
    }

    fn client(
        &self,
        provider: &Provider,
        metadata: CoreProviderMetadata,
        flow: OAuthFlow,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        ProviderError,
    > {
        let redirect = RedirectUrl::new(self.redirect_uri(&provider.settings.name, flow))
            .map_err(|err| ProviderError::Unavailable(err.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(provider.settings.client_id.clone()),
            Some(ClientSecret::new(
                provider.settings.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(redirect))
    }
}

/// What an ID token or user info says of the account: both have the
/// standard claims' accessors, but no trait in common.
macro_rules! identity_from {
    ($provider:expr, $subject:expr, $claims:expr) => {{
        let claims = $claims;
        ProviderIdentity {
            provider: $provider.to_owned(),
            subject: $subject.to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            preferred_username: claims.preferred_username().map(|u| u.as_str().to_owned()),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
        }
    }};
}

#[async_trait]
impl IdentityProviders for OidcProviders {
    fn knows(&self, provider: &str) -> bool {
        self.providers.contains_key(provider)
    }

    async fn authorize(
        &self,
        state: &OAuthState,
        scopes: Option<String>,
    ) -> Result<Authorization, ProviderError> {
        let provider = self.provider(&state.provider)?;
        let metadata = self.metadata(provider).await?;
        let client = self.client(provider, metadata, state.flow)?;
        let mut random = [0_u8; 32];
        getrandom::fill(&mut random).map_err(|err| ProviderError::Unavailable(err.to_string()))?;
        let binding = URL_SAFE_NO_PAD.encode(random);
        let signed = self.key.sign(state, &binding);
        let verifier = PkceCodeVerifier::new(self.key.derived("pkce", &binding, &state.id));
        let nonce = Nonce::new(self.key.derived("nonce", &binding, &state.id));
        let scopes: Vec<String> = match scopes {
            Some(asked) => asked.split_whitespace().map(str::to_owned).collect(),
            None => provider.settings.scopes.clone(),
        };
        let (url, _, _) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(signed),
                move || nonce,
            )
            .add_scopes(scopes.into_iter().filter(|s| s != "openid").map(Scope::new))
            .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier))
            .url();
        Ok(Authorization {
            url: url.to_string(),
            binding: SecretString::from(binding),
            expires_at: state.expires_at,
        })
    }

    fn open_state(&self, raw: &str, binding: &str) -> Option<OAuthState> {
        self.key.open(raw, binding)
    }

    async fn exchange(
        &self,
        state: &OAuthState,
        binding: &str,
        code: &str,
    ) -> Result<ProviderIdentity, ProviderError> {
        let provider = self.provider(&state.provider)?;
        let metadata = self.metadata(provider).await?;
        let client = self.client(provider, metadata, state.flow)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|err| ProviderError::Unavailable(err.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(
                self.key.derived("pkce", binding, &state.id),
            ))
            .request_async(&self.http)
            .await
            .map_err(|err| match err {
                RequestTokenError::ServerResponse(refusal) => {
                    use openidconnect::core::CoreErrorResponseType as E;
                    match refusal.error() {
                        E::Extension(code)
                            if code == "server_error" || code == "temporarily_unavailable" =>
                        {
                            ProviderError::Unavailable(refusal.to_string())
                        }
                        _ => ProviderError::CodeRefused(refusal.to_string()),
                    }
                }
                other => ProviderError::Unavailable(other.to_string()),
            })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| ProviderError::TokenRejected("no ID token".into()))?;
        let nonce = Nonce::new(self.key.derived("nonce", binding, &state.id));
        let verified = {
            let verifier = client.id_token_verifier();
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims: CoreIdTokenClaims = match verified {
            Ok(claims) => claims,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys: fetch them once more.
                let refreshed = self.refresh_keys(provider).await.ok_or_else(|| {
                    ProviderError::TokenRejected("signed by an unknown key".into())
                })?;
                let client = self.client(provider, refreshed, state.flow)?;
                let verifier = client.id_token_verifier();
                id_token
                    .claims(&verifier, &nonce)
                    .cloned()
                    .map_err(|err| verification_error(&err))?
            }
            Err(err) => return Err(verification_error(&err)),
        };
        let subject = claims.subject().as_str().to_owned();
        let mut identity = identity_from!(provider.settings.name, subject, &claims);
        // Many providers put the address in user info only.
        if identity.email.is_none()
            && let Ok(request) = client.user_info(
                response.access_token().clone(),
                Some(claims.subject().clone()),
            )
        {
            let info: openidconnect::core::CoreUserInfoClaims = request
                .request_async(&self.http)
                .await
                .map_err(|err| match err {
                    // Another subject's, or not the issuer's.
                    openidconnect::UserInfoError::ClaimsVerification(err) => {
                        ProviderError::TokenRejected(err.to_string())
                    }
                    other => ProviderError::Unavailable(other.to_string()),
                })?;
            let from_info = identity_from!(provider.settings.name, subject, &info);
            identity.email = from_info.email;
            identity.email_verified = from_info.email_verified;
            identity.preferred_username =
                identity.preferred_username.or(from_info.preferred_username);
            identity.name = identity.name.or(from_info.name);
        }
        Ok(identity)
    }
}

fn verification_error(err: &ClaimsVerificationError) -> ProviderError {
    match err {
        ClaimsVerificationError::InvalidNonce(_) => ProviderError::NonceMismatch,
        other => ProviderError::TokenRejected(other.to_string()),
    }
}
