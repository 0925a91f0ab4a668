//! Connecting, migrating and the first superuser.

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use secrecy::{ExposeSecret, SecretString};
use userhub_domain::model::{Email, Password, Username};
use userhub_domain::services::{CreateUser, UserService};
use userhub_infrastructure::Database;

use crate::Settings;
use crate::settings::DbPooler;

/// Opens the pool; the error names the database without its password.
pub(super) async fn connect(settings: &Settings) -> anyhow::Result<Database> {
    if settings
        .database
        .database_url
        .trim()
        .starts_with("postgresql+asyncpg://")
    {
        tracing::info!(
            "DATABASE_URL has the original service's postgresql+asyncpg:// form; connecting with postgres://"
        );
    }
    let wait = settings.database.db_startup_wait_seconds.std();
    let deadline = tokio::time::Instant::now() + wait;
    let mut attempt = 1_u32;
    loop {
        match Database::connect(&settings.database()).await {
            Ok(database) if !settings.database.db_batch_reads => {
                return Ok(database.without_batched_reads());
            }
            Ok(database) => return Ok(database),
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(
                    attempt,
                    error = %err,
                    "the database is not reachable yet; retrying (DB_STARTUP_WAIT_SECONDS={})",
                    settings.database.db_startup_wait_seconds.0
                );
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(left.min(std::time::Duration::from_secs(1))).await;
                attempt += 1;
            }
            Err(err) => {
                anyhow::bail!(
                    "cannot connect to the database at {}: {}",
                    userhub_config::redact(&settings.database_url()),
                    plain_cause(&err)
                );
            }
        }
    }
}

/// The innermost cause of `err`, once, without the driver's source
/// position (sqlx ends PostgreSQL's messages with ` at line N`).
fn plain_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = err;
    while let Some(source) = inner.source() {
        inner = source;
    }
    let text = inner.to_string();
    match text.rsplit_once(" at line ") {
        Some((cause, line)) if !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) => {
            cause.to_owned()
        }
        _ => text,
    }
}

/// Applies pending migrations, under a lock, on a direct connection: the
/// pool's own, or `DATABASE_DIRECT_URL`'s behind PgBouncer.
pub(super) async fn migrate(settings: &Settings, database: &Database) -> anyhow::Result<()> {
    let Some(url) = settings.direct_database_url() else {
        anyhow::bail!("DATABASE_DIRECT_URL: required to apply migrations behind a pooler");
    };
    let separate = (settings.database.db_pooler == DbPooler::Pgbouncer).then(|| {
        let mut direct = settings.database();
        direct.url.clone_from(&url);
        direct.pgbouncer = false;
        direct.max_connections = 2;
        direct.min_connections = 0;
        direct
    });
    let direct = match &separate {
        Some(direct) => Database::connect(direct).await.with_context(|| {
            format!(
                "connecting to DATABASE_DIRECT_URL {}",
                userhub_config::redact(&url)
            )
        })?,
        None => database.clone(),
    };
    let result = direct
        .with_migration_lock(&url, Migrator::up(direct.sea_orm(), None))
        .await
        .context("applying migrations");
    if separate.is_some() {
        let _ = direct.close().await;
    }
    result
}

pub(super) async fn ensure_first_superuser(
    users: &UserService,
    settings: &Settings,
) -> anyhow::Result<Option<bool>> {
    let (Some(email), Some(password)) = (
        &settings.accounts.first_superuser_email,
        &settings.accounts.first_superuser_password,
    ) else {
        return Ok(None);
    };
    let cmd = CreateUser {
        email: Email::parse(email).context("FIRST_SUPERUSER_EMAIL")?,
        username: Username::parse(&settings.accounts.first_superuser_username)
            .context("FIRST_SUPERUSER_USERNAME")?,
        password: Password::new(SecretString::from(password.expose_secret().to_owned()))
            .context("FIRST_SUPERUSER_PASSWORD")?,
        full_name: None,
        is_active: None,
        is_superuser: None,
        is_verified: None,
    };
    let created = users
        .ensure_superuser(cmd)
        .await
        .context("creating the first superuser")?;
    Ok(Some(created))
}
