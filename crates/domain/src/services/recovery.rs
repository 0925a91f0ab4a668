//! Account recovery: "forgot my password" queues a job and answers at once;
//! a background task looks the address up, issues a single-use token and
//! mails the link; the token then resets the password once.
//!
//! The request path never looks the address up, so its answer and its time
//! are the same whether or not an account has it; a slow or unreachable
//! mail server delays only the background task.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};
use tracing::{error, info, warn};

use super::Ports;
use crate::PortError;
use crate::model::{Mail, MailJob, MailKind, Password, PasswordError, PasswordPolicy, User};
use crate::ports::{MailError, MailQueue, Mailer, RecoveryTokens};

/// Settings of the recovery use cases.
#[derive(Clone, Debug)]
pub struct RecoveryConfig {
    /// How long a reset link works.
    pub reset_token_ttl: Duration,
    /// The base of links in mails, without a trailing slash.
    pub public_url: String,
    /// What a new password must be.
    pub password_policy: PasswordPolicy,
    /// Attempts at delivering one mail before it is given up.
    pub max_attempts: u32,
    /// Wait before the second attempt; it doubles with each further one.
    pub retry_base: Duration,
}

/// The ports recovery needs besides the shared ones.
#[derive(Clone)]
pub struct RecoveryPorts {
    /// Reset tokens.
    pub tokens: Arc<dyn RecoveryTokens>,
    /// Mail waiting to be sent.
    pub queue: Arc<dyn MailQueue>,
    /// The mail system.
    pub mailer: Arc<dyn Mailer>,
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
    /// Infrastructure failure.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The longest wait between two attempts at one mail.
const MAX_RETRY_WAIT: Duration = Duration::hours(1);
/// How long a worker holds a job it took before another may take it.
const LEASE: Duration = Duration::minutes(5);
/// Jobs one round of the worker takes.
const BATCH: u32 = 20;

/// Password reset and the delivery of its mail.
#[derive(Clone)]
pub struct RecoveryService {
    ports: Ports,
    recovery: RecoveryPorts,
    config: RecoveryConfig,
}

impl RecoveryService {
    /// Wires the use cases to their ports.
    #[must_use]
    pub fn new(ports: Ports, recovery: RecoveryPorts, config: RecoveryConfig) -> Self {
        Self {
            ports,
            recovery,
            config,
        }
    }

    /// Queues a reset mail for `email` and returns: the same for every
    /// address, known or not.
    ///
    /// # Errors
    /// [`PortError`] when the queue cannot be written.
    pub async fn forgot_password(&self, email: &str) -> Result<(), PortError> {
        let email = email.trim().to_lowercase();
        self.recovery
            .queue
            .enqueue(MailKind::PasswordReset, &email, self.ports.clock.now())
            .await
    }

    /// Sets a new password with a mailed token: the token is spent, every
    /// session of the user ends and failed-login locks on their names are
    /// lifted.
    ///
    /// # Errors
    /// [`ResetPasswordError`].
    pub async fn reset_password(
        &self,
        token: &SecretString,
        new_password: Password,
    ) -> Result<(), ResetPasswordError> {
        let hash = self.ports.tokens.hash_refresh_token(token.expose_secret());
        let now = self.ports.clock.now();
        let user = self
            .recovery
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
        let user = self
            .recovery
            .tokens
            .reset_password(&hash, &new_hash, now)
            .await?
            .ok_or(ResetPasswordError::InvalidToken)?;
        self.ports
            .throttle
            .clear_names(&[
                user.email.as_str().to_owned(),
                user.username.as_str().to_owned(),
            ])
            .await?;
        info!(user_id = %user.id, "password reset; every session ended");
        Ok(())
    }

