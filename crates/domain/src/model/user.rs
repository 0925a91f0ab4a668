use std::fmt;

use time::OffsetDateTime;

use super::{Email, PasswordHash, UserId, Username};

/// A display name: at most 100 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullName(String);

/// Why a string is not a [`FullName`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FullNameError {
    /// More than [`FullName::MAX_LEN`] characters.
    #[error("full name longer than 100 characters")]
    TooLong,
    /// Holds a control character (NUL included).
    #[error("full name holds a control character")]
    ControlCharacter,
}

impl FullName {
    /// Longest accepted name, in characters.
    pub const MAX_LEN: usize = 100;

    /// Validates `raw`.
    ///
    /// # Errors
    /// [`FullNameError`] naming the rule broken.
    pub fn parse(raw: &str) -> Result<Self, FullNameError> {
        if raw.chars().any(char::is_control) {
            return Err(FullNameError::ControlCharacter);
        }
        if raw.chars().count() > Self::MAX_LEN {
            return Err(FullNameError::TooLong);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FullName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A unique field of a user that another user holds already.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Taken {
    /// The e-mail address.
    #[error("email already registered")]
    Email,
    /// The username.
    #[error("username already taken")]
    Username,
}

/// A UserHub account. A soft-deleted user is one with `is_active == false`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Time-ordered id.
    pub id: UserId,
    /// Unique, lower-cased address.
    pub email: Email,
    /// Unique, lower-cased login name.
    pub username: Username,
    /// Optional display name.
    pub full_name: Option<FullName>,
    /// bcrypt hash of the password.
    pub password_hash: PasswordHash,
    /// False once deactivated (soft-deleted).
    pub is_active: bool,
    /// May manage every user.
    pub is_superuser: bool,
    /// The address was shown to be the user's (a mailed link was followed).
    pub is_verified: bool,
    /// When the account was made.
    pub created_at: OffsetDateTime,
    /// When the account last changed.
    pub updated_at: OffsetDateTime,
    /// When the user last logged in successfully.
    pub last_login_at: Option<OffsetDateTime>,
    /// Bumped by every write of the account's own fields (not by a
    /// login): the `ETag` clients may send back in `If-Match`.
    pub version: u64,
}

/// The versions a conditional request accepts (its `If-Match` list): any
/// one of them. An empty list accepts none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionMatch(Vec<u64>);

impl VersionMatch {
    /// Accepts exactly these versions.
    #[must_use]
    pub fn any_of(versions: impl IntoIterator<Item = u64>) -> Self {
        Self(versions.into_iter().collect())
    }

    /// Whether `version` is one of them.
    #[must_use]
    pub fn accepts(&self, version: u64) -> bool {
        self.0.contains(&version)
    }
}

impl From<u64> for VersionMatch {
    fn from(version: u64) -> Self {
        Self(vec![version])
    }
}

/// A user as one particular caller may see it: `email` and `last_login_at`
/// are visible only to the user themself and to superusers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserView {
    user: User,
    private_visible: bool,
}

impl UserView {
    /// The view of `user` for `viewer`.
    #[must_use]
    pub fn for_viewer(user: User, viewer: &User) -> Self {
        let private_visible = viewer.is_superuser || viewer.id == user.id;
        Self {
            user,
            private_visible,
        }
    }

    /// The view the user has of themself.
    #[must_use]
    pub fn own(user: User) -> Self {
        Self {
            user,
            private_visible: true,
        }
    }

    /// The public fields (id, username, …) are always readable.
    #[must_use]
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The address, if this viewer may read it.
    #[must_use]
    pub fn email(&self) -> Option<&Email> {
        self.private_visible.then_some(&self.user.email)
    }

    /// Whether the address is verified, if this viewer may read it.
    #[must_use]
    pub fn is_verified(&self) -> Option<bool> {
        self.private_visible.then_some(self.user.is_verified)
    }

    /// `Some(last login)` if this viewer may read it, `None` if hidden.
    #[must_use]
    pub fn last_login_at(&self) -> Option<Option<OffsetDateTime>> {
        self.private_visible.then_some(self.user.last_login_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_name_allows_100_characters_without_controls() {
        assert!(FullName::parse(&"é".repeat(100)).is_ok());
        assert_eq!(
            FullName::parse(&"é".repeat(101)),
            Err(FullNameError::TooLong)
        );
        assert_eq!(
            FullName::parse("Ada\nL"),
            Err(FullNameError::ControlCharacter)
        );
        assert_eq!(
            FullName::parse("Ada\0"),
            Err(FullNameError::ControlCharacter)
        );
    }
}
