//! [`UserRepository`] on SeaORM.

mod listing;
pub(super) mod rows;

use async_trait::async_trait;
use sea_orm::sea_query::{Alias, Asterisk, CommonTableExpression, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QuerySelect, QueryTrait, TransactionTrait,
};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{AuditEvent, PasswordHash, User, UserId};
use userhub_domain::ports::{
    InsertUserError, PatchUserError, UserPage, UserPatch, UserQuery, UserRepository, WriteGuard,
};

use super::{Database, DbResultExt, audit, port_error, read, reservations};
use crate::entities::user;

use rows::active_model;
pub(super) use rows::{Unique, to_domain, unique_violation, user_write};

/// Users stored in the `users` table.
#[derive(Clone, Debug)]
pub struct SeaOrmUserRepository {
    db: Database,
}

impl SeaOrmUserRepository {
    /// A repository on this database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

impl SeaOrmUserRepository {
    /// Runs `update` (a [`user_write`]) on user `id`
    /// only if `guard` holds and, when `version` is given, the user is still
    /// at it, all in one statement; says which condition failed when
    /// nothing was written. With `spends_reset_tokens` the user's live reset
    /// tokens are spent in the same transaction.
    #[allow(clippy::too_many_arguments)] // one conditional write's parts
    async fn conditional_write(
        &self,
        id: UserId,
        version: Option<u64>,
        update: sea_orm::UpdateMany<user::Entity>,
        guard: &WriteGuard,
        at: OffsetDateTime,
        event: &AuditEvent,
        patch: &UserPatch,
        spends_reset_tokens: bool,
    ) -> Result<Result<user::Model, Miss>, DbErr> {
        let _turn = self.db.row_queue().turn(id.as_uuid()).await;
        let mut condition = Condition::all();
        if let Some(active) = guard.target_active {
            condition = condition.add(user::Column::IsActive.eq(active));
        }
        let expected = match version.map(i64::try_from) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => return Ok(Err(Miss::Stale)),
        };
        let mut update = update
            .filter(user::Column::Id.eq(id.as_uuid()))
            .filter(condition.clone());
        if let Some(expected) = expected {
            update = update.filter(user::Column::Version.eq(expected));
        }
        if let Some(hash) = &guard.password_hash {
            update = update.filter(user::Column::PasswordHash.eq(hash.as_str()));
        }
        // The actor's rights, read by the same statement that writes. On
        // one's own account they are conditions on the row written, which
        // PostgreSQL checks again on the newest row version when a
        // concurrent write (a deactivation, say) landed first; a subquery
        // would read the statement's snapshot.
        if guard.actor == id {
            update = update.filter(user::Column::IsActive.eq(true));
            if guard.actor_is_superuser {
                update = update.filter(user::Column::IsSuperuser.eq(true));
            }
        } else {
            let actor = Alias::new("actor");
            let mut actor_still_may = Query::select()
                .expr(Expr::val(1))
                .from_as(user::Entity, actor.clone())
                .and_where(Expr::col((actor.clone(), user::Column::Id)).eq(guard.actor.as_uuid()))
                .and_where(Expr::col((actor.clone(), user::Column::IsActive)).eq(true))
                .to_owned();
            if guard.actor_is_superuser {
                actor_still_may.and_where(Expr::col((actor, user::Column::IsSuperuser)).eq(true));
            }
            update = update.filter(Expr::exists(actor_still_may));
        }
        // Most profile writes (a name, a username) need nothing but the
        // update and its audit row: on PostgreSQL one statement, one round
        // trip, and the row lock held only until its commit.
        let one_statement = self.db.backend() == DbBackend::Postgres
            && !guard.keep_a_superuser
            && patch.email.is_none()
            && patch.reserve_old_email.is_none()
            && !spends_reset_tokens;
        if one_statement {
            let written = Alias::new("written");
            let mut write = update.into_query();
            write.returning_all();
            let statement = Query::select()
                .column(Asterisk)
                .from(written.clone())
                .to_owned()
                .with(
                    Query::with()
                        .cte(
                            CommonTableExpression::new()
                                .query(write)
                                .table_name(written.clone())
                                .to_owned(),
                        )
                        .cte(
                            CommonTableExpression::new()
                                .query(audit::write_for_each(event, written)?)
                                .table_name(Alias::new("recorded"))
                                .to_owned(),
                        )
                        .to_owned(),
                );
            let conn = self.db.connection();
            let row = user::Model::find_by_statement(conn.get_database_backend().build(&statement))
                .one(conn)
                .await?;
            return Ok(match row {
                Some(row) => Ok(row),
                None => Err(miss(conn, id, guard, condition, expected).await?),
            });
        }
        let txn = self.db.connection().begin().await?;
        if guard.keep_a_superuser {
            if self.db.backend() == DbBackend::Postgres {
                // Lock every active superuser: a concurrent demotion waits here,
                // then sees this one's outcome. (SQLite serialises writers anyway,
                // and its single UPDATE below runs under the write lock.)
                user::Entity::find()
                    .select_only()
                    .column(user::Column::Id)
                    .filter(user::Column::IsActive.eq(true))
                    .filter(user::Column::IsSuperuser.eq(true))
                    .lock_exclusive()
                    .into_tuple::<uuid::Uuid>()
                    .all(&txn)
                    .await?;
            }
            let other = Alias::new("other");
            let another_superuser = Query::select()
                .expr(Expr::val(1))
                .from_as(user::Entity, other.clone())
                .and_where(Expr::col((other.clone(), user::Column::IsActive)).eq(true))
                .and_where(Expr::col((other.clone(), user::Column::IsSuperuser)).eq(true))
                .and_where(Expr::col((other, user::Column::Id)).ne(id.as_uuid()))
                .to_owned();
            // Judged on the row as it is when the write lands: a user who
            // is no active superuser removes none.
            update = update.filter(
                Condition::any()
                    .add(user::Column::IsActive.eq(false))
                    .add(user::Column::IsSuperuser.eq(false))
                    .add(Expr::exists(another_superuser)),
            );
        }
        let rows = update.exec_with_returning(&txn).await?;
        if let Some(row) = rows.into_iter().next() {
            if let Some((old, until)) = &patch.reserve_old_email {
                reservations::reserve(&txn, row.id, old.as_str(), at, *until).await?;
            }
            if patch.email.is_some()
                && reservations::held_by_another(&txn, &row.email, row.id, at).await?
            {
                txn.rollback().await?;
                return Ok(Err(Miss::EmailReserved));
            }
            if spends_reset_tokens {
                super::recovery_tokens::spend_tokens(
                    &txn,
                    row.id,
                    super::recovery_tokens::RESET_TOKENS,
                    at,
                )
                .await?;
            }
            audit::write(&txn, event).await?;
            txn.commit().await?;
            return Ok(Ok(row));
        }
        let miss = miss(&txn, id, guard, condition, expected).await?;
        txn.rollback().await?;
        Ok(Err(miss))
    }
}

