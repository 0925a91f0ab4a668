//! Users, sessions and the validated value types they are made of.

mod audit;
mod email;
mod identity;
mod ids;
mod mail;
mod mfa;
mod password;
mod session;
mod user;
mod username;

pub use audit::{
    AuditDetails, AuditEvent, AuditKind, AuditOutcome, AuditQuery, FailureReason, first_id_at,
};
pub use email::{Email, EmailError};
pub use identity::{LinkedIdentity, OAuthFlow, OAuthState, ProviderIdentity, username_base};
pub use ids::{SessionId, UserId};
pub use mail::{Mail, MailJob, MailKind, Notice, UndoTarget};
pub use mfa::{
    MFA_CHALLENGE_ATTEMPTS, MFA_CHALLENGE_TTL, MfaStatus, PendingLogin, RECOVERY_CODES,
    SealedSecret, SecondFactorCode, StoredTotp, TotpSecret,
};
pub use password::{Password, PasswordError, PasswordHash, PasswordPolicy};
pub use session::{
    ClientInfo, NewSession, Session, SessionSummary, SignInProof, TokenHash, network_of,
};
pub use user::{FullName, FullNameError, Taken, User, UserView, VersionMatch};
pub use username::{Username, UsernameError};

/// Whether a string holds a character no field accepts (PostgreSQL cannot store NUL).
pub(crate) fn has_nul(raw: &str) -> bool {
    raw.contains('\0')
}

/// The name of `value` in a table of (value, name) pairs: the one place an
/// enum stored or shown by name is spelled.
fn name_in<T: Copy + PartialEq>(table: &[(T, &'static str)], value: T) -> &'static str {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map_or("", |(_, name)| name)
}

/// The value named `name` in a table of (value, name) pairs.
fn value_in<T: Copy>(table: &[(T, &'static str)], name: &str) -> Option<T> {
    table.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
}
