//! Webhooks (`webhooks`, `webhook_deliveries`, `webhook_attempts`): the
//! endpoints superusers manage, and (in [`outbox`]) how the delivery
//! worker takes and settles work. Deliveries are added by a trigger on
//! `audit_events` (see the migration); signing secrets are sealed.

mod outbox;

use async_trait::async_trait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    TransactionTrait,
};
use secrecy::SecretString;
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AuditEvent, AuditKind, Delivery, DeliveryAttempt, DeliveryId, DeliveryStatus, EventFilter,
    Webhook, WebhookChange, WebhookDescription, WebhookId, WebhookSecret, WebhookUrl,
};
use userhub_domain::ports::{RetryRequest, WebhookRepository};
use uuid::Uuid;

use super::{Database, DbResultExt, audit, from_micros, micros, read};
use crate::Sealer;
use crate::entities::{audit_event, webhook, webhook_attempt, webhook_delivery};

/// The endpoints, their deliveries, and the delivery worker's outbox.
#[derive(Clone, Debug)]
pub struct SeaOrmWebhookStore {
    db: Database,
    sealer: Sealer,
}

impl SeaOrmWebhookStore {
    /// Endpoints on `db`, their secrets sealed by `sealer`.
    #[must_use]
    pub fn new(db: Database, sealer: Sealer) -> Self {
        Self { db, sealer }
    }

    /// Runs `write` and, if it changed a row, stores `event` with it, in
    /// one transaction; whether it changed one.
    pub(super) async fn write_with_event(
        &self,
        write: &impl sea_orm::StatementBuilder,
        event: &AuditEvent,
    ) -> Result<bool, PortError> {
        let txn = self.db.connection().begin().await.port()?;
        if txn.execute(write).await.port()?.rows_affected() == 0 {
            return Ok(false);
        }
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(true)
    }

    fn seal(&self, secret: &WebhookSecret) -> Result<Vec<u8>, PortError> {
        self.sealer.seal(secret.expose().as_bytes())
    }

    fn open(&self, sealed: &[u8]) -> Result<WebhookSecret, PortError> {
        let plain = String::from_utf8(self.sealer.open(sealed)?).map_err(PortError::unexpected)?;
        Ok(WebhookSecret::new(SecretString::from(plain)))
    }
}

/// `events` as stored: `*`, or the types between commas, so that the
/// trigger's filter is one substring test.
fn stored_events(filter: &EventFilter) -> String {
    match filter {
        EventFilter::All => "*".to_owned(),
        EventFilter::Only(_) => format!(",{},", filter.names().join(",")),
    }
}

fn parse_events(stored: &str) -> Result<EventFilter, PortError> {
    let names: Vec<&str> = stored.split(',').filter(|n| !n.is_empty()).collect();
    EventFilter::parse(&names).map_err(PortError::unexpected)
}

