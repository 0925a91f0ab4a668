use std::fmt;

/// A login name: 3–32 characters of `[a-z0-9_.-]` starting with a letter or
/// digit, stored lower-cased so that uniqueness ignores case.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Username(String);

/// Why a string is not a [`Username`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Fewer than [`Username::MIN_LEN`] characters.
    #[error("username shorter than 3 characters")]
    TooShort,
    /// More than [`Username::MAX_LEN`] characters.
    #[error("username longer than 32 characters")]
    TooLong,
    /// Holds a character outside `[A-Za-z0-9_.-]` or starts with `_`, `.` or `-`.
    #[error(
        "username holds a character other than letters, digits, `_`, `.` and `-`, or starts with one of the last three"
    )]
    Pattern,
}

impl Username {
    /// Shortest accepted username.
    pub const MIN_LEN: usize = 3;
    /// Longest accepted username.
    pub const MAX_LEN: usize = 32;
    /// The characters and first character allowed, as a regular
    /// expression (the OpenAPI schemas and 422 messages quote it).
    pub const PATTERN: &'static str = "^[A-Za-z0-9][A-Za-z0-9_.-]*$";

    /// Whether `c` may appear in a username.
    #[must_use]
    pub fn allows(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
    }

    /// Whether a username may start with `c`.
    #[must_use]
    pub fn may_start_with(c: char) -> bool {
        c.is_ascii_alphanumeric()
    }

    /// Validates `raw` and lower-cases it.
    ///
    /// # Errors
    /// [`UsernameError`] naming the first rule broken.
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let len = raw.chars().count();
        if len < Self::MIN_LEN {
            return Err(UsernameError::TooShort);
        }
        if len > Self::MAX_LEN {
            return Err(UsernameError::TooLong);
        }
        let allowed = raw.chars().all(Self::allows);
        let starts_well = raw.chars().next().is_some_and(Self::may_start_with);
        if !(allowed && starts_well) {
            return Err(UsernameError::Pattern);
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The username as stored.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lowercases() {
        assert_eq!(Username::parse("Ada_L.1-x").unwrap().as_str(), "ada_l.1-x");
    }

    #[test]
    fn parse_enforces_length_in_characters() {
        assert_eq!(Username::parse("ab"), Err(UsernameError::TooShort));
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert_eq!(
            Username::parse(&"a".repeat(33)),
            Err(UsernameError::TooLong)
        );
    }

    #[test]
    fn parse_rejects_other_characters_and_bad_starts() {
        for raw in ["_ada", ".ada", "-ada", "ad a", "adä", "ada\0", "ada@x"] {
            assert_eq!(Username::parse(raw), Err(UsernameError::Pattern), "{raw:?}");
        }
    }
}
