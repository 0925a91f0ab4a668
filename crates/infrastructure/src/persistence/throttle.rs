//! [`LoginThrottle`] in two tables, `login_failures` (per name and
//! address) and `login_name_failures` (per name). Each count moves in one
//! upsert whose conditions read the row it writes, so concurrent failures
//! are all counted once and a lock is neither re-armed nor escalated by
//! failures that were in flight when it landed. Times are microseconds
//! since the Unix epoch (see the migration).

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sea_orm::sea_query::{Expr, ExprTrait, InsertStatement, OnConflict, Query, SelectStatement};
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, FromQueryResult, QueryResult, TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};
use userhub_domain::PortError;
use userhub_domain::model::AuditEvent;
use userhub_domain::ports::{LoginThrottle, ThrottleState};

use super::{Database, DbResultExt, audit, delete_older, delete_where, from_micros, micros};
use crate::entities::{login_failure, login_name_failure};

/// One column of the (name, address) row, as a scalar subquery.
fn pair_column(name: &str, address: &str, column: login_failure::Column) -> Expr {
    let select: SelectStatement = Query::select()
        .column(column)
        .from(login_failure::Entity)
        .and_where(Expr::col(login_failure::Column::Login).eq(name))
        .and_where(Expr::col(login_failure::Column::Address).eq(address))
        .to_owned();
    Expr::SubQuery(None, Box::new(select.into()))
}

