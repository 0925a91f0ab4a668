//! The audit trail (`audit_events`). The adapters of the other ports write
//! their events with [`write`] inside the transaction of the change; this
//! module reads them and forgets old ones.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Iterable, QueryResult};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AuditDetails, AuditEvent, AuditKind, AuditQuery, ClientInfo, FailureReason, SessionId, TokenId,
    UserId, WebhookId, first_id_at,
};
use userhub_domain::ports::AuditLog;
use uuid::Uuid;

use super::{Database, DbResultExt, from_micros, micros, read};
use crate::entities::audit_event;

/// The columns an event is written to, with its outcome, in the order
/// the insert gives their values.
const WRITTEN: [audit_event::Column; 9] = [
    audit_event::Column::Id,
    audit_event::Column::At,
    audit_event::Column::Kind,
    audit_event::Column::ActorId,
    audit_event::Column::SubjectId,
    audit_event::Column::Ip,
    audit_event::Column::UserAgent,
    audit_event::Column::RequestId,
    audit_event::Column::Details,
];

/// Rows deleted per statement when purging, so that no transaction holds
/// many locks or much undo.
const PURGE_BATCH: u64 = 10_000;

/// `details` as stored: a JSON object holding only the keys that are set.
#[derive(Default, Serialize, Deserialize)]
struct StoredDetails {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lock_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    removed: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook_id: Option<Uuid>,
}

/// Stores `event` on `conn`: within a transaction, it commits or rolls
/// back with the change it records.
pub(crate) async fn write(conn: &impl ConnectionTrait, event: &AuditEvent) -> Result<(), DbErr> {
    let insert = Query::insert()
        .into_table(audit_event::Entity)
        .columns(WRITTEN.into_iter().chain([audit_event::Column::Outcome]))
        .values_panic(values(event)?)
        .to_owned();
    conn.execute(&insert).await?;
    Ok(())
}

/// Stores `event` once for each row of `source` (a common table
/// expression of the same statement): with a write's `RETURNING`, the
/// event is stored exactly when the write happened, in one statement.
pub(crate) fn write_for_each(
    event: &AuditEvent,
    source: impl sea_orm::sea_query::IntoIden,
) -> Result<sea_orm::sea_query::InsertStatement, DbErr> {
    let rows = Query::select()
        .exprs(values(event)?)
        .from(source)
        .to_owned();
    let mut insert = Query::insert();
    insert
        .into_table(audit_event::Entity)
        .columns(WRITTEN.into_iter().chain([audit_event::Column::Outcome]))
        .select_from(rows)
        .map_err(|err| DbErr::Custom(err.to_string()))?;
    Ok(insert)
}

/// An event's values, in the order of [`WRITTEN`] and then its outcome.
fn values(event: &AuditEvent) -> Result<[Expr; 10], DbErr> {
    let details = StoredDetails {
        fields: event.details.fields.clone(),
        reason: event.details.reason.map(|r| r.as_str().to_owned()),
        session_id: event.details.session_id.map(|id| id.as_uuid()),
        lock_seconds: event.details.lock_seconds,
        method: event.details.method.clone(),
        provider: event.details.provider.clone(),
        removed: event.details.removed.clone(),
        token_id: event.details.token_id.map(|id| id.as_uuid()),
        webhook_id: event.details.webhook_id.map(|id| id.as_uuid()),
    };
    let details = serde_json::to_string(&details).map_err(|err| DbErr::Json(err.to_string()))?;
    Ok([
        Expr::value(event.id),
        Expr::value(micros(event.at)),
        Expr::value(event.kind.as_str()),
        Expr::value(event.actor_id.map(|id| id.as_uuid())),
        Expr::value(event.subject_id.map(|id| id.as_uuid())),
        Expr::value(event.client.ip.clone()),
        Expr::value(event.client.user_agent.clone()),
        Expr::value(event.client.request_id.clone()),
        Expr::value(details),
        Expr::value(event.outcome().as_str()),
    ])
}

