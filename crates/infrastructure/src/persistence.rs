//! SeaORM persistence on PostgreSQL or SQLite, chosen by the database URL.

mod audit;
mod batch;
mod connection;
mod counts;
mod errors;
mod identities;
mod mail_queue;
mod mfa;
mod passkeys;
mod recovery;
mod recovery_tokens;
mod reservations;
mod row_queue;
mod sessions;
mod sql;
mod throttle;
mod tokens;
mod users;
mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, RuntimeErr};
use secrecy::SecretString;
use userhub_domain::PortError;
use userhub_domain::ports::{HealthProbe, PoolStatus};

pub use connection::Connection;
pub(crate) use errors::{DbResultExt, port_error, read, violated_unique};
pub(crate) use sql::{delete_older, delete_where, escape_like, from_micros, micros};

pub use audit::SeaOrmAuditLog;
pub use counts::SeaOrmRequestCounter;
pub use identities::SeaOrmIdentityRepository;
pub use mail_queue::SeaOrmMailQueue;
pub use mfa::SeaOrmMfaRepository;
pub use passkeys::SeaOrmPasskeyRepository;
pub use recovery::SeaOrmRecoveryTokens;
pub use sessions::SeaOrmSessionRepository;
pub use throttle::SeaOrmLoginThrottle;
pub use tokens::SeaOrmPersonalTokenRepository;
pub use users::SeaOrmUserRepository;
pub use webhooks::SeaOrmWebhookStore;

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
    /// How long opening the first connection at start may take; later
    /// connections are opened within `acquire_timeout`.
    pub connect_timeout: Duration,
    /// Longest a PostgreSQL statement may run, or wait for a lock, before
    /// the database cancels it (and the request answers 503); zero means
    /// no limit.
    pub statement_timeout: Duration,
    /// The URL is a PgBouncer in transaction pooling mode: see [`Connection`].
    pub pgbouncer: bool,
}

/// A pooled connection to UserHub's database.
#[derive(Clone, Debug)]
pub struct Database {
    conn: Connection,
    /// How long a query may wait for a connection.
    acquire_timeout: Duration,
    /// Concurrent authenticating reads share round trips (PostgreSQL).
    batch_reads: bool,
    /// Writes to one user's row take turns here rather than in the database.
    row_queue: Arc<row_queue::RowQueue>,
}

impl Database {
    /// Opens the pool and checks that the database answers.
    ///
    /// # Errors
    /// The driver's error when the URL is malformed or the database
    /// unreachable, naming the cause (connection refused, a timeout, …)
    /// rather than the pool's "timed out".
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, DbErr> {
        let is_postgres = settings.url.starts_with("postgres");
        if is_postgres {
            probe_postgres(&settings.url, settings.connect_timeout).await?;
        }
        let mut options = ConnectOptions::new(settings.url.clone());
        options
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(settings.idle_timeout)
            // A connection in use is not pinged before each request (a round
            // trip per read); one idle for a while is, as it may have died.
            // A connection that dies under a read is read from again anyway
            // (`errors::read`), and under a write the answer is a 503.
            .test_before_acquire_if_idle_for(Duration::from_secs(1))
            .sqlx_logging(false);
        let statement_timeout = settings.statement_timeout.as_millis();
        let pooled = (is_postgres && settings.pgbouncer).then(|| {
            let mut setup = String::from("DEALLOCATE ALL");
            if statement_timeout > 0 {
                setup.push_str(&format!(
                    "; SET LOCAL statement_timeout = {statement_timeout}; \
                     SET LOCAL lock_timeout = {statement_timeout}"
                ));
            }
            Arc::<str>::from(setup)
        });
        if pooled.is_some() {
            // Statements are named and never cached: see `Connection`.
            options.map_sqlx_postgres_opts(|pg| pg.statement_cache_capacity(0));
        } else if is_postgres && statement_timeout > 0 {
            // Set per connection at its start: a statement or lock wait that
            // the database would otherwise let run forever is cancelled.
            options.map_sqlx_postgres_opts(move |pg| {
                pg.options([
                    ("statement_timeout", statement_timeout),
                    ("lock_timeout", statement_timeout),
                ])
            });
        }
        let conn = sea_orm::Database::connect(options).await?;
        if conn.get_database_backend() == DbBackend::Sqlite {
            // Readers no longer wait for writers; the setting is kept in the file.
            conn.execute_unprepared("PRAGMA journal_mode=WAL").await?;
        }
        Ok(Self {
            conn: Connection {
                inner: conn,
                pooled,
            },
            acquire_timeout: settings.acquire_timeout,
            batch_reads: true,
            row_queue: Arc::new(row_queue::RowQueue::new()),
        })
    }

