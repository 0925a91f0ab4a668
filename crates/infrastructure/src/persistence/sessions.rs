//! [`SessionRepository`] on SeaORM.

use async_trait::async_trait;
use sea_orm::sea_query::{ArrayType, Expr, ExprTrait, Query};
use std::sync::{Arc, OnceLock};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Statement,
    TransactionTrait,
};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AuditEvent, ClientInfo, NewSession, PasswordHash, Session, SessionId, SignInProof, TokenHash,
    User, UserId,
};
use userhub_domain::ports::SessionRepository;

use super::batch::Batcher;
use super::errors::port_error_shared;
use super::users::to_domain as user_to_domain;
use super::{Database, DbResultExt, audit, read};
use crate::entities::{session, spent_refresh_token, user};

/// Sessions stored in `sessions`, spent refresh tokens in `spent_refresh_tokens`.
#[derive(Clone, Debug)]
pub struct SeaOrmSessionRepository {
    db: Database,
    /// On PostgreSQL, concurrent authenticating reads share round trips.
    batched: Arc<Batcher<AuthRead, Authenticated>>,
}

impl SeaOrmSessionRepository {
    /// A repository on this database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self {
            batched: Arc::new(Batcher::new(db.acquire_timeout())),
            db,
        }
    }

    /// The caller (if `session_id` is a live session of theirs and they are
    /// active) and, when asked for, `other` (in any state).
    async fn authenticate(&self, key: AuthRead) -> Result<Authenticated, PortError> {
        let conn = self.db.connection();
        let backend = conn.get_database_backend();
        if backend == DbBackend::Postgres && self.db.batch_reads() {
            return self
                .batched
                .load(key, |keys| async move {
                    let statement = Statement::from_sql_and_values(
                        backend,
                        AUTHENTICATE_MANY,
                        authenticate_many_values(&keys),
                    );
                    let rows = read(|| conn.query_all_raw(statement.clone())).await?;
                    authenticated_rows(&keys, rows)
                })
                .await
                .map_err(|err| port_error_shared(&err));
        }
        // One statement per read: SQLite is in process (a round trip
        // costs nothing to share), and PostgreSQL with DB_BATCH_READS=false.
        let other = key.other.unwrap_or(key.user_id);
        let prebuilt = if backend == DbBackend::Sqlite {
            &ACTIVE_USER_AND_SQLITE
        } else {
            &ACTIVE_USER_AND_POSTGRES
        };
        let sql = prebuilt.get_or_init(|| {
            active_user_and(key.user_id, key.session_id, other, key.now)
                .build(backend)
                .sql
        });
        let statement = Statement::from_sql_and_values(
            backend,
            sql.as_str(),
            active_user_and_values(key.user_id, key.session_id, other, key.now),
        );
        let rows = read(|| conn.query_all_raw(statement.clone()))
            .await
            .port()?;
        let mut answers = authenticated_rows(&[key], rows).port()?;
        Ok(answers.pop().flatten())
    }
}

/// One authenticating read: the caller's user and session, and another
/// user read alongside (for `GET /api/users/{id}`).
#[derive(Clone, Copy, Debug)]
struct AuthRead {
    user_id: UserId,
    session_id: SessionId,
    other: Option<UserId>,
    now: OffsetDateTime,
}

/// The caller, authenticated, and the other user if asked for and found.
type Authenticated = Option<(User, Option<User>)>;

