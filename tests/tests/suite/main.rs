//! UserHub's test suite over real databases: adapter tests and end-to-end
//! tests of the HTTP contract. Every scenario runs on PostgreSQL
//! (`…::on_postgres`) and on SQLite (`…::on_sqlite`).
#![allow(clippy::unwrap_used, missing_docs)]

/// Runs each `async fn(Backend)` once per backend, as `name::on_postgres`
/// and `name::on_sqlite`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres() {
                    super::$name(userhub_tests::Backend::Postgres).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite() {
                    super::$name(userhub_tests::Backend::Sqlite).await;
                }
            }
        )*
    };
}

mod abuse;
mod accounts;
mod adapters;
mod audit;
mod auth;
mod bad_input;
mod console;
mod docs;
mod faults;
mod hardening;
mod health;
mod mfa;
mod oidc;
mod owner_wins;
mod passkeys;
mod pooler;
mod recovery;
mod sessions;
mod shared_limits;
mod signing;
mod tokens;
mod users;
mod webhooks;
