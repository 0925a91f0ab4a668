//! The delivery worker's side: an endpoint is leased by one conditional
//! write (on PostgreSQL the candidate row is also locked with `SKIP
//! LOCKED`, so concurrent workers pick different endpoints instead of
//! queueing), its due deliveries are read in event order, and each
//! attempt is settled in one transaction.

use async_trait::async_trait;
use sea_orm::sea_query::{
    Alias, Expr, ExprTrait, LockBehavior, LockType, Order, Query, SimpleExpr,
};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, TransactionTrait};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AttemptOutcome, AuditEvent, DeliveryAttempt, DeliveryId, DeliveryStatus, DueDelivery, Endpoint,
    WebhookId, WebhookUrl,
};
use userhub_domain::ports::WebhookOutbox;
use uuid::Uuid;

use super::{SeaOrmWebhookStore, when};
use crate::entities::{audit_event, webhook, webhook_attempt, webhook_delivery};
use crate::persistence::{DbResultExt, audit, micros, read};

const PENDING: &str = "pending";

/// Endpoint `id`'s row, while `worker` holds its lease.
fn held(id: WebhookId, worker: Uuid) -> SimpleExpr {
    Expr::col(webhook::Column::Id)
        .eq(id.as_uuid())
        .and(Expr::col(webhook::Column::LeaseOwner).eq(worker))
}

impl SeaOrmWebhookStore {
    fn endpoint(&self, row: webhook::Model, now: OffsetDateTime) -> Result<Endpoint, PortError> {
        let mut secrets = vec![self.open(&row.secret)?];
        if let Some(previous) = row.previous_secret.as_deref()
            && row.previous_until > micros(now)
        {
            // A previous secret sealed with a key since dropped (the reason
            // to rotate it) signs no more; the new one still does.
            match self.open(previous) {
                Ok(secret) => secrets.push(secret),
                Err(err) => {
                    tracing::warn!(webhook_id = %row.id, error = %err, "a webhook's previous secret does not open; signing with the current one only");
                }
            }
        }
        Ok(Endpoint {
            id: WebhookId::from_uuid(row.id),
            url: WebhookUrl::stored(&row.url).map_err(PortError::unexpected)?,
            secrets,
            failing_since: when(row.failing_since),
        })
    }
}