#[async_trait]
impl SessionRepository for SeaOrmSessionRepository {
    async fn create(
        &self,
        s: &NewSession,
        password_hash: &PasswordHash,
        event: &AuditEvent,
    ) -> Result<bool, PortError> {
        // INSERT … SELECT … WHERE EXISTS: the user's state is checked by the
        // statement that writes, so no deactivation or password reset can
        // land between the check and the insert.
        let still_valid = Query::select()
            .expr(Expr::val(1))
            .from(user::Entity)
            .and_where(user::Column::Id.eq(s.user_id.as_uuid()))
            .and_where(user::Column::IsActive.eq(true))
            .and_where(user::Column::PasswordHash.eq(password_hash.as_str()))
            .to_owned();
        let values: [sea_orm::Value; 11] = [
            s.id.as_uuid().into(),
            s.user_id.as_uuid().into(),
            s.refresh_token_hash.as_str().into(),
            s.created_at.into(),
            s.created_at.into(),
            s.expires_at.into(),
            Option::<OffsetDateTime>::None.into(),
            s.client.user_agent.clone().into(),
            s.client.ip.clone().into(),
            s.proof.second_factor.into(),
            s.proof.federated.into(),
        ];
        let row = Query::select()
            .exprs(values.into_iter().map(Expr::val))
            .and_where(Expr::exists(still_valid))
            .to_owned();
        let insert = Query::insert()
            .into_table(session::Entity)
            .columns([
                session::Column::Id,
                session::Column::UserId,
                session::Column::RefreshTokenHash,
                session::Column::CreatedAt,
                session::Column::LastUsedAt,
                session::Column::ExpiresAt,
                session::Column::RevokedAt,
                session::Column::UserAgent,
                session::Column::Ip,
                session::Column::SecondFactor,
                session::Column::Federated,
            ])
            .select_from(row)
            .map_err(PortError::unexpected)?
            .to_owned();
        let txn = self.db.connection().begin().await.port()?;
        let created = txn.execute(&insert).await.port()?.rows_affected() == 1;
        if created {
            audit::write(&txn, event).await.port()?;
        }
        txn.commit().await.port()?;
        Ok(created)
    }

    async fn find_by_refresh_token(&self, hash: &TokenHash) -> Result<Option<Session>, PortError> {
        let row = read(|| {
            session::Entity::find()
                .filter(session::Column::RefreshTokenHash.eq(hash.as_str()))
                .one(self.db.connection())
        })
        .await
        .port()?;
        Ok(row.map(to_domain))
    }

    async fn find_by_spent_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(SessionId, OffsetDateTime)>, PortError> {
        let row = read(|| {
            spent_refresh_token::Entity::find_by_id(hash.as_str().to_owned())
                .one(self.db.connection())
        })
        .await
        .port()?;
        Ok(row.map(|r| (SessionId::from_uuid(r.session_id), r.spent_at)))
    }

