//! Password reset: single-use tokens (only their hashes) and a queue of
//! mail jobs that a background task drains, so that a request never waits
//! for (or reveals anything through) the mail server.
//!
//! Times are whole microseconds since the Unix epoch in BIGINT columns, as
//! in the login throttle: the queue's conditions compare them in SQL.
//! 0 means "not yet" for `spent_at`, `completed_at` and `failed_at`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RecoveryTokens::Table)
                    .col(
                        ColumnDef::new(RecoveryTokens::TokenHash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(RecoveryTokens::Purpose).text().not_null())
                    .col(ColumnDef::new(RecoveryTokens::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(RecoveryTokens::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RecoveryTokens::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RecoveryTokens::SpentAt)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_recovery_tokens_user")
                            .from(RecoveryTokens::Table, RecoveryTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_recovery_tokens_user_purpose")
                    .table(RecoveryTokens::Table)
                    .col(RecoveryTokens::UserId)
                    .col(RecoveryTokens::Purpose)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailJobs::Table)
                    .col(ColumnDef::new(MailJobs::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(MailJobs::Kind).text().not_null())
                    .col(ColumnDef::new(MailJobs::Email).text().not_null())
                    .col(ColumnDef::new(MailJobs::CreatedAt).big_integer().not_null())
                    .col(
                        ColumnDef::new(MailJobs::NextAttemptAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MailJobs::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(MailJobs::CompletedAt)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(MailJobs::FailedAt)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(MailJobs::LastError).text().null())
                    .to_owned(),
            )
            .await?;
        // Partial indexes read the same in PostgreSQL and SQLite: one job
        // per (kind, address) that no worker has taken yet, so a flood of
        // requests queues one mail (a request made while a mail is being
        // sent queues another); and the due pending jobs, for the worker.
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_mail_jobs_untaken ON mail_jobs (kind, email) \
             WHERE attempts = 0 AND completed_at = 0 AND failed_at = 0",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_mail_jobs_due ON mail_jobs (next_attempt_at) \
             WHERE completed_at = 0 AND failed_at = 0",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MailJobs::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RecoveryTokens::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum RecoveryTokens {
    Table,
    TokenHash,
    Purpose,
    UserId,
    CreatedAt,
    ExpiresAt,
    SpentAt,
}

#[derive(DeriveIden)]
enum MailJobs {
    Table,
    Id,
    Kind,
    Email,
    CreatedAt,
    NextAttemptAt,
    Attempts,
    CompletedAt,
    FailedAt,
    LastError,
}
