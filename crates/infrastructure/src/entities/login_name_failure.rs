//! The `login_name_failures` table. Failed password checks per login name and hour, from every address.

use sea_orm::entity::prelude::*;

/// A row of `login_name_failures`; times are microseconds since the epoch
/// (see [`crate::entities`]).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_name_failures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub login: String,
    pub window_start: i64,
    pub failures: i32,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
