//! Passkeys: WebAuthn credentials a user signs in with.

use time::{Duration, OffsetDateTime};

use super::{PasskeyId, UserId};

/// Most passkeys one account may hold.
pub const MAX_PASSKEYS_PER_USER: u64 = 20;

/// How long a registration or sign-in ceremony may take, from its options
/// to its answer.
pub const CEREMONY_TTL: Duration = Duration::minutes(5);

/// A passkey's name, for its owner to tell passkeys apart: 1 to 64
/// characters, no control characters, not blank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyName(String);

impl PasskeyName {
    /// Longest accepted name, in characters.
    pub const MAX_LEN: usize = 64;

    /// Validates `raw`.
    ///
    /// # Errors
    /// What is wrong with it, in words.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        super::label(raw, Self::MAX_LEN, "name longer than 64 characters").map(Self)
    }

    /// The default name of a user's `n`th passkey: "Passkey n".
    #[must_use]
    pub fn numbered(n: u64) -> Self {
        Self(format!("Passkey {n}"))
    }

    /// The name as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A passkey as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passkey {
    /// UserHub's id for it.
    pub id: PasskeyId,
    /// Its owner.
    pub user_id: UserId,
    /// Its owner's name for it.
    pub name: PasskeyName,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it last signed in, if ever.
    pub last_used_at: Option<OffsetDateTime>,
    /// Whether the authenticator said it is synced (backed up).
    pub backed_up: bool,
}

/// What the WebAuthn checks need of a stored passkey: opaque to the
/// domain, written and read by the ceremony adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyCredential {
    /// The credential id, base64url.
    pub credential_id: String,
    /// The signature counter last seen.
    pub counter: u32,
    /// The credential (public key and the rest) as the adapter stores it.
    pub data: String,
}

/// A passkey to store: the owner's view and its credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPasskey {
    /// What the owner sees.
    pub passkey: Passkey,
    /// What sign-ins check.
    pub credential: PasskeyCredential,
}

/// The server's half of a ceremony under way, kept until the browser
/// answers: what the ceremony adapter needs to check the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CeremonyState(pub String);

/// Which ceremony a token belongs to: a token of one kind never finishes
/// another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Adding a passkey to a signed-in account.
    Register,
    /// Signing in with a passkey.
    Login,
    /// A passkey as the second step of a login (under the `mfa_token`).
    SecondFactor,
}

impl CeremonyKind {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::SecondFactor => "mfa",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(PasskeyName::parse("YubiKey").is_ok());
        assert!(PasskeyName::parse(" ").is_err());
        assert!(PasskeyName::parse("a\tb").is_err());
        assert!(PasskeyName::parse(&"x".repeat(65)).is_err());
        assert!(PasskeyName::parse(&"é".repeat(64)).is_ok());
        assert_eq!(PasskeyName::numbered(3).as_str(), "Passkey 3");
    }
}
