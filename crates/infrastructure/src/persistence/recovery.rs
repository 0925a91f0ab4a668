//! Password-reset tokens (`recovery_tokens`) and the mail queue
//! (`mail_jobs`). Times are microseconds since the Unix epoch, 0 meaning
//! "not yet" (see the migration).

use async_trait::async_trait;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryResult,
    TransactionTrait, Value,
};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AuditEvent, ClientInfo, Email, MailJob, MailKind, Notice, PasswordHash, RefreshTokenHash, User,
    UserId,
};
use userhub_domain::ports::{MailQueue, RecoveryTokens, RevertOutcome};
use uuid::Uuid;

use super::users::to_domain;
use super::{
    Database, DbResultExt, audit, execute, from_micros, micros, port_error, query_all, query_one,
};
use crate::entities::{session, user};

/// The purpose stored with a password-reset token.
const RESET: &str = "password_reset";
/// The purpose stored with a verification token.
const VERIFY: &str = "verify_email";
/// The purpose stored with a token that undoes an email change.
const REVERT: &str = "email_changed";

/// Spends every live token of `user` with one of these purposes, in the
/// transaction of the change that ends them.
pub(super) async fn spend_tokens(
    conn: &impl ConnectionTrait,
    user: Uuid,
    purposes: &[&str],
    now: OffsetDateTime,
) -> Result<(), sea_orm::DbErr> {
    for purpose in purposes {
        conn.execute_raw(super::statement(
            conn.get_database_backend(),
            "UPDATE recovery_tokens SET spent_at = ? \
             WHERE user_id = ? AND purpose = ? AND spent_at = 0",
            vec![micros(now).into(), user.into(), (*purpose).into()],
        ))
        .await?;
    }
    Ok(())
}

/// A token just spent.
struct Spent {
    user_id: Uuid,
    /// The address it was mailed to.
    email: String,
    /// When it was issued (microseconds).
    created_at: i64,
}

/// Spends the live token of `purpose` with this hash; `None` when no such
/// token is live.
/// Spending first locks the token's row: a concurrent use of the same
/// token waits, then finds it spent.
async fn spend_live(
    txn: &DatabaseTransaction,
    hash: &RefreshTokenHash,
    purpose: &str,
    now: OffsetDateTime,
) -> Result<Option<Spent>, PortError> {
    let spent = query_one(
        txn,
        "UPDATE recovery_tokens SET spent_at = ? \
         WHERE token_hash = ? AND purpose = ? AND spent_at = 0 AND expires_at > ? \
         RETURNING user_id, email, created_at",
        vec![
            micros(now).into(),
            hash.as_str().into(),
            purpose.into(),
            micros(now).into(),
        ],
    )
    .await?;
    spent
        .map(|row| {
            let email: Option<String> = get(&row, "email")?;
            Ok(Spent {
                user_id: get(&row, "user_id")?,
                email: email.unwrap_or_default(),
                created_at: get(&row, "created_at")?,
            })
        })
        .transpose()
}

/// The purposes of the tokens an email or password change, or a
/// deactivation, ends.
pub(super) const RESET_TOKENS: &[&str] = &[RESET];

/// Password-reset tokens, by hash.
#[derive(Clone, Debug)]
pub struct SeaOrmRecoveryTokens {
    db: Database,
}

impl SeaOrmRecoveryTokens {
    /// Tokens on this database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, PortError> {
    row.try_get("", column).port()
}

