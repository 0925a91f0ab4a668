//! Users, their sessions and the refresh tokens those sessions have spent.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Users::Email).string_len(254).not_null())
                    .col(ColumnDef::new(Users::Username).string_len(32).not_null())
                    .col(ColumnDef::new(Users::FullName).string_len(100).null())
                    .col(
                        ColumnDef::new(Users::PasswordHash)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Users::IsActive)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .col(
                        ColumnDef::new(Users::IsSuperuser)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Users::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Users::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Users::LastLoginAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // The adapter tells e-mail from username clashes by these names.
        for (name, column) in [
            ("uq_users_email", Users::Email),
            ("uq_users_username", Users::Username),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Users::Table)
                        .col(column)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        // Default listing order; ordinary users always filter on is_active.
        manager
            .create_index(
                Index::create()
                    .name("ix_users_created_at_id")
                    .table(Users::Table)
                    .col(Users::CreatedAt)
                    .col(Users::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(ColumnDef::new(Sessions::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Sessions::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(Sessions::RefreshTokenHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sessions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sessions::LastUsedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sessions::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sessions::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Sessions::UserAgent).string_len(256).null())
                    .col(ColumnDef::new(Sessions::Ip).string_len(45).null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_user")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column, unique) in [
            (
                "uq_sessions_refresh_token_hash",
                Sessions::RefreshTokenHash,
                true,
            ),
            ("ix_sessions_user_id", Sessions::UserId, false),
            ("ix_sessions_expires_at", Sessions::ExpiresAt, false),
        ] {
            let mut index = Index::create();
            index.name(name).table(Sessions::Table).col(column);
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(SpentRefreshTokens::Table)
                    .col(
                        ColumnDef::new(SpentRefreshTokens::TokenHash)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SpentRefreshTokens::SessionId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SpentRefreshTokens::SpentAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_spent_refresh_tokens_session")
                            .from(SpentRefreshTokens::Table, SpentRefreshTokens::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_spent_refresh_tokens_session_id")
                    .table(SpentRefreshTokens::Table)
                    .col(SpentRefreshTokens::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SpentRefreshTokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Username,
    FullName,
    PasswordHash,
    IsActive,
    IsSuperuser,
    CreatedAt,
    UpdatedAt,
    LastLoginAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    RefreshTokenHash,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
    UserAgent,
    Ip,
}

#[derive(DeriveIden)]
enum SpentRefreshTokens {
    Table,
    TokenHash,
    SessionId,
    SpentAt,
}