/// Which condition made a conditional write of user `id` write nothing.
async fn miss(
    conn: &impl ConnectionTrait,
    id: UserId,
    guard: &WriteGuard,
    condition: Condition,
    expected: Option<i64>,
) -> Result<Miss, DbErr> {
    let current = user::Entity::find_by_id(id.as_uuid()).one(conn).await?;
    let actor = user::Entity::find_by_id(guard.actor.as_uuid())
        .one(conn)
        .await?;
    let meets_condition = match &current {
        Some(_) => user::Entity::find_by_id(id.as_uuid())
            .filter(condition)
            .one(conn)
            .await?
            .is_some(),
        None => false,
    };
    let actor_may =
        actor.is_some_and(|a| a.is_active && (a.is_superuser || !guard.actor_is_superuser));
    Ok(match current {
        None => Miss::NotFound,
        Some(_) if !actor_may => Miss::ActorChanged,
        Some(row) if expected.is_some_and(|v| v != row.version) => Miss::Stale,
        Some(_) if !meets_condition => Miss::Condition,
        Some(row)
            if guard
                .password_hash
                .as_ref()
                .is_some_and(|h| h.as_str() != row.password_hash) =>
        {
            Miss::PasswordChanged
        }
        Some(_) => Miss::LastSuperuser,
    })
}

/// Which condition of a conditional write failed.
enum Miss {
    NotFound,
    ActorChanged,
    Stale,
    /// The write's own condition on the user (active or not).
    Condition,
    PasswordChanged,
    LastSuperuser,
    /// The new address is reserved for another account.
    EmailReserved,
}

#[async_trait]
impl UserRepository for SeaOrmUserRepository {
    async fn insert(&self, u: &User, event: &AuditEvent) -> Result<(), InsertUserError> {
        let txn = self.db.connection().begin().await.port()?;
        user::Entity::insert(active_model(u))
            .exec_without_returning(&txn)
            .await
            .map_err(|err| match unique_violation(&err) {
                Some(Unique::Email) => InsertUserError::EmailTaken,
                Some(Unique::Username) => InsertUserError::UsernameTaken,
                None => InsertUserError::Port(port_error(err)),
            })?;
        if reservations::held_by_another(&txn, u.email.as_str(), u.id.as_uuid(), u.created_at)
            .await
            .port()?
        {
            return Err(InsertUserError::EmailTaken);
        }
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(())
    }