async fn active_user(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<User>, PortError> {
    let row = user::Entity::find_by_id(id)
        .filter(user::Column::IsActive.eq(true))
        .one(conn)
        .await
        .port()?;
    row.map(to_domain).transpose()
}

/// Stores `event` as the token user's own action.
async fn write_own(
    conn: &impl ConnectionTrait,
    event: &AuditEvent,
    user: Uuid,
) -> Result<(), PortError> {
    let event = event.clone().own(UserId::from_uuid(user));
    audit::write(conn, &event).await.port()
}

#[async_trait]
impl RecoveryTokens for SeaOrmRecoveryTokens {
    async fn issue(
        &self,
        kind: MailKind,
        user: UserId,
        email: &Email,
        hash: &RefreshTokenHash,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        event: Option<AuditEvent>,
    ) -> Result<(), PortError> {
        let purpose = kind.as_str();
        let txn = self.db.connection().begin().await.port()?;
        // Each revert link undoes its own change: a later change must not
        // kill the link that undoes an earlier one.
        if purpose != REVERT {
            spend_tokens(&txn, user.as_uuid(), &[purpose], now)
                .await
                .port()?;
        }
        execute(
            &txn,
            "INSERT INTO recovery_tokens (token_hash, purpose, user_id, email, created_at, expires_at, spent_at) \
             VALUES (?, ?, ?, ?, ?, ?, 0)",
            vec![
                hash.as_str().into(),
                purpose.into(),
                user.as_uuid().into(),
                email.as_str().into(),
                micros(now).into(),
                micros(expires_at).into(),
            ],
        )
        .await?;
        if let Some(event) = event {
            audit::write(&txn, &event).await.port()?;
        }
        txn.commit().await.port()
    }

    async fn verify_email(
        &self,
        hash: &RefreshTokenHash,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Option<User>, PortError> {
        let txn = self.db.connection().begin().await.port()?;
        let Some(Spent { user_id, email, .. }) = spend_live(&txn, hash, VERIFY, now).await? else {
            return Ok(None);
        };
        // The address the link was mailed to must still be the user's.
        let changed = super::users::user_write(now)
            .col_expr(user::Column::IsVerified, Expr::value(true))
            .filter(user::Column::Id.eq(user_id))
            .filter(user::Column::IsActive.eq(true))
            .filter(user::Column::Email.eq(email))
            .exec(&txn)
            .await
            .port()?;
        if changed.rows_affected != 1 {
            return Ok(None);
        }
        let user = active_user(&txn, user_id).await?;
        write_own(&txn, event, user_id).await?;
        txn.commit().await.port()?;
        Ok(user)
    }

    async fn find_reset(
        &self,
        hash: &RefreshTokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<User>, PortError> {
        let conn = self.db.connection();
        let row = query_one(
            conn,
            "SELECT user_id FROM recovery_tokens \
             WHERE token_hash = ? AND purpose = ? AND spent_at = 0 AND expires_at > ?",
            vec![hash.as_str().into(), RESET.into(), micros(now).into()],
        )
        .await?;
        match row {
            Some(row) => active_user(conn, get(&row, "user_id")?).await,
            None => Ok(None),
        }
    }

    async fn reset_password(
        &self,
        hash: &RefreshTokenHash,
        new_hash: &PasswordHash,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Option<User>, PortError> {
        let txn = self.db.connection().begin().await.port()?;
        let Some(Spent { user_id, .. }) = spend_live(&txn, hash, RESET, now).await? else {
            return Ok(None);
        };
        let changed = super::users::user_write(now)
            .col_expr(user::Column::PasswordHash, Expr::value(new_hash.as_str()))
            .filter(user::Column::Id.eq(user_id))
            .filter(user::Column::IsActive.eq(true))
            .exec(&txn)
            .await
            .port()?;
        if changed.rows_affected != 1 {
            // Deactivated meanwhile: the rollback leaves the token as it was.
            return Ok(None);
        }
        session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .port()?;
        let user = active_user(&txn, user_id).await?;
        write_own(&txn, event, user_id).await?;
        txn.commit().await.port()?;
        Ok(user)
    }

    async fn revert_email(
        &self,
        hash: &RefreshTokenHash,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<RevertOutcome, PortError> {
        let txn = self.db.connection().begin().await.port()?;
        let Some(Spent {
            user_id,
            email,
            created_at,
        }) = spend_live(&txn, hash, REVERT, now).await?
        else {
            return Ok(RevertOutcome::Invalid);
        };
        let written = super::users::user_write(now)
            .col_expr(user::Column::Email, Expr::value(email))
            .col_expr(user::Column::IsVerified, Expr::value(true))
            .filter(user::Column::Id.eq(user_id))
            .exec(&txn)
            .await;
        match written {
            Ok(done) if done.rows_affected == 1 => {}
            // The rollback leaves the token live: it works once the
            // address is free again.
            Err(err) if super::users::unique_violation(&err).is_some() => {
                return Ok(RevertOutcome::Taken);
            }
            Err(err) => return Err(port_error(err)),
            Ok(_) => return Ok(RevertOutcome::Invalid),
        }
        spend_tokens(&txn, user_id, &[RESET, VERIFY], now)
            .await
            .port()?;
        // The changes made after the one undone are undone with it: their
        // revert links (mailed to addresses the account no longer had, an
        // intruder's, say) must not take the address back. Older links
        // stay, each still undoing its own, earlier change.
        execute(
            &txn,
            "UPDATE recovery_tokens SET spent_at = ? \
             WHERE user_id = ? AND purpose = ? AND spent_at = 0 AND created_at >= ?",
            vec![
                micros(now).into(),
                user_id.into(),
                REVERT.into(),
                created_at.into(),
            ],
        )
        .await?;
        session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .port()?;
        let row = user::Entity::find_by_id(user_id).one(&txn).await.port()?;
        let Some(row) = row else {
            return Ok(RevertOutcome::Invalid);
        };
        let event = event.clone().about(UserId::from_uuid(user_id));
        audit::write(&txn, &event).await.port()?;
        txn.commit().await.port()?;
        Ok(RevertOutcome::Reverted(to_domain(row)?))
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        execute(
            self.db.connection(),
            "DELETE FROM recovery_tokens WHERE expires_at < ?",
            vec![micros(before).into()],
        )
        .await
    }
}

/// The mail queue, shared by every server instance.
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

    async fn set(&self, sql: &str, values: Vec<Value>) -> Result<(), PortError> {
        execute(self.db.connection(), sql, values).await.map(drop)
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
        self.set(
            "INSERT INTO mail_jobs (id, kind, email, created_at, next_attempt_at, attempts, completed_at, failed_at, ip, user_agent, request_id) \
             VALUES (?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?) ON CONFLICT DO NOTHING",
            vec![
                Uuid::now_v7().into(),
                kind.as_str().into(),
                email.into(),
                micros(now).into(),
                micros(now).into(),
                client.ip.clone().into(),
                client.user_agent.clone().into(),
                client.request_id.clone().into(),
            ],
        )
        .await
    }

    async fn notify(
        &self,
        notice: &Notice,
        now: OffsetDateTime,
        client: &ClientInfo,
    ) -> Result<(), PortError> {
        // With an account named, the job is outside the one-untaken-job
        // index: every notice is queued.
        self.set(
            "INSERT INTO mail_jobs (id, kind, email, created_at, next_attempt_at, attempts, completed_at, failed_at, ip, user_agent, request_id, user_id, new_email) \
             VALUES (?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?, ?, ?)",
            vec![
                Uuid::now_v7().into(),
                notice.kind.as_str().into(),
                notice.to.as_str().into(),
                micros(now).into(),
                micros(now).into(),
                client.ip.clone().into(),
                client.user_agent.clone().into(),
                client.request_id.clone().into(),
                notice.user_id.as_uuid().into(),
                notice.new_email.as_ref().map(|e| e.as_str().to_owned()).into(),
            ],
        )
        .await
    }

    async fn claim(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<MailJob>, PortError> {
        let (now, limit, lease_until) = (
            Value::from(micros(now)),
            Value::from(i64::from(limit)),
            Value::from(micros(lease_until)),
        );
        let (sql, values) = if self.db.backend() == sea_orm::DbBackend::Postgres {
            // The due rows are locked as they are picked, skipping rows
            // another worker holds, so concurrent workers take different
            // jobs; in a CTE, so that the LIMIT applies once.
            (
                "WITH picked AS (SELECT id FROM mail_jobs \
                                 WHERE completed_at = 0 AND failed_at = 0 AND next_attempt_at <= ? \
                                 ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED) \
                 UPDATE mail_jobs SET attempts = attempts + 1, next_attempt_at = ? \
                 FROM picked WHERE mail_jobs.id = picked.id \
                 RETURNING mail_jobs.id, kind, email, attempts, ip, user_agent, request_id, user_id, new_email, created_at",
                vec![now, limit, lease_until],
            )
        } else {
            // SQLite runs one writer at a time.
            (
                "UPDATE mail_jobs SET attempts = attempts + 1, next_attempt_at = ? \
                 WHERE id IN (SELECT id FROM mail_jobs \
                              WHERE completed_at = 0 AND failed_at = 0 AND next_attempt_at <= ? \
                              ORDER BY next_attempt_at LIMIT ?) \
                 RETURNING id, kind, email, attempts, ip, user_agent, request_id, user_id, new_email, created_at",
                vec![lease_until, now, limit],
            )
        };
        let rows = query_all(self.db.connection(), sql, values).await?;
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
            });
        }
        Ok(jobs)
    }

    async fn complete(&self, id: Uuid, now: OffsetDateTime) -> Result<(), PortError> {
        self.set(
            "UPDATE mail_jobs SET completed_at = ?, last_error = NULL WHERE id = ?",
            vec![micros(now).into(), id.into()],
        )
        .await
    }

    async fn retry(&self, id: Uuid, at: OffsetDateTime, error: &str) -> Result<(), PortError> {
        self.set(
            "UPDATE mail_jobs SET next_attempt_at = ?, last_error = ? WHERE id = ?",
            vec![micros(at).into(), error.into(), id.into()],
        )
        .await
    }

    async fn fail(&self, id: Uuid, now: OffsetDateTime, error: &str) -> Result<(), PortError> {
        self.set(
            "UPDATE mail_jobs SET failed_at = ?, last_error = ? WHERE id = ?",
            vec![micros(now).into(), error.into(), id.into()],
        )
        .await
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        execute(
            self.db.connection(),
            "DELETE FROM mail_jobs \
             WHERE (completed_at > 0 AND completed_at < ?) OR (failed_at > 0 AND failed_at < ?)",
            vec![micros(before).into(), micros(before).into()],
        )
        .await
    }
}
