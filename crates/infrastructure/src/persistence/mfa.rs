//! [`MfaRepository`] in `user_totp`, `mfa_recovery_codes` and
//! `mfa_challenges`. Times are microseconds since the Unix epoch, 0
//! meaning "not yet" (see the migration).

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, Func, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult,
    TransactionTrait,
};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AuditEvent, MfaStatus, PasswordHash, PendingLogin, SealedSecret, SessionId, StoredTotp,
    TokenHash, UserId,
};
use userhub_domain::ports::MfaRepository;
use uuid::Uuid;

use super::{Database, DbResultExt, audit, delete_older, delete_where, micros};
use crate::entities::{mfa_challenge, mfa_recovery_code, session, user, user_totp};

/// Second factors on this database.
#[derive(Clone, Debug)]
pub struct SeaOrmMfaRepository {
    db: Database,
}

impl SeaOrmMfaRepository {
    /// A repository on this database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    async fn begin(&self) -> Result<DatabaseTransaction, PortError> {
        self.db.connection().begin().await.port()
    }
}

/// Stores `codes` as the user's unused recovery codes, replacing any.
async fn store_codes(
    txn: &DatabaseTransaction,
    user: Uuid,
    codes: &[TokenHash],
) -> Result<(), PortError> {
    let old = delete_where(
        mfa_recovery_code::Entity,
        mfa_recovery_code::Column::UserId,
        user,
    );
    txn.execute(&old).await.port()?;
    if codes.is_empty() {
        return Ok(());
    }
    let mut insert = Query::insert();
    insert.into_table(mfa_recovery_code::Entity).columns([
        mfa_recovery_code::Column::UserId,
        mfa_recovery_code::Column::CodeHash,
        mfa_recovery_code::Column::UsedAt,
    ]);
    for code in codes {
        insert.values_panic([user.into(), code.as_str().into(), 0_i64.into()]);
    }
    txn.execute(&insert).await.port()?;
    Ok(())
}

/// Whether TOTP is on for `user`, read in `txn`.
fn is_on(user: Uuid) -> Expr {
    let on = Query::select()
        .expr(Expr::val(1))
        .from(user_totp::Entity)
        .and_where(Expr::col(user_totp::Column::UserId).eq(user))
        .and_where(Expr::col(user_totp::Column::Enabled).eq(true))
        .to_owned();
    Expr::exists(on)
}

/// What [`MfaRepository::status`] reads, in one row.
#[derive(FromQueryResult)]
struct Status {
    totp: bool,
    codes_left: i64,
}

#[async_trait]
impl MfaRepository for SeaOrmMfaRepository {
    async fn status(&self, user: UserId) -> Result<MfaStatus, PortError> {
        let user = user.as_uuid();
        let left = Query::select()
            .expr(Func::count(Expr::col(mfa_recovery_code::Column::CodeHash)))
            .from(mfa_recovery_code::Entity)
            .and_where(Expr::col(mfa_recovery_code::Column::UserId).eq(user))
            .and_where(Expr::col(mfa_recovery_code::Column::UsedAt).eq(0))
            .to_owned();
        let select = Query::select()
            .expr_as(is_on(user), "totp")
            .expr_as(Expr::SubQuery(None, Box::new(left.into())), "codes_left")
            .to_owned();
        let row = self.db.connection().query_one(&select).await.port()?;
        let Some(row) = row else {
            return Ok(MfaStatus::default());
        };
        let status = Status::from_query_result(&row, "").port()?;
        Ok(MfaStatus {
            totp: status.totp,
            recovery_codes_left: u32::try_from(status.codes_left).unwrap_or_default(),
        })
    }

    async fn secret(&self, user: UserId) -> Result<Option<StoredTotp>, PortError> {
        let row = user_totp::Entity::find_by_id(user.as_uuid())
            .one(self.db.connection())
            .await
            .port()?;
        Ok(row.map(|row| StoredTotp {
            sealed: SealedSecret(row.secret),
            enabled: row.enabled,
        }))
    }

    async fn set_pending(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        now: OffsetDateTime,
    ) -> Result<bool, PortError> {
        let row = |column| Expr::col((user_totp::Entity, column));
        // A pending secret is replaced; one that is on is left alone.
        let upsert = Query::insert()
            .into_table(user_totp::Entity)
            .columns([
                user_totp::Column::UserId,
                user_totp::Column::Secret,
                user_totp::Column::Enabled,
                user_totp::Column::LastStep,
                user_totp::Column::UpdatedAt,
            ])
            .values_panic([
                user.as_uuid().into(),
                sealed.0.clone().into(),
                false.into(),
                0_i64.into(),
                micros(now).into(),
            ])
            .on_conflict(
                OnConflict::column(user_totp::Column::UserId)
                    .value(user_totp::Column::Secret, sealed.0.clone())
                    .value(user_totp::Column::LastStep, 0_i64)
                    .value(user_totp::Column::UpdatedAt, micros(now))
                    .action_and_where(row(user_totp::Column::Enabled).eq(false))
                    .to_owned(),
            )
            .to_owned();
        let done = self.db.connection().execute(&upsert).await.port()?;
        Ok(done.rows_affected() == 1)
    }

