//! The `recovery_tokens` table's shared statements: the users' adapter
//! spends a user's tokens in the transaction of a password or email
//! change, the recovery adapter issues and spends them one by one.

use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Expr, ExprTrait, Query, UpdateStatement};
use time::OffsetDateTime;
use uuid::Uuid;

use super::micros;
use crate::entities::recovery_token;

/// Marks live tokens spent; the caller narrows which.
pub(super) fn spend(now: OffsetDateTime) -> UpdateStatement {
    Query::update()
        .table(recovery_token::Entity)
        .value(recovery_token::Column::SpentAt, micros(now))
        .and_where(Expr::col(recovery_token::Column::SpentAt).eq(0))
        .to_owned()
}

/// The purpose stored with a password-reset token.
pub(super) const RESET: &str = "password_reset";
/// The purpose stored with a verification token.
pub(super) const VERIFY: &str = "verify_email";
/// The purpose stored with a token that undoes an email change.
pub(super) const REVERT: &str = "email_changed";
/// The purpose stored with a token that removes a way in someone added.
pub(super) const UNDO: &str = "identity_linked";

/// Spends every live token of `user` with one of these purposes, in the
/// transaction of the change that ends them.
pub(super) async fn spend_tokens(
    conn: &impl ConnectionTrait,
    user: Uuid,
    purposes: &[&str],
    now: OffsetDateTime,
) -> Result<(), sea_orm::DbErr> {
    for purpose in purposes {
        let mine = spend(now)
            .and_where(Expr::col(recovery_token::Column::UserId).eq(user))
            .and_where(Expr::col(recovery_token::Column::Purpose).eq(*purpose))
            .to_owned();
        conn.execute(&mine).await?;
    }
    Ok(())
}

/// The purposes of the tokens an email or password change, or a
/// deactivation, ends.
pub(super) const RESET_TOKENS: &[&str] = &[RESET];
