//! The mail worker: takes due jobs, issues their tokens and sends them.

use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};
use tracing::{error, warn};

use crate::PortError;
use crate::model::{AuditEvent, AuditKind, Email, Mail, MailJob, MailKind, UndoTarget, User};
use crate::ports::MailError;

use super::{BATCH, LEASE, MAX_RETRY_WAIT, RecoveryService};

/// How long a notice's undo link works.
const UNDO_TTL: Duration = Duration::days(7);

impl RecoveryService {
    /// One round of the mail worker: takes the due jobs and tries each
    /// once; returns how many it took.
    pub async fn deliver_due(&self) -> Result<usize, PortError> {
        let now = self.ports.clock.now();
        let jobs = self.ports.mail.claim(now, now + LEASE, BATCH).await?;
        // The jobs of a batch are delivered side by side: one slow mail
        // server answer does not hold up the rest.
        let outcomes = futures_util::future::join_all(
            jobs.iter()
                .map(|job| async move { (job, self.deliver(job).await) }),
        )
        .await;
        for (job, outcome) in outcomes {
            let now = self.ports.clock.now();
            let queue = &self.ports.mail;
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
    pub async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        Ok(self.ports.tokens.purge(before).await? + self.ports.mail.purge(before).await?)
    }

    fn retry_wait(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(20);
        let wait = self.config.retry_base * 2_i32.pow(doublings);
        wait.min(MAX_RETRY_WAIT)
    }

    async fn deliver(&self, job: &MailJob) -> Result<(), MailError> {
        let transient = |err: PortError| MailError::Transient(err.to_string());
        let to = Email::parse(&job.email)
            .map_err(|_| MailError::Permanent(format!("not an address: {}", job.email)))?;
        if !job.kind.carries_a_link() {
            // A notice of a change that happened is never capped: the cap
            // limits links anyone can ask for, and a notice must reach the
            // owner however many of those were asked for first.
            return self
                .ports
                .mailer
                .send(&self.plain_notice(job.kind, to))
                .await;
        }
        let user = match (job.kind.is_notice(), job.user_id) {
            (true, Some(id)) => self.ports.users.find_by_id(id).await,
            // Its account is the one that changed, never whoever holds the
            // address now.
            (true, None) => {
                return Err(MailError::Permanent(format!(
                    "{} notice without its account",
                    job.kind.as_str()
                )));
            }
            (false, _) => self.ports.users.find_by_login(&job.email).await,
        }
        .map_err(transient)?;
        // Links asked for by address: nobody (active) has it, or it is
        // verified already: nothing to send. A notice's link goes to the
        // address of the change whatever the account looks like now.
        let Some(user) = user.filter(|u| {
            job.kind.is_notice()
                || (u.is_active
                    && u.email.as_str() == job.email
                    && !(job.kind == MailKind::VerifyEmail && u.is_verified))
        }) else {
            return Ok(());
        };
        if !job.kind.is_notice() && self.over_the_cap(job).await.map_err(transient)? {
            warn!(job = %job.id, kind = job.kind.as_str(), "link mail not sent: the address had its hourly share");
            return Ok(());
        }
        // A token per attempt: one that was never delivered is superseded.
        let token = self.ports.issuer.new_refresh_token().map_err(transient)?;
        let now = self.ports.clock.now();
        // A notice's link is dated, and lives from, the change it undoes:
        // links of later changes are told apart by it, whatever order the
        // worker delivers them in.
        let issued = if job.kind.is_notice() {
            job.queued_at
        } else {
            now
        };
        // The request is on record once it had an effect: a live token.
        let event = (job.kind == MailKind::PasswordReset).then(|| {
            AuditEvent::new(AuditKind::PasswordResetRequested, now, &job.client).about(user.id)
        });
        self.ports
            .tokens
            .issue(
                job.kind,
                user.id,
                &to,
                &token.hash,
                job.target.clone(),
                issued + self.ttl(job.kind),
                issued,
                event,
            )
            .await
            .map_err(transient)?;
        let mail = self.mail(job, &user, to, &token.secret);
        self.ports.mailer.send(&mail).await
    }

    /// Whether the job's address has had its hourly share of link mails.
    /// A job counts once, at its first attempt, so retries cost nothing.
    async fn over_the_cap(&self, job: &MailJob) -> Result<bool, PortError> {
        if job.attempts > 1 {
            return Ok(false);
        }
        let now = self.ports.clock.now();
        let sent = self
            .ports
            .counter
            .count(&format!("mail:{}", job.email), Duration::HOUR, now)
            .await?;
        Ok(sent > self.config.max_links_per_address_per_hour)
    }

    fn ttl(&self, kind: MailKind) -> Duration {
        match kind {
            MailKind::PasswordReset => self.config.reset_token_ttl,
            MailKind::VerifyEmail => self.config.verify_token_ttl,
            MailKind::IdentityLinked
            | MailKind::PasskeyAdded
            | MailKind::WebhookCreated
            | MailKind::WebhookRedirected => UNDO_TTL,
            MailKind::EmailChanged
            | MailKind::PasswordChanged
            | MailKind::SecondFactorOn
            | MailKind::SecondFactorOff => self.config.revert_token_ttl,
        }
    }

    /// The mail of a job with a link for `user`: a greeting, what the link
    /// does and how long it works, the link, and what to do if it was not
    /// asked for.
    fn mail(&self, job: &MailJob, user: &User, to: Email, token: &SecretString) -> Mail {
        let ttl = self.ttl(job.kind);
        let (path, subject, ask, after) = match job.kind {
            MailKind::PasswordReset => (
                "/reset-password",
                "Reset your password",
                format!(
                    "Someone asked to reset the password of your account. To choose a new \
                     password, open this link within {} minutes:",
                    ttl.whole_minutes()
                ),
                "The link works once. Resetting ends every session of your account.\n\
                 If you did not ask for this, ignore this message: your password stays as it is.",
            ),
            MailKind::VerifyEmail => (
                "/verify",
                "Verify your email address",
                format!(
                    "To confirm that this address is yours, open this link within {} hours:",
                    ttl.whole_hours()
                ),
                "If you did not sign up or change your address, ignore this message.",
            ),
            MailKind::IdentityLinked => (
                "/undo",
                "A provider account was linked to your account",
                format!(
                    "An account at {} can now sign in to your account. If you did not link it, \
                     open this link within {} days to remove it: every session of your account \
                     ends too.",
                    match &job.target {
                        Some(UndoTarget::Identity { provider, .. }) => provider.as_str(),
                        Some(UndoTarget::Passkey { .. } | UndoTarget::Webhook { .. }) | None => {
                            "a provider"
                        }
                    },
                    ttl.whole_days()
                ),
                "If you linked it, ignore this message.\n\
                 If you did not, someone has your password: reset it too.",
            ),
            MailKind::PasskeyAdded => (
                "/undo",
                "A passkey was added to your account",
                format!(
                    "A passkey can now sign in to your account. If you did not add it, open this \
                     link within {} days to remove it: every session of your account ends too.",
                    ttl.whole_days()
                ),
                "If you added it, ignore this message.\n\
                 If you did not, someone has your password: reset it too.",
            ),
            MailKind::WebhookCreated => (
                "/undo",
                "A webhook was added with your account",
                format!(
                    "Your superuser account subscribed a webhook: every account event it takes \
                     is now sent to another server. If you did not add it, open this link within \
                     {} days to delete it: every session of your account ends too.",
                    ttl.whole_days()
                ),
                "If you added it, ignore this message.\n\
                 If you did not, someone has your password or a session: reset it too.",
            ),
            MailKind::WebhookRedirected => (
                "/undo",
                "A webhook was pointed at another server with your account",
                format!(
                    "Your superuser account changed where a webhook sends account events: they \
                     now go to another server. If you did not change it, open this link within \
                     {} days to delete the webhook: every session of your account ends too.",
                    ttl.whole_days()
                ),
                "If you changed it, ignore this message.\n\
                 If you did not, someone has your password or a session: reset it too.",
            ),
            _ => (
                "/revert-email",
                "The email address of your account was changed",
                format!(
                    "The email address of your account was changed from this address to {}. \
                     If you did not make this change, open this link within {} days to undo \
                     it: the account gets this address back, every session of it ends, and \
                     every way in added since (a linked provider account, a second factor) is \
                     removed.",
                    job.new_email.as_deref().unwrap_or("another address"),
                    ttl.whole_days()
                ),
                "If you made the change, ignore this message.\n\
                 If you did not, reset your password too once the address is back.",
            ),
        };
        let link = format!(
            "{}{path}?token={}",
            self.config.public_url,
            token.expose_secret()
        );
        let name = user.username.as_str();
        Mail {
            to,
            subject: subject.to_owned(),
            text: format!("Hello {name},\n\n{ask}\n\n{link}\n\n{after}\n"),
            html: format!(
                "<p>Hello {name},</p><p>{ask}</p><p><a href=\"{link}\">{link}</a></p><p>{}</p>",
                after.replace('\n', "<br>")
            ),
        }
    }

    /// A notice without a link (a password or a second factor changed):
    /// what happened, and what to do if it was not the account's owner.
    fn plain_notice(&self, kind: MailKind, to: Email) -> Mail {
        let url = &self.config.public_url;
        let (subject, ask, after) = match kind {
            MailKind::SecondFactorOn => (
                "Two-factor authentication was turned on",
                "Two-factor authentication was turned on for your account.",
                format!(
                    "If this was you, ignore this message.\n\
                     If it was not, someone has your password: ask for a password reset at once: \
                     {url}/forgot-password\n\
                     A second factor you did not turn on is removed by the link in the notice of \
                     an email change (if your address was changed too), or by an administrator."
                ),
            ),
            MailKind::SecondFactorOff => (
                "Two-factor authentication was turned off",
                "Two-factor authentication was turned off for your account.",
                format!(
                    "If this was you (or an administrator you asked), ignore this message.\n\
                     If it was not, ask for a password reset at once, then turn it on again: \
                     {url}/forgot-password"
                ),
            ),
            _ => (
                "Your password was changed",
                "The password of your account was changed.",
                format!(
                    "If this was you (or an administrator you asked), ignore this message.\n\
                     If it was not, ask for a password reset at once: {url}/forgot-password"
                ),
            ),
        };
        Mail {
            to,
            subject: subject.to_owned(),
            text: format!("Hello,\n\n{ask}\n\n{after}\n"),
            html: format!(
                "<p>Hello,</p><p>{ask}</p><p>{}</p>",
                after.replace('\n', "<br>")
            ),
        }
    }
}
