//! A version per user row, for compare-and-swap writes and `ETag`s; failed
//! logins move from `users` to two tables keyed by login name as typed
//! (whether or not an account has it) and by (name, client address).
//!
//! The throttle's times are whole microseconds since the Unix epoch in
//! BIGINT columns: its conditions compare them in SQL, which SQLite's text
//! timestamps would get wrong.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(
                        ColumnDef::new(Users::Version)
                            .big_integer()
                            .not_null()
                            .default(1),
                    )
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite drops a single column per ALTER TABLE.
        for column in [
            Users::FailedLoginCount,
            Users::LockoutCount,
            Users::LockedUntil,
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
        manager
            .create_table(
                Table::create()
                    .table(LoginFailures::Table)
                    .col(ColumnDef::new(LoginFailures::Login).text().not_null())
                    .col(ColumnDef::new(LoginFailures::Address).text().not_null())
                    .col(
                        ColumnDef::new(LoginFailures::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(LoginFailures::Lockouts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(LoginFailures::LockedUntil)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(LoginFailures::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(LoginFailures::Login)
                            .col(LoginFailures::Address),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_login_failures_updated_at")
                    .table(LoginFailures::Table)
                    .col(LoginFailures::UpdatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginNameFailures::Table)
                    .col(
                        ColumnDef::new(LoginNameFailures::Login)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(LoginNameFailures::WindowStart)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LoginNameFailures::Failures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(LoginNameFailures::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_login_name_failures_updated_at")
                    .table(LoginNameFailures::Table)
                    .col(LoginNameFailures::UpdatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginNameFailures::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(LoginFailures::Table).to_owned())
            .await?;
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
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::Version)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Version,
    FailedLoginCount,
    LockoutCount,
    LockedUntil,
}

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    Login,
    Address,
    Failures,
    Lockouts,
    LockedUntil,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LoginNameFailures {
    Table,
    Login,
    WindowStart,
    Failures,
    UpdatedAt,
}
