//! Accounts at OpenID providers linked to users, and the state of a
//! sign-in while the browser is away at the provider.

use time::OffsetDateTime;

use super::{UserId, Username};

/// What a provider said of the account that signed in, its ID token (and
/// user info) verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// The configured name of the provider.
    pub provider: String,
    /// The provider's stable id of the account (`sub`): the key, never the address.
    pub subject: String,
    /// The address the provider gave, if any.
    pub email: Option<String>,
    /// Whether the provider says the address is the account holder's.
    pub email_verified: bool,
    /// The provider's suggestion for a username.
    pub preferred_username: Option<String>,
    /// A display name.
    pub name: Option<String>,
}

impl ProviderIdentity {
    /// Whether the provider's address may be taken as verified: the
    /// provider says so, and the address is already in normal form. Stored
    /// addresses are ASCII, so one with any other character would change
    /// under case folding (a Kelvin sign becomes `k`) and may be a lookalike
    /// of someone else's: it is neither trusted nor used to link.
    #[must_use]
    pub fn email_trusted(&self) -> bool {
        self.email_verified
            && self
                .email
                .as_deref()
                .is_some_and(|raw| raw.trim().is_ascii())
    }
}

/// An identity linked to a user, as listed to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedIdentity {
    /// The configured name of the provider.
    pub provider: String,
    /// The provider's id of the account.
    pub subject: String,
    /// The address the provider gave when it was linked.
    pub email: Option<String>,
    /// When it was linked.
    pub linked_at: OffsetDateTime,
}

named! {
    /// What a sign-in at a provider is for.
    pub enum OAuthFlow {
        /// Signing in (or up) without tokens.
        SignIn = "signin",
        /// Linking the provider's account to the signed-in user.
        Associate = "associate",
    }
}

/// The verified content of a `state` parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthState {
    /// Random and unique: spent once.
    pub id: String,
    /// The provider it was made for.
    pub provider: String,
    /// What it was made for.
    pub flow: OAuthFlow,
    /// For [`OAuthFlow::Associate`], the user who asked.
    pub user_id: Option<UserId>,
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
}

/// A first sign-in's username: the provider's preferred username or the
/// address's local part, reduced to the characters a username may hold,
/// lower-cased, at least 3 and at most `max` characters (leaving room for a
/// suffix that makes it unique). `"user"` when nothing usable is left.
#[must_use]
pub fn username_base(identity: &ProviderIdentity, max: usize) -> String {
    let candidates = [
        identity.preferred_username.as_deref(),
        identity.email.as_deref().and_then(|e| e.split('@').next()),
    ];
    for raw in candidates.into_iter().flatten() {
        let cleaned: String = raw
            .chars()
            .filter(|c| Username::allows(*c))
            .map(|c| c.to_ascii_lowercase())
            .skip_while(|c| !Username::may_start_with(*c))
            .take(max)
            .collect();
        if cleaned.len() >= Username::MIN_LEN {
            return cleaned;
        }
    }
    "user".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(preferred: Option<&str>, email: Option<&str>) -> ProviderIdentity {
        ProviderIdentity {
            provider: "corp".into(),
            subject: "1".into(),
            email: email.map(Into::into),
            email_verified: true,
            preferred_username: preferred.map(Into::into),
            name: None,
        }
    }

    #[test]
    fn the_base_is_a_cleaned_preferred_name_or_local_part() {
        assert_eq!(username_base(&identity(Some("Ada L."), None), 24), "adal.");
        assert_eq!(
            username_base(&identity(Some("__x"), Some("Grace.H@x.org")), 24),
            "grace.h"
        );
        assert_eq!(
            username_base(&identity(None, Some("Ünï@x.org")), 24),
            "user"
        );
        assert_eq!(username_base(&identity(Some("abcdefgh"), None), 5), "abcde");
        assert_eq!(username_base(&identity(None, None), 24), "user");
    }
}
