//! Database errors as port errors, and reads retried on a lost connection.

use std::future::Future;

use sea_orm::{DbErr, RuntimeErr};
use userhub_domain::PortError;

/// Whether an error says the database cannot serve right now but may
/// soon: the connection is gone or being shut down (class 08, 57P01–03),
/// the statement or lock wait was cancelled by its timeout (57014, 55P03),
/// a transaction lost a serialisation race (40001, 40P01), SQLite was busy,
/// or the pool had no connection to give.
pub(super) fn is_transient(err: &DbErr) -> bool {
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

/// [`port_error`] for an error shared by the reads of a batch.
pub(crate) fn port_error_shared(err: &std::sync::Arc<DbErr>) -> PortError {
    let shared = SharedDbErr(err.clone());
    if is_transient(err) {
        PortError::Unavailable(Box::new(shared))
    } else {
        PortError::Unexpected(Box::new(shared))
    }
}

/// A batch's database error, as each of its reads reports it.
#[derive(Debug)]
struct SharedDbErr(std::sync::Arc<DbErr>);

impl std::fmt::Display for SharedDbErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedDbErr {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
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

/// The constraint a unique violation names: PostgreSQL gives the
/// constraint's name, SQLite only its columns, as `table.column, …`.
pub(crate) fn violated_unique(err: &DbErr) -> Option<String> {
    let (DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err))) = err
    else {
        return None;
    };
    let db = err.as_database_error()?;
    if !db.is_unique_violation() {
        return None;
    }
    let message = db.message();
    db.constraint()
        .or_else(|| message.strip_prefix("UNIQUE constraint failed: "))
        .map(str::to_owned)
}
