//! The mail queue (`mail_jobs`), shared by every server instance. Times
//! are microseconds since the Unix epoch, 0 meaning "not yet" (see the
//! migration).

use async_trait::async_trait;
use sea_orm::sea_query::{
    CommonTableExpression, Expr, ExprTrait, LockBehavior, LockType, OnConflict, Order, Query,
    ReturningClause, SelectStatement, UpdateStatement,
};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Iterable};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{ClientInfo, MailJob, MailKind, Notice, UndoTarget, UserId};
use userhub_domain::ports::MailQueue;
use uuid::Uuid;

use super::{Database, DbResultExt, from_micros, micros};
use crate::entities::mail_job;

/// A new job's row: due now, no attempt yet. `extra` adds the columns of
/// a notice.
fn new_job(
    kind: MailKind,
    email: &str,
    now: OffsetDateTime,
    client: &ClientInfo,
    extra: Option<(UserId, Option<String>, Option<String>)>,
) -> sea_orm::sea_query::InsertStatement {
    let mut columns = vec![
        mail_job::Column::Id,
        mail_job::Column::Kind,
        mail_job::Column::Email,
        mail_job::Column::CreatedAt,
        mail_job::Column::NextAttemptAt,
        mail_job::Column::Attempts,
        mail_job::Column::CompletedAt,
        mail_job::Column::FailedAt,
        mail_job::Column::Ip,
        mail_job::Column::UserAgent,
        mail_job::Column::RequestId,
    ];
    let mut values: Vec<Expr> = vec![
        Uuid::now_v7().into(),
        kind.as_str().into(),
        email.into(),
        micros(now).into(),
        micros(now).into(),
        0.into(),
        0_i64.into(),
        0_i64.into(),
        client.ip.clone().into(),
        client.user_agent.clone().into(),
        client.request_id.clone().into(),
    ];
    if let Some((user, new_email, target)) = extra {
        columns.extend([
            mail_job::Column::UserId,
            mail_job::Column::NewEmail,
            mail_job::Column::Target,
        ]);
        values.extend([user.as_uuid().into(), new_email.into(), target.into()]);
    }
    Query::insert()
        .into_table(mail_job::Entity)
        .columns(columns)
        .values_panic(values)
        .to_owned()
}

/// The due jobs, oldest due first, at most `limit`.
fn due(now: OffsetDateTime, limit: u32) -> SelectStatement {
    Query::select()
        .column(mail_job::Column::Id)
        .from(mail_job::Entity)
        .and_where(Expr::col(mail_job::Column::CompletedAt).eq(0))
        .and_where(Expr::col(mail_job::Column::FailedAt).eq(0))
        .and_where(Expr::col(mail_job::Column::NextAttemptAt).lte(micros(now)))
        .order_by(mail_job::Column::NextAttemptAt, Order::Asc)
        .limit(u64::from(limit))
        .to_owned()
}

/// Counts an attempt and leases the job until `lease_until`.
fn lease(lease_until: OffsetDateTime) -> UpdateStatement {
    Query::update()
        .table(mail_job::Entity)
        .value(
            mail_job::Column::Attempts,
            Expr::col(mail_job::Column::Attempts).add(1),
        )
        .value(mail_job::Column::NextAttemptAt, micros(lease_until))
        .to_owned()
}

fn returning_claimed() -> ReturningClause {
    Query::returning().exprs(mail_job::Column::iter().map(|c| Expr::col((mail_job::Entity, c))))
}

/// The mail queue.
#[derive(Clone, Debug)]
pub struct SeaOrmMailQueue {
    db: Database,
}

impl SeaOrmMailQueue {
    /// A queue on this database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Sets `column` to `value` and the last error on job `id`.
    async fn settle(
        &self,
        id: Uuid,
        column: mail_job::Column,
        value: i64,
        error: Option<&str>,
    ) -> Result<(), PortError> {
        let update = Query::update()
            .table(mail_job::Entity)
            .value(column, value)
            .value(mail_job::Column::LastError, error.map(str::to_owned))
            .and_where(Expr::col(mail_job::Column::Id).eq(id))
            .to_owned();
        self.db.connection().execute(&update).await.port().map(drop)
    }
}

