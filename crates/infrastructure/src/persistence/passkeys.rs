//! [`PasskeyRepository`] in `passkeys` and `webauthn_ceremonies`.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, LockType, Query};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AuditEvent, CeremonyKind, CeremonyState, NewPasskey, Passkey, PasskeyCredential, PasskeyId,
    PasskeyName, TokenHash, User, UserId,
};
use userhub_domain::ports::{CreatePasskeyError, PasskeyRemoval, PasskeyRepository};

use super::users::rows::to_domain as user_to_domain;
use super::{Database, DbResultExt, audit, micros, read};
use crate::entities::{passkey, user, user_identity, webauthn_ceremony as ceremony};

/// Passkeys on this database.
#[derive(Clone, Debug)]
pub struct SeaOrmPasskeyRepository {
    db: Database,
}

impl SeaOrmPasskeyRepository {
    /// A repository on this database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn to_domain(row: &passkey::Model) -> Result<Passkey, PortError> {
    Ok(Passkey {
        id: PasskeyId::from_uuid(row.id),
        user_id: UserId::from_uuid(row.user_id),
        name: PasskeyName::parse(&row.name).map_err(PortError::unexpected)?,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        backed_up: row.backed_up,
    })
}

fn credential(row: &passkey::Model) -> PasskeyCredential {
    PasskeyCredential {
        credential_id: row.credential_id.clone(),
        counter: u32::try_from(row.counter).unwrap_or(0),
        data: row.credential.clone(),
    }
}

/// The way in a removal takes, which [`keeps_a_way_in`] does not count.
pub(super) enum Leaving<'a> {
    /// The identity at this provider.
    Identity(&'a str),
    /// This passkey.
    Passkey(PasskeyId),
}

/// Whether `user` keeps a way in besides `leaving`: a password, a linked
/// identity or a passkey. Checked by the statement that removes, after
/// [`hold_user`], so two removals of the last two ways in cannot both pass.
pub(super) fn keeps_a_way_in(user: uuid::Uuid, leaving: &Leaving<'_>) -> Expr {
    let has_password = Query::select()
        .expr(Expr::val(1))
        .from(user::Entity)
        .and_where(user::Column::Id.eq(user))
        .and_where(user::Column::PasswordHash.ne(""))
        .to_owned();
    let mut has_identity = Query::select()
        .expr(Expr::val(1))
        .from(user_identity::Entity)
        .and_where(Expr::col(user_identity::Column::UserId).eq(user))
        .to_owned();
    let mut has_passkey = Query::select()
        .expr(Expr::val(1))
        .from(passkey::Entity)
        .and_where(Expr::col(passkey::Column::UserId).eq(user))
        .to_owned();
    match leaving {
        Leaving::Identity(provider) => {
            has_identity.and_where(Expr::col(user_identity::Column::Provider).ne(*provider));
        }
        Leaving::Passkey(id) => {
            has_passkey.and_where(Expr::col(passkey::Column::Id).ne(id.as_uuid()));
        }
    }
    Expr::exists(has_password)
        .or(Expr::exists(has_identity))
        .or(Expr::exists(has_passkey))
}

/// On PostgreSQL, takes `user`'s row lock: changes to one user's ways in
/// queue there, so each sees the others' outcome (SQLite has one writer).
pub(super) async fn hold_user(conn: &impl ConnectionTrait, user: UserId) -> Result<(), PortError> {
    if conn.get_database_backend() == DbBackend::Postgres {
        let lock = Query::select()
            .column(user::Column::Id)
            .from(user::Entity)
            .and_where(user::Column::Id.eq(user.as_uuid()))
            .lock(LockType::Update)
            .to_owned();
        conn.query_one(&lock).await.port()?;
    }
    Ok(())
}

