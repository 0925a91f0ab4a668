//! Passkeys (WebAuthn credentials) and the state of the ceremonies that
//! register and use them. A ceremony's state lives in the database, so
//! that any instance can finish what another began; it is found by the
//! SHA-256 hash of the opaque token the browser carries, and spent by
//! deleting it (its expiry in microseconds, as other bookkeeping rows). Sessions remember whether a passkey signed them in (`amr`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let at = |column: Passkeys| {
            ColumnDef::new(column)
                .timestamp_with_time_zone()
                .not_null()
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .col(ColumnDef::new(Passkeys::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Passkeys::UserId).uuid().not_null())
                    // base64url of the credential id (at most 1 023 bytes).
                    .col(
                        ColumnDef::new(Passkeys::CredentialId)
                            .string_len(1400)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Passkeys::Name).string_len(400).not_null())
                    // The credential as the WebAuthn library stores it (public key, counter).
                    .col(ColumnDef::new(Passkeys::Credential).text().not_null())
                    .col(ColumnDef::new(Passkeys::Counter).big_integer().not_null())
                    .col(ColumnDef::new(Passkeys::BackedUp).boolean().not_null())
                    .col(at(Passkeys::CreatedAt))
                    .col(
                        ColumnDef::new(Passkeys::LastUsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_passkeys_user")
                            .from(Passkeys::Table, Passkeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_passkeys_user")
                    .table(Passkeys::Table)
                    .col(Passkeys::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebauthnCeremonies::Table)
                    .col(
                        ColumnDef::new(WebauthnCeremonies::TokenHash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WebauthnCeremonies::Kind)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(WebauthnCeremonies::UserId).uuid().null())
                    .col(ColumnDef::new(WebauthnCeremonies::State).text().not_null())
                    .col(
                        ColumnDef::new(WebauthnCeremonies::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webauthn_ceremonies_user")
                            .from(WebauthnCeremonies::Table, WebauthnCeremonies::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webauthn_ceremonies_expires_at")
                    .table(WebauthnCeremonies::Table)
                    .col(WebauthnCeremonies::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(
                        ColumnDef::new(Sessions::Passkey)
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
                    .drop_column(Sessions::Passkey)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(WebauthnCeremonies::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Passkeys::Table).to_owned())
            .await
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
    Passkey,
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    CredentialId,
    Name,
    Credential,
    Counter,
    BackedUp,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum WebauthnCeremonies {
    Table,
    TokenHash,
    Kind,
    UserId,
    State,
    ExpiresAt,
}
