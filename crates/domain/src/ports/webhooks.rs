//! Webhooks: the endpoints and their deliveries (the store), and sending
//! one delivery (the network).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PortError;
use crate::model::{
    AttemptOutcome, AuditEvent, Delivery, DeliveryAttempt, DeliveryId, DeliveryStatus, DueDelivery,
    Endpoint, SendResult, Webhook, WebhookChange, WebhookId, WebhookMessage, WebhookSecret,
    WebhookUrl,
};

/// What a manual retry found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryRequest {
    /// No such delivery of that endpoint.
    NotFound,
    /// It was delivered already.
    Delivered,
    /// It is due now.
    Queued,
}

/// Where endpoints and their deliveries are kept. Every event written to
/// the audit trail becomes, in the same transaction, a pending delivery
/// for each enabled endpoint whose filter takes it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookRepository: Send + Sync + 'static {
    /// Stores a new endpoint signing with `secret`, with `event`.
    async fn create(
        &self,
        webhook: &Webhook,
        secret: &WebhookSecret,
        event: &AuditEvent,
    ) -> Result<(), PortError>;

    /// Every endpoint, oldest first.
    async fn list(&self) -> Result<Vec<Webhook>, PortError>;

    /// Endpoint `id`, if there is one.
    async fn find(&self, id: WebhookId) -> Result<Option<Webhook>, PortError>;

    /// Writes the fields `change` sets (and nothing else) with `event`;
    /// the endpoint as it is then, or `None` if there is none.
    async fn update(
        &self,
        id: WebhookId,
        change: &WebhookChange,
        event: &AuditEvent,
    ) -> Result<Option<Webhook>, PortError>;

    /// Deletes endpoint `id` and its deliveries with `event`; whether
    /// there was one.
    async fn delete(&self, id: WebhookId, event: &AuditEvent) -> Result<bool, PortError>;

    /// Makes `secret` the signing secret; the one it replaces signs too
    /// until `previous_until`. Whether there is such an endpoint.
    async fn rotate_secret(
        &self,
        id: WebhookId,
        secret: &WebhookSecret,
        previous_until: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError>;

    /// Stores `event` (a `webhook.test`) and a delivery of it to endpoint
    /// `id` alone, due now; whether there is such an endpoint.
    async fn queue_test(&self, id: WebhookId, event: &AuditEvent) -> Result<bool, PortError>;

    /// Endpoint `id`'s deliveries, newest event first: those with
    /// `status` if given, older than `before` if given, at most `limit`.
    async fn deliveries(
        &self,
        id: WebhookId,
        status: Option<DeliveryStatus>,
        before: Option<DeliveryId>,
        limit: u64,
    ) -> Result<Vec<Delivery>, PortError>;

    /// The attempts of endpoint `id`'s delivery `delivery`, oldest first;
    /// `None` if it has no such delivery.
    async fn attempts(
        &self,
        id: WebhookId,
        delivery: DeliveryId,
    ) -> Result<Option<Vec<DeliveryAttempt>>, PortError>;

    /// Makes a pending or failed delivery due at `now` (pending again).
    async fn retry(
        &self,
        id: WebhookId,
        delivery: DeliveryId,
        now: OffsetDateTime,
    ) -> Result<RetryRequest, PortError>;
}

/// How the delivery worker takes work, so that instances sharing a
/// database never send the same delivery side by side.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookOutbox: Send + Sync + 'static {
    /// Leases to `worker` until `lease_until` an enabled endpoint that
    /// has a due delivery, is not paused and is not leased by anyone
    /// (or whose lease ended): claiming and leasing are one conditional
    /// write. `None` when there is none.
    async fn claim(
        &self,
        worker: Uuid,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Option<Endpoint>, PortError>;

    /// Endpoint `id`'s due deliveries in the order of their events, at
    /// most `limit`.
    async fn due(
        &self,
        id: WebhookId,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<Vec<DueDelivery>, PortError>;

    /// Extends `worker`'s lease of endpoint `id`; false if it no longer
    /// holds it.
    async fn extend(
        &self,
        id: WebhookId,
        worker: Uuid,
        lease_until: OffsetDateTime,
    ) -> Result<bool, PortError>;

    /// Keeps the attempt, and moves its delivery (if still pending) and
    /// the endpoint's failure streak on, in one transaction. Returns
    /// since when the endpoint has failed (`None` after a success).
    async fn record(
        &self,
        id: WebhookId,
        delivery: DeliveryId,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
    ) -> Result<Option<OffsetDateTime>, PortError>;

    /// Ends `worker`'s lease of endpoint `id` at `now` (endpoints served
    /// longest ago are claimed first); with `paused_until`, no worker
    /// takes it before then.
    async fn release(
        &self,
        id: WebhookId,
        worker: Uuid,
        now: OffsetDateTime,
        paused_until: Option<OffsetDateTime>,
    ) -> Result<(), PortError>;

    /// Turns endpoint `id` off for `reason` with `event`, unless it is
    /// off already; whether it was on.
    async fn disable(
        &self,
        id: WebhookId,
        reason: &str,
        event: &AuditEvent,
    ) -> Result<bool, PortError>;

    /// How many deliveries are pending, and since when the oldest.
    async fn backlog(&self) -> Result<(u64, Option<OffsetDateTime>), PortError>;
}

/// Sends deliveries over the network.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    /// Whether `url`'s host may receive deliveries (it resolves, and only
    /// to public addresses unless private networks are allowed); why not.
    async fn check(&self, url: &WebhookUrl) -> Result<(), String>;

    /// A fresh signing secret in the format receivers' libraries take.
    fn new_secret(&self) -> Result<WebhookSecret, PortError>;

    /// Signs `message` with every secret of `endpoint` and posts it,
    /// once.
    async fn send(&self, endpoint: &Endpoint, message: &WebhookMessage) -> SendResult;
}