    /// The same pool, with every authenticating read its own query
    /// (`DB_BATCH_READS=false`): simpler to reason about, and a way to
    /// tell whether a problem lies in the batching.
    #[must_use]
    pub fn without_batched_reads(mut self) -> Self {
        self.batch_reads = false;
        self
    }

    /// Whether concurrent authenticating reads share round trips (on
    /// PostgreSQL; SQLite runs in process, where sharing buys nothing).
    #[must_use]
    pub fn batch_reads(&self) -> bool {
        self.batch_reads
    }

    /// The queue in which writes to one row wait their turn.
    pub(crate) fn row_queue(&self) -> &row_queue::RowQueue {
        &self.row_queue
    }

    /// How long a query may wait for a connection: a batched read, which
    /// may wait behind a batch before it waits for one, is bounded by it too.
    #[must_use]
    pub fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    /// Runs `work` (the migrations) while holding a PostgreSQL advisory
    /// lock, so that of several instances starting together one migrates
    /// and the others wait, then find nothing left to do. On SQLite the
    /// file's own write lock serialises them.
    ///
    /// # Errors
    /// The lock's or `work`'s error.
    pub async fn with_migration_lock<T, F>(&self, url: &str, work: F) -> Result<T, DbErr>
    where
        F: Future<Output = Result<T, DbErr>>,
    {
        if self.backend() != DbBackend::Postgres {
            return work.await;
        }
        use sea_orm::sqlx::{Connection, postgres::PgConnection};
        // A connection of its own: the pool may be a single connection,
        // which the migrations need.
        let mut lock = PgConnection::connect(url).await.map_err(sqlx_conn_err)?;
        sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut lock)
            .await
            .map_err(sqlx_conn_err)?;
        let result = work.await;
        // Closing the session releases the lock too; unlock first to be quick.
        let _ = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut lock)
            .await;
        let _ = lock.close().await;
        result
    }

    /// The server's own secret called `name`: made at random by the first
    /// instance that asks, then the same for every instance and every
    /// restart (it lives in `server_secrets`), and independent of any
    /// setting, so that rotating a signing key leaves it alone.
    ///
    /// # Errors
    /// The database's error, or no system randomness.
    pub async fn server_secret(&self, name: &str) -> Result<SecretString, DbErr> {
        use crate::entities::server_secret;
        use sea_orm::{ActiveValue::Set, EntityTrait};
        let mut random = [0_u8; 32];
        getrandom::fill(&mut random).map_err(|e| DbErr::Custom(e.to_string()))?;
        let fresh: String = random.iter().map(|b| format!("{b:02x}")).collect();
        // Several instances starting together: the first one's stays.
        server_secret::Entity::insert(server_secret::ActiveModel {
            name: Set(name.to_owned()),
            secret: Set(fresh),
        })
        .on_conflict_do_nothing_on([server_secret::Column::Name])
        .exec(&self.conn)
        .await?;
        let row = server_secret::Entity::find_by_id(name.to_owned())
            .one(&self.conn)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("server secret {name}")))?;
        Ok(SecretString::from(row.secret))
    }

    /// The pool, as the adapters use it.
    #[must_use]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The SeaORM pool itself, for migrations: use it only on a direct
    /// connection, never through PgBouncer in transaction mode.
    #[must_use]
    pub fn sea_orm(&self) -> &DatabaseConnection {
        &self.conn.inner
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
        self.conn.inner.close().await
    }
}

/// Key of the advisory lock held while migrating ("userhub" in ASCII).
const MIGRATION_LOCK: i64 = 0x0075_7365_7268_7562;

/// How long `/health` waits for the database: less than a probe's usual
/// one-second timeout, so that a dead database is reported, not timed out.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(800);

fn sqlx_conn_err(err: sea_orm::SqlxError) -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err)))
}

/// Opens one connection, to report why the database cannot be reached
/// (the pool would only say that it timed out).
async fn probe_postgres(url: &str, timeout: Duration) -> Result<(), DbErr> {
    use sea_orm::sqlx::{Connection, postgres::PgConnection};
    match tokio::time::timeout(timeout, PgConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(sqlx_conn_err(err)),
        Err(_) => Err(DbErr::Conn(RuntimeErr::Internal(format!(
            "no connection within {} s (DB_CONNECT_TIMEOUT_SECONDS)",
            timeout.as_secs_f32()
        )))),
    }
}

#[async_trait]
impl HealthProbe for Database {
    async fn check_database(&self) -> Result<(), PortError> {
        match tokio::time::timeout(HEALTH_TIMEOUT, self.conn.inner.ping()).await {
            Ok(result) => result.port(),
            Err(_) => Err(PortError::Unavailable("the health check timed out".into())),
        }
    }

    fn pool_status(&self) -> PoolStatus {
        match self.backend() {
            DbBackend::Postgres => pool_status(self.conn.inner.get_postgres_connection_pool()),
            _ => pool_status(self.conn.inner.get_sqlite_connection_pool()),
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
