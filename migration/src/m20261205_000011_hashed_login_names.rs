//! Failed-login counts are now keyed by a keyed hash of the login name as
//! typed, never the name itself (a password typed into the name field
//! must not be stored readable). Counts kept under plain names are deleted:
//! they could not be found again, and they hold what must not be kept.
//! Locks in force at the upgrade are lifted with them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DELETE FROM login_failures").await?;
        db.execute_unprepared("DELETE FROM login_name_failures")
            .await?;
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Nothing to restore: the plain names are gone for good.
        Ok(())
    }
}