    async fn enable(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        step: i64,
        recovery_codes: &[TokenHash],
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError> {
        let txn = self.begin().await?;
        let on = Query::update()
            .table(user_totp::Entity)
            .value(user_totp::Column::Enabled, true)
            .value(user_totp::Column::LastStep, step)
            .value(user_totp::Column::UpdatedAt, micros(now))
            .value(user_totp::Column::EnabledAt, micros(now))
            .and_where(Expr::col(user_totp::Column::UserId).eq(user.as_uuid()))
            .and_where(Expr::col(user_totp::Column::Enabled).eq(false))
            .and_where(Expr::col(user_totp::Column::Secret).eq(sealed.0.clone()))
            .to_owned();
        if txn.execute(&on).await.port()?.rows_affected() != 1 {
            return Ok(false);
        }
        store_codes(&txn, user.as_uuid(), recovery_codes).await?;
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(true)
    }

    async fn spend_step(&self, user: UserId, step: i64) -> Result<bool, PortError> {
        let spend = Query::update()
            .table(user_totp::Entity)
            .value(user_totp::Column::LastStep, step)
            .and_where(Expr::col(user_totp::Column::UserId).eq(user.as_uuid()))
            .and_where(Expr::col(user_totp::Column::Enabled).eq(true))
            .and_where(Expr::col(user_totp::Column::LastStep).lt(step))
            .to_owned();
        let done = self.db.connection().execute(&spend).await.port()?;
        Ok(done.rows_affected() == 1)
    }

    async fn spend_recovery_code(
        &self,
        user: UserId,
        code: &TokenHash,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError> {
        let user = user.as_uuid();
        let spend = Query::update()
            .table(mfa_recovery_code::Entity)
            .value(mfa_recovery_code::Column::UsedAt, micros(now))
            .and_where(Expr::col(mfa_recovery_code::Column::UserId).eq(user))
            .and_where(Expr::col(mfa_recovery_code::Column::CodeHash).eq(code.as_str()))
            .and_where(Expr::col(mfa_recovery_code::Column::UsedAt).eq(0))
            .and_where(is_on(user))
            .to_owned();
        let txn = self.begin().await?;
        if txn.execute(&spend).await.port()?.rows_affected() != 1 {
            return Ok(false);
        }
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(true)
    }

    async fn disable(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        superuser: Option<UserId>,
        step: Option<i64>,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError> {
        let txn = self.begin().await?;
        let mut off = Query::delete()
            .from_table(user_totp::Entity)
            .and_where(Expr::col(user_totp::Column::UserId).eq(user.as_uuid()))
            .and_where(Expr::col(user_totp::Column::Enabled).eq(true))
            .to_owned();
        if let Some(step) = step {
            off.and_where(Expr::col(user_totp::Column::LastStep).lt(step));
        }
        if let Some(actor) = superuser {
            let still = Query::select()
                .expr(Expr::val(1))
                .from(user::Entity)
                .and_where(user::Column::Id.eq(actor.as_uuid()))
                .and_where(user::Column::IsActive.eq(true))
                .and_where(user::Column::IsSuperuser.eq(true))
                .to_owned();
            off.and_where(Expr::exists(still));
        }
        if txn.execute(&off).await.port()?.rows_affected() != 1 {
            return Ok(false);
        }
        store_codes(&txn, user.as_uuid(), &[]).await?;
        let mut end = Query::update()
            .table(session::Entity)
            .value(session::Column::RevokedAt, now)
            .and_where(Expr::col(session::Column::UserId).eq(user.as_uuid()))
            .and_where(Expr::col(session::Column::RevokedAt).is_null())
            .to_owned();
        if let Some(keep) = keep {
            end.and_where(Expr::col(session::Column::Id).ne(keep.as_uuid()));
        }
        txn.execute(&end).await.port()?;
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(true)
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        recovery_codes: &[TokenHash],
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError> {
        let txn = self.begin().await?;
        // Touching the row both checks that TOTP is on and holds it (on
        // PostgreSQL) against a concurrent disable until the commit.
        let touch = Query::update()
            .table(user_totp::Entity)
            .value(user_totp::Column::UpdatedAt, micros(now))
            .and_where(Expr::col(user_totp::Column::UserId).eq(user.as_uuid()))
            .and_where(Expr::col(user_totp::Column::Enabled).eq(true))
            .to_owned();
        if txn.execute(&touch).await.port()?.rows_affected() != 1 {
            return Ok(false);
        }
        store_codes(&txn, user.as_uuid(), recovery_codes).await?;
        audit::write(&txn, event).await.port()?;
        txn.commit().await.port()?;
        Ok(true)
    }

    async fn create_challenge(
        &self,
        token: &TokenHash,
        login: &PendingLogin,
        expires_at: OffsetDateTime,
    ) -> Result<(), PortError> {
        let insert = Query::insert()
            .into_table(mfa_challenge::Entity)
            .columns([
                mfa_challenge::Column::TokenHash,
                mfa_challenge::Column::UserId,
                mfa_challenge::Column::PasswordHash,
                mfa_challenge::Column::Federated,
                mfa_challenge::Column::ExpiresAt,
                mfa_challenge::Column::Attempts,
                mfa_challenge::Column::SpentAt,
            ])
            .values_panic([
                token.as_str().into(),
                login.user.as_uuid().into(),
                login.password_hash.as_str().into(),
                login.federated.into(),
                micros(expires_at).into(),
                0.into(),
                0_i64.into(),
            ])
            .to_owned();
        self.db.connection().execute(&insert).await.port()?;
        Ok(())
    }

    async fn attempt_challenge(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> Result<Option<PendingLogin>, PortError> {
        let attempt = Query::update()
            .table(mfa_challenge::Entity)
            .value(
                mfa_challenge::Column::Attempts,
                Expr::col(mfa_challenge::Column::Attempts).add(1),
            )
            .and_where(Expr::col(mfa_challenge::Column::TokenHash).eq(token.as_str()))
            .and_where(Expr::col(mfa_challenge::Column::SpentAt).eq(0))
            .and_where(Expr::col(mfa_challenge::Column::ExpiresAt).gt(micros(now)))
            .and_where(Expr::col(mfa_challenge::Column::Attempts).lt(i64::from(max_attempts)))
            .returning_all()
            .to_owned();
        let row = self.db.connection().query_one(&attempt).await.port()?;
        row.map(|row| {
            let challenge = mfa_challenge::Model::from_query_result(&row, "").port()?;
            Ok(PendingLogin {
                user: UserId::from_uuid(challenge.user_id),
                password_hash: PasswordHash::new(challenge.password_hash),
                federated: challenge.federated,
            })
        })
        .transpose()
    }

    async fn spend_challenge(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<bool, PortError> {
        let spend = Query::update()
            .table(mfa_challenge::Entity)
            .value(mfa_challenge::Column::SpentAt, micros(now))
            .and_where(Expr::col(mfa_challenge::Column::TokenHash).eq(token.as_str()))
            .and_where(Expr::col(mfa_challenge::Column::SpentAt).eq(0))
            .to_owned();
        let done = self.db.connection().execute(&spend).await.port()?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        let old = delete_older(
            mfa_challenge::Entity,
            mfa_challenge::Column::ExpiresAt,
            micros(before),
        );
        let done = self.db.connection().execute(&old).await.port()?;
        Ok(done.rows_affected())
    }
}

/// Removes `user`'s second factor if it was turned on (or a pending one
/// set up) at or after `since` (microseconds), with its recovery codes, in
/// the caller's transaction; returns whether a factor that was on went.
pub(super) async fn remove_enabled_since(
    conn: &impl ConnectionTrait,
    user: Uuid,
    since: i64,
) -> Result<bool, sea_orm::DbErr> {
    let on_since = Query::delete()
        .from_table(user_totp::Entity)
        .and_where(Expr::col(user_totp::Column::UserId).eq(user))
        .and_where(Expr::col(user_totp::Column::Enabled).eq(true))
        .and_where(Expr::col(user_totp::Column::EnabledAt).gte(since))
        .to_owned();
    let removed = conn.execute(&on_since).await?.rows_affected() == 1;
    if removed {
        conn.execute(&delete_where(
            mfa_recovery_code::Entity,
            mfa_recovery_code::Column::UserId,
            user,
        ))
        .await?;
    }
    let pending_since = Query::delete()
        .from_table(user_totp::Entity)
        .and_where(Expr::col(user_totp::Column::UserId).eq(user))
        .and_where(Expr::col(user_totp::Column::Enabled).eq(false))
        .and_where(Expr::col(user_totp::Column::UpdatedAt).gte(since))
        .to_owned();
    conn.execute(&pending_since).await?;
    Ok(removed)
}
