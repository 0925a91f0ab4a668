//! The `webauthn_ceremonies` table: the server's half of a passkey
//! registration or sign-in under way, found by its token's hash.

use sea_orm::entity::prelude::*;

/// A row of `webauthn_ceremonies`; `kind` is `register` or `login`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webauthn_ceremonies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub state: String,
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
