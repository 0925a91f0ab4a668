//! Webhooks: superusers manage endpoints; the delivery worker
//! ([`dispatch`]) sends them the audit trail's events.

mod dispatch;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tracing::info;

pub use dispatch::DispatchRound;

use crate::PortError;
use crate::model::{
    AuditEvent, AuditKind, ClientInfo, Delivery, DeliveryAttempt, DeliveryId, DeliveryStatus,
    EventFilter, MailKind, Notice, PREVIOUS_SECRET_OVERLAP, RetryPolicy, UndoTarget, User, Webhook,
    WebhookChange, WebhookDescription, WebhookId, WebhookSecret, WebhookUrl,
};
use crate::ports::{
    Clock, MailQueue, RetryRequest, UserRepository, WebhookOutbox, WebhookRepository, WebhookSender,
};

/// The ports of webhooks ([`WebhookService`]).
#[derive(Clone)]
#[allow(missing_docs)] // each field is the port its type names
pub struct WebhookPorts {
    pub webhooks: Arc<dyn WebhookRepository>,
    pub outbox: Arc<dyn WebhookOutbox>,
    pub sender: Arc<dyn WebhookSender>,
    pub users: Arc<dyn UserRepository>,
    pub mail: Arc<dyn MailQueue>,
    pub clock: Arc<dyn Clock>,
}

/// The settings webhooks follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Whether plain `http://` endpoints are accepted (outside production).
    pub allow_http: bool,
    /// When failed deliveries are retried and endpoints turned off.
    pub retry: RetryPolicy,
}

/// A new endpoint, as a superuser asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWebhook {
    /// Where deliveries go.
    pub url: WebhookUrl,
    /// Which events.
    pub events: EventFilter,
    /// A note.
    pub description: Option<WebhookDescription>,
}

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Only superusers manage webhooks.
    #[error("not enough permissions")]
    Forbidden,
    /// No such endpoint (or delivery).
    #[error("not found")]
    NotFound,
    /// The URL's host may not receive deliveries.
    #[error("{0}")]
    UrlRefused(String),
    /// The delivery was delivered already.
    #[error("delivered already")]
    AlreadyDelivered,
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Webhooks' use cases.
#[derive(Clone)]
pub struct WebhookService {
    ports: WebhookPorts,
    config: WebhookConfig,
}

impl WebhookService {
    /// Webhooks on `ports`, following `config`.
    #[must_use]
    pub fn new(ports: WebhookPorts, config: WebhookConfig) -> Self {
        Self { ports, config }
    }

    /// Every endpoint.
    ///
    /// # Errors
    /// [`WebhookError::Forbidden`] for anyone but a superuser.
    pub async fn list(&self, actor: &User) -> Result<Vec<Webhook>, WebhookError> {
        superuser(actor)?;
        Ok(self.ports.webhooks.list().await?)
    }

    /// Endpoint `id`.
    ///
    /// # Errors
    /// [`WebhookError::Forbidden`], [`WebhookError::NotFound`].
    pub async fn get(&self, actor: &User, id: WebhookId) -> Result<Webhook, WebhookError> {
        superuser(actor)?;
        self.ports
            .webhooks
            .find(id)
            .await?
            .ok_or(WebhookError::NotFound)
    }

    /// Subscribes a new endpoint; it and its secret (shown this once).
    ///
    /// # Errors
    /// [`WebhookError::Forbidden`], [`WebhookError::UrlRefused`] for a host
    /// that does not resolve or resolves to a non-public address.
    pub async fn create(
        &self,
        actor: &User,
        new: NewWebhook,
        client: &ClientInfo,
    ) -> Result<(Webhook, WebhookSecret), WebhookError> {
        superuser(actor)?;
        self.check(&new.url).await?;
        let now = self.ports.clock.now();
        let webhook = Webhook {
            id: WebhookId::generate(),
            url: new.url,
            events: new.events,
            description: new.description,
            enabled: true,
            created_at: now,
            disabled_reason: None,
        };
        let secret = self.new_secret()?;
        let event = self.event(AuditKind::WebhookCreated, actor, webhook.id, client);
        self.ports
            .webhooks
            .create(&webhook, &secret, &event)
            .await?;
        info!(actor = %actor.id, webhook_id = %webhook.id, url = webhook.url.as_str(), "webhook created");
        self.tell_owner(MailKind::WebhookCreated, actor, webhook.id, client)
            .await;
        Ok((webhook, secret))
    }

