//! Account recovery and e-mail verification: "forgot my password" and
//! "verify my address" queue a job and answer at once; a background task
//! looks the address up, issues a single-use token and mails the link; the
//! token then resets the password, or verifies the address, once.
//!
//! The request path never looks the address up, so its answer and its time
//! are the same whether or not an account has it; a slow or unreachable
//! mail server delays only the background task.

mod delivery;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use time::Duration;
use tracing::info;

use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, Email, MailKind, Notice, Password, PasswordError,
    PasswordPolicy, User,
};
use crate::ports::{
    Clock, LoginThrottle, MailQueue, Mailer, PasswordHasher, RecoveryTokens, RequestCounter,
    RevertOutcome, TokenIssuer, UserRepository, WayIn,
};

/// Settings of the recovery use cases.
#[derive(Clone, Debug)]
pub struct RecoveryConfig {
    /// How long a reset link works.
    pub reset_token_ttl: Duration,
    /// How long a verification link works.
    pub verify_token_ttl: Duration,
    /// The base of links in mails, without a trailing slash.
    pub public_url: String,
    /// What a new password must be.
    pub password_policy: PasswordPolicy,
    /// Attempts at delivering one mail before it is given up.
    pub max_attempts: u32,
    /// Wait before the second attempt; it doubles with each further one.
    pub retry_base: Duration,
    /// How long a link that undoes an email change works.
    pub revert_token_ttl: Duration,
    /// Mails with a link (reset, verification, revert) one address may get
    /// in an hour; more are not sent, whatever asks for them.
    pub max_links_per_address_per_hour: u32,
}

/// The ports of password reset, verification, reverts and mail delivery.
#[derive(Clone)]
pub struct RecoveryPorts {
    /// The users the links act on.
    pub users: Arc<dyn UserRepository>,
    /// Hashes a reset's new password.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Forgets a reset account's failed logins.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Makes the links' random tokens and hashes them.
    pub issuer: Arc<dyn TokenIssuer>,
    /// The queue of mails to send.
    pub mail: Arc<dyn MailQueue>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Reset, verification and revert tokens.
    pub tokens: Arc<dyn RecoveryTokens>,
    /// The mail system.
    pub mailer: Arc<dyn Mailer>,
    /// Counts of link mails per address, shared by every instance.
    pub counter: Arc<dyn RequestCounter>,
}

