//! [`IdentityRepository`] in `user_identities` and `oauth_spent_states`.
//! Times are microseconds since the Unix epoch (see the migration).

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{AuditEvent, LinkedIdentity, ProviderIdentity, User, UserId};
use userhub_domain::ports::{
    IdentityRepository, LinkIdentityError, NewIdentityUserError, Unlinked,
};
use uuid::Uuid;

use super::users::rows::{Unique, active_model, unique_violation};
use super::{
    Database, DbResultExt, audit, delete_older, from_micros, micros, port_error, violated_unique,
};
use crate::entities::{oauth_spent_state, user, user_identity};

/// Which of the table's two keys refused a row.
#[derive(Debug, PartialEq, Eq)]
enum Taken {
    /// (provider, subject): the identity is linked.
    Identity,
    /// (user, provider): the user has an identity there.
    UserProvider,
}

/// The key behind a unique violation on `user_identities`: PostgreSQL
/// names the constraint, SQLite its columns.
fn taken(err: &DbErr) -> Option<Taken> {
    match violated_unique(err)?.as_str() {
        "pk_user_identities"
        | "user_identities_pkey"
        | "user_identities.provider, user_identities.subject" => Some(Taken::Identity),
        "uq_user_identities_user_provider"
        | "user_identities.user_id, user_identities.provider" => Some(Taken::UserProvider),
        _ => None,
    }
}

/// Linked identities on this database.
#[derive(Clone, Debug)]
pub struct SeaOrmIdentityRepository {
    db: Database,
}

impl SeaOrmIdentityRepository {
    /// A repository on this database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

/// The columns of a new row, in the order the inserts give them.
const COLUMNS: [user_identity::Column; 5] = [
    user_identity::Column::Provider,
    user_identity::Column::Subject,
    user_identity::Column::UserId,
    user_identity::Column::Email,
    user_identity::Column::LinkedAt,
];

fn insert_identity(
    user: Uuid,
    identity: &ProviderIdentity,
    now: OffsetDateTime,
) -> sea_orm::sea_query::InsertStatement {
    Query::insert()
        .into_table(user_identity::Entity)
        .columns(COLUMNS)
        .values_panic([
            identity.provider.clone().into(),
            identity.subject.clone().into(),
            user.into(),
            identity.email.clone().into(),
            micros(now).into(),
        ])
        .to_owned()
}

#[async_trait]
impl IdentityRepository for SeaOrmIdentityRepository {
    async fn find_user(&self, provider: &str, subject: &str) -> Result<Option<UserId>, PortError> {
        let select = Query::select()
            .column(user_identity::Column::UserId)
            .from(user_identity::Entity)
            .and_where(Expr::col(user_identity::Column::Provider).eq(provider))
            .and_where(Expr::col(user_identity::Column::Subject).eq(subject))
            .to_owned();
        let row = self.db.connection().query_one(&select).await.port()?;
        row.map(|row| row.try_get::<Uuid>("", "user_id").map(UserId::from_uuid))
            .transpose()
            .port()
    }

    async fn create_user(
        &self,
        u: &User,
        identity: &ProviderIdentity,
        events: &[AuditEvent],
    ) -> Result<(), NewIdentityUserError> {
        let txn = self.db.connection().begin().await.port()?;
        user::Entity::insert(active_model(u))
            .exec_without_returning(&txn)
            .await
            .map_err(|err| match unique_violation(&err) {
                Some(Unique::Email) => NewIdentityUserError::EmailTaken,
                Some(Unique::Username) => NewIdentityUserError::UsernameTaken,
                None => NewIdentityUserError::Port(port_error(err)),
            })?;
        if super::reservations::held_by_another(
            &txn,
            u.email.as_str(),
            u.id.as_uuid(),
            u.created_at,
        )
        .await
        .port()?
        {
            return Err(NewIdentityUserError::EmailTaken);
        }
        txn.execute(&insert_identity(u.id.as_uuid(), identity, u.created_at))
            .await
            .map_err(|err| match taken(&err) {
                Some(_) => NewIdentityUserError::IdentityTaken,
                None => NewIdentityUserError::Port(port_error(err)),
            })?;
        for event in events {
            audit::write(&txn, event).await.port()?;
        }
        txn.commit().await.port()?;
        Ok(())
    }

    async fn link(
        &self,
        user_id: UserId,
        identity: &ProviderIdentity,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), LinkIdentityError> {
        // One statement inserts the row only while the user is active: no
        // read before the write, so SQLite's writer lock is taken at once.
        let active = Query::select()
            .expr(Expr::val(identity.provider.clone()))
            .expr(Expr::val(identity.subject.clone()))
            .column(user::Column::Id)
            .expr(Expr::val(identity.email.clone()))
            .expr(Expr::val(micros(now)))
            .from(user::Entity)
            .and_where(user::Column::Id.eq(user_id.as_uuid()))
            .and_where(user::Column::IsActive.eq(true))
            .to_owned();
        let insert = Query::insert()
            .into_table(user_identity::Entity)
            .columns(COLUMNS)
            .select_from(active)
            .map_err(PortError::unexpected)?
            .to_owned();
        let txn = self.db.connection().begin().await.port()?;
        match txn.execute(&insert).await {
            Ok(done) if done.rows_affected() == 1 => {}
            Ok(_) => return Err(LinkIdentityError::Inactive),
            Err(err) => {
                let Some(why) = taken(&err) else {
                    return Err(LinkIdentityError::Port(port_error(err)));
                };
                drop(txn);
                // Both keys may be violated at once, and the databases name
                // different ones first: the identity's owner decides.
                return Err(
                    match self
                        .find_user(&identity.provider, &identity.subject)
                        .await?
                    {
                        Some(owner) => LinkIdentityError::LinkedTo(owner),
                        None if why == Taken::UserProvider => LinkIdentityError::ProviderLinked,
                        // Unlinked since: a retry may link it.
                        None => LinkIdentityError::Port(port_error(err)),
                    },
                );
            }
        }
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(())
    }

