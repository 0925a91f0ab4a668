//! [`PersonalTokenRepository`] in `personal_access_tokens`.

use async_trait::async_trait;
use std::sync::Arc;

use sea_orm::sea_query::{ArrayType, Expr, ExprTrait, LockType, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, JoinType,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait, Statement, TransactionTrait,
};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AuditEvent, NewPersonalToken, PersonalToken, Scopes, TokenGrant, TokenHash, TokenId, TokenName,
    User, UserId,
};
use userhub_domain::ports::{CreateTokenError, PersonalTokenRepository};
use uuid::Uuid;

use super::batch::{Batcher, Run};
use super::errors::port_error_shared;
use super::users::rows::to_domain as user_to_domain;
use super::{Database, DbResultExt, audit, read};
use crate::entities::{personal_access_token as pat, user};

/// Personal access tokens on this database.
#[derive(Clone, Debug)]
pub struct SeaOrmPersonalTokenRepository {
    db: Database,
    /// On PostgreSQL, concurrent authenticating reads share round trips,
    /// as the access tokens' do.
    batched: Arc<Batcher<TokenRead, Found>>,
}

/// One authenticating read: a token's hash (the SHA-256 digest, so the
/// key is `Copy`) and the time it must be live at.
#[derive(Clone, Copy, Debug)]
struct TokenRead {
    digest: [u8; 32],
    now: OffsetDateTime,
}

/// The active owner of a live token, and what the token grants.
type Found = Option<(User, TokenGrant)>;

/// Authenticating reads of many tokens in one statement (PostgreSQL): raw
/// SQL, as SeaORM cannot say `unnest … WITH ORDINALITY`. `ord` numbers the
/// reads from 1.
const AUTHENTICATE_MANY: &str = "\
SELECT r.ord, u.*, p.id AS token_id, p.scopes AS token_scopes, \
p.last_used_at AS token_last_used_at \
FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS r(hash, at, ord) \
JOIN personal_access_tokens p ON p.token_hash = r.hash AND p.expires_at > r.at \
JOIN users u ON u.id = p.user_id AND u.is_active";

impl SeaOrmPersonalTokenRepository {
    /// A repository on this database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        let conn = db.clone();
        let run: Run<TokenRead, Found> = Arc::new(move |keys: Vec<TokenRead>| {
            let conn = conn.clone();
            Box::pin(async move {
                let conn = conn.connection();
                let hashes = keys.iter().map(|k| hex(&k.digest).into()).collect();
                let times = keys.iter().map(|k| k.now.into()).collect();
                let statement = Statement::from_sql_and_values(
                    conn.get_database_backend(),
                    AUTHENTICATE_MANY,
                    [
                        sea_orm::Value::Array(ArrayType::String, Some(Box::new(hashes))),
                        sea_orm::Value::Array(
                            ArrayType::TimeDateTimeWithTimeZone,
                            Some(Box::new(times)),
                        ),
                    ],
                );
                let rows = read(|| conn.query_all_raw(statement.clone())).await?;
                let mut found: Vec<Found> = keys.iter().map(|_| None).collect();
                for row in rows {
                    let ord: i64 = row.try_get("", "ord")?;
                    let slot = usize::try_from(ord - 1)
                        .ok()
                        .and_then(|i| found.get_mut(i))
                        .ok_or_else(|| DbErr::Custom(format!("no read numbered {ord}")))?;
                    *slot = Some(found_row(&row).map_err(|e| DbErr::Custom(e.to_string()))?);
                }
                Ok(found)
            })
        });
        Self {
            batched: Arc::new(Batcher::new(db.acquire_timeout(), run)),
            db,
        }
    }
}