/// Why a password reset failed.
#[derive(Debug, thiserror::Error)]
pub enum ResetPasswordError {
    /// Unknown, expired, superseded or already used token, or a deactivated user.
    #[error("invalid or expired token")]
    InvalidToken,
    /// The new password is too weak or contains personal information.
    #[error(transparent)]
    WeakPassword(PasswordError),
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why a verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyEmailError {
    /// Unknown, expired, superseded or already used token; a deactivated
    /// user; or an address changed since the link was mailed.
    #[error("invalid or expired token")]
    InvalidToken,
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why an email change could not be undone.
#[derive(Debug, thiserror::Error)]
pub enum RevertEmailError {
    /// Unknown, expired or already used token.
    #[error("invalid or expired token")]
    InvalidToken,
    /// The old address belongs to another account now.
    #[error("the address is another account's now")]
    Taken,
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Why an undo link did nothing.
#[derive(Debug, thiserror::Error)]
pub enum UndoError {
    /// Unknown, expired or already used token.
    #[error("invalid or expired token")]
    InvalidToken,
    /// A port failed; [`PortError`] tells whether retrying may help.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The ways in that undoing an email change removes when they were added
/// after it: whoever changed the address may have added their own. (Ways
/// in older than the change stay: the owner's.)
pub const EVICTED_BY_REVERT: &[WayIn] = &[WayIn::Identity, WayIn::SecondFactor, WayIn::Passkey];

/// The longest wait between two attempts at one mail.
const MAX_RETRY_WAIT: Duration = Duration::hours(1);
/// How long a worker holds a job it took before another may take it.
const LEASE: Duration = Duration::minutes(5);
/// Jobs one round of the worker takes, and delivers concurrently.
const BATCH: u32 = 16;

/// Password reset and the delivery of its mail.
#[derive(Clone)]
pub struct RecoveryService {
    ports: RecoveryPorts,
    config: RecoveryConfig,
}

impl RecoveryService {
    /// Wires the use cases to their ports.
    #[must_use]
    pub fn new(ports: RecoveryPorts, config: RecoveryConfig) -> Self {
        Self { ports, config }
    }

    /// Queues a reset mail for `email` and returns: the same for every
    /// address, known or not.
    pub async fn forgot_password(
        &self,
        email: &Email,
        client: &ClientInfo,
    ) -> Result<(), PortError> {
        self.enqueue(MailKind::PasswordReset, email, client).await
    }

    /// Queues a verification mail for `email` and returns: the same for
    /// every address, known, verified already, or not.
    pub async fn request_verification(
        &self,
        email: &Email,
        client: &ClientInfo,
    ) -> Result<(), PortError> {
        self.enqueue(MailKind::VerifyEmail, email, client).await
    }

    /// Only queues: whether an account has the address is looked up by
    /// the worker, so the request's answer and timing reveal nothing.
    async fn enqueue(
        &self,
        kind: MailKind,
        email: &Email,
        client: &ClientInfo,
    ) -> Result<(), PortError> {
        let now = self.ports.clock.now();
        self.ports
            .mail
            .enqueue(kind, email.as_str(), now, client)
            .await
    }

    /// Marks the address of a mailed token verified, spending the token.
    pub async fn verify_email(
        &self,
        token: &SecretString,
        client: &ClientInfo,
    ) -> Result<User, VerifyEmailError> {
        let hash = self.ports.issuer.hash_token(token.expose_secret());
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::EmailVerified, now, client);
        let user = self
            .ports
            .tokens
            .verify_email(&hash, now, &event)
            .await?
            .ok_or(VerifyEmailError::InvalidToken)?;
        info!(user_id = %user.id, "email verified");
        Ok(user)
    }

    /// Sets a new password with a mailed token: the token is spent, every
    /// session of the user ends and failed-login locks on their names are
    /// lifted.
    pub async fn reset_password(
        &self,
        token: &SecretString,
        new_password: Password,
        client: &ClientInfo,
    ) -> Result<(), ResetPasswordError> {
        let hash = self.ports.issuer.hash_token(token.expose_secret());
        let now = self.ports.clock.now();
        let user = self
            .ports
            .tokens
            .find_reset(&hash, now)
            .await?
            .ok_or(ResetPasswordError::InvalidToken)?;
        self.config
            .password_policy
            .check(&new_password, &user.username, &user.email)
            .map_err(ResetPasswordError::WeakPassword)?;
        let new_hash = self.ports.hasher.hash(&new_password).await?;
        // The token and the user are checked again in the write itself: a
        // concurrent reset with the same token, or a deactivation, wins.
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::PasswordReset, now, client);
        let user = self
            .ports
            .tokens
            .reset_password(&hash, &new_hash, now, &event)
            .await?
            .ok_or(ResetPasswordError::InvalidToken)?;
        self.lift_locks(&user).await?;
        let notice = Notice {
            kind: MailKind::PasswordChanged,
            user_id: user.id,
            to: user.email.clone(),
            new_email: None,
            target: None,
        };
        crate::services::queue_notice(self.ports.outbox(), &notice, client).await;
        info!(user_id = %user.id, "password reset; every session ended");
        Ok(())
    }

    /// Removes the way in a notice's undo link names, with every session
    /// of its account; what was removed (`identity:<provider>`).
    ///
    /// # Errors
    /// [`UndoError::InvalidToken`] for an unknown, expired or spent link.
    pub async fn undo(
        &self,
        token: &SecretString,
        client: &ClientInfo,
    ) -> Result<String, UndoError> {
        let hash = self.ports.issuer.hash_token(token.expose_secret());
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::IdentityUnlinked, now, client);
        let target = self
            .ports
            .tokens
            .undo(&hash, now, &event)
            .await?
            .ok_or(UndoError::InvalidToken)?;
        info!(removed = %target.removed(), "a way in removed by its notice's undo link; every session ended");
        Ok(target.removed())
    }

    /// Undoes an email change with the link mailed to the old address: the
    /// old address is back (verified), every session and every other reset
    /// or verification token of the user ends, lockouts are lifted, and
    /// every way in added since the change ([`EVICTED_BY_REVERT`]) goes.
    pub async fn revert_email(
        &self,
        token: &SecretString,
        client: &ClientInfo,
    ) -> Result<User, RevertEmailError> {
        let hash = self.ports.issuer.hash_token(token.expose_secret());
        let now = self.ports.clock.now();
        let event = AuditEvent::new(AuditKind::EmailReverted, now, client);
        let user = match self
            .ports
            .tokens
            .revert_email(&hash, now, EVICTED_BY_REVERT, &event)
            .await?
        {
            RevertOutcome::Reverted(user) => user,
            RevertOutcome::Invalid => return Err(RevertEmailError::InvalidToken),
            RevertOutcome::Taken => return Err(RevertEmailError::Taken),
        };
        self.lift_locks(&user).await?;
        info!(user_id = %user.id, "email change undone; every session ended");
        Ok(user)
    }

    /// Lifts the login locks on both names the user logs in with, after a
    /// mailed link proved the account's owner.
    async fn lift_locks(&self, user: &User) -> Result<(), PortError> {
        let names = [
            user.email.as_str().to_owned(),
            user.username.as_str().to_owned(),
        ];
        self.ports.throttle.clear_names(&names, None).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use mockall::predicate::{always, eq};

    use super::*;
    use crate::model::{Mail, MailJob, PasswordHash, TokenHash, UndoTarget};
    use crate::ports::{
        MailError, MockMailer, MockRecoveryTokens, MockRequestCounter, RefreshToken,
    };
    use crate::services::fixtures::{Mocks, NOW, password, stopped_clock, user};

    /// What the mock mailer answers.
    type Outcome = fn() -> Result<(), MailError>;

    struct RecoveryMocks {
        tokens: MockRecoveryTokens,
        mailer: MockMailer,
        counter: MockRequestCounter,
    }

    impl Default for RecoveryMocks {
        /// Every address is under its hourly share of link mails.
        fn default() -> Self {
            let mut counter = MockRequestCounter::new();
            counter.expect_count().returning(|_, _, _| Ok(1));
            Self {
                tokens: MockRecoveryTokens::new(),
                mailer: MockMailer::new(),
                counter,
            }
        }
    }

    fn config() -> RecoveryConfig {
        RecoveryConfig {
            reset_token_ttl: Duration::minutes(30),
            verify_token_ttl: Duration::hours(48),
            public_url: "https://app.example.com".into(),
            password_policy: PasswordPolicy { min_score: 0 },
            max_attempts: 3,
            retry_base: Duration::seconds(30),
            revert_token_ttl: Duration::days(7),
            max_links_per_address_per_hour: 5,
        }
    }

    fn service(mocks: Mocks, recovery: RecoveryMocks) -> RecoveryService {
        RecoveryService::new(
            RecoveryPorts {
                users: Arc::new(mocks.users),
                hasher: Arc::new(mocks.hasher),
                throttle: Arc::new(mocks.throttle),
                issuer: Arc::new(mocks.tokens),
                mail: Arc::new(mocks.mail),
                clock: Arc::new(stopped_clock()),
                tokens: Arc::new(recovery.tokens),
                mailer: Arc::new(recovery.mailer),
                counter: Arc::new(recovery.counter),
            },
            config(),
        )
    }

    fn token_hash() -> TokenHash {
        TokenHash::new("digest".into())
    }

    fn job(kind: MailKind, attempts: u32) -> MailJob {
        MailJob {
            id: uuid::Uuid::nil(),
            kind,
            email: "ada@example.com".into(),
            attempts,
            client: ClientInfo::default(),
            user_id: None,
            new_email: None,
            queued_at: NOW - Duration::minutes(1),
            target: None,
        }
    }

    #[tokio::test]
    async fn requests_only_queue_the_address_they_never_look_it_up() {
        let mut mocks = Mocks::default();
        for kind in [MailKind::PasswordReset, MailKind::VerifyEmail] {
            mocks
                .mail
                .expect_enqueue()
                .with(
                    eq(kind),
                    eq("ada@example.com"),
                    eq(NOW),
                    mockall::predicate::always(),
                )
                .times(1)
                .returning(|_, _, _, _| Ok(()));
        }
        // No expectation on the user repository: a lookup would panic.
        let service = service(mocks, RecoveryMocks::default());
        service
            .forgot_password(
                &Email::parse("  Ada@Example.com ").unwrap(),
                &ClientInfo::default(),
            )
            .await
            .unwrap();
        service
            .request_verification(
                &Email::parse("ADA@example.com").unwrap(),
                &ClientInfo::default(),
            )
            .await
            .unwrap();
    }

    fn reset_mocks(found: Option<User>, written: Option<User>) -> (Mocks, RecoveryMocks) {
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_token()
            .with(eq("the-token"))
            .returning(|_| token_hash());
        let mut recovery = RecoveryMocks::default();
        recovery
            .tokens
            .expect_find_reset()
            .with(eq(token_hash()), eq(NOW))
            .return_once(move |_, _| Ok(found));
        recovery
            .tokens
            .expect_reset_password()
            .return_once(move |_, _, _, _| Ok(written));
        (mocks, recovery)
    }

    #[tokio::test]
    async fn a_reset_sets_the_hash_ends_sessions_in_one_write_and_lifts_locks() {
        let ada = user("ada");
        let (mut mocks, recovery) = reset_mocks(Some(ada.clone()), Some(ada.clone()));
        mocks
            .hasher
            .expect_hash()
            .times(1)
            .returning(|_| Ok(PasswordHash::new("new-hash".into())));
        mocks
            .throttle
            .expect_clear_names()
            .withf(|names, _| names == ["ada@example.com", "ada"])
            .times(1)
            .returning(|_, _| Ok(()));
        // The account's address is told its password changed.
        let id = ada.id;
        mocks
            .mail
            .expect_notify()
            .withf(move |n, _, _| {
                n.kind == MailKind::PasswordChanged
                    && n.user_id == id
                    && n.to.as_str() == "ada@example.com"
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let service = service(mocks, recovery);
        service
            .reset_password(
                &"the-token".into(),
                password("Quartz-Lantern-Orbit-47"),
                &ClientInfo::default(),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_unknown_token_is_refused_before_any_hashing() {
        let (mocks, recovery) = reset_mocks(None, None);
        let service = service(mocks, recovery);
        let err = service
            .reset_password(
                &"the-token".into(),
                password("Quartz-Lantern-Orbit-47"),
                &ClientInfo::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ResetPasswordError::InvalidToken));
    }

    #[tokio::test]
    async fn a_token_spent_by_a_concurrent_reset_is_refused() {
        let (mut mocks, recovery) = reset_mocks(Some(user("ada")), None);
        mocks.hashes_to("new-hash");
        let service = service(mocks, recovery);
        let err = service
            .reset_password(
                &"the-token".into(),
                password("Quartz-Lantern-Orbit-47"),
                &ClientInfo::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ResetPasswordError::InvalidToken));
    }

    #[tokio::test]
    async fn a_new_password_with_the_username_in_it_is_weak() {
        let (mocks, recovery) = reset_mocks(Some(user("adalovelace")), None);
        let service = service(mocks, recovery);
        let err = service
            .reset_password(
                &"the-token".into(),
                password("adalovelace-2026"),
                &ClientInfo::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ResetPasswordError::WeakPassword(_)));
    }

    #[tokio::test]
    async fn a_verification_token_verifies_once() {
        for (written, ok) in [(Some(user("ada")), true), (None, false)] {
            let mut mocks = Mocks::default();
            mocks.tokens.expect_hash_token().returning(|_| token_hash());
            let mut recovery = RecoveryMocks::default();
            recovery
                .tokens
                .expect_verify_email()
                .with(eq(token_hash()), eq(NOW), mockall::predicate::always())
                .return_once(move |_, _, _| Ok(written));
            let outcome = service(mocks, recovery)
                .verify_email(&"the-token".into(), &ClientInfo::default())
                .await;
            assert_eq!(outcome.is_ok(), ok);
            if !ok {
                assert!(matches!(outcome, Err(VerifyEmailError::InvalidToken)));
            }
        }
    }

    /// Mocks for one round of the worker on one `job`, for an account `found`.
    fn worker(found: Option<User>, job: MailJob) -> Mocks {
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_login()
            .with(eq("ada@example.com"))
            .return_once(move |_| Ok(found));
        mocks
            .mail
            .expect_claim()
            .with(eq(NOW), eq(NOW + LEASE), eq(BATCH))
            .return_once(move |_, _, _| Ok(vec![job]));
        mocks.tokens.expect_new_refresh_token().returning(|| {
            Ok(RefreshToken {
                secret: "s3cret-token".into(),
                hash: token_hash(),
            })
        });
        mocks
    }

    /// Records what the mailer is given, answering `outcome`.
    fn recording_mailer(recovery: &mut RecoveryMocks, outcome: Outcome) -> Arc<Mutex<Vec<Mail>>> {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = sent.clone();
        recovery.mailer.expect_send().returning(move |mail| {
            log.lock().unwrap().push(mail.clone());
            outcome()
        });
        sent
    }

    #[tokio::test]
    async fn the_worker_mails_a_fresh_single_use_link_of_each_kind() {
        let cases = [
            (
                MailKind::PasswordReset,
                Duration::minutes(30),
                "/reset-password?token=",
                "30 minutes",
            ),
            (
                MailKind::VerifyEmail,
                Duration::hours(48),
                "/verify?token=",
                "48 hours",
            ),
        ];
        for (kind, ttl, path, lifetime) in cases {
            let mut mocks = worker(Some(user("ada")), job(kind, 1));
            mocks
                .mail
                .expect_complete()
                .times(1)
                .returning(|_, _| Ok(()));
            let mut recovery = RecoveryMocks::default();
            recovery
                .tokens
                .expect_issue()
                .with(
                    eq(kind),
                    always(),
                    always(),
                    eq(token_hash()),
                    eq(None),
                    eq(NOW + ttl),
                    eq(NOW),
                    mockall::predicate::always(),
                )
                .times(1)
                .returning(|_, _, _, _, _, _, _, _| Ok(()));
            let sent = recording_mailer(&mut recovery, || Ok(()));
            assert_eq!(service(mocks, recovery).deliver_due().await.unwrap(), 1);
            let sent = sent.lock().unwrap();
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].to.as_str(), "ada@example.com");
            let link = format!("https://app.example.com{path}s3cret-token");
            assert!(sent[0].text.contains(&link), "{}", sent[0].text);
            assert!(sent[0].html.contains(&link), "{}", sent[0].html);
            assert!(sent[0].text.contains(lifetime));
        }
    }

    #[tokio::test]
    async fn past_its_hourly_share_an_address_gets_no_link_and_the_job_is_done() {
        let mut mocks = worker(Some(user("ada")), job(MailKind::PasswordReset, 1));
        mocks
            .mail
            .expect_complete()
            .times(1)
            .returning(|_, _| Ok(()));
        let mut recovery = RecoveryMocks {
            counter: MockRequestCounter::new(),
            ..RecoveryMocks::default()
        };
        recovery
            .counter
            .expect_count()
            .withf(|key, window, _| key == "mail:ada@example.com" && *window == Duration::HOUR)
            .times(1)
            .returning(|_, _, _| Ok(6));
        recovery.tokens.expect_issue().never();
        recovery.mailer.expect_send().never();
        assert_eq!(service(mocks, recovery).deliver_due().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn an_email_change_notice_carries_a_link_that_undoes_it_to_the_old_address() {
        let ada = user("ada");
        let notice = MailJob {
            user_id: Some(ada.id),
            new_email: Some("ada@new.example".into()),
            ..job(MailKind::EmailChanged, 1)
        };
        let mut mocks = Mocks::default();
        mocks.finds_by_id(&User {
            email: Email::parse("ada@new.example").unwrap(),
            ..ada.clone()
        });
        mocks
            .mail
            .expect_claim()
            .return_once(move |_, _, _| Ok(vec![notice]));
        mocks.tokens.expect_new_refresh_token().returning(|| {
            Ok(RefreshToken {
                secret: "s3cret-token".into(),
                hash: token_hash(),
            })
        });
        mocks
            .mail
            .expect_complete()
            .times(1)
            .returning(|_, _| Ok(()));
        let mut recovery = RecoveryMocks {
            counter: MockRequestCounter::new(),
            ..RecoveryMocks::default()
        };
        // A notice of a change is never capped.
        recovery.counter.expect_count().never();
        // The token restores the address it was mailed to: the old one.
        recovery
            .tokens
            .expect_issue()
            .withf(move |kind, user, email, _, _, expires, _, _| {
                *kind == MailKind::EmailChanged
                    && *user == ada.id
                    && email.as_str() == "ada@example.com"
                    && *expires == NOW - Duration::minutes(1) + Duration::days(7)
            })
            .times(1)
            .returning(|_, _, _, _, _, _, _, _| Ok(()));
        let sent = recording_mailer(&mut recovery, || Ok(()));
        assert_eq!(service(mocks, recovery).deliver_due().await.unwrap(), 1);
        let sent = sent.lock().unwrap();
        assert_eq!(sent[0].to.as_str(), "ada@example.com");
        assert!(sent[0].text.contains("ada@new.example"), "{}", sent[0].text);
        assert!(
            sent[0]
                .text
                .contains("https://app.example.com/revert-email?token=s3cret-token"),
            "{}",
            sent[0].text
        );
    }

    #[tokio::test]
    async fn a_linked_identitys_notice_carries_a_link_that_undoes_it_past_the_share() {
        let ada = user("ada");
        let target = UndoTarget::Identity {
            provider: "corp".into(),
            subject: "sub-1".into(),
        };
        let notice = MailJob {
            user_id: Some(ada.id),
            target: Some(target.clone()),
            ..job(MailKind::IdentityLinked, 1)
        };
        let mut mocks = Mocks::default();
        mocks.finds_by_id(&ada);
        mocks
            .mail
            .expect_claim()
            .return_once(move |_, _, _| Ok(vec![notice]));
        mocks.tokens.expect_new_refresh_token().returning(|| {
            Ok(RefreshToken {
                secret: "undo-token".into(),
                hash: token_hash(),
            })
        });
        mocks
            .mail
            .expect_complete()
            .times(1)
            .returning(|_, _| Ok(()));
        let mut recovery = RecoveryMocks {
            counter: MockRequestCounter::new(),
            ..RecoveryMocks::default()
        };
        recovery.counter.expect_count().never();
        // The token keeps what it removes, and lives 7 days from the link.
        recovery
            .tokens
            .expect_issue()
            .withf(move |kind, user, _, _, stored, expires, _, _| {
                *kind == MailKind::IdentityLinked
                    && *user == ada.id
                    && *stored == Some(target.clone())
                    && *expires == NOW - Duration::minutes(1) + Duration::days(7)
            })
            .times(1)
            .returning(|_, _, _, _, _, _, _, _| Ok(()));
        let sent = recording_mailer(&mut recovery, || Ok(()));
        assert_eq!(service(mocks, recovery).deliver_due().await.unwrap(), 1);
        let sent = sent.lock().unwrap();
        assert_eq!(sent[0].to.as_str(), "ada@example.com");
        assert!(sent[0].text.contains("corp"), "{}", sent[0].text);
        assert!(
            sent[0]
                .text
                .contains("https://app.example.com/undo?token=undo-token"),
            "{}",
            sent[0].text
        );
    }

    #[tokio::test]
    async fn a_second_factors_notice_has_no_link_and_says_how_to_remove_a_strangers() {
        for kind in [MailKind::SecondFactorOn, MailKind::SecondFactorOff] {
            let ada = user("ada");
            let notice = MailJob {
                user_id: Some(ada.id),
                ..job(kind, 1)
            };
            let mut mocks = Mocks::default();
            mocks
                .mail
                .expect_claim()
                .return_once(move |_, _, _| Ok(vec![notice]));
            mocks
                .mail
                .expect_complete()
                .times(1)
                .returning(|_, _| Ok(()));
            let mut recovery = RecoveryMocks {
                counter: MockRequestCounter::new(),
                ..RecoveryMocks::default()
            };
            recovery.counter.expect_count().never();
            // No token: a link would let whoever reads the inbox strip it.
            recovery.tokens.expect_issue().never();
            let sent = recording_mailer(&mut recovery, || Ok(()));
            assert_eq!(service(mocks, recovery).deliver_due().await.unwrap(), 1);
            let sent = sent.lock().unwrap();
            assert!(!sent[0].text.contains("token="), "{}", sent[0].text);
            if kind == MailKind::SecondFactorOn {
                assert!(
                    sent[0].text.contains("notice of an email change")
                        && sent[0].text.contains("administrator"),
                    "{}",
                    sent[0].text
                );
            }
        }
    }

    #[tokio::test]
    async fn an_undo_link_says_what_it_removed_or_that_it_is_no_good() {
        for found in [true, false] {
            let mut mocks = Mocks::default();
            mocks.tokens.expect_hash_token().returning(|_| token_hash());
            let mut recovery = RecoveryMocks::default();
            recovery
                .tokens
                .expect_undo()
                .withf(|hash, at, event| {
                    *hash == token_hash()
                        && *at == NOW
                        && event.kind == AuditKind::IdentityUnlinked
                        && event.actor_id.is_none()
                })
                .times(1)
                .returning(move |_, _, _| {
                    Ok(found.then(|| UndoTarget::Identity {
                        provider: "corp".into(),
                        subject: "sub-1".into(),
                    }))
                });
            let outcome = service(mocks, recovery)
                .undo(&SecretString::from("undo-token"), &ClientInfo::default())
                .await;
            if found {
                assert_eq!(outcome.unwrap(), "identity:corp");
            } else {
                assert!(matches!(outcome, Err(UndoError::InvalidToken)));
            }
        }
    }

    #[tokio::test]
    async fn an_email_change_notice_without_its_account_is_given_up_not_sent() {
        let orphan = job(MailKind::EmailChanged, 1);
        let mut mocks = Mocks::default();
        mocks
            .mail
            .expect_claim()
            .return_once(move |_, _, _| Ok(vec![orphan]));
        // Nobody is looked up by the old address.
        mocks.users.expect_find_by_login().never();
        mocks
            .mail
            .expect_fail()
            .times(1)
            .returning(|_, _, _| Ok(()));
        let mut recovery = RecoveryMocks::default();
        recovery.tokens.expect_issue().never();
        recovery.mailer.expect_send().never();
        assert_eq!(service(mocks, recovery).deliver_due().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_password_notice_is_sent_past_the_hourly_share_even_to_an_unproven_address() {
        let ada = user("ada");
        let notice = MailJob {
            user_id: Some(ada.id),
            ..job(MailKind::PasswordChanged, 1)
        };
        let mut mocks = Mocks::default();
        mocks.finds_by_id(&ada);
        mocks
            .mail
            .expect_claim()
            .return_once(move |_, _, _| Ok(vec![notice]));
        mocks
            .mail
            .expect_complete()
            .times(1)
            .returning(|_, _| Ok(()));
        let mut recovery = RecoveryMocks {
            counter: MockRequestCounter::new(),
            ..RecoveryMocks::default()
        };
        // The cap is never asked: it limits links anyone can request.
        recovery.counter.expect_count().never();
        let sent = recording_mailer(&mut recovery, || Ok(()));
        assert_eq!(service(mocks, recovery).deliver_due().await.unwrap(), 1);
        assert_eq!(sent.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_password_notice_goes_to_its_verified_address_without_a_link_or_a_cap() {
        let ada = User {
            is_verified: true,
            ..user("ada")
        };
        let notice = MailJob {
            user_id: Some(ada.id),
            ..job(MailKind::PasswordChanged, 1)
        };
        let mut mocks = Mocks::default();
        mocks.finds_by_id(&ada);
        mocks
            .mail
            .expect_claim()
            .return_once(move |_, _, _| Ok(vec![notice]));
        mocks
            .mail
            .expect_complete()
            .times(1)
            .returning(|_, _| Ok(()));
        let mut recovery = RecoveryMocks {
            counter: MockRequestCounter::new(),
            ..RecoveryMocks::default()
        };
        recovery.counter.expect_count().never();
        recovery.tokens.expect_issue().never();
        let sent = recording_mailer(&mut recovery, || Ok(()));
        assert_eq!(service(mocks, recovery).deliver_due().await.unwrap(), 1);
        let sent = sent.lock().unwrap();
        assert_eq!(sent[0].to.as_str(), "ada@example.com");
        assert!(!sent[0].text.contains("token="), "{}", sent[0].text);
    }

    #[tokio::test]
    async fn a_revert_link_gives_the_address_back_and_lifts_locks_or_says_why_not() {
        let ada = user("ada");
        let cases = [
            (RevertOutcome::Reverted(ada.clone()), true),
            (RevertOutcome::Invalid, false),
            (RevertOutcome::Taken, false),
        ];
        for (outcome, reverted) in cases {
            let mut mocks = Mocks::default();
            mocks.tokens.expect_hash_token().returning(|_| token_hash());
            if reverted {
                mocks
                    .throttle
                    .expect_clear_names()
                    .withf(|names, _| names == ["ada@example.com", "ada"])
                    .times(1)
                    .returning(|_, _| Ok(()));
            }
            let mut recovery = RecoveryMocks::default();
            let expected = outcome.clone();
            recovery
                .tokens
                .expect_revert_email()
                .withf(|hash, now, evict, event| {
                    *hash == token_hash()
                        && *now == NOW
                        && event.kind == AuditKind::EmailReverted
                        // What an intruder could add goes with the change.
                        && evict == [WayIn::Identity, WayIn::SecondFactor, WayIn::Passkey]
                })
                .return_once(move |_, _, _, _| Ok(outcome));
            let result = service(mocks, recovery)
                .revert_email(&"the-token".into(), &ClientInfo::default())
                .await;
            match expected {
                RevertOutcome::Reverted(user) => assert_eq!(result.unwrap().id, user.id),
                RevertOutcome::Invalid => {
                    assert!(matches!(result, Err(RevertEmailError::InvalidToken)));
                }
                RevertOutcome::Taken => assert!(matches!(result, Err(RevertEmailError::Taken))),
            }
        }
    }

    #[tokio::test]
    async fn no_mail_for_nobody_an_inactive_account_or_a_verified_address() {
        let inactive = User {
            is_active: false,
            ..user("ada")
        };
        let verified = User {
            is_verified: true,
            ..user("ada")
        };
        let cases = [
            (None, MailKind::PasswordReset),
            (Some(inactive), MailKind::PasswordReset),
            (Some(verified), MailKind::VerifyEmail),
        ];
        for (found, kind) in cases {
            let mut mocks = worker(found, job(kind, 1));
            mocks
                .mail
                .expect_complete()
                .times(1)
                .returning(|_, _| Ok(()));
            // No expectation on the mailer or the token store: using them would panic.
            service(mocks, RecoveryMocks::default())
                .deliver_due()
                .await
                .unwrap();
        }
    }

    fn failing(recovery: &mut RecoveryMocks, outcome: Outcome) {
        recovery
            .tokens
            .expect_issue()
            .returning(|_, _, _, _, _, _, _, _| Ok(()));
        recording_mailer(recovery, outcome);
    }

    #[tokio::test]
    async fn a_temporary_failure_is_retried_later_with_a_doubling_wait() {
        for (attempts, wait) in [(1, 30), (2, 60)] {
            let mut mocks = worker(Some(user("ada")), job(MailKind::PasswordReset, attempts));
            mocks
                .mail
                .expect_retry()
                .with(always(), eq(NOW + Duration::seconds(wait)), eq("421 busy"))
                .times(1)
                .returning(|_, _, _| Ok(()));
            let mut recovery = RecoveryMocks::default();
            failing(&mut recovery, || {
                Err(MailError::Transient("421 busy".into()))
            });
            service(mocks, recovery).deliver_due().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_mail_is_given_up_and_kept_after_its_last_attempt_or_a_permanent_error() {
        let cases: [(u32, Outcome); 2] = [
            (3, || Err(MailError::Transient("421 busy".into()))),
            (1, || {
                Err(MailError::Permanent("550 no such mailbox".into()))
            }),
        ];
        for (attempts, outcome) in cases {
            let mut mocks = worker(Some(user("ada")), job(MailKind::PasswordReset, attempts));
            mocks
                .mail
                .expect_fail()
                .withf(|_, at, error| *at == NOW && error.contains("mail failure"))
                .times(1)
                .returning(|_, _, _| Ok(()));
            let mut recovery = RecoveryMocks::default();
            failing(&mut recovery, outcome);
            service(mocks, recovery).deliver_due().await.unwrap();
        }
    }
}
