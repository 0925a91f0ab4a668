//! Login lockout state on `users`, so that every server instance sees it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds a single column per ALTER TABLE.
        for column in [
            ColumnDef::new(Users::FailedLoginCount)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Users::LockoutCount)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Users::LockedUntil)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Users::LockedUntil,
            Users::LockoutCount,
            Users::FailedLoginCount,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    FailedLoginCount,
    LockoutCount,
    LockedUntil,
}