pub(crate) fn from_row(row: &QueryResult) -> Result<AuditEvent, PortError> {
    let row = audit_event::Model::from_query_result(row, "").port()?;
    let kind = AuditKind::parse(&row.kind)
        .ok_or_else(|| PortError::unexpected(format!("unknown audit event type {:?}", row.kind)))?;
    let details: StoredDetails =
        serde_json::from_str(&row.details).map_err(PortError::unexpected)?;
    Ok(AuditEvent {
        id: row.id,
        at: from_micros(row.at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        kind,
        actor_id: row.actor_id.map(UserId::from_uuid),
        subject_id: row.subject_id.map(UserId::from_uuid),
        client: ClientInfo {
            ip: row.ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
        },
        details: AuditDetails {
            fields: details.fields,
            reason: details.reason.as_deref().and_then(FailureReason::parse),
            session_id: details.session_id.map(SessionId::from_uuid),
            lock_seconds: details.lock_seconds,
            method: details.method,
            provider: details.provider,
            removed: details.removed,
            token_id: details.token_id.map(TokenId::from_uuid),
            webhook_id: details.webhook_id.map(WebhookId::from_uuid),
        },
    })
}

/// The audit trail in `audit_events`.
#[derive(Clone, Debug)]
pub struct SeaOrmAuditLog {
    db: Database,
}

impl SeaOrmAuditLog {
    /// The trail on this database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl AuditLog for SeaOrmAuditLog {
    async fn record(&self, event: &AuditEvent) -> Result<(), PortError> {
        write(self.db.connection(), event).await.port()
    }

    async fn list(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, PortError> {
        // Ids grow with time, so the primary key (or an index that ends in
        // the id) serves both the order and the time bounds.
        let mut select = Query::select();
        select
            .columns(audit_event::Column::iter())
            .from(audit_event::Entity);
        if let Some(subject) = query.subject {
            select.and_where(Expr::col(audit_event::Column::SubjectId).eq(subject.as_uuid()));
        }
        if let Some(actor) = query.actor {
            select.and_where(Expr::col(audit_event::Column::ActorId).eq(actor.as_uuid()));
        }
        if let Some(kind) = query.kind {
            select.and_where(Expr::col(audit_event::Column::Kind).eq(kind.as_str()));
        }
        // An id's time is its event's, or a little later when many events
        // came in one microsecond: `at` decides, the id bounds the scan.
        if let Some(since) = query.since {
            select
                .and_where(Expr::col(audit_event::Column::Id).gte(first_id_at(since)))
                .and_where(Expr::col(audit_event::Column::At).gte(micros(since)));
        }
        if let Some(until) = query.until {
            let bound = first_id_at(until + time::Duration::seconds(1));
            select
                .and_where(Expr::col(audit_event::Column::Id).lt(bound))
                .and_where(Expr::col(audit_event::Column::At).lt(micros(until)));
        }
        if let Some(before) = query.before {
            select.and_where(Expr::col(audit_event::Column::Id).lt(before));
        }
        select
            .order_by(audit_event::Column::Id, Order::Desc)
            .limit(query.limit);
        let conn = self.db.connection();
        let rows = read(|| conn.query_all(&select)).await.port()?;
        rows.iter().map(from_row).collect()
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        let bound = first_id_at(before);
        let mut purged = 0;
        loop {
            let oldest = Query::select()
                .column(audit_event::Column::Id)
                .from(audit_event::Entity)
                .and_where(Expr::col(audit_event::Column::Id).lt(bound))
                .limit(PURGE_BATCH)
                .to_owned();
            let batch = Query::delete()
                .from_table(audit_event::Entity)
                .and_where(Expr::col(audit_event::Column::Id).in_subquery(oldest))
                .to_owned();
            let deleted = self
                .db
                .connection()
                .execute(&batch)
                .await
                .port()?
                .rows_affected();
            purged += deleted;
            if deleted < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }
}