#[async_trait]
impl WebhookOutbox for SeaOrmWebhookStore {
    async fn claim(
        &self,
        worker: Uuid,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Option<Endpoint>, PortError> {
        let now_us = micros(now);
        let free = || {
            Expr::col((webhook::Entity, webhook::Column::LeaseUntil))
                .lte(now_us)
                .and(Expr::col((webhook::Entity, webhook::Column::Enabled)).eq(true))
                .and(Expr::col((webhook::Entity, webhook::Column::PausedUntil)).lte(now_us))
        };
        let due = Query::select()
            .expr(Expr::val(1))
            .from(webhook_delivery::Entity)
            .and_where(
                Expr::col((
                    webhook_delivery::Entity,
                    webhook_delivery::Column::WebhookId,
                ))
                .equals((webhook::Entity, webhook::Column::Id)),
            )
            .and_where(Expr::col(webhook_delivery::Column::Status).eq(PENDING))
            .and_where(Expr::col(webhook_delivery::Column::NextAttemptAt).lte(now_us))
            .to_owned();
        // Served longest ago first: a release stamps `lease_until`.
        let mut candidate = Query::select();
        candidate
            .column((webhook::Entity, webhook::Column::Id))
            .from(webhook::Entity)
            .and_where(free())
            .and_where(Expr::exists(due))
            .order_by((webhook::Entity, webhook::Column::LeaseUntil), Order::Asc)
            .limit(1);
        if self.db.backend() == DbBackend::Postgres {
            candidate.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        // The lease is the write's own condition too: of two workers that
        // chose the same endpoint, one updates it and the other nothing.
        let lease = Query::update()
            .table(webhook::Entity)
            .value(webhook::Column::LeaseOwner, worker)
            .value(webhook::Column::LeaseUntil, micros(lease_until))
            .and_where(Expr::col((webhook::Entity, webhook::Column::Id)).in_subquery(candidate))
            .and_where(free())
            .returning_all()
            .to_owned();
        let conn = self.db.connection();
        let Some(row) = conn.query_one(&lease).await.port()? else {
            return Ok(None);
        };
        let row = webhook::Model::from_query_result(&row, "").port()?;
        self.endpoint(row, now).map(Some)
    }

    async fn due(
        &self,
        id: WebhookId,
        now: OffsetDateTime,
        limit: u64,
    ) -> Result<Vec<DueDelivery>, PortError> {
        let d = webhook_delivery::Entity;
        let select = Query::select()
            .expr_as(
                Expr::col((d, webhook_delivery::Column::Id)),
                Alias::new("delivery_id"),
            )
            .expr_as(
                Expr::col((d, webhook_delivery::Column::Attempts)),
                Alias::new("delivery_attempts"),
            )
            .column((audit_event::Entity, sea_orm::sea_query::Asterisk))
            .from(d)
            .inner_join(
                audit_event::Entity,
                Expr::col((audit_event::Entity, audit_event::Column::Id))
                    .equals((d, webhook_delivery::Column::EventId)),
            )
            .and_where(Expr::col((d, webhook_delivery::Column::WebhookId)).eq(id.as_uuid()))
            .and_where(Expr::col((d, webhook_delivery::Column::Status)).eq(PENDING))
            .and_where(Expr::col((d, webhook_delivery::Column::NextAttemptAt)).lte(micros(now)))
            .order_by((d, webhook_delivery::Column::EventId), Order::Asc)
            .limit(limit)
            .to_owned();
        let conn = self.db.connection();
        let rows = read(|| conn.query_all(&select)).await.port()?;
        rows.iter()
            .map(|row| {
                let id: Uuid = row.try_get("", "delivery_id").port()?;
                let attempts: i32 = row.try_get("", "delivery_attempts").port()?;
                Ok(DueDelivery {
                    id: DeliveryId::from_uuid(id),
                    event: audit::from_row(row)?,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn extend(
        &self,
        id: WebhookId,
        worker: Uuid,
        lease_until: OffsetDateTime,
    ) -> Result<bool, PortError> {
        let update = Query::update()
            .table(webhook::Entity)
            .value(webhook::Column::LeaseUntil, micros(lease_until))
            .and_where(held(id, worker))
            .to_owned();
        let result = self.db.connection().execute(&update).await.port()?;
        Ok(result.rows_affected() == 1)
    }

    async fn record(
        &self,
        id: WebhookId,
        delivery: DeliveryId,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
    ) -> Result<Option<OffsetDateTime>, PortError> {
        let at = micros(attempt.at);
        let insert = Query::insert()
            .into_table(webhook_attempt::Entity)
            .columns([
                webhook_attempt::Column::Id,
                webhook_attempt::Column::DeliveryId,
                webhook_attempt::Column::At,
                webhook_attempt::Column::Status,
                webhook_attempt::Column::Error,
                webhook_attempt::Column::DurationMs,
            ])
            .values_panic([
                Uuid::now_v7().into(),
                delivery.as_uuid().into(),
                at.into(),
                attempt.status.map(i32::from).into(),
                attempt.error.clone().into(),
                i32::try_from(attempt.duration_ms)
                    .unwrap_or(i32::MAX)
                    .into(),
            ])
            .to_owned();
        let mut settle = Query::update();
        settle
            .table(webhook_delivery::Entity)
            .value(
                webhook_delivery::Column::Attempts,
                Expr::col(webhook_delivery::Column::Attempts).add(1),
            )
            .value(
                webhook_delivery::Column::LastStatus,
                attempt.status.map(i32::from),
            )
            .value(webhook_delivery::Column::LastError, attempt.error.clone())
            .and_where(Expr::col(webhook_delivery::Column::Id).eq(delivery.as_uuid()))
            .and_where(Expr::col(webhook_delivery::Column::Status).eq(PENDING));
        let streak: Expr = match outcome {
            AttemptOutcome::Delivered => {
                settle
                    .value(
                        webhook_delivery::Column::Status,
                        DeliveryStatus::Delivered.as_str(),
                    )
                    .value(webhook_delivery::Column::DeliveredAt, at);
                Expr::val(0_i64)
            }
            AttemptOutcome::Retry(next) => {
                settle.value(webhook_delivery::Column::NextAttemptAt, micros(next));
                failing_from(at)
            }
            AttemptOutcome::Failed => {
                settle.value(
                    webhook_delivery::Column::Status,
                    DeliveryStatus::Failed.as_str(),
                );
                failing_from(at)
            }
        };
        let endpoint = Query::update()
            .table(webhook::Entity)
            .value(webhook::Column::FailingSince, streak)
            .and_where(Expr::col(webhook::Column::Id).eq(id.as_uuid()))
            .returning_col(webhook::Column::FailingSince)
            .to_owned();
        let txn = self.db.connection().begin().await.port()?;
        txn.execute(&insert).await.port()?;
        txn.execute(&settle).await.port()?;
        let since = match txn.query_one(&endpoint).await.port()? {
            Some(row) => row.try_get::<i64>("", "failing_since").port()?,
            None => 0,
        };
        txn.commit().await.port()?;
        Ok(when(since))
    }

    async fn release(
        &self,
        id: WebhookId,
        worker: Uuid,
        now: OffsetDateTime,
        paused_until: Option<OffsetDateTime>,
    ) -> Result<(), PortError> {
        let mut update = Query::update();
        update
            .table(webhook::Entity)
            .value(webhook::Column::LeaseOwner, Option::<Uuid>::None)
            .value(webhook::Column::LeaseUntil, micros(now))
            .and_where(held(id, worker));
        if let Some(until) = paused_until {
            update.value(webhook::Column::PausedUntil, micros(until));
        }
        self.db.connection().execute(&update).await.port().map(drop)
    }

    async fn disable(
        &self,
        id: WebhookId,
        reason: &str,
        event: &AuditEvent,
    ) -> Result<bool, PortError> {
        let update = Query::update()
            .table(webhook::Entity)
            .value(webhook::Column::Enabled, false)
            .value(webhook::Column::DisabledReason, reason)
            .value(webhook::Column::UpdatedAt, micros(event.at))
            .and_where(Expr::col(webhook::Column::Id).eq(id.as_uuid()))
            .and_where(Expr::col(webhook::Column::Enabled).eq(true))
            .to_owned();
        self.write_with_event(&update, event).await
    }

    async fn backlog(&self) -> Result<(u64, Option<OffsetDateTime>), PortError> {
        let d = webhook_delivery::Entity;
        let select = Query::select()
            .expr_as(
                Expr::col((d, webhook_delivery::Column::Id)).count(),
                Alias::new("pending"),
            )
            .expr_as(
                Expr::col((audit_event::Entity, audit_event::Column::At)).min(),
                Alias::new("oldest"),
            )
            .from(d)
            .inner_join(
                webhook::Entity,
                Expr::col((webhook::Entity, webhook::Column::Id))
                    .equals((d, webhook_delivery::Column::WebhookId)),
            )
            .inner_join(
                audit_event::Entity,
                Expr::col((audit_event::Entity, audit_event::Column::Id))
                    .equals((d, webhook_delivery::Column::EventId)),
            )
            .and_where(Expr::col((d, webhook_delivery::Column::Status)).eq(PENDING))
            .and_where(Expr::col((webhook::Entity, webhook::Column::Enabled)).eq(true))
            .to_owned();
        let conn = self.db.connection();
        let Some(row) = read(|| conn.query_one(&select)).await.port()? else {
            return Ok((0, None));
        };
        let pending: i64 = row.try_get("", "pending").port()?;
        let oldest: Option<i64> = row.try_get("", "oldest").port()?;
        Ok((u64::try_from(pending).unwrap_or(0), oldest.and_then(when)))
    }
}

/// The failure streak after a failure at `at`: it starts now unless it
/// runs already.
fn failing_from(at: i64) -> SimpleExpr {
    Expr::case(
        Expr::col(webhook::Column::FailingSince).eq(0),
        Expr::val(at),
    )
    .finally(Expr::col(webhook::Column::FailingSince))
    .into()
}
