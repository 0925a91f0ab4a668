//! [`SessionRepository`] on SeaORM.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, Query};
use std::sync::Arc;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Statement, TransactionTrait,
};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AuditEvent, ClientInfo, NewSession, PasswordHash, Session, SessionId, SignInProof, TokenHash,
    User, UserId,
};
use userhub_domain::ports::SessionRepository;

mod reads;

use reads::{
    ACTIVE_USER_AND_POSTGRES, ACTIVE_USER_AND_SQLITE, AUTHENTICATE_MANY, AuthRead, Authenticated,
    active_user_and, active_user_and_values, authenticate_many_values, authenticated_rows,
};

use super::batch::{Batcher, Run};
use super::errors::port_error_shared;
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
        let conn = db.clone();
        let run: Run<AuthRead, Authenticated> = Arc::new(move |keys: Vec<AuthRead>| {
            let conn = conn.clone();
            Box::pin(async move {
                let conn = conn.connection();
                let statement = Statement::from_sql_and_values(
                    conn.get_database_backend(),
                    AUTHENTICATE_MANY,
                    authenticate_many_values(&keys),
                );
                let rows = read(|| conn.query_all_raw(statement.clone())).await?;
                authenticated_rows(&keys, rows)
            })
        });
        Self {
            batched: Arc::new(Batcher::new(db.acquire_timeout(), run)),
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
                .load(key)
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
        let values: [sea_orm::Value; 12] = [
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
            s.proof.passkey.into(),
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
                session::Column::Passkey,
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
            passkey: row.passkey,
            second_factor: row.second_factor,
        },
    }
}
