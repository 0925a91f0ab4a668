//! The `mail_jobs` table. The mail queue: what to send, to whom, and how delivery went.

use sea_orm::entity::prelude::*;

/// A row of `mail_jobs`; times are microseconds since the epoch
/// (see [`crate::entities`]).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: String,
    pub email: String,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub attempts: i32,
    pub completed_at: i64,
    pub failed_at: i64,
    pub last_error: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub user_id: Option<Uuid>,
    pub new_email: Option<String>,
    pub target: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
