//! Users, sessions and the validated value types they are made of.

mod audit;
mod email;
mod ids;
mod mail;
mod password;
mod session;
mod user;
mod username;

pub use audit::{
    AuditDetails, AuditEvent, AuditKind, AuditOutcome, AuditQuery, FailureReason, first_id_at,
};
pub use email::{Email, EmailError};
pub use ids::{SessionId, UserId};
pub use mail::{Mail, MailJob, MailKind, Notice};
pub use password::{Password, PasswordError, PasswordHash, PasswordPolicy};
pub use session::{ClientInfo, NewSession, RefreshTokenHash, Session, SessionSummary, network_of};
pub use user::{FullName, FullNameError, Taken, User, UserView, VersionMatch};
pub use username::{Username, UsernameError};

/// Whether a string holds a character no field accepts (PostgreSQL cannot store NUL).
pub(crate) fn has_nul(raw: &str) -> bool {
    raw.contains('\0')
}
