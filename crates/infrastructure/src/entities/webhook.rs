//! The `webhooks` table. Endpoints subscribed to the audit trail's events.

use sea_orm::entity::prelude::*;

/// A row of `webhooks`; times are microseconds since the epoch, 0 meaning
/// "not yet" (see [`crate::entities`]). The secrets are sealed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub url: String,
    pub events: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_until: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub failing_since: i64,
    pub paused_until: i64,
    pub lease_owner: Option<Uuid>,
    pub lease_until: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