    async fn rotate(
        &self,
        id: SessionId,
        old: &TokenHash,
        new: &TokenHash,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<bool, PortError> {
        let txn = self.db.connection().begin().await.port()?;
        // Compare-and-swap on the current hash: of two concurrent refreshes
        // of one token, exactly one updates the row.
        let swapped = session::Entity::update_many()
            .col_expr(session::Column::RefreshTokenHash, Expr::value(new.as_str()))
            .col_expr(session::Column::LastUsedAt, Expr::value(now))
            .col_expr(session::Column::ExpiresAt, Expr::value(expires_at))
            .filter(session::Column::Id.eq(id.as_uuid()))
            .filter(session::Column::RefreshTokenHash.eq(old.as_str()))
            .filter(session::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .port()?
            .rows_affected
            == 1;
        if !swapped {
            txn.rollback().await.port()?;
            return Ok(false);
        }
        let spent = spent_refresh_token::ActiveModel {
            token_hash: Set(old.as_str().to_owned()),
            session_id: Set(id.as_uuid()),
            spent_at: Set(now),
        };
        spent_refresh_token::Entity::insert(spent)
            .exec_without_returning(&txn)
            .await
            .port()?;
        txn.commit().await.port()?;
        Ok(true)
    }

    async fn revoke(
        &self,
        id: SessionId,
        now: OffsetDateTime,
        event: Option<AuditEvent>,
    ) -> Result<(), PortError> {
        let txn = self.db.connection().begin().await.port()?;
        session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::Id.eq(id.as_uuid()))
            .filter(session::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .port()?;
        if let Some(mut event) = event {
            if event.subject_id.is_none() {
                event.subject_id = session::Entity::find_by_id(id.as_uuid())
                    .one(&txn)
                    .await
                    .port()?
                    .map(|s| UserId::from_uuid(s.user_id));
            }
            audit::write(&txn, &event).await.port()?;
        }
        txn.commit().await.port()
    }

    async fn revoke_all_for_user(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        now: OffsetDateTime,
        event: Option<AuditEvent>,
    ) -> Result<(), PortError> {
        let mut update = session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::UserId.eq(user_id.as_uuid()))
            .filter(session::Column::RevokedAt.is_null());
        if let Some(keep) = keep {
            update = update.filter(session::Column::Id.ne(keep.as_uuid()));
        }
        let txn = self.db.connection().begin().await.port()?;
        update.exec(&txn).await.port()?;
        if let Some(event) = event {
            audit::write(&txn, &event).await.port()?;
        }
        txn.commit().await.port()
    }

    async fn revoke_for_user(
        &self,
        user_id: UserId,
        session_id: SessionId,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError> {
        let txn = self.db.connection().begin().await.port()?;
        let result = session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(now))
            .filter(session::Column::Id.eq(session_id.as_uuid()))
            .filter(session::Column::UserId.eq(user_id.as_uuid()))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await
            .port()?;
        let ended = result.rows_affected == 1;
        if ended {
            audit::write(&txn, event).await.port()?;
        }
        txn.commit().await.port()?;
        Ok(ended)
    }

    async fn purge_ended(&self, now: OffsetDateTime) -> Result<u64, PortError> {
        let ended = Condition::any()
            .add(session::Column::RevokedAt.is_not_null())
            .add(session::Column::ExpiresAt.lte(now));
        let txn = self.db.connection().begin().await.port()?;
        // Spent tokens first: not every SQLite connection enforces the cascade.
        spent_refresh_token::Entity::delete_many()
            .filter(
                spent_refresh_token::Column::SessionId.in_subquery(
                    session::Entity::find()
                        .select_only()
                        .column(session::Column::Id)
                        .filter(ended.clone())
                        .into_query(),
                ),
            )
            .exec(&txn)
            .await
            .port()?;
        let deleted = session::Entity::delete_many()
            .filter(ended)
            .exec(&txn)
            .await
            .port()?;
        txn.commit().await.port()?;
        Ok(deleted.rows_affected)
    }

    async fn list_live_for_user(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, PortError> {
        let rows = read(|| {
            session::Entity::find()
                .filter(session::Column::UserId.eq(user_id.as_uuid()))
                .filter(session::Column::RevokedAt.is_null())
                .filter(session::Column::ExpiresAt.gt(now))
                // Session ids are UUIDv7, minted at login: id order is login order.
                .order_by_desc(session::Column::Id)
                .all(self.db.connection())
        })
        .await
        .port()?;
        Ok(rows.into_iter().map(to_domain).collect())
    }

    async fn find_active_user(
        &self,
        user_id: UserId,
        session_id: SessionId,
        now: OffsetDateTime,
    ) -> Result<Option<User>, PortError> {
        let key = AuthRead {
            user_id,
            session_id,
            other: None,
            now,
        };
        Ok(self.authenticate(key).await?.map(|(caller, _)| caller))
    }

    async fn find_active_user_and(
        &self,
        user_id: UserId,
        session_id: SessionId,
        other: UserId,
        now: OffsetDateTime,
    ) -> Result<Option<(User, Option<User>)>, PortError> {
        let key = AuthRead {
            user_id,
            session_id,
            other: Some(other),
            now,
        };
        self.authenticate(key).await
    }
}

/// Authenticating reads for many callers in one statement (PostgreSQL):
/// per read `r`, its caller's row with `authenticated` (the caller is
/// active and the session theirs and live), and its other user's row.
/// `ord` numbers the reads from 1.
const AUTHENTICATE_MANY: &str = "\
SELECT r.ord, u.*, (u.id = r.uid AND u.is_active AND EXISTS (\
SELECT 1 FROM sessions s WHERE s.id = r.sid AND s.user_id = r.uid \
AND s.revoked_at IS NULL AND s.expires_at > r.at)) AS authenticated \
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[]) \
WITH ORDINALITY AS r(uid, sid, other, at, ord) \
JOIN users u ON u.id IN (r.uid, r.other)";

fn authenticate_many_values(keys: &[AuthRead]) -> Vec<sea_orm::Value> {
    let column = |f: &dyn Fn(&AuthRead) -> sea_orm::Value, ty| {
        sea_orm::Value::Array(ty, Some(Box::new(keys.iter().map(f).collect())))
    };
    vec![
        column(&|k| k.user_id.as_uuid().into(), ArrayType::Uuid),
        column(&|k| k.session_id.as_uuid().into(), ArrayType::Uuid),
        // No other user: the caller again, whose row is there anyway.
        column(
            &|k| k.other.unwrap_or(k.user_id).as_uuid().into(),
            ArrayType::Uuid,
        ),
        column(&|k| k.now.into(), ArrayType::TimeDateTimeWithTimeZone),
    ]
}

/// The answers of `keys`, in their order, from rows of users with
/// `authenticated` and (for several reads) `ord`.
fn authenticated_rows(
    keys: &[AuthRead],
    rows: Vec<sea_orm::QueryResult>,
) -> Result<Vec<Authenticated>, DbErr> {
    let mut found: Vec<(Option<User>, Option<User>)> = keys.iter().map(|_| (None, None)).collect();
    for row in rows {
        let index = if keys.len() == 1 {
            0
        } else {
            let ord: i64 = row.try_get("", "ord")?;
            usize::try_from(ord - 1)
                .ok()
                .filter(|i| *i < keys.len())
                .ok_or_else(|| DbErr::Custom(format!("no read numbered {ord}")))?
        };
        let authenticated: bool = row.try_get("", "authenticated")?;
        let model = user::Model::from_query_result(&row, "")?;
        let user = user_to_domain(model).map_err(|err| DbErr::Custom(err.to_string()))?;
        let (caller, other) = &mut found[index];
        if keys[index].other == Some(user.id) {
            *other = Some(user.clone());
        }
        if authenticated {
            *caller = Some(user);
        }
    }
    Ok(found
        .into_iter()
        .map(|(caller, other)| caller.map(|caller| (caller, other)))
        .collect())
}

/// The SQL of the single authenticating read on SQLite, built by
/// sea-query once; each read binds only its values (the profile of the
/// authenticated reads spent 7–8 % of the server's CPU building statements).
static ACTIVE_USER_AND_SQLITE: OnceLock<String> = OnceLock::new();

/// The same on PostgreSQL, when its reads are not batched.
static ACTIVE_USER_AND_POSTGRES: OnceLock<String> = OnceLock::new();

/// `SELECT users.*, <caller authenticated> FROM users WHERE id IN (caller,
/// other)`: the session check rides along with the read, one round trip.
fn active_user_and(
    user_id: UserId,
    session_id: SessionId,
    other: UserId,
    now: OffsetDateTime,
) -> Select<user::Entity> {
    let live_session = Query::select()
        .expr(Expr::val(1))
        .from(session::Entity)
        .and_where(session::Column::Id.eq(session_id.as_uuid()))
        .and_where(session::Column::UserId.eq(user_id.as_uuid()))
        .and_where(session::Column::RevokedAt.is_null())
        .and_where(session::Column::ExpiresAt.gt(now))
        .to_owned();
    let authenticated = Expr::col((user::Entity, user::Column::Id))
        .eq(user_id.as_uuid())
        .and(Expr::col((user::Entity, user::Column::IsActive)).eq(true))
        .and(Expr::exists(live_session));
    user::Entity::find()
        .column_as(authenticated, "authenticated")
        .filter(user::Column::Id.is_in([user_id.as_uuid(), other.as_uuid()]))
}

fn active_user_and_values(
    user_id: UserId,
    session_id: SessionId,
    other: UserId,
    now: OffsetDateTime,
) -> Vec<sea_orm::Value> {
    vec![
        user_id.as_uuid().into(),
        true.into(),
        1_i32.into(),
        session_id.as_uuid().into(),
        user_id.as_uuid().into(),
        now.into(),
        user_id.as_uuid().into(),
        other.as_uuid().into(),
    ]
}

fn to_domain(row: session::Model) -> Session {
    Session {
        id: SessionId::from_uuid(row.id),
        user_id: UserId::from_uuid(row.user_id),
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
        client: ClientInfo {
            user_agent: row.user_agent,
            ip: row.ip,
            request_id: None,
        },
        proof: SignInProof {
            federated: row.federated,
            second_factor: row.second_factor,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prebuilt SQLite read binds its values in the order its builder does.
    #[test]
    fn prebuilt_reads_bind_what_their_builders_bind() {
        let (user_id, session_id, other) = (
            UserId::generate(),
            SessionId::generate(),
            UserId::generate(),
        );
        let now = OffsetDateTime::now_utc();
        let built = active_user_and(user_id, session_id, other, now).build(DbBackend::Sqlite);
        let values = built.values.map(|v| v.0).unwrap_or_default();
        assert_eq!(
            values,
            active_user_and_values(user_id, session_id, other, now)
        );
    }
}
