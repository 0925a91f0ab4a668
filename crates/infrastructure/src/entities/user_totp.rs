//! The `user_totp` table. A user's TOTP secret (sealed) and the last step used.

use sea_orm::entity::prelude::*;

/// A row of `user_totp`; times are microseconds since the epoch
/// (see [`crate::entities`]).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_totp")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub secret: Vec<u8>,
    pub enabled: bool,
    pub last_step: i64,
    pub updated_at: i64,
    pub enabled_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
