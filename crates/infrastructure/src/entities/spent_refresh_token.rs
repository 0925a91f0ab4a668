//! The `spent_refresh_tokens` table: hashes of rotated refresh tokens, kept
//! so that presenting one again can be recognised as theft.

use sea_orm::entity::prelude::*;

/// A row of `spent_refresh_tokens`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "spent_refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub session_id: Uuid,
    pub spent_at: TimeDateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
