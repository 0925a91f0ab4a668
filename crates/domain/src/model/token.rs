//! Personal access tokens: long-lived, scoped credentials for scripts and
//! services acting as a user.

use time::{Duration, OffsetDateTime};

use super::{PasswordHash, TokenHash, TokenId, UserId};

/// Most live tokens one user may hold.
pub const MAX_TOKENS_PER_USER: u64 = 50;

/// Lifetime of a token created without `expires_in_days`.
pub const DEFAULT_TOKEN_DAYS: i64 = 30;

/// How often, at most, a token's `last_used_at` is written.
pub const LAST_USED_RESOLUTION: Duration = Duration::MINUTE;

named! {
    /// What a token may do. The names are part of the HTTP contract.
    pub enum Scope {
        /// Read one's own profile (`GET /api/auth/me`).
        ProfileRead = "profile:read",
        /// List and read users.
        UsersRead = "users:read",
        /// Create, change, delete, restore and unlock users, within the
        /// owner's rights.
        UsersWrite = "users:write",
        /// Read one's own events, and (a superuser) the audit trail.
        AuditRead = "audit:read",
    }
}

/// A set of scopes, in declaration order, each once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// The set of `scopes`.
    #[must_use]
    pub fn of(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self(scopes.into_iter().fold(0, |bits, s| bits | Self::bit(s)))
    }

    /// The set named by `names`, or the first name that is no scope.
    ///
    /// # Errors
    /// The unknown name.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, &'a str> {
        let mut scopes = Vec::new();
        for name in names {
            scopes.push(Scope::parse(name).ok_or(name)?);
        }
        Ok(Self::of(scopes))
    }

    /// Whether `scope` is in the set.
    #[must_use]
    pub const fn allows(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.allows(*s))
    }

    /// The names, space-separated (how they are stored).
    #[must_use]
    pub fn to_text(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    const fn bit(scope: Scope) -> u8 {
        1 << scope as u8
    }
}

/// A token's name, for its owner to tell tokens apart: 1 to 100
/// characters, no control characters, not blank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    /// Longest accepted name, in characters.
    pub const MAX_LEN: usize = 100;

    /// Validates `raw`.
    ///
    /// # Errors
    /// What is wrong with it, in words.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        super::label(raw, Self::MAX_LEN, "name longer than 100 characters").map(Self)
    }

    /// The name as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token as its owner (or a superuser) sees it: never its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonalToken {
    /// Its id.
    pub id: TokenId,
    /// Whose it is.
    pub user_id: UserId,
    /// Its owner's name for it.
    pub name: TokenName,
    /// What it may do.
    pub scopes: Scopes,
    /// Its first characters (`uhp_` and a few more), to recognise it by.
    pub prefix: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// When it was last used, to the minute.
    pub last_used_at: Option<OffsetDateTime>,
}

/// A token about to be stored, with its secret's hash.
#[derive(Clone, Debug)]
pub struct NewPersonalToken {
    /// What is shown of it.
    pub token: PersonalToken,
    /// The SHA-256 hash of its secret, what it is found by.
    pub hash: TokenHash,
    /// The owner's password hash that the creation proved the password
    /// against: the token is stored only while it is still theirs.
    pub proven: PasswordHash,
}

/// What a request authenticated by a token may do, beyond its owner's
/// rights: its scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenGrant {
    /// The token.
    pub id: TokenId,
    /// Its scopes.
    pub scopes: Scopes,
    /// When it was last used, as stored (written at most once a minute).
    pub last_used_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_in_any_order_and_show_in_declaration_order() {
        let scopes = Scopes::parse(["audit:read", "profile:read", "audit:read"]).unwrap();
        assert!(scopes.allows(Scope::ProfileRead) && scopes.allows(Scope::AuditRead));
        assert!(!scopes.allows(Scope::UsersWrite));
        assert_eq!(scopes.to_text(), "profile:read audit:read");
        assert_eq!(Scopes::parse(["users:read", "admin"]), Err("admin"));
        assert!(Scopes::parse([]).unwrap().is_empty());
    }

    #[test]
    fn a_name_is_not_blank_short_and_printable() {
        assert!(TokenName::parse("deploy bot").is_ok());
        assert!(TokenName::parse("  ").is_err());
        assert!(TokenName::parse("a\nb").is_err());
        assert!(TokenName::parse(&"x".repeat(101)).is_err());
        assert!(TokenName::parse(&"é".repeat(100)).is_ok());
    }
}
