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

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_users_and_sessions::Migration),
            Box::new(m20261125_000002_add_login_lockout::Migration),
            Box::new(m20261125_000003_user_counts_and_search_indexes::Migration),
            Box::new(m20261127_000004_versions_and_login_throttle::Migration),
            Box::new(m20261128_000005_password_reset_and_mail_queue::Migration),
            Box::new(m20261128_000006_email_verification::Migration),
            Box::new(m20261128_000007_request_counts::Migration),
            Box::new(m20261128_000008_audit_events::Migration),
        ]
    }
}
