//! The OpenID providers: their names come from OAUTH_PROVIDERS, and each
//! name brings its own variables, so they are read by name here rather
//! than declared in a section.

use anyhow::{Context, bail};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};

use super::Settings;

/// Longest provider name (it is part of paths and variable names).
const MAX_NAME: usize = 32;
/// The scopes asked for when a provider's are not set.
pub const DEFAULT_SCOPES: &str = "openid email profile";

/// One provider as configured.
#[derive(Clone, Debug)]
pub struct OAuthProvider {
    /// Its name in paths and variables, lower-case.
    pub name: String,
    /// `OAUTH_<NAME>_ISSUER`.
    pub issuer: String,
    /// `OAUTH_<NAME>_CLIENT_ID`.
    pub client_id: String,
    /// `OAUTH_<NAME>_CLIENT_SECRET`.
    pub client_secret: SecretString,
    /// `OAUTH_<NAME>_SCOPES`, space-separated.
    pub scopes: String,
}

/// Whether an environment variable may configure a provider (the names
/// are not known before OAUTH_PROVIDERS is read).
pub(super) fn is_provider_key(key: &str) -> bool {
    key.to_ascii_lowercase().starts_with("oauth_")
}

/// The providers OAUTH_PROVIDERS names, each with its variables.
pub(super) fn providers(figment: &Figment, names: &str) -> anyhow::Result<Vec<OAuthProvider>> {
    let mut providers: Vec<OAuthProvider> = Vec::new();
    for name in names
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
    {
        let name = name.to_ascii_lowercase();
        let valid = name.len() <= MAX_NAME
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            bail!(
                "OAUTH_PROVIDERS: `{name}` is no provider name (lower-case letters, digits and _, starting with a letter, at most {MAX_NAME})"
            );
        }
        if providers.iter().any(|p| p.name == name) {
            bail!("OAUTH_PROVIDERS: `{name}` is named twice");
        }
        let read = |suffix: &str| -> anyhow::Result<Option<String>> {
            let key = format!("oauth_{name}_{suffix}");
            if !figment.contains(&key) {
                return Ok(None);
            }
            let value: String = figment
                .extract_inner(&key)
                .map_err(|err| anyhow::anyhow!("{}: {}", key.to_ascii_uppercase(), err.kind))?;
            Ok(Some(value).filter(|v| !v.trim().is_empty()))
        };
        let required = |suffix: &str| -> anyhow::Result<String> {
            read(suffix)?.with_context(|| {
                format!(
                    "OAUTH_{}_{}: required for the provider `{name}` of OAUTH_PROVIDERS",
                    name.to_ascii_uppercase(),
                    suffix.to_ascii_uppercase()
                )
            })
        };
        providers.push(OAuthProvider {
            issuer: required("issuer")?.trim().trim_end_matches('/').to_owned(),
            client_id: required("client_id")?,
            client_secret: SecretString::from(required("client_secret")?),
            scopes: read("scopes")?.unwrap_or_else(|| DEFAULT_SCOPES.to_owned()),
            name,
        });
    }
    Ok(providers)
}

impl Settings {
    /// The base of the providers' redirect URIs, without a trailing slash.
    #[must_use]
    pub fn oauth_redirect_base(&self) -> String {
        let base = self.oauth.oauth_redirect_base_url.trim();
        if base.is_empty() {
            self.public_url()
        } else {
            base.trim_end_matches('/').to_owned()
        }
    }

    /// Refuses a provider whose issuer is no URL (or plain HTTP in
    /// production, but for loopback) and a redirect base that is no URL.
    pub(super) fn check_oauth(&self) -> anyhow::Result<()> {
        for provider in &self.oauth_providers {
            let key = format!("OAUTH_{}_ISSUER", provider.name.to_ascii_uppercase());
            let url = url::Url::parse(&provider.issuer)
                .with_context(|| format!("{key}={}: expected an https:// URL", provider.issuer))?;
            let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
            match url.scheme() {
                "https" => {}
                "http" if !self.is_production() || loopback => {}
                _ => bail!("{key}={}: expected an https:// URL", provider.issuer),
            }
            if provider.client_secret.expose_secret().contains('\n') {
                bail!(
                    "OAUTH_{}_CLIENT_SECRET: must be one line",
                    provider.name.to_ascii_uppercase()
                );
            }
        }
        if !self.oauth_providers.is_empty() {
            let base = self.oauth_redirect_base();
            match url::Url::parse(&base) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => bail!("OAUTH_REDIRECT_BASE_URL={base}: expected an http(s):// URL"),
            }
        }
        Ok(())
    }
}
