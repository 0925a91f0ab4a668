//! Reset, verification and revert tokens (`recovery_tokens`). Times are microseconds since the Unix epoch, 0 meaning
//! "not yet" (see the migration).

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect, TransactionTrait,
};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{
    AuditEvent, AuditKind, Email, MailKind, PasswordHash, TokenHash, UndoTarget, User, UserId,
};
use userhub_domain::ports::{self, RevertOutcome, WayIn};
use uuid::Uuid;

use super::recovery_tokens::{RESET, REVERT, UNDO, VERIFY, spend, spend_tokens};
use super::users::to_domain;
use super::{Database, DbResultExt, audit, delete_older, micros, port_error};
use crate::entities::{passkey, personal_access_token, recovery_token, session, user, webhook};

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
    hash: &TokenHash,
    purpose: &str,
    now: OffsetDateTime,
) -> Result<Option<Spent>, PortError> {
    let live = spend(now)
        .and_where(Expr::col(recovery_token::Column::TokenHash).eq(hash.as_str()))
        .and_where(Expr::col(recovery_token::Column::Purpose).eq(purpose))
        .and_where(Expr::col(recovery_token::Column::ExpiresAt).gt(micros(now)))
        .returning_all()
        .to_owned();
    let Some(row) = txn.query_one(&live).await.port()? else {
        return Ok(None);
    };
    let token = recovery_token::Model::from_query_result(&row, "").port()?;
    Ok(Some(Spent {
        user_id: token.user_id,
        email: token.email.unwrap_or_default(),
        created_at: token.created_at,
    }))
}

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