#[async_trait]
impl PasskeyRepository for SeaOrmPasskeyRepository {
    async fn create(
        &self,
        new: &NewPasskey,
        max: u64,
        event: &AuditEvent,
    ) -> Result<(), CreatePasskeyError> {
        let key = &new.passkey;
        let owner = key.user_id.as_uuid();
        let txn = self.db.connection().begin().await.port()?;
        // PostgreSQL: registrations for one owner queue here, so each
        // counts the others' rows. SQLite: the insert is the first
        // statement, so the transaction takes the one writer's lock at once.
        hold_user(&txn, key.user_id).await?;
        // "No max-th passkey": fewer than max.
        let at_max = Query::select()
            .expr(Expr::val(1))
            .from(passkey::Entity)
            .and_where(passkey::Column::UserId.eq(owner))
            .limit(1)
            .offset(max.saturating_sub(1))
            .to_owned();
        let row = Query::select()
            .expr(Expr::val(key.id.as_uuid()))
            .column(user::Column::Id)
            .expr(Expr::val(new.credential.credential_id.as_str()))
            .expr(Expr::val(key.name.as_str()))
            .expr(Expr::val(new.credential.data.as_str()))
            .expr(Expr::val(i64::from(new.credential.counter)))
            .expr(Expr::val(key.backed_up))
            .expr(Expr::val(key.created_at))
            .expr(Expr::val(key.last_used_at))
            .from(user::Entity)
            .and_where(user::Column::Id.eq(owner))
            .and_where(user::Column::IsActive.eq(true))
            .and_where(Expr::exists(at_max).not())
            .to_owned();
        let insert = Query::insert()
            .into_table(passkey::Entity)
            .columns([
                passkey::Column::Id,
                passkey::Column::UserId,
                passkey::Column::CredentialId,
                passkey::Column::Name,
                passkey::Column::Credential,
                passkey::Column::Counter,
                passkey::Column::BackedUp,
                passkey::Column::CreatedAt,
                passkey::Column::LastUsedAt,
            ])
            .select_from(row)
            .map_err(PortError::unexpected)?
            .to_owned();
        // The unique credential id decides between two registrations of
        // one credential to different accounts, which lock different rows.
        let inserted = match txn.execute(&insert).await {
            Ok(result) => result.rows_affected(),
            Err(err) => {
                return Err(match err.sql_err() {
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                        CreatePasskeyError::Duplicate
                    }
                    _ => CreatePasskeyError::Port(super::port_error(err)),
                });
            }
        };
        if inserted != 1 {
            let active = user::Entity::find_by_id(owner)
                .filter(user::Column::IsActive.eq(true))
                .one(&txn)
                .await
                .port()?;
            return Err(if active.is_some() {
                CreatePasskeyError::TooMany
            } else {
                CreatePasskeyError::OwnerInactive
            });
        }
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(())
    }

    async fn list(&self, user: UserId) -> Result<Vec<Passkey>, PortError> {
        let rows = read(|| {
            passkey::Entity::find()
                .filter(passkey::Column::UserId.eq(user.as_uuid()))
                .order_by_asc(passkey::Column::CreatedAt)
                .order_by_asc(passkey::Column::Id)
                .all(self.db.connection())
        })
        .await
        .port()?;
        rows.iter().map(to_domain).collect()
    }

    async fn credentials(&self, user: UserId) -> Result<Vec<PasskeyCredential>, PortError> {
        let rows = read(|| {
            passkey::Entity::find()
                .filter(passkey::Column::UserId.eq(user.as_uuid()))
                .all(self.db.connection())
        })
        .await
        .port()?;
        Ok(rows.iter().map(credential).collect())
    }

    async fn rename(
        &self,
        user: UserId,
        id: PasskeyId,
        name: &PasskeyName,
        event: &AuditEvent,
    ) -> Result<Option<Passkey>, PortError> {
        let txn = self.db.connection().begin().await.port()?;
        let rows = passkey::Entity::update_many()
            .col_expr(passkey::Column::Name, Expr::value(name.as_str()))
            .filter(passkey::Column::Id.eq(id.as_uuid()))
            .filter(passkey::Column::UserId.eq(user.as_uuid()))
            .exec_with_returning(&txn)
            .await
            .port()?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        to_domain(row).map(Some)
    }

    async fn remove(
        &self,
        user: UserId,
        id: PasskeyId,
        event: &AuditEvent,
    ) -> Result<PasskeyRemoval, PortError> {
        let user_id = user.as_uuid();
        let txn = self.db.connection().begin().await.port()?;
        // Two removals of one user's last two ways in must not both pass
        // the check below.
        hold_user(&txn, user).await?;
        let delete = Query::delete()
            .from_table(passkey::Entity)
            .and_where(Expr::col(passkey::Column::Id).eq(id.as_uuid()))
            .and_where(Expr::col(passkey::Column::UserId).eq(user_id))
            .and_where(keeps_a_way_in(user_id, &Leaving::Passkey(id)))
            .to_owned();
        if txn.execute(&delete).await.port()?.rows_affected() == 0 {
            let held = passkey::Entity::find_by_id(id.as_uuid())
                .filter(passkey::Column::UserId.eq(user_id))
                .one(&txn)
                .await
                .port()?;
            return Ok(if held.is_some() {
                PasskeyRemoval::LastMethod
            } else {
                PasskeyRemoval::NotFound
            });
        }
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(PasskeyRemoval::Removed)
    }

    async fn remove_all(&self, user: UserId, event: &AuditEvent) -> Result<u64, PortError> {
        let txn = self.db.connection().begin().await.port()?;
        let deleted = passkey::Entity::delete_many()
            .filter(passkey::Column::UserId.eq(user.as_uuid()))
            .exec(&txn)
            .await
            .port()?
            .rows_affected;
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(deleted)
    }

    async fn find_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<(Passkey, PasskeyCredential, User)>, PortError> {
        let found = read(|| {
            passkey::Entity::find()
                .filter(passkey::Column::CredentialId.eq(credential_id))
                .find_also_related(user::Entity)
                .one(self.db.connection())
        })
        .await
        .port()?;
        let Some((row, Some(owner))) = found else {
            return Ok(None);
        };
        Ok(Some((
            to_domain(&row)?,
            credential(&row),
            user_to_domain(owner)?,
        )))
    }

    async fn record_use(
        &self,
        id: PasskeyId,
        seen: u32,
        credential: &PasskeyCredential,
        backed_up: bool,
        at: OffsetDateTime,
    ) -> Result<bool, PortError> {
        let updated = passkey::Entity::update_many()
            .col_expr(
                passkey::Column::Counter,
                Expr::value(i64::from(credential.counter)),
            )
            .col_expr(
                passkey::Column::Credential,
                Expr::value(credential.data.as_str()),
            )
            .col_expr(passkey::Column::BackedUp, Expr::value(backed_up))
            .col_expr(passkey::Column::LastUsedAt, Expr::value(Some(at)))
            .filter(passkey::Column::Id.eq(id.as_uuid()))
            .filter(passkey::Column::Counter.eq(i64::from(seen)))
            .exec(self.db.connection())
            .await
            .port()?;
        Ok(updated.rows_affected == 1)
    }

    async fn begin_ceremony(
        &self,
        token: &TokenHash,
        kind: CeremonyKind,
        user: Option<UserId>,
        state: &CeremonyState,
        expires_at: OffsetDateTime,
    ) -> Result<(), PortError> {
        let row = ceremony::ActiveModel {
            token_hash: ActiveValue::Set(token.as_str().to_owned()),
            kind: ActiveValue::Set(kind.as_str().to_owned()),
            user_id: ActiveValue::Set(user.map(|u| u.as_uuid())),
            state: ActiveValue::Set(state.0.clone()),
            expires_at: ActiveValue::Set(micros(expires_at)),
        };
        ceremony::Entity::insert(row)
            .exec_without_returning(self.db.connection())
            .await
            .port()?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        token: &TokenHash,
        kind: CeremonyKind,
        now: OffsetDateTime,
    ) -> Result<Option<(Option<UserId>, CeremonyState)>, PortError> {
        // One statement spends it: of two requests with one token, one
        // gets the row.
        let rows = ceremony::Entity::delete_many()
            .filter(ceremony::Column::TokenHash.eq(token.as_str()))
            .filter(ceremony::Column::Kind.eq(kind.as_str()))
            .filter(ceremony::Column::ExpiresAt.gt(micros(now)))
            .exec_with_returning(self.db.connection())
            .await
            .port()?;
        Ok(rows
            .into_iter()
            .next()
            .map(|row| (row.user_id.map(UserId::from_uuid), CeremonyState(row.state))))
    }

    async fn purge_ceremonies(&self, now: OffsetDateTime) -> Result<u64, PortError> {
        let deleted = ceremony::Entity::delete_many()
            .filter(ceremony::Column::ExpiresAt.lte(micros(now)))
            .exec(self.db.connection())
            .await
            .port()?;
        Ok(deleted.rows_affected)
    }
}
