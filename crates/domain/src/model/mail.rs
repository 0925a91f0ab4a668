//! Messages the service sends to its users.

use super::{ClientInfo, Email};

/// One message: plain text and HTML bodies of the same content.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the message's parts of the same name
pub struct Mail {
    pub to: Email,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What a queued mail job is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailKind {
    /// A password-reset link.
    PasswordReset,
    /// A link that verifies the address.
    VerifyEmail,
}

impl MailKind {
    /// The name stored with a job.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::VerifyEmail => "verify_email",
        }
    }

    /// The kind stored under `name`, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "password_reset" => Some(Self::PasswordReset),
            "verify_email" => Some(Self::VerifyEmail),
            _ => None,
        }
    }
}

/// A job taken from the mail queue by one worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailJob {
    /// Its key in the queue.
    pub id: uuid::Uuid,
    /// What to send.
    pub kind: MailKind,
    /// To which address, as requested (lower-cased).
    pub email: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// Where the request that queued it came from.
    pub client: ClientInfo,
}