/// A SHA-256 digest in the lower-case hex the tokens are stored under.
fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest of a stored-form hash, if it is one.
fn digest(hash: &TokenHash) -> Option<[u8; 32]> {
    let text = hash.as_str();
    if text.len() != 64 {
        return None;
    }
    let mut digest = [0_u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(digest)
}

/// A user row with its token's columns.
fn found_row(row: &sea_orm::QueryResult) -> Result<(User, TokenGrant), PortError> {
    let model = user::Model::from_query_result(row, "").port()?;
    let grant = Grant::from_query_result(row, "").port()?;
    Ok((
        user_to_domain(model)?,
        TokenGrant {
            id: TokenId::from_uuid(grant.token_id),
            scopes: scopes(&grant.token_scopes)?,
            last_used_at: grant.token_last_used_at,
        },
    ))
}

/// What the authenticating read adds to its user row.
#[derive(FromQueryResult)]
struct Grant {
    token_id: Uuid,
    token_scopes: String,
    token_last_used_at: Option<OffsetDateTime>,
}

fn scopes(stored: &str) -> Result<Scopes, PortError> {
    Scopes::parse(stored.split_whitespace())
        .map_err(|name| PortError::unexpected(format!("a stored token has scope {name:?}")))
}

fn to_domain(row: pat::Model) -> Result<PersonalToken, PortError> {
    Ok(PersonalToken {
        id: TokenId::from_uuid(row.id),
        user_id: UserId::from_uuid(row.user_id),
        name: TokenName::parse(&row.name).map_err(PortError::unexpected)?,
        scopes: scopes(&row.scopes)?,
        prefix: row.prefix,
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
    })
}

#[async_trait]
impl PersonalTokenRepository for SeaOrmPersonalTokenRepository {
    async fn create(
        &self,
        new: &NewPersonalToken,
        max: u64,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), CreateTokenError> {
        let token = &new.token;
        let owner = token.user_id.as_uuid();
        let txn = self.db.connection().begin().await.port()?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // Creations for one owner queue here, so each counts the
            // others' rows; SQLite has one writer, and the insert below
            // is its first statement.
            let lock = Query::select()
                .column(user::Column::Id)
                .from(user::Entity)
                .and_where(user::Column::Id.eq(owner))
                .lock(LockType::Update)
                .to_owned();
            txn.query_one(&lock).await.port()?;
        }
        // "No max-th live token": fewer than max.
        let at_max = Query::select()
            .expr(Expr::val(1))
            .from(pat::Entity)
            .and_where(pat::Column::UserId.eq(owner))
            .and_where(pat::Column::ExpiresAt.gt(now))
            .limit(1)
            .offset(max.saturating_sub(1))
            .to_owned();
        let row = Query::select()
            .expr(Expr::val(token.id.as_uuid()))
            .column(user::Column::Id)
            .expr(Expr::val(new.hash.as_str()))
            .expr(Expr::val(token.name.as_str()))
            .expr(Expr::val(token.scopes.to_text()))
            .expr(Expr::val(token.prefix.clone()))
            .expr(Expr::val(token.created_at))
            .expr(Expr::val(token.expires_at))
            .expr(Expr::val(Option::<OffsetDateTime>::None))
            .from(user::Entity)
            .and_where(user::Column::Id.eq(owner))
            .and_where(user::Column::IsActive.eq(true))
            .and_where(user::Column::PasswordHash.eq(new.proven.as_str()))
            .and_where(Expr::exists(at_max).not())
            .to_owned();
        let insert = Query::insert()
            .into_table(pat::Entity)
            .columns([
                pat::Column::Id,
                pat::Column::UserId,
                pat::Column::TokenHash,
                pat::Column::Name,
                pat::Column::Scopes,
                pat::Column::Prefix,
                pat::Column::CreatedAt,
                pat::Column::ExpiresAt,
                pat::Column::LastUsedAt,
            ])
            .select_from(row)
            .map_err(PortError::unexpected)?
            .to_owned();
        if txn.execute(&insert).await.port()?.rows_affected() != 1 {
            let unchanged = user::Entity::find_by_id(owner)
                .filter(user::Column::IsActive.eq(true))
                .filter(user::Column::PasswordHash.eq(new.proven.as_str()))
                .one(&txn)
                .await
                .port()?;
            return Err(if unchanged.is_some() {
                CreateTokenError::TooMany
            } else {
                CreateTokenError::OwnerChanged
            });
        }
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(())
    }

    async fn list(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<PersonalToken>, PortError> {
        let rows = read(|| {
            pat::Entity::find()
                .filter(pat::Column::UserId.eq(user.as_uuid()))
                .filter(pat::Column::ExpiresAt.gt(now))
                .order_by_desc(pat::Column::CreatedAt)
                .order_by_desc(pat::Column::Id)
                .all(self.db.connection())
        })
        .await
        .port()?;
        rows.into_iter().map(to_domain).collect()
    }

    async fn revoke(
        &self,
        user: UserId,
        id: TokenId,
        event: &AuditEvent,
    ) -> Result<bool, PortError> {
        let txn = self.db.connection().begin().await.port()?;
        let deleted = pat::Entity::delete_many()
            .filter(pat::Column::Id.eq(id.as_uuid()))
            .filter(pat::Column::UserId.eq(user.as_uuid()))
            .exec(&txn)
            .await
            .port()?;
        if deleted.rows_affected != 1 {
            return Ok(false);
        }
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(true)
    }

    async fn authenticate(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<(User, TokenGrant)>, PortError> {
        let conn = self.db.connection();
        if conn.get_database_backend() == DbBackend::Postgres
            && self.db.batch_reads()
            && let Some(digest) = digest(hash)
        {
            return self
                .batched
                .load(TokenRead { digest, now })
                .await
                .map_err(|err| port_error_shared(&err));
        }
        let select = user::Entity::find()
            .join_rev(JoinType::InnerJoin, pat::Relation::User.def())
            .column_as(Expr::col((pat::Entity, pat::Column::Id)), "token_id")
            .column_as(
                Expr::col((pat::Entity, pat::Column::Scopes)),
                "token_scopes",
            )
            .column_as(
                Expr::col((pat::Entity, pat::Column::LastUsedAt)),
                "token_last_used_at",
            )
            .filter(pat::Column::TokenHash.eq(hash.as_str()))
            .filter(pat::Column::ExpiresAt.gt(now))
            .filter(user::Column::IsActive.eq(true));
        let statement = conn
            .get_database_backend()
            .build(&sea_orm::QueryTrait::into_query(select));
        let Some(row) = read(|| conn.query_one_raw(statement.clone()))
            .await
            .port()?
        else {
            return Ok(None);
        };
        Ok(Some(found_row(&row)?))
    }

    async fn touch(
        &self,
        id: TokenId,
        now: OffsetDateTime,
        resolution: time::Duration,
    ) -> Result<(), PortError> {
        // Conditional, so concurrent requests of one token write once.
        pat::Entity::update_many()
            .col_expr(pat::Column::LastUsedAt, Expr::value(now))
            .filter(pat::Column::Id.eq(id.as_uuid()))
            .filter(
                pat::Column::LastUsedAt
                    .is_null()
                    .or(pat::Column::LastUsedAt.lte(now - resolution)),
            )
            .exec(self.db.connection())
            .await
            .port()?;
        Ok(())
    }

    async fn revoke_all(&self, user: UserId) -> Result<u64, PortError> {
        let done = pat::Entity::delete_many()
            .filter(pat::Column::UserId.eq(user.as_uuid()))
            .exec(self.db.connection())
            .await
            .port()?;
        Ok(done.rows_affected)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, PortError> {
        let done = pat::Entity::delete_many()
            .filter(pat::Column::ExpiresAt.lte(now))
            .exec(self.db.connection())
            .await
            .port()?;
        Ok(done.rows_affected)
    }
}
