//! Users, sessions and the validated value types they are made of.

/// Declares an enum whose variants are stored or shown by name, each
/// `Variant = "name"`: the one place a name is spelled. `ALL`, `as_str`
/// and `parse` follow from it.
macro_rules! named {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [Self; [$($text),+].len()] = [$(Self::$variant),+];

            /// The name it is stored or shown by.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The variant named `name`, if any.
            #[must_use]
            pub fn parse(name: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|value| value.as_str() == name)
            }
        }
    };
}

mod audit;
mod email;
mod identity;
mod ids;
mod mail;
mod mfa;
mod passkey;
mod password;
mod session;
mod token;
mod user;
mod username;
mod webhook;

pub use audit::{
    AuditDetails, AuditEvent, AuditKind, AuditOutcome, AuditQuery, FailureReason, first_id_at,
};
pub use email::{Email, EmailError};
pub use identity::{LinkedIdentity, OAuthFlow, OAuthState, ProviderIdentity, username_base};
pub use ids::{DeliveryId, PasskeyId, SessionId, TokenId, UserId, WebhookId};
pub use mail::{Mail, MailJob, MailKind, Notice, UndoTarget};
pub use mfa::{
    MFA_CHALLENGE_ATTEMPTS, MFA_CHALLENGE_TTL, MfaStatus, PendingLogin, RECOVERY_CODES,
    SealedSecret, SecondFactorCode, StoredTotp, TotpSecret,
};
pub use passkey::{
    CEREMONY_TTL, CeremonyKind, CeremonyState, MAX_PASSKEYS_PER_USER, NewPasskey, Passkey,
    PasskeyCredential, PasskeyName,
};
pub use password::{Password, PasswordError, PasswordHash, PasswordPolicy};
pub use session::{
    ClientInfo, NewSession, Session, SessionSummary, SignInProof, TokenHash, network_of,
};
pub use token::{
    DEFAULT_TOKEN_DAYS, LAST_USED_RESOLUTION, MAX_TOKENS_PER_USER, NewPersonalToken, PersonalToken,
    Scope, Scopes, TokenGrant, TokenName,
};
pub use user::{FullName, FullNameError, Taken, User, UserView, VersionMatch};
pub use username::{Username, UsernameError};
pub use webhook::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryStatus, DueDelivery, Endpoint, EventFilter,
    MAX_WEBHOOK_DESCRIPTION_LEN, MAX_WEBHOOK_URL_LEN, PREVIOUS_SECRET_OVERLAP, RetryPolicy,
    SendResult, Webhook, WebhookChange, WebhookDescription, WebhookMessage, WebhookSecret,
    WebhookUrl,
};

/// A name someone gives a thing of theirs (a token, a passkey) to tell
/// it apart: not blank, no control characters, at most `max` characters
/// (`too_long` says so).
pub(crate) fn label(raw: &str, max: usize, too_long: &'static str) -> Result<String, &'static str> {
    if raw.trim().is_empty() {
        return Err("name must not be blank");
    }
    if raw.chars().any(char::is_control) {
        return Err("name holds a control character");
    }
    if raw.chars().count() > max {
        return Err(too_long);
    }
    Ok(raw.to_owned())
}

/// Whether a string holds a character no field accepts (PostgreSQL cannot store NUL).
pub(crate) fn has_nul(raw: &str) -> bool {
    raw.contains('\0')
}
