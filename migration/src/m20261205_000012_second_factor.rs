//! The second factor: each user's TOTP secret (sealed), recovery codes (as
//! hashes) and the challenges of logins waiting for a code; sessions
//! remember whether their login proved one. Times are microseconds since
//! the Unix epoch, 0 meaning "not yet".

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn user_key(
    table: impl IntoIden + Clone,
    column: impl IntoIden,
    name: &str,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UserTotp::Table)
                    .col(
                        ColumnDef::new(UserTotp::UserId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(UserTotp::Secret).blob().not_null())
                    .col(ColumnDef::new(UserTotp::Enabled).boolean().not_null())
                    .col(ColumnDef::new(UserTotp::LastStep).big_integer().not_null())
                    .col(ColumnDef::new(UserTotp::UpdatedAt).big_integer().not_null())
                    .foreign_key(&mut user_key(
                        UserTotp::Table,
                        UserTotp::UserId,
                        "fk_user_totp_user",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MfaRecoveryCodes::Table)
                    .col(ColumnDef::new(MfaRecoveryCodes::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(MfaRecoveryCodes::CodeHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MfaRecoveryCodes::UsedAt)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .primary_key(
                        Index::create()
                            .col(MfaRecoveryCodes::UserId)
                            .col(MfaRecoveryCodes::CodeHash),
                    )
                    .foreign_key(&mut user_key(
                        MfaRecoveryCodes::Table,
                        MfaRecoveryCodes::UserId,
                        "fk_mfa_recovery_codes_user",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MfaChallenges::Table)
                    .col(
                        ColumnDef::new(MfaChallenges::TokenHash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(MfaChallenges::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(MfaChallenges::PasswordHash)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MfaChallenges::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MfaChallenges::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(MfaChallenges::SpentAt)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .foreign_key(&mut user_key(
                        MfaChallenges::Table,
                        MfaChallenges::UserId,
                        "fk_mfa_challenges_user",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(
                        ColumnDef::new(Sessions::SecondFactor)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::SecondFactor)
                    .to_owned(),
            )
            .await?;
        for table in [
            MfaChallenges::Table.into_iden(),
            MfaRecoveryCodes::Table.into_iden(),
            UserTotp::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    SecondFactor,
}

#[derive(DeriveIden, Clone)]
enum UserTotp {
    Table,
    UserId,
    Secret,
    Enabled,
    LastStep,
    UpdatedAt,
}

#[derive(DeriveIden, Clone)]
enum MfaRecoveryCodes {
    Table,
    UserId,
    CodeHash,
    UsedAt,
}

#[derive(DeriveIden, Clone)]
enum MfaChallenges {
    Table,
    TokenHash,
    UserId,
    PasswordHash,
    ExpiresAt,
    Attempts,
    SpentAt,
}
