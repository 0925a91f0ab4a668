//! Security events: who did what to which account, from where.

use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

use uuid::Uuid;

use super::{ClientInfo, SessionId, TokenId, UserId, WebhookId};

named! {
    /// What happened. The names are part of the HTTP contract.
    #[allow(missing_docs)] // each variant is the event type of the same name
    pub enum AuditKind {
        UserRegistered = "user.registered",
        LoginSucceeded = "login.succeeded",
        LoginFailed = "login.failed",
        LoginLocked = "login.locked",
        TokenReuseDetected = "token.reuse_detected",
        SessionEnded = "session.ended",
        SessionsEndedAll = "sessions.ended_all",
        PasswordChanged = "password.changed",
        PasswordResetRequested = "password.reset_requested",
        PasswordReset = "password.reset",
        EmailVerified = "email.verified",
        UserCreated = "user.created",
        UserUpdated = "user.updated",
        UserDeleted = "user.deleted",
        UserRestored = "user.restored",
        UserUnlocked = "user.unlocked",
        EmailReverted = "email.reverted",
        MfaEnabled = "mfa.enabled",
        MfaDisabled = "mfa.disabled",
        MfaRecoveryCodesRegenerated = "mfa.recovery_codes_regenerated",
        MfaFailed = "mfa.failed",
        MfaRecoveryCodeUsed = "mfa.recovery_code_used",
        IdentityLinked = "identity.linked",
        IdentityUnlinked = "identity.unlinked",
        TokenCreated = "token.created",
        TokenRevoked = "token.revoked",
        PasskeyAdded = "passkey.added",
        PasskeyRemoved = "passkey.removed",
        PasskeyRenamed = "passkey.renamed",
        PasskeyCounterRegressed = "passkey.counter_regressed",
        WebhookCreated = "webhook.created",
        WebhookUpdated = "webhook.updated",
        WebhookDeleted = "webhook.deleted",
        WebhookDisabled = "webhook.disabled",
        WebhookTest = "webhook.test",
    }
}

impl AuditKind {
    /// Failures are the events an attack leaves; everything else is an
    /// action that took effect.
    #[must_use]
    pub const fn outcome(self) -> AuditOutcome {
        match self {
            Self::LoginFailed
            | Self::LoginLocked
            | Self::TokenReuseDetected
            | Self::MfaFailed
            | Self::PasskeyCounterRegressed => AuditOutcome::Failure,
            _ => AuditOutcome::Success,
        }
    }

    /// Whether webhooks may carry it: every event but those about
    /// webhooks themselves, so a delivery never causes another.
    #[must_use]
    pub const fn is_deliverable(self) -> bool {
        !matches!(
            self,
            Self::WebhookCreated
                | Self::WebhookUpdated
                | Self::WebhookDeleted
                | Self::WebhookDisabled
                | Self::WebhookTest
        )
    }
}

named! {
    /// Whether the action took effect.
    #[allow(missing_docs)]
    pub enum AuditOutcome {
        Success = "success",
        Failure = "failure",
    }
}

named! {
    /// Why a password check (or a login) failed.
    pub enum FailureReason {
        /// No account has the login name.
        UnknownAccount = "unknown_account",
        /// The password did not match.
        WrongPassword = "wrong_password",
        /// The password matched a deactivated account.
        Inactive = "inactive",
        /// The current password of a password change did not match.
        WrongCurrentPassword = "wrong_current_password",
        /// The password matched, but the address is not verified and must be.
        EmailNotVerified = "email_not_verified",
    }
}

/// The few facts an event carries beyond its columns. Never a secret: no
/// password, hash or token, and of a change only the names of its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditDetails {
    /// The fields a `user.updated` changed.
    pub fields: Vec<String>,
    /// Why a login failed.
    pub reason: Option<FailureReason>,
    /// The session a session event is about.
    pub session_id: Option<SessionId>,
    /// How long a `login.locked` lock lasts.
    pub lock_seconds: Option<i64>,
    /// How a `login.succeeded` signed in, when not by password: `oauth:<provider>`.
    pub method: Option<String>,
    /// The provider an `identity.*` event is about.
    pub provider: Option<String>,
    /// The ways in an `email.reverted` removed with the change it undid:
    /// `identity:<provider>`, `totp`.
    pub removed: Vec<String>,
    /// The personal access token a `token.*` event is about.
    pub token_id: Option<TokenId>,
    /// The webhook a `webhook.*` event is about.
    pub webhook_id: Option<WebhookId>,
}

impl AuditDetails {
    /// Whether there is nothing to show.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One security event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// A UUIDv7 made from `at`, so that ordering by id is ordering by time.
    pub id: Uuid,
    /// When it happened.
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: AuditKind,
    /// Who did it; none for an anonymous request.
    pub actor_id: Option<UserId>,
    /// Whose account it concerns; none for a login name no account has.
    pub subject_id: Option<UserId>,
    /// The client's address, user agent and request id.
    pub client: ClientInfo,
    /// What else is worth knowing.
    pub details: AuditDetails,
}

