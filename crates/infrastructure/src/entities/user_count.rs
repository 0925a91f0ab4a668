//! The `user_counts` table. Users per (active, superuser), kept exact by triggers for listings' totals.

use sea_orm::entity::prelude::*;

/// A row of `user_counts`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_counts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub is_active: bool,
    #[sea_orm(primary_key, auto_increment = false)]
    pub is_superuser: bool,
    pub n: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
