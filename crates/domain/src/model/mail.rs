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

named! {
    /// What a queued mail job is for.
    pub enum MailKind {
        /// A password-reset link.
        PasswordReset = "password_reset",
        /// A link that verifies the address.
        VerifyEmail = "verify_email",
        /// To the old address of an account whose email changed: the new
        /// address, and a link that undoes the change.
        EmailChanged = "email_changed",
        /// To an account's address: its password changed (no link).
        PasswordChanged = "password_changed",
        /// To an account's address: a second factor was turned on (no link:
        /// whoever reads the inbox must not be able to strip it).
        SecondFactorOn = "mfa_enabled",
        /// To an account's address: its second factor was turned off.
        SecondFactorOff = "mfa_disabled",
        /// To an account's address: a provider account was linked, with a
        /// link that undoes it.
        IdentityLinked = "identity_linked",
        /// To an account's address: a passkey was added, with a link that
        /// removes it.
        PasskeyAdded = "passkey_added",
        /// To a superuser's address: they subscribed a webhook (which
        /// receives every account's events), with a link that deletes it.
        WebhookCreated = "webhook_created",
        /// To a superuser's address: they pointed a webhook at another
        /// URL, with a link that deletes it.
        WebhookRedirected = "webhook_redirected",
    }
}

impl MailKind {
    /// Whether the mail carries a link that acts on the account.
    #[must_use]
    pub fn carries_a_link(self) -> bool {
        !matches!(
            self,
            Self::PasswordChanged | Self::SecondFactorOn | Self::SecondFactorOff
        )
    }

    /// Whether the mail is a notice of a change that happened: sent once
    /// per change, never dropped by the per-address cap, which limits only
    /// the links anyone can ask for by address.
    #[must_use]
    pub fn is_notice(self) -> bool {
        !matches!(self, Self::PasswordReset | Self::VerifyEmail)
    }
}

/// A security notice to queue with a change: sent once per change, never
/// merged with another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// A kind that [`MailKind::is_notice`].
    pub kind: MailKind,
    /// Whose account changed.
    pub user_id: super::UserId,
    /// Where the notice goes.
    pub to: Email,
    /// The new address, for an email change.
    pub new_email: Option<Email>,
    /// What the notice's undo link removes (see [`UndoTarget`]).
    pub target: Option<UndoTarget>,
}

/// A way in that an undo link removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UndoTarget {
    /// The identity `(provider, subject)`.
    Identity {
        /// The configured provider name.
        provider: String,
        /// The provider's id of the account.
        subject: String,
    },
    /// The passkey with this id.
    Passkey {
        /// UserHub's id of it.
        id: super::PasskeyId,
    },
    /// The webhook with this id (a superuser's: its events leave the
    /// server, so a stolen session must not be able to keep one).
    Webhook {
        /// Its id.
        id: super::WebhookId,
    },
}

impl UndoTarget {
    /// The stored form: `identity:<provider>:<subject>` (provider names
    /// hold no colon).
    #[must_use]
    pub fn to_stored(&self) -> String {
        match self {
            Self::Identity { provider, subject } => format!("identity:{provider}:{subject}"),
            Self::Passkey { id } => format!("passkey:{id}"),
            Self::Webhook { id } => format!("webhook:{id}"),
        }
    }

    /// The target stored as `raw`, if it is one.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        if let Some(id) = raw.strip_prefix("webhook:") {
            let id = uuid::Uuid::parse_str(id).ok()?;
            return Some(Self::Webhook {
                id: super::WebhookId::from_uuid(id),
            });
        }
        if let Some(id) = raw.strip_prefix("passkey:") {
            let id = uuid::Uuid::parse_str(id).ok()?;
            return Some(Self::Passkey {
                id: super::PasskeyId::from_uuid(id),
            });
        }
        let rest = raw.strip_prefix("identity:")?;
        let (provider, subject) = rest.split_once(':')?;
        Some(Self::Identity {
            provider: provider.to_owned(),
            subject: subject.to_owned(),
        })
    }

    /// What the undo answers it removed: `identity:<provider>`.
    #[must_use]
    pub fn removed(&self) -> String {
        match self {
            Self::Identity { provider, .. } => format!("identity:{provider}"),
            Self::Passkey { .. } => "passkey".to_owned(),
            Self::Webhook { .. } => "webhook".to_owned(),
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
    /// Whose account a notice is about; none for a link asked for by address.
    pub user_id: Option<super::UserId>,
    /// The new address, for an [`MailKind::EmailChanged`] notice.
    pub new_email: Option<String>,
    /// When it was queued: for a notice, when the change happened.
    pub queued_at: time::OffsetDateTime,
    /// What an undo link in it removes.
    pub target: Option<UndoTarget>,
}
