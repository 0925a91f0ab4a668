//! Addresses reserved for the account an email change took them from, so
//! that nobody squats an address its owner may still take back.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use time::OffsetDateTime;
use uuid::Uuid;

use super::micros;
use crate::entities::email_reservation::{ActiveModel, Column, Entity};

/// Reserves `email` for `user` from `now` until `until` (a later change
/// away from the same address renews it).
pub(super) async fn reserve(
    conn: &impl ConnectionTrait,
    user: Uuid,
    email: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<(), DbErr> {
    let row = ActiveModel {
        email: ActiveValue::Set(email.to_owned()),
        user_id: ActiveValue::Set(user),
        created_at: ActiveValue::Set(micros(now)),
        expires_at: ActiveValue::Set(micros(until)),
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::Email, Column::UserId])
                .update_columns([Column::CreatedAt, Column::ExpiresAt])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Whether `email` is reserved at `now` for an account other than `user`.
/// Called after the write that gives `user` the address, in its
/// transaction: a change that reserves the address concurrently either
/// committed before (and is seen here) or waits on the address's unique
/// index until this transaction ends.
pub(super) async fn held_by_another(
    conn: &impl ConnectionTrait,
    email: &str,
    user: Uuid,
    now: OffsetDateTime,
) -> Result<bool, DbErr> {
    let held = Entity::find()
        .filter(Column::Email.eq(email))
        .filter(Column::UserId.ne(user))
        .filter(Column::ExpiresAt.gt(micros(now)))
        .one(conn)
        .await?;
    Ok(held.is_some())
}

/// Ends `user`'s reservations of `email` and of every address replaced
/// at or after `since` (microseconds): a revert gives the address back and
/// voids the later changes with their links.
pub(super) async fn release(
    conn: &impl ConnectionTrait,
    user: Uuid,
    email: &str,
    since: i64,
) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::UserId.eq(user))
        .filter(
            sea_orm::Condition::any()
                .add(Column::Email.eq(email))
                .add(Column::CreatedAt.gte(since)),
        )
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes reservations that ended before `before`; returns how many.
pub(super) async fn purge(
    conn: &impl ConnectionTrait,
    before: OffsetDateTime,
) -> Result<u64, DbErr> {
    let done = Entity::delete_many()
        .filter(Column::ExpiresAt.lt(micros(before)))
        .exec(conn)
        .await?;
    Ok(done.rows_affected)
}