    async fn update(
        &self,
        id: UserId,
        version: Option<u64>,
        patch: &UserPatch,
        guard: &WriteGuard,
        at: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<User, PatchUserError> {
        let patch_error = |err: DbErr| match unique_violation(&err) {
            Some(Unique::Email) => PatchUserError::EmailTaken,
            Some(Unique::Username) => PatchUserError::UsernameTaken,
            None => PatchUserError::Port(port_error(err)),
        };
        let mut update = user_write(at);
        if let Some(email) = &patch.email {
            update = update.col_expr(user::Column::Email, Expr::value(email.as_str()));
        }
        if let Some(username) = &patch.username {
            update = update.col_expr(user::Column::Username, Expr::value(username.as_str()));
        }
        if let Some(full_name) = &patch.full_name {
            let value = full_name.as_ref().map(|n| n.as_str().to_owned());
            update = update.col_expr(user::Column::FullName, Expr::value(value));
        }
        if let Some(hash) = &patch.password_hash {
            update = update.col_expr(user::Column::PasswordHash, Expr::value(hash.as_str()));
        }
        if let Some(active) = patch.is_active {
            update = update.col_expr(user::Column::IsActive, Expr::value(active));
        }
        if let Some(superuser) = patch.is_superuser {
            update = update.col_expr(user::Column::IsSuperuser, Expr::value(superuser));
        }
        if let Some(verified) = patch.is_verified {
            update = update.col_expr(user::Column::IsVerified, Expr::value(verified));
        }
        let spends_reset_tokens = patch.email.is_some()
            || patch.password_hash.is_some()
            || patch.is_active == Some(false);
        match self
            .conditional_write(
                id,
                version,
                update,
                guard,
                at,
                event,
                patch,
                spends_reset_tokens,
            )
            .await
            .map_err(patch_error)?
        {
            Ok(row) => Ok(to_domain(row)?),
            Err(Miss::NotFound) => Err(PatchUserError::NotFound),
            Err(Miss::Condition) => Err(PatchUserError::ActiveChanged),
            Err(Miss::ActorChanged) => Err(PatchUserError::ActorChanged),
            Err(Miss::Stale) => Err(PatchUserError::Stale),
            Err(Miss::PasswordChanged) => Err(PatchUserError::PasswordChanged),
            Err(Miss::LastSuperuser) => Err(PatchUserError::LastSuperuser),
            Err(Miss::EmailReserved) => Err(PatchUserError::EmailTaken),
        }
    }

    async fn replace_password_hash(
        &self,
        id: UserId,
        old: &PasswordHash,
        new: &PasswordHash,
        at: OffsetDateTime,
        event: Option<AuditEvent>,
    ) -> Result<bool, PortError> {
        let txn = self.db.connection().begin().await.port()?;
        let result = user_write(at)
            .col_expr(user::Column::PasswordHash, Expr::value(new.as_str()))
            .filter(user::Column::Id.eq(id.as_uuid()))
            .filter(user::Column::PasswordHash.eq(old.as_str()))
            .filter(user::Column::IsActive.eq(true))
            .exec(&txn)
            .await
            .port()?;
        let replaced = result.rows_affected == 1;
        if let Some(event) = event.filter(|_| replaced) {
            // A new password (not a rehash of the same one) ends reset links.
            super::recovery_tokens::spend_tokens(
                &txn,
                id.as_uuid(),
                super::recovery_tokens::RESET_TOKENS,
                at,
            )
            .await
            .port()?;
            audit::write(&txn, &event).await.port()?;
        }
        txn.commit().await.port()?;
        Ok(replaced)
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, PortError> {
        let row = read(|| user::Entity::find_by_id(id.as_uuid()).one(self.db.connection()))
            .await
            .port()?;
        row.map(to_domain).transpose()
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<User>, PortError> {
        let row = read(|| {
            user::Entity::find()
                .filter(
                    Condition::any()
                        .add(user::Column::Email.eq(login))
                        .add(user::Column::Username.eq(login)),
                )
                .one(self.db.connection())
        })
        .await
        .port()?;
        row.map(to_domain).transpose()
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, PortError> {
        listing::list(&self.db, query).await
    }

    async fn record_login(&self, id: UserId, at: OffsetDateTime) -> Result<(), PortError> {
        // The version stays: a login is no change an `If-Match` guards.
        user::Entity::update_many()
            .col_expr(user::Column::LastLoginAt, Expr::value(at))
            .filter(user::Column::Id.eq(id.as_uuid()))
            .exec(self.db.connection())
            .await
            .port()?;
        Ok(())
    }
}
