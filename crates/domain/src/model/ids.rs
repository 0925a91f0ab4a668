use std::fmt;

use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (v7) id.
            #[must_use]
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an id read from storage or a request.
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// Identifies a user.
    UserId
);
uuid_id!(
    /// Identifies a login session (one refresh-token family).
    SessionId
);
uuid_id!(
    /// Identifies a personal access token.
    TokenId
);
uuid_id!(
    /// Identifies a passkey (UserHub's id, not the WebAuthn credential id).
    PasskeyId
);
uuid_id!(
    /// Identifies a webhook endpoint.
    WebhookId
);
uuid_id!(
    /// Identifies the delivery of one event to one webhook.
    DeliveryId
);
