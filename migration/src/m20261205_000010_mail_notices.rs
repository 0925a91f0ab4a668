//! Security notices in the mail queue: a job may name the account it is
//! about and the new address of an email change. Notices are never merged:
//! the one-untaken-job-per-address rule now holds only for links asked for
//! by address (jobs without an account).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MailJobs::Table)
                    .add_column(ColumnDef::new(MailJobs::UserId).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MailJobs::Table)
                    .add_column(ColumnDef::new(MailJobs::NewEmail).text().null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX uq_mail_jobs_untaken")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_mail_jobs_untaken ON mail_jobs (kind, email) \
             WHERE attempts = 0 AND completed_at = 0 AND failed_at = 0 AND user_id IS NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX uq_mail_jobs_untaken")
            .await?;
        db.execute_unprepared("DELETE FROM mail_jobs WHERE user_id IS NOT NULL")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_mail_jobs_untaken ON mail_jobs (kind, email) \
             WHERE attempts = 0 AND completed_at = 0 AND failed_at = 0",
        )
        .await?;
        for column in [MailJobs::NewEmail, MailJobs::UserId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MailJobs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum MailJobs {
    Table,
    UserId,
    NewEmail,
}
