//! Request counts per key and fixed window, so that rate limits hold across
//! every server instance when `RATE_LIMIT_STORE=database`. The window start
//! is whole microseconds since the Unix epoch.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RequestCounts::Table)
                    .col(
                        ColumnDef::new(RequestCounts::Key)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RequestCounts::WindowStart)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RequestCounts::Hits).integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RequestCounts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RequestCounts {
    Table,
    Key,
    WindowStart,
    Hits,
}
