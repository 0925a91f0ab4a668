//! The delivery worker. A round leases one endpoint with due deliveries
//! and sends them in the order of their events; the lease keeps other
//! instances off that endpoint meanwhile, and ends by itself if this one
//! dies, so a delivery is sent again only when no outcome was recorded.

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use tracing::{info, warn};
use uuid::Uuid;

use super::WebhookService;
use crate::PortError;
use crate::model::{
    AttemptOutcome, AuditEvent, AuditKind, ClientInfo, DeliveryAttempt, DueDelivery, Endpoint,
    WebhookMessage,
};

/// How long a round holds its endpoint before it must extend the lease.
const LEASE: Duration = Duration::seconds(60);
/// Extend the lease when less than this is left: more than one attempt's
/// timeout.
const EXTEND_BELOW: Duration = Duration::seconds(30);
/// Deliveries per round.
const BATCH: u64 = 50;

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispatchRound {
    /// Whether there was an endpoint to work on.
    pub claimed: bool,
    /// Deliveries that got a 2xx.
    pub delivered: u32,
    /// Deliveries that failed and wait for a retry.
    pub retried: u32,
    /// Deliveries given up.
    pub failed: u32,
}

impl WebhookService {
    /// One round of `worker` (an id this process chose for itself); it
    /// sends nothing more once `keep_going` says no (the server is
    /// stopping), and releases its endpoint at once.
    ///
    /// # Errors
    /// A store failed; the lease then ends by itself.
    pub async fn dispatch(
        &self,
        worker: Uuid,
        keep_going: &(dyn Fn() -> bool + Sync),
    ) -> Result<DispatchRound, PortError> {
        let outbox = &self.ports.outbox;
        let now = self.ports.clock.now();
        let Some(endpoint) = outbox.claim(worker, now, now + LEASE).await? else {
            return Ok(DispatchRound::default());
        };
        let mut round = DispatchRound {
            claimed: true,
            ..DispatchRound::default()
        };
        let paused_until = self
            .drain(worker, &endpoint, now + LEASE, keep_going, &mut round)
            .await?;
        let now = self.ports.clock.now();
        outbox
            .release(endpoint.id, worker, now, paused_until)
            .await?;
        Ok(round)
    }

    /// Sends the endpoint's due deliveries until one fails in a way that
    /// says the endpoint is in trouble; then how long the endpoint waits.
    async fn drain(
        &self,
        worker: Uuid,
        endpoint: &Endpoint,
        mut lease_until: OffsetDateTime,
        keep_going: &(dyn Fn() -> bool + Sync),
        round: &mut DispatchRound,
    ) -> Result<Option<OffsetDateTime>, PortError> {
        let now = self.ports.clock.now();
        let due = self.ports.outbox.due(endpoint.id, now, BATCH).await?;
        for delivery in due {
            if !keep_going() {
                return Ok(None);
            }
            let now = self.ports.clock.now();
            if lease_until - now < EXTEND_BELOW {
                if !self
                    .ports
                    .outbox
                    .extend(endpoint.id, worker, now + LEASE)
                    .await?
                {
                    // Another instance holds it now; it sends the rest.
                    return Ok(None);
                }
                lease_until = now + LEASE;
            }
            let (outcome, trouble) = self.attempt(endpoint, &delivery, round).await?;
            if let Some(since) = outcome.failing_since
                && self.ports.clock.now() - since >= self.config.retry.disable_after
            {
                self.turn_off(endpoint, since).await?;
                return Ok(None);
            }
            if trouble {
                let pause = match outcome.outcome {
                    AttemptOutcome::Retry(next) => next,
                    _ => self.ports.clock.now() + self.config.retry.base,
                };
                return Ok(Some(pause));
            }
        }
        Ok(None)
    }

    /// Sends one delivery and records what came of it; whether the
    /// failure, if any, is the endpoint's trouble.
    async fn attempt(
        &self,
        endpoint: &Endpoint,
        delivery: &DueDelivery,
        round: &mut DispatchRound,
    ) -> Result<(Recorded, bool), PortError> {
        // The subject as it is when this attempt is sent.
        let user = match delivery.event.subject_id {
            Some(id) => self.ports.users.find_by_id(id).await?,
            None => None,
        };
        let message = WebhookMessage {
            event: delivery.event.clone(),
            user,
        };
        let at = self.ports.clock.now();
        let result = self.ports.sender.send(endpoint, &message).await;
        let outcome = if result.succeeded() {
            round.delivered += 1;
            AttemptOutcome::Delivered
        } else {
            let attempts = delivery.attempts + 1;
            let now = self.ports.clock.now();
            let outcome =
                self.config
                    .retry
                    .after_failure(delivery.event.at, attempts, now, jitter());
            match outcome {
                AttemptOutcome::Failed => {
                    round.failed += 1;
                    warn!(webhook_id = %endpoint.id, delivery_id = %delivery.id, attempts, error = ?result.error, "webhook delivery given up");
                }
                _ => round.retried += 1,
            }
            outcome
        };
        let attempt = DeliveryAttempt {
            at,
            status: result.status,
            error: result.error.clone(),
            duration_ms: result.duration_ms,
        };
        let failing_since = self
            .ports
            .outbox
            .record(endpoint.id, delivery.id, &attempt, outcome)
            .await?;
        let trouble = !result.succeeded() && result.endpoint_trouble();
        Ok((
            Recorded {
                outcome,
                failing_since,
            },
            trouble,
        ))
    }

    async fn turn_off(&self, endpoint: &Endpoint, since: OffsetDateTime) -> Result<(), PortError> {
        let reason = format!(
            "every delivery failed since {}",
            since.format(&Rfc3339).unwrap_or_default()
        );
        let mut event = AuditEvent::new(
            AuditKind::WebhookDisabled,
            self.ports.clock.now(),
            &ClientInfo::default(),
        );
        event.details.webhook_id = Some(endpoint.id);
        if self
            .ports
            .outbox
            .disable(endpoint.id, &reason, &event)
            .await?
        {
            info!(webhook_id = %endpoint.id, %reason, "webhook turned off");
        }
        Ok(())
    }
}

/// What [`WebhookOutbox::record`](crate::ports::WebhookOutbox::record) kept.
struct Recorded {
    outcome: AttemptOutcome,
    failing_since: Option<OffsetDateTime>,
}

/// A number from 0 to 1 to spread retries.
fn jitter() -> f64 {
    let bits = Uuid::new_v4().as_u128() as u64 >> 11;
    #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64 exactly
    let fraction = bits as f64 / (1_u64 << 53) as f64;
    fraction
}
