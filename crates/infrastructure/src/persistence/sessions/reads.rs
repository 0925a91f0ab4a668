//! The authenticating read of every request: the caller's user with
//! whether their session is live, and another user alongside, as one
//! statement per read, or (PostgreSQL) one statement per batch of reads.

use std::sync::OnceLock;

use sea_orm::sea_query::{ArrayType, Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QuerySelect, Select};
use time::OffsetDateTime;
use userhub_domain::model::{SessionId, User, UserId};

use super::super::users::to_domain as user_to_domain;
use crate::entities::{session, user};

/// One authenticating read: the caller's user and session, and another
/// user read alongside (for `GET /api/users/{id}`).
#[derive(Clone, Copy, Debug)]
pub(super) struct AuthRead {
    pub(super) user_id: UserId,
    pub(super) session_id: SessionId,
    pub(super) other: Option<UserId>,
    pub(super) now: OffsetDateTime,
}

/// The caller, authenticated, and the other user if asked for and found.
pub(super) type Authenticated = Option<(User, Option<User>)>;

/// Authenticating reads for many callers in one statement (PostgreSQL):
/// per read `r`, its caller's row with `authenticated` (the caller is
/// active and the session theirs and live), and its other user's row.
/// `ord` numbers the reads from 1.
pub(super) const AUTHENTICATE_MANY: &str = "\
SELECT r.ord, u.*, (u.id = r.uid AND u.is_active AND EXISTS (\
SELECT 1 FROM sessions s WHERE s.id = r.sid AND s.user_id = r.uid \
AND s.revoked_at IS NULL AND s.expires_at > r.at)) AS authenticated \
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[]) \
WITH ORDINALITY AS r(uid, sid, other, at, ord) \
JOIN users u ON u.id IN (r.uid, r.other)";

pub(super) fn authenticate_many_values(keys: &[AuthRead]) -> Vec<sea_orm::Value> {
    let column = |f: &dyn Fn(&AuthRead) -> sea_orm::Value, ty| {
        sea_orm::Value::Array(ty, Some(Box::new(keys.iter().map(f).collect())))
    };
    vec![
        column(&|k| k.user_id.as_uuid().into(), ArrayType::Uuid),
        column(&|k| k.session_id.as_uuid().into(), ArrayType::Uuid),
        // No other user: the caller again, whose row is there anyway.
        column(
            &|k| k.other.unwrap_or(k.user_id).as_uuid().into(),
            ArrayType::Uuid,
        ),
        column(&|k| k.now.into(), ArrayType::TimeDateTimeWithTimeZone),
    ]
}

/// The answers of `keys`, in their order, from rows of users with
/// `authenticated` and (for several reads) `ord`.
pub(super) fn authenticated_rows(
    keys: &[AuthRead],
    rows: Vec<sea_orm::QueryResult>,
) -> Result<Vec<Authenticated>, DbErr> {
    let mut found: Vec<(Option<User>, Option<User>)> = keys.iter().map(|_| (None, None)).collect();
    for row in rows {
        let index = if keys.len() == 1 {
            0
        } else {
            let ord: i64 = row.try_get("", "ord")?;
            usize::try_from(ord - 1)
                .ok()
                .filter(|i| *i < keys.len())
                .ok_or_else(|| DbErr::Custom(format!("no read numbered {ord}")))?
        };
        let authenticated: bool = row.try_get("", "authenticated")?;
        let model = user::Model::from_query_result(&row, "")?;
        let user = user_to_domain(model).map_err(|err| DbErr::Custom(err.to_string()))?;
        let (caller, other) = &mut found[index];
        if keys[index].other == Some(user.id) {
            *other = Some(user.clone());
        }
        if authenticated {
            *caller = Some(user);
        }
    }
    Ok(found
        .into_iter()
        .map(|(caller, other)| caller.map(|caller| (caller, other)))
        .collect())
}

/// The SQL of the single authenticating read on SQLite, built by
/// sea-query once; each read binds only its values (the profile of the
/// authenticated reads spent 7–8 % of the server's CPU building statements).
pub(super) static ACTIVE_USER_AND_SQLITE: OnceLock<String> = OnceLock::new();

/// The same on PostgreSQL, when its reads are not batched.
pub(super) static ACTIVE_USER_AND_POSTGRES: OnceLock<String> = OnceLock::new();

/// `SELECT users.*, <caller authenticated> FROM users WHERE id IN (caller,
/// other)`: the session check rides along with the read, one round trip.
pub(super) fn active_user_and(
    user_id: UserId,
    session_id: SessionId,
    other: UserId,
    now: OffsetDateTime,
) -> Select<user::Entity> {
    let live_session = Query::select()
        .expr(Expr::val(1))
        .from(session::Entity)
        .and_where(session::Column::Id.eq(session_id.as_uuid()))
        .and_where(session::Column::UserId.eq(user_id.as_uuid()))
        .and_where(session::Column::RevokedAt.is_null())
        .and_where(session::Column::ExpiresAt.gt(now))
        .to_owned();
    let authenticated = Expr::col((user::Entity, user::Column::Id))
        .eq(user_id.as_uuid())
        .and(Expr::col((user::Entity, user::Column::IsActive)).eq(true))
        .and(Expr::exists(live_session));
    user::Entity::find()
        .column_as(authenticated, "authenticated")
        .filter(user::Column::Id.is_in([user_id.as_uuid(), other.as_uuid()]))
}

pub(super) fn active_user_and_values(
    user_id: UserId,
    session_id: SessionId,
    other: UserId,
    now: OffsetDateTime,
) -> Vec<sea_orm::Value> {
    vec![
        user_id.as_uuid().into(),
        true.into(),
        1_i32.into(),
        session_id.as_uuid().into(),
        user_id.as_uuid().into(),
        now.into(),
        user_id.as_uuid().into(),
        other.as_uuid().into(),
    ]
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, QueryTrait};

    use super::*;

    /// The prebuilt SQLite read binds its values in the order its builder does.
    #[test]
    fn prebuilt_reads_bind_what_their_builders_bind() {
        let (user_id, session_id, other) = (
            UserId::generate(),
            SessionId::generate(),
            UserId::generate(),
        );
        let now = OffsetDateTime::now_utc();
        let built = active_user_and(user_id, session_id, other, now).build(DbBackend::Sqlite);
        let values = built.values.map(|v| v.0).unwrap_or_default();
        assert_eq!(
            values,
            active_user_and_values(user_id, session_id, other, now)
        );
    }
}
