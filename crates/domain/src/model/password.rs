use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::{Email, Username};

/// A new password that meets the length rules. It is never printed.
///
/// Personal-information rules need the owner's username and e-mail, so they
/// are checked separately by [`Password::check_not_personal`].
#[derive(Clone)]
pub struct Password(SecretString);

/// Why a password is refused. No variant carries the password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than [`Password::MIN_BYTES`] bytes.
    #[error("password shorter than 8 bytes")]
    TooShort,
    /// More than [`Password::MAX_BYTES`] bytes (bcrypt's limit; never truncated).
    #[error("password longer than 72 bytes")]
    TooLong,
    /// Holds a NUL character.
    #[error("password holds a NUL character")]
    ContainsNul,
    /// Contains the owner's username.
    #[error("password contains the username")]
    ContainsUsername,
    /// Contains the local part of the owner's e-mail address.
    #[error("password contains the e-mail address")]
    ContainsEmail,
    /// A strength estimate says it would be guessed too soon.
    #[error("password too easy to guess")]
    TooGuessable,
}

/// What a new password must be beyond its length: free of the owner's
/// details, and scored at least `min_score` (0–4) by the zxcvbn estimator,
/// which also counts the owner's details as known to an attacker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Lowest zxcvbn score accepted; 0 turns the estimate off.
    pub min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_score: 2 }
    }
}

impl PasswordPolicy {
    /// Checks `password` as the new password of `username` / `email`.
    ///
    /// # Errors
    /// [`PasswordError::ContainsUsername`], [`PasswordError::ContainsEmail`]
    /// or [`PasswordError::TooGuessable`].
    pub fn check(
        &self,
        password: &Password,
        username: &Username,
        email: &Email,
    ) -> Result<(), PasswordError> {
        password.check_not_personal(username.as_str(), email.local_part())?;
        if self.min_score > 0 {
            let known = [username.as_str(), email.as_str(), email.local_part()];
            let estimate = zxcvbn::zxcvbn(password.0.expose_secret(), &known);
            if u8::from(estimate.score()) < self.min_score {
                return Err(PasswordError::TooGuessable);
            }
        }
        Ok(())
    }
}

impl Password {
    /// Shortest accepted password, in bytes.
    pub const MIN_BYTES: usize = 8;
    /// Longest accepted password, in bytes: bcrypt ignores anything beyond.
    pub const MAX_BYTES: usize = 72;

    /// Checks the length and character rules.
    ///
    /// # Errors
    /// [`PasswordError`] naming the rule broken.
    pub fn new(raw: SecretString) -> Result<Self, PasswordError> {
        let text = raw.expose_secret();
        if super::has_nul(text) {
            return Err(PasswordError::ContainsNul);
        }
        if text.len() < Self::MIN_BYTES {
            return Err(PasswordError::TooShort);
        }
        if text.len() > Self::MAX_BYTES {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(raw))
    }

    /// Refuses a password that contains, in any case, the username or the
    /// e-mail's local part (when that part has three or more characters).
    ///
    /// # Errors
    /// [`PasswordError::ContainsUsername`] or [`PasswordError::ContainsEmail`].
    pub fn check_not_personal(
        &self,
        username: &str,
        email_local_part: &str,
    ) -> Result<(), PasswordError> {
        let lower = self.0.expose_secret().to_lowercase();
        if !username.is_empty() && lower.contains(&username.to_lowercase()) {
            return Err(PasswordError::ContainsUsername);
        }
        if email_local_part.chars().count() >= 3 && lower.contains(&email_local_part.to_lowercase())
        {
            return Err(PasswordError::ContainsEmail);
        }
        Ok(())
    }

    /// The secret itself, for the hasher.
    #[must_use]
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A stored password hash (PHC/modular-crypt string). Not printed either.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a hash produced by a hasher or read from storage.
    #[must_use]
    pub fn new(hash: String) -> Self {
        Self(hash)
    }

    /// The encoded hash.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hash of an account that has no password (it signs in through a
    /// provider): no password matches it.
    #[must_use]
    pub fn none() -> Self {
        Self(String::new())
    }

    /// Whether the account has a password at all.
    #[must_use]
    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(raw: &str) -> Result<Password, PasswordError> {
        Password::new(SecretString::from(raw))
    }

    #[test]
    fn length_is_counted_in_bytes_between_8_and_72() {
        assert_eq!(password("short7!").unwrap_err(), PasswordError::TooShort);
        assert!(password("eight888").is_ok());
        assert!(password(&"x".repeat(72)).is_ok());
        assert_eq!(
            password(&"x".repeat(73)).unwrap_err(),
            PasswordError::TooLong
        );
        // 25 three-byte characters are 75 bytes: too long although 25 characters.
        assert_eq!(
            password(&"€".repeat(25)).unwrap_err(),
            PasswordError::TooLong
        );
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(
            password("abc\0defgh").unwrap_err(),
            PasswordError::ContainsNul
        );
    }

    #[test]
    fn personal_information_is_refused_in_any_case() {
        let p = password("xxADAlovexx9").unwrap();
        assert_eq!(
            p.check_not_personal("adalove", "someone"),
            Err(PasswordError::ContainsUsername)
        );
        assert_eq!(
            p.check_not_personal("zzz", "ada"),
            Err(PasswordError::ContainsEmail)
        );
        assert_eq!(p.check_not_personal("zzz", "qq"), Ok(()));
        assert_eq!(
            p.check_not_personal("", ""),
            Ok(()),
            "unknown details are not matched"
        );
    }

    #[test]
    fn the_policy_refuses_guessable_and_personal_passwords() {
        let policy = PasswordPolicy::default();
        let (ada, email) = (
            Username::parse("ada").unwrap(),
            Email::parse("lovelace@example.com").unwrap(),
        );
        for weak in ["password", "12345678", "qwertyuiop", "aaaaaaaaaa"] {
            assert_eq!(
                policy.check(&password(weak).unwrap(), &ada, &email),
                Err(PasswordError::TooGuessable),
                "{weak}"
            );
        }
        assert_eq!(
            policy.check(&password("Lovelace1815").unwrap(), &ada, &email),
            Err(PasswordError::ContainsEmail)
        );
        assert_eq!(
            policy.check(&password("Tr0ub4dor&3-staple").unwrap(), &ada, &email),
            Ok(())
        );
        let off = PasswordPolicy { min_score: 0 };
        assert_eq!(
            off.check(&password("password").unwrap(), &ada, &email),
            Ok(())
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let p = password("hunter2hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