    /// One round of the mail worker: takes the due jobs and tries each
    /// once; returns how many it took.
    ///
    /// # Errors
    /// [`PortError`] when the queue cannot be read or written.
    pub async fn deliver_due(&self) -> Result<usize, PortError> {
        let now = self.ports.clock.now();
        let jobs = self.recovery.queue.claim(now, now + LEASE, BATCH).await?;
        for job in &jobs {
            let outcome = self.deliver(job).await;
            let now = self.ports.clock.now();
            let queue = &self.recovery.queue;
            match outcome {
                Ok(()) => queue.complete(job.id, now).await?,
                Err(MailError::Transient(reason)) if job.attempts < self.config.max_attempts => {
                    let wait = self.retry_wait(job.attempts);
                    warn!(job = %job.id, attempt = job.attempts, %reason, retry_in_s = wait.whole_seconds(), "mail not sent; retrying later");
                    queue.retry(job.id, now + wait, &reason).await?;
                }
                Err(err) => {
                    error!(job = %job.id, attempts = job.attempts, error = %err, "mail given up");
                    queue.fail(job.id, now, &err.to_string()).await?;
                }
            }
        }
        Ok(jobs.len())
    }

    /// Deletes expired tokens and finished mail jobs older than `before`.
    ///
    /// # Errors
    /// [`PortError`] when the store fails.
    pub async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        Ok(self.recovery.tokens.purge(before).await? + self.recovery.queue.purge(before).await?)
    }

    fn retry_wait(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(20);
        let wait = self.config.retry_base * 2_i32.pow(doublings);
        wait.min(MAX_RETRY_WAIT)
    }

    async fn deliver(&self, job: &MailJob) -> Result<(), MailError> {
        let transient = |err: PortError| MailError::Transient(err.to_string());
        match job.kind {
            MailKind::PasswordReset => {
                let user = self
                    .ports
                    .users
                    .find_by_login(&job.email)
                    .await
                    .map_err(transient)?;
                // Nobody (active) has this address: nothing to send.
                let Some(user) = user.filter(|u| u.is_active && u.email.as_str() == job.email)
                else {
                    return Ok(());
                };
                // A token per attempt: one that was never delivered is superseded.
                let token = self.ports.tokens.new_refresh_token().map_err(transient)?;
                let now = self.ports.clock.now();
                self.recovery
                    .tokens
                    .issue_reset(user.id, &token.hash, now + self.config.reset_token_ttl, now)
                    .await
                    .map_err(transient)?;
                let mail = self.reset_mail(&user, &token.secret);
                self.recovery.mailer.send(&mail).await
            }
        }
    }

