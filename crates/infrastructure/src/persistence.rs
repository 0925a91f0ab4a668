//! SeaORM persistence on PostgreSQL or SQLite, chosen by the database URL.

mod audit;
mod counts;
mod mail_queue;
mod recovery;
mod sessions;
mod throttle;
mod users;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use std::pin::Pin;

use sea_orm::sea_query::{DeleteStatement, Expr, ExprTrait, IntoColumnRef, IntoTableRef, Query};
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, ExecResult, IsolationLevel, QueryResult, RuntimeErr, Statement,
    TransactionError, TransactionOptions, TransactionTrait, Value,
};
use secrecy::SecretString;
use time::OffsetDateTime;
use userhub_domain::PortError;
use userhub_domain::ports::{HealthProbe, PoolStatus};

pub use audit::SeaOrmAuditLog;
pub use counts::SeaOrmRequestCounter;
pub use mail_queue::SeaOrmMailQueue;
pub use recovery::SeaOrmRecoveryTokens;
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
}

/// The pool as the adapters use it.
///
/// Behind PgBouncer in transaction pooling mode, consecutive messages of
/// one client reach the same server connection only within a transaction.
/// sqlx names every prepared statement it parses and runs it after a
/// second round trip, so there each statement outside an explicit
/// transaction runs in one of its own, and every transaction starts by
/// dropping the prepared statements other clients left on its server
/// connection (sqlx's statement cache is off, so nothing refers to them)
/// and by setting the statement timeout, which PgBouncer cannot pass at
/// connect time. Directly connected, it is the plain pool.
#[derive(Clone, Debug)]
pub struct Connection {
    inner: DatabaseConnection,
    /// `Some` behind PgBouncer: what each transaction runs first.
    pooled: Option<Arc<str>>,
}

impl Connection {
    async fn one_shot<T, F, Fut>(&self, run: F) -> Result<T, DbErr>
    where
        F: FnOnce(DatabaseTransaction) -> Fut + Send,
        Fut: Future<Output = (DatabaseTransaction, Result<T, DbErr>)> + Send,
        T: Send,
    {
        let txn = self.begin().await?;
        let (txn, result) = run(txn).await;
        match result {
            Ok(value) => {
                txn.commit().await?;
                Ok(value)
            }
            Err(err) => {
                let _ = txn.rollback().await;
                Err(err)
            }
        }
    }

    async fn prepare(&self, txn: DatabaseTransaction) -> Result<DatabaseTransaction, DbErr> {
        if let Some(setup) = &self.pooled {
            txn.execute_unprepared(setup).await?;
        }
        Ok(txn)
    }
}

#[async_trait]
impl ConnectionTrait for Connection {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        if self.pooled.is_none() {
            return self.inner.execute_raw(stmt).await;
        }
        self.one_shot(|txn| async move {
            let result = txn.execute_raw(stmt).await;
            (txn, result)
        })
        .await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        // The simple query protocol: one message, no prepared statement.
        self.inner.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        if self.pooled.is_none() {
            return self.inner.query_one_raw(stmt).await;
        }
        self.one_shot(|txn| async move {
            let result = txn.query_one_raw(stmt).await;
            (txn, result)
        })
        .await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        if self.pooled.is_none() {
            return self.inner.query_all_raw(stmt).await;
        }
        self.one_shot(|txn| async move {
            let result = txn.query_all_raw(stmt).await;
            (txn, result)
        })
        .await
    }

    fn support_returning(&self) -> bool {
        self.inner.support_returning()
    }
}

#[async_trait]
impl TransactionTrait for Connection {
    type Transaction = DatabaseTransaction;

    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        let txn = self.inner.begin().await?;
        self.prepare(txn).await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
        let txn = self
            .inner
            .begin_with_config(isolation_level, access_mode)
            .await?;
        self.prepare(txn).await
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        let txn = self.inner.begin_with_options(options).await?;
        self.prepare(txn).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        self.transaction_with_config(callback, None, None).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let txn = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        match callback(&txn).await {
            Ok(value) => {
                txn.commit().await.map_err(TransactionError::Connection)?;
                Ok(value)
            }
            Err(err) => {
                let _ = txn.rollback().await;
                Err(TransactionError::Transaction(err))
            }
        }
    }
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
        })
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
        use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
        let mut random = [0_u8; 32];
        getrandom::fill(&mut random).map_err(|e| DbErr::Custom(e.to_string()))?;
        let fresh: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let table = Alias::new("server_secrets");
        let insert = Query::insert()
            .into_table(table.clone())
            .columns([Alias::new("name"), Alias::new("secret")])
            .values_panic([name.into(), fresh.into()])
            // Several instances starting together: the first one's stays.
            .on_conflict(
                OnConflict::column(Alias::new("name"))
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        self.conn.execute(&insert).await?;
        let select = Query::select()
            .column(Alias::new("secret"))
            .from(table)
            .and_where(Expr::col(Alias::new("name")).eq(name))
            .to_owned();
        let row = self
            .conn
            .query_one(&select)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("server secret {name}")))?;
        Ok(SecretString::from(row.try_get::<String>("", "secret")?))
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