fn to_webhook(row: webhook::Model) -> Result<Webhook, PortError> {
    Ok(Webhook {
        id: WebhookId::from_uuid(row.id),
        url: WebhookUrl::stored(&row.url).map_err(PortError::unexpected)?,
        events: parse_events(&row.events)?,
        description: row
            .description
            .as_deref()
            .map(WebhookDescription::parse)
            .transpose()
            .map_err(PortError::unexpected)?,
        enabled: row.enabled,
        created_at: from_micros(row.created_at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        disabled_reason: row.disabled_reason,
    })
}

/// A stored time, `None` for 0 ("not yet").
fn when(us: i64) -> Option<OffsetDateTime> {
    (us > 0).then(|| from_micros(us)).flatten()
}

/// A delivery row with its event's type, as listings read it.
#[derive(FromQueryResult)]
struct DeliveryRow {
    id: Uuid,
    event_id: Uuid,
    kind: String,
    status: String,
    attempts: i32,
    last_status: Option<i32>,
    last_error: Option<String>,
    next_attempt_at: i64,
    delivered_at: i64,
}

fn to_delivery(row: DeliveryRow) -> Result<Delivery, PortError> {
    let status = DeliveryStatus::parse(&row.status)
        .ok_or_else(|| PortError::unexpected(format!("delivery status {:?}", row.status)))?;
    Ok(Delivery {
        id: DeliveryId::from_uuid(row.id),
        event_id: row.event_id,
        kind: AuditKind::parse(&row.kind)
            .ok_or_else(|| PortError::unexpected(format!("event type {:?}", row.kind)))?,
        status,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        last_status: row.last_status.and_then(|s| u16::try_from(s).ok()),
        last_error: row.last_error,
        next_attempt_at: (status == DeliveryStatus::Pending)
            .then(|| when(row.next_attempt_at))
            .flatten(),
        delivered_at: when(row.delivered_at),
    })
}

#[async_trait]
impl WebhookRepository for SeaOrmWebhookStore {
    async fn create(
        &self,
        hook: &Webhook,
        secret: &WebhookSecret,
        event: &AuditEvent,
    ) -> Result<(), PortError> {
        let at = micros(hook.created_at);
        let insert = Query::insert()
            .into_table(webhook::Entity)
            .columns([
                webhook::Column::Id,
                webhook::Column::Url,
                webhook::Column::Events,
                webhook::Column::Description,
                webhook::Column::Enabled,
                webhook::Column::Secret,
                webhook::Column::CreatedAt,
                webhook::Column::UpdatedAt,
            ])
            .values_panic([
                hook.id.as_uuid().into(),
                hook.url.as_str().into(),
                stored_events(&hook.events).into(),
                hook.description
                    .as_ref()
                    .map(|d| d.as_str().to_owned())
                    .into(),
                hook.enabled.into(),
                self.seal(secret)?.into(),
                at.into(),
                at.into(),
            ])
            .to_owned();
        let txn = self.db.connection().begin().await.port()?;
        txn.execute(&insert).await.port()?;
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()
    }

    async fn list(&self) -> Result<Vec<Webhook>, PortError> {
        let rows = read(|| {
            webhook::Entity::find()
                .order_by_asc(webhook::Column::Id)
                .all(self.db.connection())
        })
        .await
        .port()?;
        rows.into_iter().map(to_webhook).collect()
    }

    async fn find(&self, id: WebhookId) -> Result<Option<Webhook>, PortError> {
        read(|| webhook::Entity::find_by_id(id.as_uuid()).one(self.db.connection()))
            .await
            .port()?
            .map(to_webhook)
            .transpose()
    }

    async fn update(
        &self,
        id: WebhookId,
        change: &WebhookChange,
        event: &AuditEvent,
    ) -> Result<Option<Webhook>, PortError> {
        let mut update = Query::update();
        update
            .table(webhook::Entity)
            .value(webhook::Column::UpdatedAt, micros(event.at))
            .and_where(Expr::col(webhook::Column::Id).eq(id.as_uuid()));
        if let Some(url) = &change.url {
            update.value(webhook::Column::Url, url.as_str());
        }
        if let Some(events) = &change.events {
            update.value(webhook::Column::Events, stored_events(events));
        }
        if let Some(description) = &change.description {
            update.value(
                webhook::Column::Description,
                description.as_ref().map(|d| d.as_str().to_owned()),
            );
        }
        if let Some(enabled) = change.enabled {
            update.value(webhook::Column::Enabled, enabled);
            if enabled {
                // Turned on again: a clean slate.
                update
                    .value(webhook::Column::DisabledReason, Option::<String>::None)
                    .value(webhook::Column::FailingSince, 0_i64)
                    .value(webhook::Column::PausedUntil, 0_i64);
            }
        }
        let txn = self.db.connection().begin().await.port()?;
        if txn.execute(&update).await.port()?.rows_affected() == 0 {
            return Ok(None);
        }
        audit::write(&txn, event).await.port()?;
        let row = webhook::Entity::find_by_id(id.as_uuid())
            .one(&txn)
            .await
            .port()?;
        txn.commit().await.port()?;
        row.map(to_webhook).transpose()
    }

    async fn delete(&self, id: WebhookId, event: &AuditEvent) -> Result<bool, PortError> {
        let delete = Query::delete()
            .from_table(webhook::Entity)
            .and_where(Expr::col(webhook::Column::Id).eq(id.as_uuid()))
            .to_owned();
        self.write_with_event(&delete, event).await
    }

    async fn rotate_secret(
        &self,
        id: WebhookId,
        secret: &WebhookSecret,
        previous_until: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError> {
        // SET reads the row as it was: the old secret becomes the previous.
        let update = Query::update()
            .table(webhook::Entity)
            .value(
                webhook::Column::PreviousSecret,
                Expr::col(webhook::Column::Secret),
            )
            .value(webhook::Column::PreviousUntil, micros(previous_until))
            .value(webhook::Column::Secret, self.seal(secret)?)
            .value(webhook::Column::UpdatedAt, micros(event.at))
            .and_where(Expr::col(webhook::Column::Id).eq(id.as_uuid()))
            .to_owned();
        self.write_with_event(&update, event).await
    }

    async fn queue_test(&self, id: WebhookId, event: &AuditEvent) -> Result<bool, PortError> {
        // The trigger passes webhook events by: this delivery is the only one.
        let row = Query::select()
            .expr(Expr::val(DeliveryId::generate().as_uuid()))
            .column(webhook::Column::Id)
            .expr(Expr::val(event.id))
            .expr(Expr::val(DeliveryStatus::Pending.as_str()))
            .expr(Expr::val(micros(event.at)))
            .from(webhook::Entity)
            .and_where(Expr::col(webhook::Column::Id).eq(id.as_uuid()))
            .to_owned();
        let insert = Query::insert()
            .into_table(webhook_delivery::Entity)
            .columns([
                webhook_delivery::Column::Id,
                webhook_delivery::Column::WebhookId,
                webhook_delivery::Column::EventId,
                webhook_delivery::Column::Status,
                webhook_delivery::Column::NextAttemptAt,
            ])
            .select_from(row)
            .map_err(PortError::unexpected)?
            .to_owned();
        let txn = self.db.connection().begin().await.port()?;
        audit::write(&txn, event).await.port()?;
        if txn.execute(&insert).await.port()?.rows_affected() == 0 {
            return Ok(false);
        }
        txn.commit().await.port()?;
        Ok(true)
    }

    async fn deliveries(
        &self,
        id: WebhookId,
        status: Option<DeliveryStatus>,
        before: Option<DeliveryId>,
        limit: u64,
    ) -> Result<Vec<Delivery>, PortError> {
        let d = webhook_delivery::Entity;
        let mut select = Query::select();
        select
            .columns([
                (d, webhook_delivery::Column::Id),
                (d, webhook_delivery::Column::EventId),
                (d, webhook_delivery::Column::Status),
                (d, webhook_delivery::Column::Attempts),
                (d, webhook_delivery::Column::LastStatus),
                (d, webhook_delivery::Column::LastError),
                (d, webhook_delivery::Column::NextAttemptAt),
                (d, webhook_delivery::Column::DeliveredAt),
            ])
            .expr_as(
                Expr::col((audit_event::Entity, audit_event::Column::Kind)),
                Alias::new("kind"),
            )
            .from(d)
            .inner_join(
                audit_event::Entity,
                Expr::col((audit_event::Entity, audit_event::Column::Id))
                    .equals((d, webhook_delivery::Column::EventId)),
            )
            .and_where(Expr::col((d, webhook_delivery::Column::WebhookId)).eq(id.as_uuid()));
        if let Some(status) = status {
            select.and_where(Expr::col((d, webhook_delivery::Column::Status)).eq(status.as_str()));
        }
        if let Some(before) = before {
            select.and_where(Expr::col((d, webhook_delivery::Column::Id)).lt(before.as_uuid()));
        }
        select
            .order_by((d, webhook_delivery::Column::Id), Order::Desc)
            .limit(limit);
        let conn = self.db.connection();
        let rows = read(|| conn.query_all(&select)).await.port()?;
        rows.iter()
            .map(|row| {
                DeliveryRow::from_query_result(row, "")
                    .port()
                    .and_then(to_delivery)
            })
            .collect()
    }

    async fn attempts(
        &self,
        id: WebhookId,
        delivery: DeliveryId,
    ) -> Result<Option<Vec<DeliveryAttempt>>, PortError> {
        let conn = self.db.connection();
        let owned = read(|| {
            webhook_delivery::Entity::find_by_id(delivery.as_uuid())
                .filter(webhook_delivery::Column::WebhookId.eq(id.as_uuid()))
                .one(conn)
        })
        .await
        .port()?;
        if owned.is_none() {
            return Ok(None);
        }
        let rows = read(|| {
            webhook_attempt::Entity::find()
                .filter(webhook_attempt::Column::DeliveryId.eq(delivery.as_uuid()))
                .order_by_asc(webhook_attempt::Column::At)
                .order_by_asc(webhook_attempt::Column::Id)
                .all(conn)
        })
        .await
        .port()?;
        Ok(Some(
            rows.into_iter()
                .map(|row| DeliveryAttempt {
                    at: from_micros(row.at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    status: row.status.and_then(|s| u16::try_from(s).ok()),
                    error: row.error,
                    duration_ms: u32::try_from(row.duration_ms).unwrap_or(0),
                })
                .collect(),
        ))
    }

    async fn retry(
        &self,
        id: WebhookId,
        delivery: DeliveryId,
        now: OffsetDateTime,
    ) -> Result<RetryRequest, PortError> {
        let again = Query::update()
            .table(webhook_delivery::Entity)
            .value(
                webhook_delivery::Column::Status,
                DeliveryStatus::Pending.as_str(),
            )
            .value(webhook_delivery::Column::NextAttemptAt, micros(now))
            .and_where(Expr::col(webhook_delivery::Column::Id).eq(delivery.as_uuid()))
            .and_where(Expr::col(webhook_delivery::Column::WebhookId).eq(id.as_uuid()))
            .and_where(
                Expr::col(webhook_delivery::Column::Status).ne(DeliveryStatus::Delivered.as_str()),
            )
            .to_owned();
        // Asked for by hand: the endpoint's pause ends too.
        let resume = Query::update()
            .table(webhook::Entity)
            .value(webhook::Column::PausedUntil, 0_i64)
            .and_where(Expr::col(webhook::Column::Id).eq(id.as_uuid()))
            .to_owned();
        let txn = self.db.connection().begin().await.port()?;
        if txn.execute(&again).await.port()?.rows_affected() == 1 {
            txn.execute(&resume).await.port()?;
            txn.commit().await.port()?;
            return Ok(RetryRequest::Queued);
        }
        let found = webhook_delivery::Entity::find_by_id(delivery.as_uuid())
            .filter(webhook_delivery::Column::WebhookId.eq(id.as_uuid()))
            .one(&txn)
            .await
            .port()?;
        Ok(match found {
            Some(_) => RetryRequest::Delivered,
            None => RetryRequest::NotFound,
        })
    }
}
