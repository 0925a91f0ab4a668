//! The audit trail (`audit_events`), and where a queued mail's request came
//! from (`mail_jobs.ip`, `user_agent`, `request_id`), for the event its
//! delivery records.
//!
//! Event ids are UUIDv7 made from the event's time, so the primary key
//! orders events by time: the newest-first listing and its keyset paging
//! walk an index, with or without a filter on the subject, the actor or
//! the type. `at` is whole microseconds since the Unix epoch.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(
                        ColumnDef::new(AuditEvents::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AuditEvents::At).big_integer().not_null())
                    .col(ColumnDef::new(AuditEvents::Type).text().not_null())
                    .col(ColumnDef::new(AuditEvents::Outcome).text().not_null())
                    .col(ColumnDef::new(AuditEvents::ActorId).uuid().null())
                    .col(ColumnDef::new(AuditEvents::SubjectId).uuid().null())
                    .col(ColumnDef::new(AuditEvents::Ip).text().null())
                    .col(ColumnDef::new(AuditEvents::UserAgent).text().null())
                    .col(ColumnDef::new(AuditEvents::RequestId).text().null())
                    .col(ColumnDef::new(AuditEvents::Details).text().not_null())
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("audit_events_subject_id", AuditEvents::SubjectId),
            ("audit_events_actor_id", AuditEvents::ActorId),
            ("audit_events_type", AuditEvents::Type),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuditEvents::Table)
                        .col(column)
                        .col(AuditEvents::Id)
                        .to_owned(),
                )
                .await?;
        }
        // SQLite adds one column per statement.
        for column in [MailJobs::Ip, MailJobs::UserAgent, MailJobs::RequestId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MailJobs::Table)
                        .add_column(ColumnDef::new(column).text().null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [MailJobs::Ip, MailJobs::UserAgent, MailJobs::RequestId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MailJobs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Type,
    Outcome,
    ActorId,
    SubjectId,
    Ip,
    UserAgent,
    RequestId,
    Details,
}

#[derive(DeriveIden)]
enum MailJobs {
    Table,
    Ip,
    UserAgent,
    RequestId,
}
