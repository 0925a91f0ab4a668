//! The `mfa_challenges` table. Logins waiting for their second factor, stored by the challenge token's hash.

use sea_orm::entity::prelude::*;

/// A row of `mfa_challenges`; times are microseconds since the epoch
/// (see [`crate::entities`]).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mfa_challenges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub user_id: Uuid,
    pub password_hash: String,
    pub expires_at: i64,
    pub attempts: i32,
    pub spent_at: i64,
    pub federated: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