    /// Events leave the server: the superuser's inbox can delete a webhook
    /// it did not add or point elsewhere, as it can a way in added with a
    /// stolen session.
    async fn tell_owner(&self, kind: MailKind, actor: &User, id: WebhookId, client: &ClientInfo) {
        let notice = Notice {
            kind,
            user_id: actor.id,
            to: actor.email.clone(),
            new_email: None,
            target: Some(UndoTarget::Webhook { id }),
        };
        let outbox = super::Outbox {
            mail: self.ports.mail.as_ref(),
            clock: self.ports.clock.as_ref(),
        };
        super::queue_notice(outbox, &notice, client).await;
    }

    /// Writes the fields `change` sets; the endpoint as it is then.
    ///
    /// # Errors
    /// As [`Self::create`], and [`WebhookError::NotFound`].
    pub async fn update(
        &self,
        actor: &User,
        id: WebhookId,
        change: WebhookChange,
        client: &ClientInfo,
    ) -> Result<Webhook, WebhookError> {
        superuser(actor)?;
        // Whether events will go somewhere new: the owner is told then.
        let mut redirected = false;
        if let Some(url) = &change.url {
            self.check(url).await?;
            let before = self.ports.webhooks.find(id).await?;
            redirected = before.ok_or(WebhookError::NotFound)?.url != *url;
        }
        let mut event = self.event(AuditKind::WebhookUpdated, actor, id, client);
        event.details.fields = change.fields();
        let webhook = self
            .ports
            .webhooks
            .update(id, &change, &event)
            .await?
            .ok_or(WebhookError::NotFound)?;
        info!(actor = %actor.id, webhook_id = %id, fields = ?event.details.fields, "webhook updated");
        if redirected {
            self.tell_owner(MailKind::WebhookRedirected, actor, id, client)
                .await;
        }
        Ok(webhook)
    }

    /// Deletes endpoint `id` and its deliveries.
    ///
    /// # Errors
    /// [`WebhookError::Forbidden`], [`WebhookError::NotFound`].
    pub async fn delete(
        &self,
        actor: &User,
        id: WebhookId,
        client: &ClientInfo,
    ) -> Result<(), WebhookError> {
        superuser(actor)?;
        let event = self.event(AuditKind::WebhookDeleted, actor, id, client);
        if !self.ports.webhooks.delete(id, &event).await? {
            return Err(WebhookError::NotFound);
        }
        info!(actor = %actor.id, webhook_id = %id, "webhook deleted");
        Ok(())
    }

    /// A new signing secret (shown this once); the old one signs too for
    /// [`PREVIOUS_SECRET_OVERLAP`].
    ///
    /// # Errors
    /// [`WebhookError::Forbidden`], [`WebhookError::NotFound`].
    pub async fn rotate_secret(
        &self,
        actor: &User,
        id: WebhookId,
        client: &ClientInfo,
    ) -> Result<WebhookSecret, WebhookError> {
        superuser(actor)?;
        let secret = self.new_secret()?;
        let mut event = self.event(AuditKind::WebhookUpdated, actor, id, client);
        event.details.fields = vec!["secret".to_owned()];
        let until = self.ports.clock.now() + PREVIOUS_SECRET_OVERLAP;
        if !self
            .ports
            .webhooks
            .rotate_secret(id, &secret, until, &event)
            .await?
        {
            return Err(WebhookError::NotFound);
        }
        info!(actor = %actor.id, webhook_id = %id, "webhook secret rotated");
        Ok(secret)
    }

