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
    /// To the old address of an account whose email changed: the new
    /// address, and a link that undoes the change.
    EmailChanged,
    /// To an account's address: its password changed (no link).
    PasswordChanged,
}

impl MailKind {
    const NAMES: [(Self, &'static str); 4] = [
        (Self::PasswordReset, "password_reset"),
        (Self::VerifyEmail, "verify_email"),
        (Self::EmailChanged, "email_changed"),
        (Self::PasswordChanged, "password_changed"),
    ];

    /// The name stored with a job.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        super::name_in(&Self::NAMES, self)
    }

    /// The kind stored under `name`, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        super::value_in(&Self::NAMES, name)
    }

    /// Whether the mail carries a link that acts on the account.
    #[must_use]
    pub fn carries_a_link(self) -> bool {
        !matches!(self, Self::PasswordChanged)
    }

    /// Whether the mail is a notice of a change that happened: sent once
    /// per change, never dropped by the per-address cap, which limits only
    /// the links anyone can ask for by address.
    #[must_use]
    pub fn is_notice(self) -> bool {
        matches!(self, Self::EmailChanged | Self::PasswordChanged)
    }
}

/// A security notice to queue with a change: sent once per change, never
/// merged with another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// [`MailKind::EmailChanged`] or [`MailKind::PasswordChanged`].
    pub kind: MailKind,
    /// Whose account changed.
    pub user_id: super::UserId,
    /// Where the notice goes.
    pub to: Email,
    /// The new address, for an email change.
    pub new_email: Option<Email>,
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
    /// Whose account a notice is about; none for a link asked for by address.
    pub user_id: Option<super::UserId>,
    /// The new address, for an [`MailKind::EmailChanged`] notice.
    pub new_email: Option<String>,
    /// When it was queued: for a notice, when the change happened.
    pub queued_at: time::OffsetDateTime,
}