/// Whether an error says the database cannot serve right now but may
/// soon: the connection is gone or being shut down (class 08, 57P01–03),
/// the statement or lock wait was cancelled by its timeout (57014, 55P03),
/// a transaction lost a serialisation race (40001, 40P01), SQLite was busy,
/// or the pool had no connection to give.
fn is_transient(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                sea_orm::SqlxError::Io(_)
                | sea_orm::SqlxError::PoolTimedOut
                | sea_orm::SqlxError::PoolClosed
                | sea_orm::SqlxError::WorkerCrashed
                | sea_orm::SqlxError::Protocol(_) => true,
                sea_orm::SqlxError::Database(db) => db.code().is_some_and(|code| {
                    code.starts_with("08")
                        || matches!(
                            code.as_ref(),
                            "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "40001" | "40P01"
                                // A standby during a failover, before its promotion completes
                                | "25006"
                                // SQLITE_BUSY, SQLITE_LOCKED
                                | "5" | "6" | "517" | "262"
                        )
                }),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether the connection a statement ran on is gone, so that running an
/// idempotent read again on another connection may well succeed.
fn is_connection_lost(err: &DbErr) -> bool {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                sea_orm::SqlxError::Io(_) | sea_orm::SqlxError::Protocol(_) => true,
                sea_orm::SqlxError::Database(db) => db.code().is_some_and(|code| {
                    code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02")
                }),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Runs an idempotent read, once more on another connection if the first
/// one was lost under it (a database restart, a terminated backend).
pub(crate) async fn read<T, F, Fut>(run: F) -> Result<T, DbErr>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, DbErr>>,
{
    match run().await {
        Err(err) if is_connection_lost(&err) => {
            tracing::debug!(error = %err, "connection lost under a read; reading again");
            run().await
        }
        other => other,
    }
}

/// Sorts a database error into "unavailable, try later" and everything else.
pub(crate) fn port_error(err: DbErr) -> PortError {
    if is_transient(&err) {
        PortError::Unavailable(Box::new(err))
    } else {
        PortError::Unexpected(Box::new(err))
    }
}

/// A database result as a port's: the error classified once, by
/// [`port_error`], wherever a port method ends.
pub(crate) trait DbResultExt<T> {
    /// The result with its error as a [`PortError`].
    fn port(self) -> Result<T, PortError>;
}

impl<T> DbResultExt<T> for Result<T, DbErr> {
    fn port(self) -> Result<T, PortError> {
        self.map_err(port_error)
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

/// Deletes the rows of `table` whose `column` equals `value`.
pub(crate) fn delete_where<T, C, V>(table: T, column: C, value: V) -> DeleteStatement
where
    T: IntoTableRef,
    C: IntoColumnRef,
    V: Into<Value>,
{
    Query::delete()
        .from_table(table)
        .and_where(Expr::col(column).eq(value))
        .to_owned()
}

/// Deletes the rows of `table` whose time in `column` (microseconds) is
/// before `before`.
pub(crate) fn delete_older<T, C>(table: T, column: C, before: i64) -> DeleteStatement
where
    T: IntoTableRef,
    C: IntoColumnRef,
{
    Query::delete()
        .from_table(table)
        .and_where(Expr::col(column).lt(before))
        .to_owned()
}

/// Microseconds since the Unix epoch: how the raw tables store times.
pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// The time stored as `us`; 0 (or less) means none.
pub(crate) fn from_micros(us: i64) -> Option<OffsetDateTime> {
    (us > 0)
        .then(|| OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).ok())
        .flatten()
}