#[async_trait]
impl MailQueue for SeaOrmMailQueue {
    async fn enqueue(
        &self,
        kind: MailKind,
        email: &str,
        now: OffsetDateTime,
        client: &ClientInfo,
    ) -> Result<(), PortError> {
        // The partial unique index on untaken (kind, email) turns a second
        // request into nothing.
        let insert = new_job(kind, email, now, client, None)
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .to_owned();
        self.db.connection().execute(&insert).await.port().map(drop)
    }

    async fn notify(
        &self,
        notice: &Notice,
        now: OffsetDateTime,
        client: &ClientInfo,
    ) -> Result<(), PortError> {
        // With an account named, the job is outside the one-untaken-job
        // index: every notice is queued.
        let new_email = notice.new_email.as_ref().map(|e| e.as_str().to_owned());
        let insert = new_job(
            notice.kind,
            notice.to.as_str(),
            now,
            client,
            Some((
                notice.user_id,
                new_email,
                notice.target.as_ref().map(UndoTarget::to_stored),
            )),
        );
        self.db.connection().execute(&insert).await.port().map(drop)
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<MailJob>, PortError> {
        let conn = self.db.connection();
        let rows = if self.db.backend() == DbBackend::Postgres {
            // The due rows are locked as they are picked, skipping rows
            // another worker holds, so concurrent workers take different
            // jobs; in a CTE, so that the LIMIT applies once.
            let picked = due(now, limit)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .to_owned();
            let claim = lease(lease_until)
                .from("picked")
                .and_where(
                    Expr::col((mail_job::Entity, mail_job::Column::Id))
                        .equals(("picked", mail_job::Column::Id)),
                )
                .returning(returning_claimed())
                .with_cte(
                    CommonTableExpression::new()
                        .query(picked)
                        .table_name("picked")
                        .to_owned(),
                )
                .to_owned();
            conn.query_all(&claim).await.port()?
        } else {
            // SQLite runs one writer at a time.
            let claim = lease(lease_until)
                .and_where(Expr::col(mail_job::Column::Id).in_subquery(due(now, limit)))
                .returning(returning_claimed())
                .to_owned();
            conn.query_all(&claim).await.port()?
        };
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let job = mail_job::Model::from_query_result(&row, "").port()?;
            let Some(kind) = MailKind::parse(&job.kind) else {
                tracing::warn!(kind = job.kind, "mail job of an unknown kind left alone");
                continue;
            };
            jobs.push(MailJob {
                id: job.id,
                kind,
                email: job.email,
                attempts: u32::try_from(job.attempts).unwrap_or_default(),
                client: ClientInfo {
                    ip: job.ip,
                    user_agent: job.user_agent,
                    request_id: job.request_id,
                },
                user_id: job.user_id.map(UserId::from_uuid),
                new_email: job.new_email,
                queued_at: from_micros(job.created_at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                target: job.target.as_deref().and_then(UndoTarget::parse),
            });
        }
        Ok(jobs)
    }

    async fn complete(&self, id: Uuid, now: OffsetDateTime) -> Result<(), PortError> {
        self.settle(id, mail_job::Column::CompletedAt, micros(now), None)
            .await
    }

    async fn retry(&self, id: Uuid, at: OffsetDateTime, error: &str) -> Result<(), PortError> {
        self.settle(id, mail_job::Column::NextAttemptAt, micros(at), Some(error))
            .await
    }

    async fn fail(&self, id: Uuid, now: OffsetDateTime, error: &str) -> Result<(), PortError> {
        self.settle(id, mail_job::Column::FailedAt, micros(now), Some(error))
            .await
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        let before = micros(before);
        let ended =
            |column: mail_job::Column| Expr::col(column).gt(0).and(Expr::col(column).lt(before));
        let purge = Query::delete()
            .from_table(mail_job::Entity)
            .cond_where(
                sea_orm::Condition::any()
                    .add(ended(mail_job::Column::CompletedAt))
                    .add(ended(mail_job::Column::FailedAt)),
            )
            .to_owned();
        let done = self.db.connection().execute(&purge).await.port()?;
        Ok(done.rows_affected())
    }
}