async fn active_user(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<User>, PortError> {
    let row = user::Entity::find_by_id(id)
        .filter(user::Column::IsActive.eq(true))
        .one(conn)
        .await
        .port()?;
    row.map(to_domain).transpose()
}

/// Ends every live session of `user`, in the transaction of the change
/// that calls for it.
async fn end_sessions(
    txn: &DatabaseTransaction,
    user: Uuid,
    now: OffsetDateTime,
) -> Result<(), PortError> {
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::UserId.eq(user))
        .filter(session::Column::RevokedAt.is_null())
        .exec(txn)
        .await
        .port()?;
    // Taking an account back leaves no long-lived credential behind either.
    personal_access_token::Entity::delete_many()
        .filter(personal_access_token::Column::UserId.eq(user))
        .exec(txn)
        .await
        .port()?;
    Ok(())
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
impl ports::RecoveryTokens for SeaOrmRecoveryTokens {
    async fn issue(
        &self,
        kind: MailKind,
        user: UserId,
        email: &Email,
        hash: &TokenHash,
        target: Option<UndoTarget>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        event: Option<AuditEvent>,
    ) -> Result<(), PortError> {
        // Every link that removes a way in is an undo link; its target says which.
        let purpose = match kind {
            MailKind::PasskeyAdded | MailKind::WebhookCreated | MailKind::WebhookRedirected => UNDO,
            other => other.as_str(),
        };
        let txn = self.db.connection().begin().await.port()?;
        // Each revert or undo link undoes its own change: a later change
        // must not kill the link that undoes an earlier one.
        if purpose != REVERT && purpose != UNDO {
            spend_tokens(&txn, user.as_uuid(), &[purpose], now)
                .await
                .port()?;
        }
        let insert = Query::insert()
            .into_table(recovery_token::Entity)
            .columns([
                recovery_token::Column::TokenHash,
                recovery_token::Column::Purpose,
                recovery_token::Column::UserId,
                recovery_token::Column::Email,
                recovery_token::Column::CreatedAt,
                recovery_token::Column::ExpiresAt,
                recovery_token::Column::SpentAt,
                recovery_token::Column::Target,
            ])
            .values_panic([
                hash.as_str().into(),
                purpose.into(),
                user.as_uuid().into(),
                email.as_str().into(),
                micros(now).into(),
                micros(expires_at).into(),
                0_i64.into(),
                target.as_ref().map(UndoTarget::to_stored).into(),
            ])
            .to_owned();
        txn.execute(&insert).await.port()?;
        if let Some(event) = event {
            audit::write(&txn, &event).await.port()?;
        }
        txn.commit().await.port()
    }

    async fn verify_email(
        &self,
        hash: &TokenHash,
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
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<User>, PortError> {
        let conn = self.db.connection();
        let live = recovery_token::Entity::find()
            .select_only()
            .column(recovery_token::Column::UserId)
            .filter(recovery_token::Column::TokenHash.eq(hash.as_str()))
            .filter(recovery_token::Column::Purpose.eq(RESET))
            .filter(recovery_token::Column::SpentAt.eq(0))
            .filter(recovery_token::Column::ExpiresAt.gt(micros(now)))
            .into_tuple::<Uuid>()
            .one(conn)
            .await
            .port()?;
        match live {
            Some(user_id) => active_user(conn, user_id).await,
            None => Ok(None),
        }
    }

    async fn reset_password(
        &self,
        hash: &TokenHash,
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
        end_sessions(&txn, user_id, now).await?;
        let user = active_user(&txn, user_id).await?;
        write_own(&txn, event, user_id).await?;
        txn.commit().await.port()?;
        Ok(user)
    }

    async fn revert_email(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
        evict: &[WayIn],
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
            .col_expr(user::Column::Email, Expr::value(email.clone()))
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
        let later = spend(now)
            .and_where(Expr::col(recovery_token::Column::UserId).eq(user_id))
            .and_where(Expr::col(recovery_token::Column::Purpose).eq(REVERT))
            .and_where(Expr::col(recovery_token::Column::CreatedAt).gte(created_at))
            .to_owned();
        txn.execute(&later).await.port()?;
        end_sessions(&txn, user_id, now).await?;
        // The ways in of the kinds asked for, added at or after the change.
        let mut removed = Vec::new();
        for kind in evict {
            match kind {
                WayIn::Identity => removed.extend(
                    super::identities::unlink_since(&txn, user_id, created_at)
                        .await
                        .port()?
                        .into_iter()
                        .map(|provider| format!("identity:{provider}")),
                ),
                WayIn::Passkey => {
                    let since =
                        super::from_micros(created_at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
                    let gone = passkey::Entity::delete_many()
                        .filter(passkey::Column::UserId.eq(user_id))
                        .filter(passkey::Column::CreatedAt.gte(since))
                        .exec(&txn)
                        .await
                        .port()?;
                    if gone.rows_affected > 0 {
                        removed.push("passkey".to_owned());
                    }
                }
                WayIn::SecondFactor => {
                    if super::mfa::remove_enabled_since(&txn, user_id, created_at)
                        .await
                        .port()?
                    {
                        removed.push("totp".to_owned());
                    }
                }
            }
        }
        super::reservations::release(&txn, user_id, &email, created_at)
            .await
            .port()?;
        let row = user::Entity::find_by_id(user_id).one(&txn).await.port()?;
        let Some(row) = row else {
            return Ok(RevertOutcome::Invalid);
        };
        let mut event = event.clone().about(UserId::from_uuid(user_id));
        event.details.removed = removed;
        audit::write(&txn, &event).await.port()?;
        txn.commit().await.port()?;
        Ok(RevertOutcome::Reverted(to_domain(row)?))
    }

    async fn undo(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<Option<UndoTarget>, PortError> {
        let txn = self.db.connection().begin().await.port()?;
        let live = spend(now)
            .and_where(Expr::col(recovery_token::Column::TokenHash).eq(hash.as_str()))
            .and_where(Expr::col(recovery_token::Column::Purpose).eq(UNDO))
            .and_where(Expr::col(recovery_token::Column::ExpiresAt).gt(micros(now)))
            .returning_all()
            .to_owned();
        let Some(row) = txn.query_one(&live).await.port()? else {
            return Ok(None);
        };
        let token = recovery_token::Model::from_query_result(&row, "").port()?;
        let user_id = token.user_id;
        let Some(target) = token.target.as_deref().and_then(UndoTarget::parse) else {
            return Err(PortError::unexpected("an undo token without its target"));
        };
        let mut event = event.clone().about(UserId::from_uuid(user_id));
        match &target {
            UndoTarget::Identity { provider, subject } => {
                // Gone already (unlinked by its owner): the sessions still end.
                super::identities::unlink_subject(&txn, user_id, provider, subject)
                    .await
                    .port()?;
                event.details.provider = Some(provider.clone());
            }
            UndoTarget::Passkey { id } => {
                passkey::Entity::delete_many()
                    .filter(passkey::Column::Id.eq(id.as_uuid()))
                    .filter(passkey::Column::UserId.eq(user_id))
                    .exec(&txn)
                    .await
                    .port()?;
                event.kind = AuditKind::PasskeyRemoved;
                event.details.removed = vec![target.removed()];
            }
            UndoTarget::Webhook { id } => {
                // Gone already (deleted by a superuser): the sessions still end.
                webhook::Entity::delete_by_id(id.as_uuid())
                    .exec(&txn)
                    .await
                    .port()?;
                event.kind = AuditKind::WebhookDeleted;
                event.details.webhook_id = Some(*id);
                event.details.removed = vec![target.removed()];
            }
        }
        end_sessions(&txn, user_id, now).await?;
        audit::write(&txn, &event).await.port()?;
        txn.commit().await.port()?;
        Ok(Some(target))
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        let expired = delete_older(
            recovery_token::Entity,
            recovery_token::Column::ExpiresAt,
            micros(before),
        );
        let conn = self.db.connection();
        let done = conn.execute(&expired).await.port()?;
        let released = super::reservations::purge(conn, before).await.port()?;
        Ok(done.rows_affected() + released)
    }
}
