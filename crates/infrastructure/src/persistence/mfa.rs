//! [`MfaRepository`] in `user_totp`, `mfa_recovery_codes` and
//! `mfa_challenges`. Times are microseconds since the Unix epoch, 0
//! meaning "not yet" (see the migration).

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, Func, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, DeriveIden, TransactionTrait};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AuditEvent, MfaStatus, PasswordHash, PendingLogin, SealedSecret, SessionId, StoredTotp,
    TokenHash, UserId,
};
use userhub_domain::ports::MfaRepository;
use uuid::Uuid;

use super::{Database, DbResultExt, audit, delete_older, delete_where, micros};
use crate::entities::{session, user};

#[derive(DeriveIden, Clone, Copy)]
enum UserTotp {
    Table,
    UserId,
    Secret,
    Enabled,
    LastStep,
    UpdatedAt,
    EnabledAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MfaRecoveryCodes {
    Table,
    UserId,
    CodeHash,
    UsedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MfaChallenges {
    Table,
    TokenHash,
    UserId,
    PasswordHash,
    Federated,
    ExpiresAt,
    Attempts,
    SpentAt,
}

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
    let old = delete_where(MfaRecoveryCodes::Table, MfaRecoveryCodes::UserId, user);
    txn.execute(&old).await.port()?;
    if codes.is_empty() {
        return Ok(());
    }
    let mut insert = Query::insert();
    insert.into_table(MfaRecoveryCodes::Table).columns([
        MfaRecoveryCodes::UserId,
        MfaRecoveryCodes::CodeHash,
        MfaRecoveryCodes::UsedAt,
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
        .from(UserTotp::Table)
        .and_where(Expr::col(UserTotp::UserId).eq(user))
        .and_where(Expr::col(UserTotp::Enabled).eq(true))
        .to_owned();
    Expr::exists(on)
}

#[async_trait]
impl MfaRepository for SeaOrmMfaRepository {
    async fn status(&self, user: UserId) -> Result<MfaStatus, PortError> {
        let user = user.as_uuid();
        let left = Query::select()
            .expr(Func::count(Expr::col(MfaRecoveryCodes::CodeHash)))
            .from(MfaRecoveryCodes::Table)
            .and_where(Expr::col(MfaRecoveryCodes::UserId).eq(user))
            .and_where(Expr::col(MfaRecoveryCodes::UsedAt).eq(0))
            .to_owned();
        let select = Query::select()
            .expr_as(is_on(user), "totp")
            .expr_as(Expr::SubQuery(None, Box::new(left.into())), "codes_left")
            .to_owned();
        let row = self.db.connection().query_one(&select).await.port()?;
        let Some(row) = row else {
            return Ok(MfaStatus::default());
        };
        let totp: bool = row.try_get("", "totp").port()?;
        let left: i64 = row.try_get("", "codes_left").port()?;
        Ok(MfaStatus {
            totp,
            recovery_codes_left: u32::try_from(left).unwrap_or_default(),
        })
    }

    async fn secret(&self, user: UserId) -> Result<Option<StoredTotp>, PortError> {
        let select = Query::select()
            .columns([UserTotp::Secret, UserTotp::Enabled])
            .from(UserTotp::Table)
            .and_where(Expr::col(UserTotp::UserId).eq(user.as_uuid()))
            .to_owned();
        let row = self.db.connection().query_one(&select).await.port()?;
        row.map(|row| {
            Ok(StoredTotp {
                sealed: SealedSecret(row.try_get("", "secret").port()?),
                enabled: row.try_get("", "enabled").port()?,
            })
        })
        .transpose()
    }

    async fn set_pending(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        now: OffsetDateTime,
    ) -> Result<bool, PortError> {
        let row = |column| Expr::col((UserTotp::Table, column));
        // A pending secret is replaced; one that is on is left alone.
        let upsert = Query::insert()
            .into_table(UserTotp::Table)
            .columns([
                UserTotp::UserId,
                UserTotp::Secret,
                UserTotp::Enabled,
                UserTotp::LastStep,
                UserTotp::UpdatedAt,
            ])
            .values_panic([
                user.as_uuid().into(),
                sealed.0.clone().into(),
                false.into(),
                0_i64.into(),
                micros(now).into(),
            ])
            .on_conflict(
                OnConflict::column(UserTotp::UserId)
                    .value(UserTotp::Secret, sealed.0.clone())
                    .value(UserTotp::LastStep, 0_i64)
                    .value(UserTotp::UpdatedAt, micros(now))
                    .action_and_where(row(UserTotp::Enabled).eq(false))
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
            .table(UserTotp::Table)
            .value(UserTotp::Enabled, true)
            .value(UserTotp::LastStep, step)
            .value(UserTotp::UpdatedAt, micros(now))
            .value(UserTotp::EnabledAt, micros(now))
            .and_where(Expr::col(UserTotp::UserId).eq(user.as_uuid()))
            .and_where(Expr::col(UserTotp::Enabled).eq(false))
            .and_where(Expr::col(UserTotp::Secret).eq(sealed.0.clone()))
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
            .table(UserTotp::Table)
            .value(UserTotp::LastStep, step)
            .and_where(Expr::col(UserTotp::UserId).eq(user.as_uuid()))
            .and_where(Expr::col(UserTotp::Enabled).eq(true))
            .and_where(Expr::col(UserTotp::LastStep).lt(step))
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
            .table(MfaRecoveryCodes::Table)
            .value(MfaRecoveryCodes::UsedAt, micros(now))
            .and_where(Expr::col(MfaRecoveryCodes::UserId).eq(user))
            .and_where(Expr::col(MfaRecoveryCodes::CodeHash).eq(code.as_str()))
            .and_where(Expr::col(MfaRecoveryCodes::UsedAt).eq(0))
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
            .from_table(UserTotp::Table)
            .and_where(Expr::col(UserTotp::UserId).eq(user.as_uuid()))
            .and_where(Expr::col(UserTotp::Enabled).eq(true))
            .to_owned();
        if let Some(step) = step {
            off.and_where(Expr::col(UserTotp::LastStep).lt(step));
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
            .table(UserTotp::Table)
            .value(UserTotp::UpdatedAt, micros(now))
            .and_where(Expr::col(UserTotp::UserId).eq(user.as_uuid()))
            .and_where(Expr::col(UserTotp::Enabled).eq(true))
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
            .into_table(MfaChallenges::Table)
            .columns([
                MfaChallenges::TokenHash,
                MfaChallenges::UserId,
                MfaChallenges::PasswordHash,
                MfaChallenges::Federated,
                MfaChallenges::ExpiresAt,
                MfaChallenges::Attempts,
                MfaChallenges::SpentAt,
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
            .table(MfaChallenges::Table)
            .value(
                MfaChallenges::Attempts,
                Expr::col(MfaChallenges::Attempts).add(1),
            )
            .and_where(Expr::col(MfaChallenges::TokenHash).eq(token.as_str()))
            .and_where(Expr::col(MfaChallenges::SpentAt).eq(0))
            .and_where(Expr::col(MfaChallenges::ExpiresAt).gt(micros(now)))
            .and_where(Expr::col(MfaChallenges::Attempts).lt(i64::from(max_attempts)))
            .returning(Query::returning().columns([
                MfaChallenges::UserId,
                MfaChallenges::PasswordHash,
                MfaChallenges::Federated,
            ]))
            .to_owned();
        let row = self.db.connection().query_one(&attempt).await.port()?;
        row.map(|row| {
            let hash: String = row.try_get("", "password_hash").port()?;
            Ok(PendingLogin {
                user: UserId::from_uuid(row.try_get("", "user_id").port()?),
                password_hash: PasswordHash::new(hash),
                federated: row.try_get("", "federated").port()?,
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
            .table(MfaChallenges::Table)
            .value(MfaChallenges::SpentAt, micros(now))
            .and_where(Expr::col(MfaChallenges::TokenHash).eq(token.as_str()))
            .and_where(Expr::col(MfaChallenges::SpentAt).eq(0))
            .to_owned();
        let done = self.db.connection().execute(&spend).await.port()?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        let old = delete_older(
            MfaChallenges::Table,
            MfaChallenges::ExpiresAt,
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
        .from_table(UserTotp::Table)
        .and_where(Expr::col(UserTotp::UserId).eq(user))
        .and_where(Expr::col(UserTotp::Enabled).eq(true))
        .and_where(Expr::col(UserTotp::EnabledAt).gte(since))
        .to_owned();
    let removed = conn.execute(&on_since).await?.rows_affected() == 1;
    if removed {
        conn.execute(&delete_where(
            MfaRecoveryCodes::Table,
            MfaRecoveryCodes::UserId,
            user,
        ))
        .await?;
    }
    let pending_since = Query::delete()
        .from_table(UserTotp::Table)
        .and_where(Expr::col(UserTotp::UserId).eq(user))
        .and_where(Expr::col(UserTotp::Enabled).eq(false))
        .and_where(Expr::col(UserTotp::UpdatedAt).gte(since))
        .to_owned();
    conn.execute(&pending_since).await?;
    Ok(removed)
}
