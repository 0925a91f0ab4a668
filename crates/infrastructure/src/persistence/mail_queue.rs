//! The mail queue (`mail_jobs`), shared by every server instance. Times
//! are microseconds since the Unix epoch, 0 meaning "not yet" (see the
//! migration).

use async_trait::async_trait;
use sea_orm::sea_query::{
    CommonTableExpression, Expr, ExprTrait, LockBehavior, LockType, OnConflict, Order, Query,
    ReturningClause, SelectStatement, UpdateStatement,
};
use sea_orm::{ConnectionTrait, DbBackend, DeriveIden, QueryResult};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{ClientInfo, MailJob, MailKind, Notice, UndoTarget, UserId};
use userhub_domain::ports::MailQueue;
use uuid::Uuid;

use super::{Database, DbResultExt, from_micros, micros};

#[derive(DeriveIden, Clone, Copy)]
enum MailJobs {
    Table,
    Id,
    Kind,
    Email,
    CreatedAt,
    NextAttemptAt,
    Attempts,
    CompletedAt,
    FailedAt,
    Ip,
    UserAgent,
    RequestId,
    UserId,
    NewEmail,
    Target,
    LastError,
}

/// The columns a claimed job is read from.
const CLAIMED: [MailJobs; 11] = [
    MailJobs::Id,
    MailJobs::Kind,
    MailJobs::Email,
    MailJobs::Attempts,
    MailJobs::Ip,
    MailJobs::UserAgent,
    MailJobs::RequestId,
    MailJobs::UserId,
    MailJobs::NewEmail,
    MailJobs::CreatedAt,
    MailJobs::Target,
];

fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, PortError> {
    row.try_get("", column).port()
}

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
        MailJobs::Id,
        MailJobs::Kind,
        MailJobs::Email,
        MailJobs::CreatedAt,
        MailJobs::NextAttemptAt,
        MailJobs::Attempts,
        MailJobs::CompletedAt,
        MailJobs::FailedAt,
        MailJobs::Ip,
        MailJobs::UserAgent,
        MailJobs::RequestId,
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
        columns.extend([MailJobs::UserId, MailJobs::NewEmail, MailJobs::Target]);
        values.extend([user.as_uuid().into(), new_email.into(), target.into()]);
    }
    Query::insert()
        .into_table(MailJobs::Table)
        .columns(columns)
        .values_panic(values)
        .to_owned()
}

/// The due jobs, oldest due first, at most `limit`.
fn due(now: OffsetDateTime, limit: u32) -> SelectStatement {
    Query::select()
        .column(MailJobs::Id)
        .from(MailJobs::Table)
        .and_where(Expr::col(MailJobs::CompletedAt).eq(0))
        .and_where(Expr::col(MailJobs::FailedAt).eq(0))
        .and_where(Expr::col(MailJobs::NextAttemptAt).lte(micros(now)))
        .order_by(MailJobs::NextAttemptAt, Order::Asc)
        .limit(u64::from(limit))
        .to_owned()
}

/// Counts an attempt and leases the job until `lease_until`.
fn lease(lease_until: OffsetDateTime) -> UpdateStatement {
    Query::update()
        .table(MailJobs::Table)
        .value(MailJobs::Attempts, Expr::col(MailJobs::Attempts).add(1))
        .value(MailJobs::NextAttemptAt, micros(lease_until))
        .to_owned()
}

fn returning_claimed() -> ReturningClause {
    Query::returning().exprs(CLAIMED.map(|c| Expr::col((MailJobs::Table, c))))
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
        column: MailJobs,
        value: i64,
        error: Option<&str>,
    ) -> Result<(), PortError> {
        let update = Query::update()
            .table(MailJobs::Table)
            .value(column, value)
            .value(MailJobs::LastError, error.map(str::to_owned))
            .and_where(Expr::col(MailJobs::Id).eq(id))
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
                    Expr::col((MailJobs::Table, MailJobs::Id)).equals(("picked", MailJobs::Id)),
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
                .and_where(Expr::col(MailJobs::Id).in_subquery(due(now, limit)))
                .returning(returning_claimed())
                .to_owned();
            conn.query_all(&claim).await.port()?
        };
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let kind: String = get(&row, "kind")?;
            let Some(kind) = MailKind::parse(&kind) else {
                tracing::warn!(kind, "mail job of an unknown kind left alone");
                continue;
            };
            let attempts: i32 = get(&row, "attempts")?;
            jobs.push(MailJob {
                id: get(&row, "id")?,
                kind,
                email: get(&row, "email")?,
                attempts: u32::try_from(attempts).unwrap_or_default(),
                client: ClientInfo {
                    ip: get(&row, "ip")?,
                    user_agent: get(&row, "user_agent")?,
                    request_id: get(&row, "request_id")?,
                },
                user_id: get::<Option<Uuid>>(&row, "user_id")?.map(UserId::from_uuid),
                new_email: get(&row, "new_email")?,
                queued_at: from_micros(get(&row, "created_at")?)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                target: get::<Option<String>>(&row, "target")?
                    .as_deref()
                    .and_then(UndoTarget::parse),
            });
        }
        Ok(jobs)
    }

    async fn complete(&self, id: Uuid, now: OffsetDateTime) -> Result<(), PortError> {
        self.settle(id, MailJobs::CompletedAt, micros(now), None)
            .await
    }

    async fn retry(&self, id: Uuid, at: OffsetDateTime, error: &str) -> Result<(), PortError> {
        self.settle(id, MailJobs::NextAttemptAt, micros(at), Some(error))
            .await
    }

    async fn fail(&self, id: Uuid, now: OffsetDateTime, error: &str) -> Result<(), PortError> {
        self.settle(id, MailJobs::FailedAt, micros(now), Some(error))
            .await
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        let before = micros(before);
        let ended = |column: MailJobs| Expr::col(column).gt(0).and(Expr::col(column).lt(before));
        let purge = Query::delete()
            .from_table(MailJobs::Table)
            .cond_where(
                sea_orm::Condition::any()
                    .add(ended(MailJobs::CompletedAt))
                    .add(ended(MailJobs::FailedAt)),
            )
            .to_owned();
        let done = self.db.connection().execute(&purge).await.port()?;
        Ok(done.rows_affected())
    }
}
