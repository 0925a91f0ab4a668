//! Taking an account back: when each second factor was turned on (so that
//! undoing an email change removes only the ways in added after it); the
//! addresses an email change replaced, reserved for their account while
//! the link that undoes the change lives; and whether a session (or a login
//! waiting for its code) began with a provider sign-in, so that its tokens
//! never claim a password (`amr`); and what a notice's undo link removes
//! (`target`, on its mail job and its token). Times are microseconds since
//! the Unix epoch, as in the other tables of recovery.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(UserTotp::Table)
                    .add_column(
                        ColumnDef::new(UserTotp::EnabledAt)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        // The best record of when a factor that is on now was turned on.
        manager
            .get_connection()
            .execute_unprepared("UPDATE user_totp SET enabled_at = updated_at WHERE enabled")
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EmailReservations::Table)
                    .col(
                        ColumnDef::new(EmailReservations::Email)
                            .string_len(320)
                            .not_null(),
                    )
                    .col(ColumnDef::new(EmailReservations::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(EmailReservations::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EmailReservations::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(EmailReservations::Email)
                            .col(EmailReservations::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_email_reservations_user")
                            .from(EmailReservations::Table, EmailReservations::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_email_reservations_user")
                    .table(EmailReservations::Table)
                    .col(EmailReservations::UserId)
                    .to_owned(),
            )
            .await?;
        for table in [SignIns::Sessions, SignIns::MfaChallenges] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(
                            ColumnDef::new(SignIns::Federated)
                                .boolean()
                                .not_null()
                                .default(false),
                        )
                        .to_owned(),
                )
                .await?;
        }
        for table in [Undo::MailJobs, Undo::RecoveryTokens] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(ColumnDef::new(Undo::Target).text().null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [Undo::MailJobs, Undo::RecoveryTokens] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(Undo::Target)
                        .to_owned(),
                )
                .await?;
        }
        for table in [SignIns::Sessions, SignIns::MfaChallenges] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(SignIns::Federated)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(EmailReservations::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(UserTotp::Table)
                    .drop_column(UserTotp::EnabledAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum UserTotp {
    Table,
    EnabledAt,
}

#[derive(DeriveIden)]
enum EmailReservations {
    Table,
    Email,
    UserId,
    CreatedAt,
    ExpiresAt,
}

/// The tables that gain a `federated` column, and the column.
#[derive(DeriveIden, Clone, Copy)]
enum SignIns {
    Sessions,
    MfaChallenges,
    Federated,
}

/// The tables that gain a `target` column, and the column.
#[derive(DeriveIden, Clone, Copy)]
enum Undo {
    MailJobs,
    RecoveryTokens,
    Target,
}
