//! The audit trail (`audit_events`). The adapters of the other ports write
//! their events with [`write`] inside the transaction of the change; this
//! module reads them and forgets old ones.

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Value};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AuditDetails, AuditEvent, AuditKind, AuditQuery, ClientInfo, FailureReason, SessionId, UserId,
    first_id_at,
};
use userhub_domain::ports::AuditLog;
use uuid::Uuid;

use super::{Database, DbResultExt, execute, from_micros, micros, read, statement};

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
}

/// Stores `event` on `conn`: within a transaction, it commits or rolls
/// back with the change it records.
pub(crate) async fn write(conn: &impl ConnectionTrait, event: &AuditEvent) -> Result<(), DbErr> {
    let details = StoredDetails {
        fields: event.details.fields.clone(),
        reason: event.details.reason.map(|r| r.as_str().to_owned()),
        session_id: event.details.session_id.map(|id| id.as_uuid()),
        lock_seconds: event.details.lock_seconds,
    };
    let details = serde_json::to_string(&details).map_err(|err| DbErr::Json(err.to_string()))?;
    let insert = statement(
        conn.get_database_backend(),
        "INSERT INTO audit_events \
         (id, at, type, outcome, actor_id, subject_id, ip, user_agent, request_id, details) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        vec![
            event.id.into(),
            micros(event.at).into(),
            event.kind.as_str().into(),
            event.outcome().as_str().into(),
            event.actor_id.map(|id| id.as_uuid()).into(),
            event.subject_id.map(|id| id.as_uuid()).into(),
            event.client.ip.clone().into(),
            event.client.user_agent.clone().into(),
            event.client.request_id.clone().into(),
            details.into(),
        ],
    );
    conn.execute_raw(insert).await?;
    Ok(())
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, PortError> {
    row.try_get("", column).port()
}

fn from_row(row: &QueryResult) -> Result<AuditEvent, PortError> {
    let kind: String = get(row, "type")?;
    let kind = AuditKind::parse(&kind)
        .ok_or_else(|| PortError::unexpected(format!("unknown audit event type {kind:?}")))?;
    let at: i64 = get(row, "at")?;
    let details: String = get(row, "details")?;
    let details: StoredDetails = serde_json::from_str(&details).map_err(PortError::unexpected)?;
    let user = |column: &str| -> Result<Option<UserId>, PortError> {
        Ok(get::<Option<Uuid>>(row, column)?.map(UserId::from_uuid))
    };
    Ok(AuditEvent {
        id: get(row, "id")?,
        at: from_micros(at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        kind,
        actor_id: user("actor_id")?,
        subject_id: user("subject_id")?,
        client: ClientInfo {
            ip: get(row, "ip")?,
            user_agent: get(row, "user_agent")?,
            request_id: get(row, "request_id")?,
        },
        details: AuditDetails {
            fields: details.fields,
            reason: details.reason.as_deref().and_then(FailureReason::parse),
            session_id: details.session_id.map(SessionId::from_uuid),
            lock_seconds: details.lock_seconds,
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
        let mut sql = String::from(
            "SELECT id, at, type, actor_id, subject_id, ip, user_agent, request_id, details \
             FROM audit_events WHERE 1 = 1",
        );
        let mut values: Vec<Value> = Vec::new();
        if let Some(subject) = query.subject {
            sql.push_str(" AND subject_id = ?");
            values.push(subject.as_uuid().into());
        }
        if let Some(actor) = query.actor {
            sql.push_str(" AND actor_id = ?");
            values.push(actor.as_uuid().into());
        }
        if let Some(kind) = query.kind {
            sql.push_str(" AND type = ?");
            values.push(kind.as_str().into());
        }
        // An id's time is its event's, or a little later when many events
        // came in one microsecond: `at` decides, the id bounds the scan.
        if let Some(since) = query.since {
            sql.push_str(" AND id >= ? AND at >= ?");
            values.push(first_id_at(since).into());
            values.push(micros(since).into());
        }
        if let Some(until) = query.until {
            sql.push_str(" AND id < ? AND at < ?");
            values.push(first_id_at(until + time::Duration::seconds(1)).into());
            values.push(micros(until).into());
        }
        if let Some(before) = query.before {
            sql.push_str(" AND id < ?");
            values.push(before.into());
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        values.push(i64::try_from(query.limit).unwrap_or(i64::MAX).into());
        let conn = self.db.connection();
        let rows = read(|| {
            conn.query_all_raw(statement(conn.get_database_backend(), &sql, values.clone()))
        })
        .await
        .port()?;
        rows.iter().map(from_row).collect()
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        let bound = first_id_at(before);
        let mut purged = 0;
        loop {
            let deleted = execute(
                self.db.connection(),
                "DELETE FROM audit_events WHERE id IN \
                 (SELECT id FROM audit_events WHERE id < ? LIMIT ?)",
                vec![
                    bound.into(),
                    i64::try_from(PURGE_BATCH).unwrap_or(i64::MAX).into(),
                ],
            )
            .await?;
            purged += deleted;
            if deleted < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }
}
