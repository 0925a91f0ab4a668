//! The second factor: TOTP (RFC 6238) secrets and recovery codes.

use secrecy::{ExposeSecret, SecretString};
use time::Duration;

/// How long the `mfa_token` of a login waiting for its second factor lives.
pub const MFA_CHALLENGE_TTL: Duration = Duration::minutes(5);

/// How many codes one `mfa_token` may be tried with.
pub const MFA_CHALLENGE_ATTEMPTS: u32 = 5;

/// Recovery codes issued at a time.
pub const RECOVERY_CODES: usize = 10;

/// A TOTP secret in base32 (RFC 4648, no padding), as an authenticator
/// app takes it. Shown once, at enrolment; stored only sealed.
#[derive(Clone, Debug)]
pub struct TotpSecret(SecretString);

impl TotpSecret {
    /// Wraps a base32 secret.
    #[must_use]
    pub fn new(base32: SecretString) -> Self {
        Self(base32)
    }

    /// The base32 text.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A TOTP secret encrypted for storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret(pub Vec<u8>);

/// A login waiting for its second step, as its challenge holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingLogin {
    /// Whose login it is.
    pub user: super::UserId,
    /// The password hash the first step was proven against (a password
    /// change meanwhile ends the challenge).
    pub password_hash: super::PasswordHash,
    /// The first step was a provider sign-in, not the password.
    pub federated: bool,
}

/// A user's TOTP secret as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTotp {
    /// The secret, sealed.
    pub sealed: SealedSecret,
    /// On (confirmed), or pending confirmation.
    pub enabled: bool,
}

/// What the user's second factor looks like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MfaStatus {
    /// TOTP is on.
    pub totp: bool,
    /// Recovery codes not used yet.
    pub recovery_codes_left: u32,
}

/// A code as typed: six digits of the authenticator app, or a recovery
/// code (any case, with or without its dash and blanks).
#[derive(Clone, Debug)]
pub enum SecondFactorCode {
    /// Six digits.
    Totp(String),
    /// A recovery code, lower-cased, without dashes and blanks.
    Recovery(SecretString),
}

impl SecondFactorCode {
    /// Reads a code as typed.
    #[must_use]
    pub fn parse(raw: &str) -> Self {
        let compact: String = raw
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
            Self::Totp(compact)
        } else {
            Self::Recovery(SecretString::from(compact.to_ascii_lowercase()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_digits_are_a_totp_code_anything_else_a_recovery_code() {
        assert!(
            matches!(SecondFactorCode::parse(" 123 456 "), SecondFactorCode::Totp(c) if c == "123456")
        );
        let SecondFactorCode::Recovery(code) = SecondFactorCode::parse("ABCDE-fghij") else {
            panic!("a recovery code");
        };
        assert_eq!(code.expose_secret(), "abcdefghij");
        assert!(matches!(
            SecondFactorCode::parse("12345"),
            SecondFactorCode::Recovery(_)
        ));
    }
}
