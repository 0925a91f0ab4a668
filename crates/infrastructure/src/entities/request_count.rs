//! The `request_counts` table. Requests per key and fixed window, for limits shared by every instance.

use sea_orm::entity::prelude::*;

/// A row of `request_counts`; times are microseconds since the epoch
/// (see [`crate::entities`]).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "request_counts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub window_start: i64,
    pub hits: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
