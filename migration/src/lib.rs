//! UserHub's schema, as ordered migrations. The server applies pending ones
//! at start; operators can run them themselves with the `migration` binary.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_users_and_sessions;
mod m20261125_000002_add_login_lockout;
mod m20261125_000003_user_counts_and_search_indexes;
mod m20261127_000004_versions_and_login_throttle;
mod m20261128_000005_password_reset_and_mail_queue;
mod m20261128_000006_email_verification;
mod m20261128_000007_request_counts;
mod m20261128_000008_audit_events;
mod m20261205_000009_server_secrets;
mod m20261205_000010_mail_notices;
mod m20261205_000011_hashed_login_names;
mod m20261205_000012_second_factor;
mod m20261206_000013_user_identities;
mod m20261207_000014_taking_an_account_back;
mod m20261207_000015_personal_access_tokens;
mod m20261207_000016_passkeys;
mod m20261207_000017_webhooks;
mod m20261208_000018_search_terms_off_users;

/// Every migration, oldest first.
pub struct Migrator;

/// `migration`, applied in one transaction together with its row in
/// `seaql_migrations` on every backend. sea-orm-migration does that only
/// on PostgreSQL by default; on SQLite an interrupted first start would
/// leave a half-applied migration that no later start can apply again.
#[must_use]
pub fn atomic(migration: Box<dyn MigrationTrait>) -> Box<dyn MigrationTrait> {
    Box::new(Atomic(migration))
}

struct Atomic(Box<dyn MigrationTrait>);

/// Lifts the server's statement timeout for the migration's transaction
/// (PostgreSQL): copying or indexing a large table takes as long as it
/// takes, and a migration cancelled half way would stop every start.
async fn no_statement_timeout(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};
    if manager.get_database_backend() == DbBackend::Postgres {
        manager
            .get_connection()
            .execute_unprepared("SET LOCAL statement_timeout = 0")
            .await?;
    }
    Ok(())
}

impl MigrationName for Atomic {
    fn name(&self) -> &str {
        self.0.name()
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Atomic {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        no_statement_timeout(manager).await?;
        self.0.up(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        no_statement_timeout(manager).await?;
        self.0.down(manager).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        Self::ordered().into_iter().map(atomic).collect()
    }
}

impl Migrator {
    fn ordered() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_users_and_sessions::Migration),
            Box::new(m20261125_000002_add_login_lockout::Migration),
            Box::new(m20261125_000003_user_counts_and_search_indexes::Migration),
            Box::new(m20261127_000004_versions_and_login_throttle::Migration),
            Box::new(m20261128_000005_password_reset_and_mail_queue::Migration),
            Box::new(m20261128_000006_email_verification::Migration),
            Box::new(m20261128_000007_request_counts::Migration),
            Box::new(m20261128_000008_audit_events::Migration),
            Box::new(m20261205_000009_server_secrets::Migration),
            Box::new(m20261205_000010_mail_notices::Migration),
            Box::new(m20261205_000011_hashed_login_names::Migration),
            Box::new(m20261205_000012_second_factor::Migration),
            Box::new(m20261206_000013_user_identities::Migration),
            Box::new(m20261207_000014_taking_an_account_back::Migration),
            Box::new(m20261207_000015_personal_access_tokens::Migration),
            Box::new(m20261207_000016_passkeys::Migration),
            Box::new(m20261207_000017_webhooks::Migration),
            Box::new(m20261208_000018_search_terms_off_users::Migration),
        ]
    }
}
