//! The `recovery_tokens` table. Reset, verification, revert and undo links, stored by hash; a token is spent once.

use sea_orm::entity::prelude::*;

/// A row of `recovery_tokens`; times are microseconds since the epoch
/// (see [`crate::entities`]).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recovery_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub purpose: String,
    pub user_id: Uuid,
    pub created_at: i64,
    pub expires_at: i64,
    pub spent_at: i64,
    pub email: Option<String>,
    pub target: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
