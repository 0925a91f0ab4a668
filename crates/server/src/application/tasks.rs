//! Background work: metrics upkeep, purging old rows, delivering mail.

use std::sync::Arc;

use userhub_domain::ports::{Clock, RequestCounter};
use userhub_domain::services::{AuditService, AuthServices, RecoveryService, WebhookService};
use userhub_http::{Lifecycle, Metrics};
use userhub_infrastructure::SeaOrmRequestCounter;

/// Folds histogram samples into buckets now and then, so that memory stays
/// flat whether or not anyone scrapes `/metrics`.
pub(super) async fn upkeep_every(metrics: Metrics) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        interval.tick().await;
        metrics.run_upkeep();
    }
}

/// Deletes ended sessions, expired reset tokens, mail jobs finished a
/// week ago and audit events past their retention now and then, so the
/// tables stay small.
pub(super) async fn purge_every(
    auth: AuthServices,
    recovery: RecoveryService,
    audit: AuditService,
    counter: Arc<SeaOrmRequestCounter>,
    clock: Arc<dyn Clock>,
    seconds: u64,
) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(seconds));
    loop {
        interval.tick().await;
        if let Err(err) = auth.sessions.purge_ended_sessions().await {
            tracing::warn!(error = %err, "deleting ended sessions failed; will retry");
        }
        if let Err(err) = auth.auth.purge_login_state().await {
            tracing::warn!(error = %err, "deleting old login failures failed; will retry");
        }
        if let Err(err) = auth.tokens.purge_expired().await {
            tracing::warn!(error = %err, "deleting expired access tokens failed; will retry");
        }
        if let Err(err) = auth.oauth.purge_spent_states().await {
            tracing::warn!(error = %err, "deleting expired sign-in states failed; will retry");
        }
        if let Err(err) = auth.passkeys.purge_ceremonies().await {
            tracing::warn!(error = %err, "deleting expired passkey ceremonies failed; will retry");
        }
        let week_ago = clock.now() - time::Duration::days(7);
        if let Err(err) = recovery.purge(week_ago).await {
            tracing::warn!(error = %err, "deleting old reset tokens and mail failed; will retry");
        }
        if let Err(err) = audit.purge().await {
            tracing::warn!(error = %err, "deleting old audit events failed; will retry");
        }
        // The longest window counted is an hour (mail per address).
        let hours_ago = clock.now() - time::Duration::hours(2);
        if let Err(err) = counter.purge(hours_ago).await {
            tracing::warn!(error = %err, "deleting old request counts failed; will retry");
        }
    }
}

/// Sends queued mail: polls the queue every second, and goes on at once
/// while it finds work. A job taken by an instance that stops is taken
/// again when its lease ends.
pub(super) async fn deliver_mail(recovery: RecoveryService) {
    loop {
        match recovery.deliver_due().await {
            Ok(0) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "reading the mail queue failed; will retry");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}

/// Sends webhook deliveries: polls every second, and goes on at once
/// while it finds work, until the server drains (then it finishes the
/// delivery in hand and releases its endpoint). An endpoint leased by an
/// instance that died is taken again when its lease ends.
pub(super) async fn deliver_webhooks(
    webhooks: WebhookService,
    metrics: Metrics,
    lifecycle: Arc<Lifecycle>,
) {
    let worker = uuid::Uuid::new_v4();
    let keep_going = || !lifecycle.is_draining();
    while keep_going() {
        match webhooks.dispatch(worker, &keep_going).await {
            Ok(round) if round.claimed => metrics.record_webhook_round(&round),
            Ok(_) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
            Err(err) => {
                tracing::warn!(error = %err, "reading the webhook deliveries failed; will retry");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}

/// Reports the webhook backlog on `/metrics` every five seconds.
pub(super) async fn webhook_backlog_every(webhooks: WebhookService, metrics: Metrics) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        interval.tick().await;
        match webhooks.backlog().await {
            Ok((pending, age)) => {
                metrics.set_webhook_backlog(pending, age.try_into().unwrap_or_default())
            }
            Err(err) => tracing::debug!(error = %err, "reading the webhook backlog failed"),
        }
    }
}