    async fn list(&self, user: UserId) -> Result<Vec<LinkedIdentity>, PortError> {
        let rows = user_identity::Entity::find()
            .filter(user_identity::Column::UserId.eq(user.as_uuid()))
            .order_by_asc(user_identity::Column::LinkedAt)
            .order_by_asc(user_identity::Column::Provider)
            .all(self.db.connection())
            .await
            .port()?;
        rows.into_iter()
            .map(|row| {
                Ok(LinkedIdentity {
                    provider: row.provider,
                    subject: row.subject,
                    email: row.email,
                    linked_at: from_micros(row.linked_at)
                        .ok_or_else(|| PortError::unexpected("linked_at out of range"))?,
                })
            })
            .collect()
    }

    async fn unlink(
        &self,
        user_id: UserId,
        provider: &str,
        event: &AuditEvent,
    ) -> Result<Unlinked, PortError> {
        let user_id = user_id.as_uuid();
        let txn = self.db.connection().begin().await.port()?;
        // Two unlinks of the same user's last two ways in must not both
        // pass the check below: on PostgreSQL the user row serialises
        // them. SQLite has one writer, and a read first would only make
        // the second one fail to take the writer lock.
        super::passkeys::hold_user(&txn, UserId::from_uuid(user_id)).await?;
        let delete = Query::delete()
            .from_table(user_identity::Entity)
            .and_where(Expr::col(user_identity::Column::UserId).eq(user_id))
            .and_where(Expr::col(user_identity::Column::Provider).eq(provider))
            .and_where(super::passkeys::keeps_a_way_in(
                user_id,
                &super::passkeys::Leaving::Identity(provider),
            ))
            .to_owned();
        if txn.execute(&delete).await.port()?.rows_affected() == 0 {
            let linked = Query::select()
                .expr(Expr::val(1))
                .from(user_identity::Entity)
                .and_where(Expr::col(user_identity::Column::UserId).eq(user_id))
                .and_where(Expr::col(user_identity::Column::Provider).eq(provider))
                .to_owned();
            return Ok(if txn.query_one(&linked).await.port()?.is_some() {
                Unlinked::LastMethod
            } else {
                Unlinked::NotLinked
            });
        }
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(Unlinked::Done)
    }

    async fn spend_state(&self, id: &str, expires_at: OffsetDateTime) -> Result<bool, PortError> {
        let insert = Query::insert()
            .into_table(oauth_spent_state::Entity)
            .columns([
                oauth_spent_state::Column::Id,
                oauth_spent_state::Column::ExpiresAt,
            ])
            .values_panic([id.into(), micros(expires_at).into()])
            .on_conflict(
                OnConflict::column(oauth_spent_state::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        let done = self.db.connection().execute(&insert).await.port()?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge(&self, now: OffsetDateTime) -> Result<u64, PortError> {
        let delete = delete_older(
            oauth_spent_state::Entity,
            oauth_spent_state::Column::ExpiresAt,
            micros(now),
        );
        Ok(self
            .db
            .connection()
            .execute(&delete)
            .await
            .port()?
            .rows_affected())
    }
}

/// Unlinks every identity of `user` linked at or after `since`
/// (microseconds), in the caller's transaction; returns their providers.
pub(super) async fn unlink_since(
    conn: &impl ConnectionTrait,
    user: uuid::Uuid,
    since: i64,
) -> Result<Vec<String>, DbErr> {
    let later = |q: &mut sea_orm::sea_query::SelectStatement| {
        q.and_where(Expr::col(user_identity::Column::UserId).eq(user))
            .and_where(Expr::col(user_identity::Column::LinkedAt).gte(since));
    };
    let mut select = Query::select();
    select
        .column(user_identity::Column::Provider)
        .from(user_identity::Entity)
        .order_by(user_identity::Column::Provider, Order::Asc);
    later(&mut select);
    let providers = conn
        .query_all(&select)
        .await?
        .into_iter()
        .map(|row| row.try_get::<String>("", "provider"))
        .collect::<Result<Vec<_>, _>>()?;
    let delete = Query::delete()
        .from_table(user_identity::Entity)
        .and_where(Expr::col(user_identity::Column::UserId).eq(user))
        .and_where(Expr::col(user_identity::Column::LinkedAt).gte(since))
        .to_owned();
    conn.execute(&delete).await?;
    Ok(providers)
}

/// Unlinks `(provider, subject)` from `user`, in the caller's transaction;
/// whether it was linked to them.
pub(super) async fn unlink_subject(
    conn: &impl ConnectionTrait,
    user: uuid::Uuid,
    provider: &str,
    subject: &str,
) -> Result<bool, DbErr> {
    let delete = Query::delete()
        .from_table(user_identity::Entity)
        .and_where(Expr::col(user_identity::Column::UserId).eq(user))
        .and_where(Expr::col(user_identity::Column::Provider).eq(provider))
        .and_where(Expr::col(user_identity::Column::Subject).eq(subject))
        .to_owned();
    Ok(conn.execute(&delete).await?.rows_affected() == 1)
}