/// One column of the name's row, as a scalar subquery.
fn name_column(name: &str, column: login_name_failure::Column) -> Expr {
    let select: SelectStatement = Query::select()
        .column(column)
        .from(login_name_failure::Entity)
        .and_where(Expr::col(login_name_failure::Column::Login).eq(name))
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
    let row = |column| Expr::col((login_failure::Entity, column));
    let counted = Expr::case(
        row(login_failure::Column::LockedUntil).gt(now),
        row(login_failure::Column::Failures),
    )
    .finally(row(login_failure::Column::Failures).add(1));
    Query::insert()
        .into_table(login_failure::Entity)
        .columns([
            login_failure::Column::Login,
            login_failure::Column::Address,
            login_failure::Column::Failures,
            login_failure::Column::Lockouts,
            login_failure::Column::LockedUntil,
            login_failure::Column::UpdatedAt,
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
            OnConflict::columns([login_failure::Column::Login, login_failure::Column::Address])
                .value(login_failure::Column::Failures, counted)
                .value(login_failure::Column::UpdatedAt, now)
                .to_owned(),
        )
        .returning_all()
        .to_owned()
}

/// Counts a failure of the name in its window, opening a new window when
/// the old one is over.
fn name_failure(name: &str, now: i64, window: i64) -> InsertStatement {
    let row = |column| Expr::col((login_name_failure::Entity, column));
    let expired = || {
        row(login_name_failure::Column::WindowStart)
            .add(window)
            .lte(now)
    };
    Query::insert()
        .into_table(login_name_failure::Entity)
        .columns([
            login_name_failure::Column::Login,
            login_name_failure::Column::WindowStart,
            login_name_failure::Column::Failures,
            login_name_failure::Column::UpdatedAt,
        ])
        .values_panic([name.into(), now.into(), 1.into(), now.into()])
        .on_conflict(
            OnConflict::column(login_name_failure::Column::Login)
                .value(
                    login_name_failure::Column::Failures,
                    Expr::case(expired(), 1)
                        .finally(row(login_name_failure::Column::Failures).add(1)),
                )
                .value(
                    login_name_failure::Column::WindowStart,
                    Expr::case(expired(), now)
                        .finally(row(login_name_failure::Column::WindowStart)),
                )
                .value(login_name_failure::Column::UpdatedAt, now)
                .to_owned(),
        )
        .returning_all()
        .to_owned()
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or_default()
}

/// What [`LoginThrottle::state`] reads: a (name, address) row's columns and
/// the name's, each `NULL` when its row does not exist.
#[derive(FromQueryResult)]
struct Throttled {
    pair_failures: Option<i32>,
    pair_lockouts: Option<i32>,
    pair_locked_until: Option<i64>,
    name_failures: Option<i32>,
    name_window_start: Option<i64>,
}

#[async_trait]
impl LoginThrottle for SeaOrmLoginThrottle {
    async fn state(&self, name: &str, address: &str) -> Result<ThrottleState, PortError> {
        let name = self.stored(name);
        let name = name.as_str();
        let select = Query::select()
            .expr_as(
                pair_column(name, address, login_failure::Column::Failures),
                "pair_failures",
            )
            .expr_as(
                pair_column(name, address, login_failure::Column::Lockouts),
                "pair_lockouts",
            )
            .expr_as(
                pair_column(name, address, login_failure::Column::LockedUntil),
                "pair_locked_until",
            )
            .expr_as(
                name_column(name, login_name_failure::Column::Failures),
                "name_failures",
            )
            .expr_as(
                name_column(name, login_name_failure::Column::WindowStart),
                "name_window_start",
            )
            .to_owned();
        let row = self.db.connection().query_one(&select).await.port()?;
        let Some(row) = row else {
            return Ok(ThrottleState::default());
        };
        let row = Throttled::from_query_result(&row, "").port()?;
        Ok(ThrottleState {
            pair_failures: row.pair_failures.map(count).unwrap_or_default(),
            pair_lockouts: row.pair_lockouts.map(count).unwrap_or_default(),
            pair_locked_until: row.pair_locked_until.and_then(from_micros),
            name_failures: row.name_failures.map(count).unwrap_or_default(),
            name_window_start: row.name_window_start.and_then(from_micros),
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
        let pair = login_failure::Model::from_query_result(&pair, "").port()?;
        let by_name = upsert_one(&txn, name_failure(name, now, window)).await?;
        let by_name = login_name_failure::Model::from_query_result(&by_name, "").port()?;
        commit_with(txn, Some(event)).await?;
        Ok(ThrottleState {
            pair_failures: count(pair.failures),
            pair_lockouts: count(pair.lockouts),
            pair_locked_until: from_micros(pair.locked_until),
            name_failures: count(by_name.failures),
            name_window_start: from_micros(by_name.window_start),
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
            .table(login_failure::Entity)
            .value(login_failure::Column::LockedUntil, micros(until))
            .value(
                login_failure::Column::Lockouts,
                Expr::col(login_failure::Column::Lockouts).add(1),
            )
            .value(login_failure::Column::Failures, 0)
            .value(login_failure::Column::UpdatedAt, micros(now))
            .and_where(Expr::col(login_failure::Column::Login).eq(name))
            .and_where(Expr::col(login_failure::Column::Address).eq(address))
            .and_where(Expr::col(login_failure::Column::LockedUntil).lte(micros(now)))
            .to_owned();
        let locked = txn.execute(&lock).await.port()?.rows_affected() == 1;
        commit_with(txn, Some(event).filter(|_| locked)).await?;
        Ok(locked)
    }

    async fn clear_pair(&self, name: &str, address: &str) -> Result<(), PortError> {
        let name = self.stored(name);
        let name = name.as_str();
        let clear = Query::delete()
            .from_table(login_failure::Entity)
            .and_where(Expr::col(login_failure::Column::Login).eq(name))
            .and_where(Expr::col(login_failure::Column::Address).eq(address))
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
            let pairs = delete_where(
                login_failure::Entity,
                login_failure::Column::Login,
                name.as_str(),
            );
            txn.execute(&pairs).await.port()?;
            let window = delete_where(
                login_name_failure::Entity,
                login_name_failure::Column::Login,
                name.as_str(),
            );
            txn.execute(&window).await.port()?;
        }
        commit_with(txn, event.as_ref()).await
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        let before = micros(before);
        let conn = self.db.connection();
        let pairs = delete_older(
            login_failure::Entity,
            login_failure::Column::UpdatedAt,
            before,
        );
        let pairs = conn.execute(&pairs).await.port()?.rows_affected();
        let names = delete_older(
            login_name_failure::Entity,
            login_name_failure::Column::UpdatedAt,
            before,
        );
        let names = conn.execute(&names).await.port()?.rows_affected();
        Ok(pairs + names)
    }
}
