//! The `login_failures` table. Failed password checks per login name and client network, and their locks.

use sea_orm::entity::prelude::*;

/// A row of `login_failures`; times are microseconds since the epoch
/// (see [`crate::entities`]).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_failures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub login: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub address: String,
    pub failures: i32,
    pub lockouts: i32,
    pub locked_until: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
