//! [`UserRepository`] on SeaORM.

use async_trait::async_trait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{Email, FullName, LoginLockout, PasswordHash, User, UserId, Username};
use userhub_domain::ports::{SaveUserError, UserPage, UserQuery, UserRepository, UserSortField};

use super::{Database, escape_like, port_error};
use crate::entities::user;

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
    /// How many users match the flags, from the counters the database keeps
    /// per (`is_active`, `is_superuser`) pair: four rows at most, however
    /// many users there are.
    async fn count_from_counters(&self, query: &UserQuery) -> Result<u64, DbErr> {
        let mut stmt = Query::select();
        // SUM over bigint is numeric on PostgreSQL: cast it back.
        stmt.expr(Expr::cust("CAST(COALESCE(SUM(n), 0) AS BIGINT)"))
            .from(Alias::new("user_counts"));
        if let Some(active) = query.is_active {
            stmt.and_where(Expr::col(Alias::new("is_active")).eq(active));
        }
        if let Some(superuser) = query.is_superuser {
            stmt.and_where(Expr::col(Alias::new("is_superuser")).eq(superuser));
        }
        let row = self.db.connection().query_one(&stmt).await?;
        let total: i64 = match row {
            Some(row) => row.try_get_by_index(0)?,
            None => 0,
        };
        Ok(u64::try_from(total).unwrap_or(0))
    }
}

#[async_trait]
impl UserRepository for SeaOrmUserRepository {
    async fn insert(&self, u: &User) -> Result<(), SaveUserError> {
        user::Entity::insert(active_model(u))
            .exec_without_returning(self.db.connection())
            .await
            .map_err(save_error)?;
        Ok(())
    }

