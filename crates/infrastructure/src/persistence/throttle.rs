//! [`LoginThrottle`] in two tables, `login_failures` (per name and
//! address) and `login_name_failures` (per name). Each count moves in one
//! upsert whose conditions read the row it writes, so concurrent failures
//! are all counted once and a lock is neither re-armed nor escalated by
//! failures that were in flight when it landed. Times are microseconds
//! since the Unix epoch (see the migration).

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sea_orm::sea_query::{Expr, ExprTrait, InsertStatement, OnConflict, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DeriveIden, QueryResult, TransactionTrait};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};
use userhub_domain::PortError;
use userhub_domain::model::AuditEvent;
use userhub_domain::ports::{LoginThrottle, ThrottleState};

use super::{Database, DbResultExt, audit, delete_older, delete_where, from_micros, micros};

/// Failures and locks per (name, address).
#[derive(DeriveIden, Clone, Copy)]
enum LoginFailures {
    Table,
    Login,
    Address,
    Failures,
    Lockouts,
    LockedUntil,
    UpdatedAt,
}

/// Failures per name in an hourly window.
#[derive(DeriveIden, Clone, Copy)]
enum LoginNameFailures {
    Table,
    Login,
    WindowStart,
    Failures,
    UpdatedAt,
}

/// One column of the (name, address) row, as a scalar subquery.
fn pair_column(name: &str, address: &str, column: LoginFailures) -> Expr {
    let select: SelectStatement = Query::select()
        .column(column)
        .from(LoginFailures::Table)
        .and_where(Expr::col(LoginFailures::Login).eq(name))
        .and_where(Expr::col(LoginFailures::Address).eq(address))
        .to_owned();
    Expr::SubQuery(None, Box::new(select.into()))
}

/// One column of the name's row, as a scalar subquery.
fn name_column(name: &str, column: LoginNameFailures) -> Expr {
    let select: SelectStatement = Query::select()
        .column(column)
        .from(LoginNameFailures::Table)
        .and_where(Expr::col(LoginNameFailures::Login).eq(name))
        .to_owned();
    Expr::SubQuery(None, Box::new(select.into()))
}

/// Failed-login counts and locks shared by every server instance. Login
/// names are stored only as keyed hashes: people type passwords into the
/// name field, and a failed login must not leave one readable.
#[derive(Clone)]
pub struct SeaOrmLoginThrottle {
    db: Database,
    key: SecretString,
}

impl std::fmt::Debug for SeaOrmLoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeaOrmLoginThrottle")
            .finish_non_exhaustive()
    }
}

impl SeaOrmLoginThrottle {
    /// A throttle on this database; `key` keys the hash of login names (the
    /// same on every instance, or their counts would not add up).
    #[must_use]
    pub fn new(db: Database, key: SecretString) -> Self {
        Self { db, key }
    }

