//! The `webhook_deliveries` table. One event's delivery to one endpoint,
//! added by a trigger on `audit_events` (see the migration).

use sea_orm::entity::prelude::*;

/// A row of `webhook_deliveries`; times are microseconds since the epoch,
/// 0 meaning "not yet" (see [`crate::entities`]).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub status: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: i64,
    pub delivered_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