    fn reset_mail(&self, user: &User, token: &SecretString) -> Mail {
        let link = format!(
            "{}/reset-password?token={}",
            self.config.public_url,
            token.expose_secret()
        );
        let minutes = self.config.reset_token_ttl.whole_minutes();
        let name = user.username.as_str();
        Mail {
            to: user.email.clone(),
            subject: "Reset your password".to_owned(),
            text: format!(
                "Hello {name},\n\n\
                 Someone asked to reset the password of your account. To choose a new \
                 password, open this link within {minutes} minutes:\n\n{link}\n\n\
                 The link works once. Resetting ends every session of your account.\n\
                 If you did not ask for this, ignore this message: your password stays as it is.\n"
            ),
            html: format!(
                "<p>Hello {name},</p>\
                 <p>Someone asked to reset the password of your account. To choose a new \
                 password, open this link within {minutes} minutes:</p>\
                 <p><a href=\"{link}\">{link}</a></p>\
                 <p>The link works once. Resetting ends every session of your account.<br>\
                 If you did not ask for this, ignore this message: your password stays as it is.</p>"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use mockall::predicate::{always, eq};

    use super::*;
    use crate::model::{PasswordHash, RefreshTokenHash};
    use crate::ports::{MockMailQueue, MockMailer, MockRecoveryTokens, RefreshToken};
    use crate::services::fixtures::{Mocks, NOW, password, user};

    #[derive(Default)]
    struct RecoveryMocks {
        tokens: MockRecoveryTokens,
        queue: MockMailQueue,
        mailer: MockMailer,
    }

    fn config() -> RecoveryConfig {
        RecoveryConfig {
            reset_token_ttl: Duration::minutes(30),
            public_url: "https://app.example.com".into(),
            password_policy: PasswordPolicy { min_score: 0 },
            max_attempts: 3,
            retry_base: Duration::seconds(30),
        }
    }

    fn service(mocks: Mocks, recovery: RecoveryMocks) -> RecoveryService {
        RecoveryService::new(
            mocks.ports(),
            RecoveryPorts {
                tokens: Arc::new(recovery.tokens),
                queue: Arc::new(recovery.queue),
                mailer: Arc::new(recovery.mailer),
            },
            config(),
        )
    }

    fn token_hash() -> RefreshTokenHash {
        RefreshTokenHash::new("digest".into())
    }

    fn job(email: &str, attempts: u32) -> MailJob {
        MailJob {
            id: uuid::Uuid::nil(),
            kind: MailKind::PasswordReset,
            email: email.into(),
            attempts,
        }
    }

    #[tokio::test]
    async fn forgot_password_only_queues_the_address_it_never_looks_it_up() {
        let mut recovery = RecoveryMocks::default();
        recovery
            .queue
            .expect_enqueue()
            .with(eq(MailKind::PasswordReset), eq("ada@example.com"), eq(NOW))
            .times(1)
            .returning(|_, _, _| Ok(()));
        // No expectation on the user repository: a lookup would panic.
        let service = service(Mocks::default(), recovery);
        service.forgot_password("  Ada@Example.com ").await.unwrap();
    }

    fn reset_mocks(found: Option<User>, written: Option<User>) -> (Mocks, RecoveryMocks) {
        let mut mocks = Mocks::default();
        mocks
            .tokens
            .expect_hash_refresh_token()
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
            .return_once(move |_, _, _| Ok(written));
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
            .withf(|names| names == ["ada@example.com", "ada"])
            .times(1)
            .returning(|_| Ok(()));
        let service = service(mocks, recovery);
        service
            .reset_password(&"the-token".into(), password("Quartz-Lantern-Orbit-47"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_unknown_token_is_refused_before_any_hashing() {
        let (mocks, recovery) = reset_mocks(None, None);
        let service = service(mocks, recovery);
        let err = service
            .reset_password(&"the-token".into(), password("Quartz-Lantern-Orbit-47"))
            .await
            .unwrap_err();
        assert!(matches!(err, ResetPasswordError::InvalidToken));
    }

    #[tokio::test]
    async fn a_token_spent_by_a_concurrent_reset_is_refused() {
        let (mut mocks, recovery) = reset_mocks(Some(user("ada")), None);
        mocks
            .hasher
            .expect_hash()
            .returning(|_| Ok(PasswordHash::new("new-hash".into())));
        let service = service(mocks, recovery);
        let err = service
            .reset_password(&"the-token".into(), password("Quartz-Lantern-Orbit-47"))
            .await
            .unwrap_err();
        assert!(matches!(err, ResetPasswordError::InvalidToken));
    }

    #[tokio::test]
    async fn a_new_password_with_the_username_in_it_is_weak() {
        let (mocks, recovery) = reset_mocks(Some(user("adalovelace")), None);
        let service = service(mocks, recovery);
        let err = service
            .reset_password(&"the-token".into(), password("adalovelace-2026"))
            .await
            .unwrap_err();
        assert!(matches!(err, ResetPasswordError::WeakPassword(_)));
    }

    fn worker_mocks(found: Option<User>) -> Mocks {
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_by_login()
            .return_once(move |_| Ok(found));
        mocks
    }

    fn claims(recovery: &mut RecoveryMocks, job: MailJob) {
        recovery
            .queue
            .expect_claim()
            .with(eq(NOW), eq(NOW + LEASE), eq(BATCH))
            .return_once(move |_, _, _| Ok(vec![job]));
    }

    #[tokio::test]
    async fn the_worker_mails_a_fresh_single_use_link_to_an_active_user() {
        let mut mocks = worker_mocks(Some(user("ada")));
        mocks.tokens.expect_new_refresh_token().returning(|| {
            Ok(RefreshToken {
                secret: "s3cret-token".into(),
                hash: token_hash(),
            })
        });
        let mut recovery = RecoveryMocks::default();
        claims(&mut recovery, job("ada@example.com", 1));
        recovery
            .tokens
            .expect_issue_reset()
            .with(
                always(),
                eq(token_hash()),
                eq(NOW + Duration::minutes(30)),
                eq(NOW),
            )
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let log = sent.clone();
        recovery.mailer.expect_send().returning(move |mail| {
            log.lock().unwrap().push(mail.clone());
            Ok(())
        });
        recovery
            .queue
            .expect_complete()
            .times(1)
            .returning(|_, _| Ok(()));
        let service = service(mocks, recovery);
        assert_eq!(service.deliver_due().await.unwrap(), 1);
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to.as_str(), "ada@example.com");
        let link = "https://app.example.com/reset-password?token=s3cret-token";
        assert!(sent[0].text.contains(link), "{}", sent[0].text);
        assert!(sent[0].html.contains(link), "{}", sent[0].html);
        assert!(sent[0].text.contains("30 minutes"));
    }

    #[tokio::test]
    async fn an_address_nobody_active_has_gets_no_mail_and_the_job_is_done() {
        let inactive = User {
            is_active: false,
            ..user("ada")
        };
        for found in [None, Some(inactive)] {
            let mocks = worker_mocks(found);
            let mut recovery = RecoveryMocks::default();
            claims(&mut recovery, job("ada@example.com", 1));
            recovery
                .queue
                .expect_complete()
                .times(1)
                .returning(|_, _| Ok(()));
            // No expectation on the mailer or the tokens: using them would panic.
            service(mocks, recovery).deliver_due().await.unwrap();
        }
    }

    fn failing_delivery(attempts: u32, failure: fn() -> MailError) -> RecoveryMocks {
        let mut recovery = RecoveryMocks::default();
        claims(&mut recovery, job("ada@example.com", attempts));
        recovery
            .tokens
            .expect_issue_reset()
            .returning(|_, _, _, _| Ok(()));
        recovery
            .mailer
            .expect_send()
            .returning(move |_| Err(failure()));
        recovery
    }

    fn sending_mocks() -> Mocks {
        let mut mocks = worker_mocks(Some(user("ada")));
        mocks.tokens.expect_new_refresh_token().returning(|| {
            Ok(RefreshToken {
                secret: "t".into(),
                hash: token_hash(),
            })
        });
        mocks
    }

    #[tokio::test]
    async fn a_temporary_failure_is_retried_later_with_a_doubling_wait() {
        for (attempts, wait) in [(1, 30), (2, 60)] {
            let mut recovery =
                failing_delivery(attempts, || MailError::Transient("421 busy".into()));
            recovery
                .queue
                .expect_retry()
                .with(always(), eq(NOW + Duration::seconds(wait)), eq("421 busy"))
                .times(1)
                .returning(|_, _, _| Ok(()));
            service(sending_mocks(), recovery)
                .deliver_due()
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_mail_is_given_up_and_kept_after_its_last_attempt_or_a_permanent_error() {
        let cases: [(u32, fn() -> MailError); 2] = [
            (3, || MailError::Transient("421 busy".into())),
            (1, || MailError::Permanent("550 no such mailbox".into())),
        ];
        for (attempts, failure) in cases {
            let mut recovery = failing_delivery(attempts, failure);
            recovery
                .queue
                .expect_fail()
                .withf(|_, at, error| *at == NOW && error.contains("mail failure"))
                .times(1)
                .returning(|_, _, _| Ok(()));
            service(sending_mocks(), recovery)
                .deliver_due()
                .await
                .unwrap();
        }
    }
}