    /// The stored form of a login name: HMAC-SHA256 under the key, in hex.
    fn stored(&self, name: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(b"userhub login name\0");
        mac.update(name.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    async fn begin(&self) -> Result<DatabaseTransaction, PortError> {
        self.db.connection().begin().await.port()
    }
}

/// Stores `event` in `txn` and commits both.
async fn commit_with(
    txn: DatabaseTransaction,
    event: Option<&AuditEvent>,
) -> Result<(), PortError> {
    if let Some(event) = event {
        audit::write(&txn, event).await.port()?;
    }
    txn.commit().await.port()
}

/// Runs an upsert that returns its row.
async fn upsert_one(
    txn: &DatabaseTransaction,
    upsert: InsertStatement,
) -> Result<QueryResult, PortError> {
    txn.query_one(&upsert)
        .await
        .port()?
        .ok_or_else(|| PortError::unexpected("the upsert returned no row"))
}

/// Counts a failure of (name, address) unless the pair is locked: failures
/// in flight when a lock landed neither re-arm nor escalate it.
fn pair_failure(name: &str, address: &str, now: i64) -> InsertStatement {
    let row = |column| Expr::col((LoginFailures::Table, column));
    let counted = Expr::case(
        row(LoginFailures::LockedUntil).gt(now),
        row(LoginFailures::Failures),
    )
    .finally(row(LoginFailures::Failures).add(1));
    Query::insert()
        .into_table(LoginFailures::Table)
        .columns([
            LoginFailures::Login,
            LoginFailures::Address,
            LoginFailures::Failures,
            LoginFailures::Lockouts,
            LoginFailures::LockedUntil,
            LoginFailures::UpdatedAt,
        ])
        .values_panic([
            name.into(),
            address.into(),
            1.into(),
            0.into(),
            0_i64.into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::columns([LoginFailures::Login, LoginFailures::Address])
                .value(LoginFailures::Failures, counted)
                .value(LoginFailures::UpdatedAt, now)
                .to_owned(),
        )
        .returning(Query::returning().columns([
            LoginFailures::Failures,
            LoginFailures::Lockouts,
            LoginFailures::LockedUntil,
        ]))
        .to_owned()
}

/// Counts a failure of the name in its window, opening a new window when
/// the old one is over.
fn name_failure(name: &str, now: i64, window: i64) -> InsertStatement {
    let row = |column| Expr::col((LoginNameFailures::Table, column));
    let expired = || row(LoginNameFailures::WindowStart).add(window).lte(now);
    Query::insert()
        .into_table(LoginNameFailures::Table)
        .columns([
            LoginNameFailures::Login,
            LoginNameFailures::WindowStart,
            LoginNameFailures::Failures,
            LoginNameFailures::UpdatedAt,
        ])
        .values_panic([name.into(), now.into(), 1.into(), now.into()])
        .on_conflict(
            OnConflict::column(LoginNameFailures::Login)
                .value(
                    LoginNameFailures::Failures,
                    Expr::case(expired(), 1).finally(row(LoginNameFailures::Failures).add(1)),
                )
                .value(
                    LoginNameFailures::WindowStart,
                    Expr::case(expired(), now).finally(row(LoginNameFailures::WindowStart)),
                )
                .value(LoginNameFailures::UpdatedAt, now)
                .to_owned(),
        )
        .returning(
            Query::returning()
                .columns([LoginNameFailures::Failures, LoginNameFailures::WindowStart]),
        )
        .to_owned()
}

fn count(row: &QueryResult, column: &str) -> Result<u32, PortError> {
    let n: i32 = row.try_get("", column).port()?;
    Ok(u32::try_from(n).unwrap_or_default())
}

fn time(row: &QueryResult, column: &str) -> Result<Option<OffsetDateTime>, PortError> {
    let us: i64 = row.try_get("", column).port()?;
    Ok(from_micros(us))
}

#[async_trait]
impl LoginThrottle for SeaOrmLoginThrottle {
    async fn state(&self, name: &str, address: &str) -> Result<ThrottleState, PortError> {
        let name = self.stored(name);
        let name = name.as_str();
        let select = Query::select()
            .expr_as(
                pair_column(name, address, LoginFailures::Failures),
                "pair_failures",
            )
            .expr_as(
                pair_column(name, address, LoginFailures::Lockouts),
                "pair_lockouts",
            )
            .expr_as(
                pair_column(name, address, LoginFailures::LockedUntil),
                "pair_locked_until",
            )
            .expr_as(
                name_column(name, LoginNameFailures::Failures),
                "name_failures",
            )
            .expr_as(
                name_column(name, LoginNameFailures::WindowStart),
                "name_window_start",
            )
            .to_owned();
        let row = self.db.connection().query_one(&select).await.port()?;
        let Some(row) = row else {
            return Ok(ThrottleState::default());
        };
        let optional_count = |column: &str| -> Result<u32, PortError> {
            let n: Option<i32> = row.try_get("", column).port()?;
            Ok(n.and_then(|n| u32::try_from(n).ok()).unwrap_or_default())
        };
        let optional_time = |column: &str| -> Result<Option<OffsetDateTime>, PortError> {
            let us: Option<i64> = row.try_get("", column).port()?;
            Ok(us.and_then(from_micros))
        };
        Ok(ThrottleState {
            pair_failures: optional_count("pair_failures")?,
            pair_lockouts: optional_count("pair_lockouts")?,
            pair_locked_until: optional_time("pair_locked_until")?,
            name_failures: optional_count("name_failures")?,
            name_window_start: optional_time("name_window_start")?,
        })
    }

    async fn record_failure(
        &self,
        name: &str,
        address: &str,
        now: OffsetDateTime,
        window: Duration,
        event: &AuditEvent,
    ) -> Result<ThrottleState, PortError> {
        let name = self.stored(name);
        let name = name.as_str();
        let now = micros(now);
        let window = i64::try_from(window.whole_microseconds()).unwrap_or(i64::MAX);
        let txn = self.begin().await?;
        let pair = upsert_one(&txn, pair_failure(name, address, now)).await?;
        let by_name = upsert_one(&txn, name_failure(name, now, window)).await?;
        commit_with(txn, Some(event)).await?;
        Ok(ThrottleState {
            pair_failures: count(&pair, "failures")?,
            pair_lockouts: count(&pair, "lockouts")?,
            pair_locked_until: time(&pair, "locked_until")?,
            name_failures: count(&by_name, "failures")?,
            name_window_start: time(&by_name, "window_start")?,
        })
    }

    async fn lock_pair(
        &self,
        name: &str,
        address: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<bool, PortError> {
        let name = self.stored(name);
        let name = name.as_str();
        let txn = self.begin().await?;
        let lock = Query::update()
            .table(LoginFailures::Table)
            .value(LoginFailures::LockedUntil, micros(until))
            .value(
                LoginFailures::Lockouts,
                Expr::col(LoginFailures::Lockouts).add(1),
            )
            .value(LoginFailures::Failures, 0)
            .value(LoginFailures::UpdatedAt, micros(now))
            .and_where(Expr::col(LoginFailures::Login).eq(name))
            .and_where(Expr::col(LoginFailures::Address).eq(address))
            .and_where(Expr::col(LoginFailures::LockedUntil).lte(micros(now)))
            .to_owned();
        let locked = txn.execute(&lock).await.port()?.rows_affected() == 1;
        commit_with(txn, Some(event).filter(|_| locked)).await?;
        Ok(locked)
    }

    async fn clear_pair(&self, name: &str, address: &str) -> Result<(), PortError> {
        let name = self.stored(name);
        let name = name.as_str();
        let clear = Query::delete()
            .from_table(LoginFailures::Table)
            .and_where(Expr::col(LoginFailures::Login).eq(name))
            .and_where(Expr::col(LoginFailures::Address).eq(address))
            .to_owned();
        self.db.connection().execute(&clear).await.port()?;
        Ok(())
    }

    async fn clear_names(
        &self,
        names: &[String],
        event: Option<AuditEvent>,
    ) -> Result<(), PortError> {
        let txn = self.begin().await?;
        for name in names {
            let name = self.stored(name);
            let pairs = delete_where(LoginFailures::Table, LoginFailures::Login, name.as_str());
            txn.execute(&pairs).await.port()?;
            let window = delete_where(
                LoginNameFailures::Table,
                LoginNameFailures::Login,
                name.as_str(),
            );
            txn.execute(&window).await.port()?;
        }
        commit_with(txn, event.as_ref()).await
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        let before = micros(before);
        let conn = self.db.connection();
        let pairs = delete_older(LoginFailures::Table, LoginFailures::UpdatedAt, before);
        let pairs = conn.execute(&pairs).await.port()?.rows_affected();
        let names = delete_older(
            LoginNameFailures::Table,
            LoginNameFailures::UpdatedAt,
            before,
        );
        let names = conn.execute(&names).await.port()?.rows_affected();
        Ok(pairs + names)
    }
}
