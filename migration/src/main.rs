//! The operators' migration CLI: `cargo run -p migration -- up|down|status|fresh`.
//!
//! It reads `DATABASE_URL` exactly as the server does (config/*.toml, `.env`,
//! the environment; empty means unset, which means the embedded SQLite file).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::Database;
use serde::Deserialize;

/// The one setting this binary needs.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Settings {
    database_url: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = userhub_config::load_dotenv().and_then(|()| {
        userhub_config::layers(
            Path::new("config"),
            figment::providers::Env::raw().only(&["app_env", "database_url"]),
        )
        .extract::<Settings>()
        .map_err(|err| anyhow::anyhow!("DATABASE_URL: {}", err.kind))
    });
    let url = match settings {
        Ok(settings) => userhub_config::database_url(&settings.database_url),
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let shown = userhub_config::redact(&url);
    eprintln!("database: {shown}");
    // Connects only for commands that need the database, and reports a
    // failure in one line instead of the library's panic.
    cli::run_cli_with_custom_connection(migration::Migrator, async move || {
        let connected = match probe(&url).await {
            Ok(()) => Database::connect(url.as_str())
                .await
                .map_err(|e| e.to_string()),
            Err(err) => Err(err),
        };
        match connected {
            Ok(db) => Ok(db),
            Err(err) => {
                eprintln!("error: connecting to {shown}: {err}");
                std::process::exit(1);
            }
        }
    })
    .await;
    ExitCode::SUCCESS
}

/// One direct PostgreSQL connection first: the pool would only report
/// "pool timed out" where the cause is, say, "Connection refused".
async fn probe(url: &str) -> Result<(), String> {
    use sea_orm_migration::sea_orm::sqlx::{Connection, postgres::PgConnection};
    if !url.starts_with("postgres://") {
        return Ok(());
    }
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("no connection within 10 s".into()),
    }
}