    /// Queues a `webhook.test` event for endpoint `id`, whatever its filter.
    ///
    /// # Errors
    /// [`WebhookError::Forbidden`], [`WebhookError::NotFound`].
    pub async fn test(
        &self,
        actor: &User,
        id: WebhookId,
        client: &ClientInfo,
    ) -> Result<(), WebhookError> {
        superuser(actor)?;
        let event = self.event(AuditKind::WebhookTest, actor, id, client);
        if !self.ports.webhooks.queue_test(id, &event).await? {
            return Err(WebhookError::NotFound);
        }
        Ok(())
    }

    /// Endpoint `id`'s deliveries, newest first.
    ///
    /// # Errors
    /// [`WebhookError::Forbidden`], [`WebhookError::NotFound`].
    pub async fn deliveries(
        &self,
        actor: &User,
        id: WebhookId,
        status: Option<DeliveryStatus>,
        before: Option<DeliveryId>,
        limit: u64,
    ) -> Result<Vec<Delivery>, WebhookError> {
        self.get(actor, id).await?;
        Ok(self
            .ports
            .webhooks
            .deliveries(id, status, before, limit)
            .await?)
    }

    /// The attempts of one delivery, oldest first.
    ///
    /// # Errors
    /// [`WebhookError::Forbidden`], [`WebhookError::NotFound`].
    pub async fn attempts(
        &self,
        actor: &User,
        id: WebhookId,
        delivery: DeliveryId,
    ) -> Result<Vec<DeliveryAttempt>, WebhookError> {
        superuser(actor)?;
        self.ports
            .webhooks
            .attempts(id, delivery)
            .await?
            .ok_or(WebhookError::NotFound)
    }

    /// Makes a pending or failed delivery due now.
    ///
    /// # Errors
    /// [`WebhookError::Forbidden`], [`WebhookError::NotFound`],
    /// [`WebhookError::AlreadyDelivered`].
    pub async fn retry(
        &self,
        actor: &User,
        id: WebhookId,
        delivery: DeliveryId,
    ) -> Result<(), WebhookError> {
        superuser(actor)?;
        let now = self.ports.clock.now();
        match self.ports.webhooks.retry(id, delivery, now).await? {
            RetryRequest::Queued => {
                info!(actor = %actor.id, webhook_id = %id, delivery_id = %delivery, "delivery retried by hand");
                Ok(())
            }
            RetryRequest::Delivered => Err(WebhookError::AlreadyDelivered),
            RetryRequest::NotFound => Err(WebhookError::NotFound),
        }
    }

    /// How many deliveries wait, and how long the oldest has waited.
    ///
    /// # Errors
    /// The store failed.
    pub async fn backlog(&self) -> Result<(u64, time::Duration), PortError> {
        let (pending, oldest) = self.ports.outbox.backlog().await?;
        let age = oldest.map_or(time::Duration::ZERO, |at| {
            (self.ports.clock.now() - at).max(time::Duration::ZERO)
        });
        Ok((pending, age))
    }

    async fn check(&self, url: &WebhookUrl) -> Result<(), WebhookError> {
        if url.url().scheme() != "https" && !self.config.allow_http {
            return Err(WebhookError::UrlRefused(
                "URL must use https:// in production".into(),
            ));
        }
        self.ports
            .sender
            .check(url)
            .await
            .map_err(WebhookError::UrlRefused)
    }

    fn new_secret(&self) -> Result<WebhookSecret, PortError> {
        self.ports.sender.new_secret()
    }

    fn event(
        &self,
        kind: AuditKind,
        actor: &User,
        id: WebhookId,
        client: &ClientInfo,
    ) -> AuditEvent {
        let mut event = AuditEvent::new(kind, self.ports.clock.now(), client).by(actor.id);
        event.details.webhook_id = Some(id);
        event
    }
}

fn superuser(actor: &User) -> Result<(), WebhookError> {
    if actor.is_superuser {
        Ok(())
    } else {
        Err(WebhookError::Forbidden)
    }
}
