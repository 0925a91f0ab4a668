//! Personal access tokens: one row per live token, found by the SHA-256
//! hash of its secret. The API shows these rows, so their times are
//! timestamps, as in `sessions`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let at = |column: PersonalAccessTokens| {
            ColumnDef::new(column)
                .timestamp_with_time_zone()
                .not_null()
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(PersonalAccessTokens::Table)
                    .col(
                        ColumnDef::new(PersonalAccessTokens::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PersonalAccessTokens::UserId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PersonalAccessTokens::TokenHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(PersonalAccessTokens::Name)
                            .string_len(400)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PersonalAccessTokens::Scopes)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PersonalAccessTokens::Prefix)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(at(PersonalAccessTokens::CreatedAt))
                    .col(at(PersonalAccessTokens::ExpiresAt))
                    .col(
                        ColumnDef::new(PersonalAccessTokens::LastUsedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_personal_access_tokens_user")
                            .from(PersonalAccessTokens::Table, PersonalAccessTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_personal_access_tokens_user")
                    .table(PersonalAccessTokens::Table)
                    .col(PersonalAccessTokens::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PersonalAccessTokens::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum PersonalAccessTokens {
    Table,
    Id,
    UserId,
    TokenHash,
    Name,
    Scopes,
    Prefix,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
}
