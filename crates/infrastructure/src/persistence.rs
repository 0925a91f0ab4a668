//! SeaORM persistence on PostgreSQL or SQLite, chosen by the database URL.

mod sessions;
mod throttle;
mod users;

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, RuntimeErr};
use userhub_domain::PortError;
use userhub_domain::ports::{HealthProbe, PoolStatus};

pub use sessions::SeaOrmSessionRepository;
pub use throttle::SeaOrmLoginThrottle;
pub use users::SeaOrmUserRepository;

/// Connection-pool settings.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`.
    pub url: String,
    /// Most connections held at once.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection before giving up
    /// (and the request answers 503).
    pub acquire_timeout: Duration,
    /// How long an unused connection stays open.
    pub idle_timeout: Duration,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
}

/// A pooled connection to UserHub's database.
#[derive(Clone, Debug)]
pub struct Database {
    conn: DatabaseConnection,
}

impl Database {
    /// Opens the pool and checks that the database answers.
    ///
    /// # Errors
    /// The driver's error when the URL is malformed or the database unreachable.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(settings.url.clone());
        options
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_timeout(settings.connect_timeout)
            .idle_timeout(settings.idle_timeout)
            .sqlx_logging(false);
        let conn = sea_orm::Database::connect(options).await?;
        if conn.get_database_backend() == DbBackend::Sqlite {
            // Readers no longer wait for writers; the setting is kept in the file.
            conn.execute_unprepared("PRAGMA journal_mode=WAL").await?;
        }
        Ok(Self { conn })
    }

    /// The SeaORM connection, for migrations.
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Which database this is.
    #[must_use]
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Closes every pooled connection.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn close(self) -> Result<(), DbErr> {
        self.conn.close().await
    }
}

#[async_trait]
impl HealthProbe for Database {
    async fn check_database(&self) -> Result<(), PortError> {
        self.conn.ping().await.map_err(port_error)
    }

    fn pool_status(&self) -> PoolStatus {
        match self.backend() {
            DbBackend::Postgres => pool_status(self.conn.get_postgres_connection_pool()),
            _ => pool_status(self.conn.get_sqlite_connection_pool()),
        }
    }
}

fn pool_status<DB: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<DB>) -> PoolStatus {
    PoolStatus {
        size: pool.size(),
        idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
        max: pool.options().get_max_connections(),
    }
}

/// Sorts a database error into "unreachable, try later" and everything else.
pub(crate) fn port_error(err: DbErr) -> PortError {
    let unavailable = match &err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => matches!(
            e.as_ref(),
            sea_orm::SqlxError::Io(_)
                | sea_orm::SqlxError::PoolTimedOut
                | sea_orm::SqlxError::PoolClosed
        ),
        _ => false,
    };
    if unavailable {
        PortError::Unavailable(Box::new(err))
    } else {
        PortError::Unexpected(Box::new(err))
    }
}

/// Escapes `%`, `_` and `\` so that user input in a LIKE pattern matches itself.
pub(crate) fn escape_like(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests;