impl AuditEvent {
    /// An event of `kind` at `at`, from `client`, by nobody about nobody yet.
    #[must_use]
    pub fn new(kind: AuditKind, at: OffsetDateTime, client: &ClientInfo) -> Self {
        Self {
            id: id_at(at),
            at,
            kind,
            actor_id: None,
            subject_id: None,
            client: client.clone(),
            details: AuditDetails::default(),
        }
    }

    /// By `actor`.
    #[must_use]
    pub fn by(mut self, actor: UserId) -> Self {
        self.actor_id = Some(actor);
        self
    }

    /// About `subject`.
    #[must_use]
    pub fn about(mut self, subject: UserId) -> Self {
        self.subject_id = Some(subject);
        self
    }

    /// A user's own action on their own account.
    #[must_use]
    pub fn own(self, user: UserId) -> Self {
        self.by(user).about(user)
    }

    /// With a failure reason.
    #[must_use]
    pub fn reason(mut self, reason: FailureReason) -> Self {
        self.details.reason = Some(reason);
        self
    }

    /// About session `session`.
    #[must_use]
    pub fn session(mut self, session: SessionId) -> Self {
        self.details.session_id = Some(session);
        self
    }

    /// The outcome its kind implies.
    #[must_use]
    pub fn outcome(&self) -> AuditOutcome {
        self.kind.outcome()
    }
}

/// The smallest event id at `at`: every event at or after `at` has an id
/// at or above it.
#[must_use]
pub fn first_id_at(at: OffsetDateTime) -> Uuid {
    Uuid::from_u128(time_bits(micros(at)) | VARIANT)
}

/// Version 7 and RFC 4122's variant, in place.
const VERSION: u128 = 0x7 << 76;
const VARIANT: u128 = 0x8000_0000_0000_0000;

/// The 48-bit Unix milliseconds, the version and, in the 12 bits UUIDv7
/// leaves for sub-millisecond precision, the microsecond (0-999).
fn time_bits(us: u64) -> u128 {
    (u128::from(us / 1_000) << 80) | VERSION | (u128::from(us % 1_000) << 64)
}

fn micros(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(0)
}

/// A UUIDv7 whose time is `at` to the microsecond, or just after the last
/// id this process made if that is later: ids of one process strictly grow,
/// so events written in a row list in that order even within a microsecond.
fn id_at(at: OffsetDateTime) -> Uuid {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let wanted = micros(at);
    let mut last = LAST.load(Ordering::Relaxed);
    let us = loop {
        let next = wanted.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => last = seen,
        }
    };
    let random = Uuid::new_v4().as_u128() & ((1 << 62) - 1);
    Uuid::from_u128(time_bits(us) | VARIANT | random)
}

/// Which events a listing returns, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events about this user.
    pub subject: Option<UserId>,
    /// Only events by this user.
    pub actor: Option<UserId>,
    /// Only events of this kind.
    pub kind: Option<AuditKind>,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events before this time.
    pub until: Option<OffsetDateTime>,
    /// Keyset paging: only events older than the one with this id.
    pub before: Option<Uuid>,
    /// At most this many.
    pub limit: u64,
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn failure_reasons_round_trip_by_their_codes() {
        for reason in FailureReason::ALL {
            assert_eq!(FailureReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(FailureReason::WrongPassword.as_str(), "wrong_password");
        assert_eq!(FailureReason::parse("why"), None);
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AuditKind::parse("login"), None);
        let mut names: Vec<_> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AuditKind::ALL.len());
    }

    #[test]
    fn ids_order_like_times_and_grow_within_a_microsecond() {
        let at = datetime!(2026-11-28 10:00:00.123_456 UTC);
        let later = at + time::Duration::microseconds(1);
        let event = |at| AuditEvent::new(AuditKind::LoginFailed, at, &ClientInfo::default()).id;
        let (first, second, next) = (
            event(at),
            event(at),
            event(later + time::Duration::seconds(1)),
        );
        assert_eq!(first.get_version_num(), 7);
        assert_eq!(first.get_variant(), uuid::Variant::RFC4122);
        assert!(first_id_at(at) <= first);
        assert!(first < second, "made in a row, listed in that order");
        assert!(second < first_id_at(later + time::Duration::seconds(1)));
        assert!(first_id_at(later) < next);
    }

    #[test]
    fn only_attacks_are_failures() {
        assert_eq!(AuditKind::LoginFailed.outcome(), AuditOutcome::Failure);
        assert_eq!(AuditKind::UserUpdated.outcome(), AuditOutcome::Success);
    }
}
