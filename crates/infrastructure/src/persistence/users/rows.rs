//! A user as a row, the write that bumps its version, and the unique
//! constraints a write can break.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, DbErr, EntityTrait};
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::model::{Email, FullName, PasswordHash, User, UserId, Username};

use crate::entities::user;

pub(in crate::persistence) fn active_model(u: &User) -> user::ActiveModel {
    user::ActiveModel {
        id: Set(u.id.as_uuid()),
        email: Set(u.email.as_str().to_owned()),
        username: Set(u.username.as_str().to_owned()),
        full_name: Set(u.full_name.as_ref().map(|n| n.as_str().to_owned())),
        password_hash: Set(u.password_hash.as_str().to_owned()),
        is_active: Set(u.is_active),
        is_superuser: Set(u.is_superuser),
        is_verified: Set(u.is_verified),
        created_at: Set(u.created_at),
        updated_at: Set(u.updated_at),
        last_login_at: Set(u.last_login_at),
        version: Set(i64::try_from(u.version).unwrap_or(i64::MAX)),
    }
}

/// A write of user rows that also moves `updated_at` to `at` and bumps the
/// version (the `ETag`): every change of a user's own fields goes through it.
pub(in crate::persistence) fn user_write(at: OffsetDateTime) -> sea_orm::UpdateMany<user::Entity> {
    user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::value(at))
        .col_expr(
            user::Column::Version,
            Expr::col(user::Column::Version).add(1),
        )
}

/// Rebuilds a domain user from a row; a row that breaks the domain's rules
/// is a storage fault, not a client error.
pub(in crate::persistence) fn to_domain(row: user::Model) -> Result<User, PortError> {
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
        is_verified: row.is_verified,
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_login_at: row.last_login_at,
        version: u64::try_from(row.version).map_err(|_| corrupt("version"))?,
    })
}

/// Which unique index refused a row.
pub(in crate::persistence) enum Unique {
    Email,
    Username,
}

/// The unique index behind a refusal: PostgreSQL names the violated
/// index; SQLite names only its column, as `users.<column>`.
pub(in crate::persistence) fn unique_violation(err: &DbErr) -> Option<Unique> {
    match super::super::violated_unique(err)?.as_str() {
        "uq_users_email" | "users.email" => Some(Unique::Email),
        "uq_users_username" | "users.username" => Some(Unique::Username),
        _ => None,
    }
}