    async fn update(&self, u: &User) -> Result<(), SaveUserError> {
        let result = user::Entity::update_many()
            .set(active_model(u))
            .filter(user::Column::Id.eq(u.id.as_uuid()))
            .exec(self.db.connection())
            .await
            .map_err(save_error)?;
        if result.rows_affected == 0 {
            return Err(SaveUserError::NotFound);
        }
        Ok(())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, PortError> {
        let row = user::Entity::find_by_id(id.as_uuid())
            .one(self.db.connection())
            .await
            .map_err(port_error)?;
        row.map(to_domain).transpose()
    }

    async fn find_by_login(&self, login: &str) -> Result<Option<User>, PortError> {
        let row = user::Entity::find()
            .filter(
                Condition::any()
                    .add(user::Column::Email.eq(login))
                    .add(user::Column::Username.eq(login)),
            )
            .one(self.db.connection())
            .await
            .map_err(port_error)?;
        row.map(to_domain).transpose()
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage, PortError> {
        let mut select = user::Entity::find();
        if let Some(active) = query.is_active {
            select = select.filter(user::Column::IsActive.eq(active));
        }
        if let Some(superuser) = query.is_superuser {
            select = select.filter(user::Column::IsSuperuser.eq(superuser));
        }
        if let Some(term) = &query.search {
            let pattern = format!("%{}%", escape_like(term));
            let like = || LikeExpr::new(pattern.clone()).escape('\\');
            // Emails and usernames are stored lower-cased; only full names need LOWER().
            let mut any = Condition::any()
                .add(user::Column::Username.like(like()))
                .add(Expr::expr(Func::lower(Expr::col(user::Column::FullName))).like(like()));
            if query.search_email {
                any = any.add(user::Column::Email.like(like()));
            }
            select = select.filter(any);
        }
        let order = if query.sort.descending {
            Order::Desc
        } else {
            Order::Asc
        };
        let column = match query.sort.field {
            // SQLite keeps timestamps as RFC 3339 text whose fraction varies in
            // length, so text order is not time order there; UUIDv7 ids are
            // minted at creation and are.
            UserSortField::CreatedAt if self.db.backend() == DbBackend::Sqlite => user::Column::Id,
            UserSortField::CreatedAt => user::Column::CreatedAt,
            UserSortField::Username => user::Column::Username,
            UserSortField::Email => user::Column::Email,
        };
        // The total ignores the cursor, as it ignores skip and limit.
        let matching = select.clone();
        if let Some(after) = query.after {
            // (key, id) beyond the cursor row's, in the listing's direction:
            // one index range scan however deep the page.
            let cursor = Alias::new("cursor_row");
            let cursor_key = Query::select()
                .column((cursor.clone(), column))
                .column((cursor.clone(), user::Column::Id))
                .from_as(user::Entity, cursor.clone())
                .and_where(Expr::col((cursor, user::Column::Id)).eq(after.as_uuid()))
                .to_owned();
            let key = Expr::tuple([
                Expr::col((user::Entity, column)),
                Expr::col((user::Entity, user::Column::Id)),
            ]);
            let beyond = Expr::SubQuery(None, Box::new(cursor_key.into()));
            select = select.filter(if query.sort.descending {
                key.lt(beyond)
            } else {
                key.gt(beyond)
            });
        }
        let conn = self.db.connection();
        let searched = query.search.is_some();
        let page = select
            .clone()
            .order_by(column, order.clone())
            .order_by(user::Column::Id, order)
            .offset(query.skip)
            .limit(query.limit);
        let total = async {
            if searched {
                // Matches are few and found through the search indexes.
                matching.count(conn).await
            } else {
                self.count_from_counters(query).await
            }
        };
        let (rows, total) = tokio::try_join!(page.all(conn), total).map_err(port_error)?;
        let items = rows.into_iter().map(to_domain).collect::<Result<_, _>>()?;
        Ok(UserPage { items, total })
    }

    async fn update_unless_last_superuser(&self, u: &User) -> Result<(), SaveUserError> {
        let id = u.id.as_uuid();
        let txn = self.db.connection().begin().await.map_err(save_error)?;
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
                .await
                .map_err(save_error)?;
        }
        let other = Alias::new("other");
        let another_superuser = Query::select()
            .expr(Expr::val(1))
            .from_as(user::Entity, other.clone())
            .and_where(Expr::col((other.clone(), user::Column::IsActive)).eq(true))
            .and_where(Expr::col((other.clone(), user::Column::IsSuperuser)).eq(true))
            .and_where(Expr::col((other, user::Column::Id)).ne(id))
            .to_owned();
        let updated = user::Entity::update_many()
            .set(active_model(u))
            .filter(user::Column::Id.eq(id))
            .filter(Expr::exists(another_superuser))
            .exec(&txn)
            .await
            .map_err(save_error)?;
        if updated.rows_affected == 0 {
            let exists = user::Entity::find_by_id(id)
                .one(&txn)
                .await
                .map_err(save_error)?
                .is_some();
            txn.rollback().await.map_err(save_error)?;
            return Err(if exists {
                SaveUserError::LastSuperuser
            } else {
                SaveUserError::NotFound
            });
        }
        txn.commit().await.map_err(save_error)?;
        Ok(())
    }

    async fn record_login(&self, id: UserId, at: OffsetDateTime) -> Result<(), PortError> {
        user::Entity::update_many()
            .col_expr(user::Column::LastLoginAt, Expr::value(at))
            .col_expr(user::Column::FailedLoginCount, Expr::value(0))
            .col_expr(user::Column::LockoutCount, Expr::value(0))
            .col_expr(
                user::Column::LockedUntil,
                Expr::value(Option::<OffsetDateTime>::None),
            )
            .filter(user::Column::Id.eq(id.as_uuid()))
            .exec(self.db.connection())
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn record_failed_login(&self, id: UserId) -> Result<LoginLockout, PortError> {
        let txn = self.db.connection().begin().await.map_err(port_error)?;
        // The increment locks the row until commit, so concurrent failures queue up.
        user::Entity::update_many()
            .col_expr(
                user::Column::FailedLoginCount,
                Expr::col(user::Column::FailedLoginCount).add(1),
            )
            .filter(user::Column::Id.eq(id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(port_error)?;
        let row = user::Entity::find_by_id(id.as_uuid())
            .one(&txn)
            .await
            .map_err(port_error)?;
        txn.commit().await.map_err(port_error)?;
        row.map(|r| lockout(&r))
            .ok_or_else(|| PortError::unexpected(format!("user {id} vanished")))
    }

    async fn lock(&self, id: UserId, until: OffsetDateTime) -> Result<(), PortError> {
        user::Entity::update_many()
            .col_expr(user::Column::LockedUntil, Expr::value(until))
            .col_expr(
                user::Column::LockoutCount,
                Expr::col(user::Column::LockoutCount).add(1),
            )
            .col_expr(user::Column::FailedLoginCount, Expr::value(0))
            .filter(user::Column::Id.eq(id.as_uuid()))
            .exec(self.db.connection())
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn clear_lockout(&self, id: UserId) -> Result<(), PortError> {
        user::Entity::update_many()
            .col_expr(user::Column::FailedLoginCount, Expr::value(0))
            .col_expr(user::Column::LockoutCount, Expr::value(0))
            .col_expr(
                user::Column::LockedUntil,
                Expr::value(Option::<OffsetDateTime>::None),
            )
            .filter(user::Column::Id.eq(id.as_uuid()))
            .exec(self.db.connection())
            .await
            .map_err(port_error)?;
        Ok(())
    }
}

fn active_model(u: &User) -> user::ActiveModel {
    user::ActiveModel {
        id: Set(u.id.as_uuid()),
        email: Set(u.email.as_str().to_owned()),
        username: Set(u.username.as_str().to_owned()),
        full_name: Set(u.full_name.as_ref().map(|n| n.as_str().to_owned())),
        password_hash: Set(u.password_hash.as_str().to_owned()),
        is_active: Set(u.is_active),
        is_superuser: Set(u.is_superuser),
        created_at: Set(u.created_at),
        updated_at: Set(u.updated_at),
        last_login_at: Set(u.last_login_at),
        failed_login_count: Set(saturating_i32(u.lockout.failed_attempts)),
        lockout_count: Set(saturating_i32(u.lockout.lockouts)),
        locked_until: Set(u.lockout.locked_until),
    }
}

fn saturating_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn lockout(row: &user::Model) -> LoginLockout {
    LoginLockout {
        failed_attempts: u32::try_from(row.failed_login_count).unwrap_or_default(),
        lockouts: u32::try_from(row.lockout_count).unwrap_or_default(),
        locked_until: row.locked_until,
    }
}

/// Rebuilds a domain user from a row; a row that breaks the domain's rules
/// is a storage fault, not a client error.
pub(super) fn to_domain(row: user::Model) -> Result<User, PortError> {
    let corrupt = |field: &str| {
        PortError::unexpected(format!("stored user {} has an invalid {field}", row.id))
    };
    Ok(User {
        id: UserId::from_uuid(row.id),
        email: Email::parse(&row.email).map_err(|_| corrupt("email"))?,
        username: Username::parse(&row.username).map_err(|_| corrupt("username"))?,
        full_name: row
            .full_name
            .as_deref()
            .map(FullName::parse)
            .transpose()
            .map_err(|_| corrupt("full_name"))?,
        password_hash: PasswordHash::new(row.password_hash.clone()),
        is_active: row.is_active,
        is_superuser: row.is_superuser,
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_login_at: row.last_login_at,
        lockout: lockout(&row),
    })
}

/// Turns the unique indexes' refusals into the domain's outcomes. Both
/// PostgreSQL (`uq_users_email`) and SQLite (`users.email`) name the column.
fn save_error(err: DbErr) -> SaveUserError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) if message.contains("username") => {
            SaveUserError::UsernameTaken
        }
        Some(SqlErr::UniqueConstraintViolation(message)) if message.contains("email") => {
            SaveUserError::EmailTaken
        }
        _ => SaveUserError::Port(port_error(err)),
    }
}
