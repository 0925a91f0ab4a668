//! [`LoginThrottle`] in two tables, `login_failures` (per name and
//! address) and `login_name_failures` (per name). Each count moves in one
//! upsert whose conditions read the row it writes, so concurrent failures
//! are all counted once and a lock is neither re-armed nor escalated by
//! failures that were in flight when it landed. Times are microseconds
//! since the Unix epoch (see the migration).

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sea_orm::{DatabaseTransaction, QueryResult, TransactionTrait, Value};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};
use userhub_domain::PortError;
use userhub_domain::model::AuditEvent;
use userhub_domain::ports::{LoginThrottle, ThrottleState};

use super::{Database, DbResultExt, audit, execute, from_micros, micros, query_one};

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

    async fn query_one(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Option<QueryResult>, PortError> {
        query_one(self.db.connection(), sql, values).await
    }

    async fn execute(&self, sql: &str, values: Vec<Value>) -> Result<u64, PortError> {
        execute(self.db.connection(), sql, values).await
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
        let row = self
            .query_one(
                "SELECT
                    (SELECT failures FROM login_failures WHERE login = ? AND address = ?) AS pair_failures,
                    (SELECT lockouts FROM login_failures WHERE login = ? AND address = ?) AS pair_lockouts,
                    (SELECT locked_until FROM login_failures WHERE login = ? AND address = ?) AS pair_locked_until,
                    (SELECT failures FROM login_name_failures WHERE login = ?) AS name_failures,
                    (SELECT window_start FROM login_name_failures WHERE login = ?) AS name_window_start",
                vec![
                    name.into(),
                    address.into(),
                    name.into(),
                    address.into(),
                    name.into(),
                    address.into(),
                    name.into(),
                    name.into(),
                ],
            )
            .await?;
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
        let pair = query_one(
                &txn,
                "INSERT INTO login_failures (login, address, failures, lockouts, locked_until, updated_at)
                 VALUES (?, ?, 1, 0, 0, ?)
                 ON CONFLICT (login, address) DO UPDATE SET
                    failures = CASE WHEN login_failures.locked_until > ?
                                    THEN login_failures.failures
                                    ELSE login_failures.failures + 1 END,
                    updated_at = ?
                 RETURNING failures, lockouts, locked_until",
                vec![name.into(), address.into(), now.into(), now.into(), now.into()],
            )
            .await?
            .ok_or_else(|| PortError::unexpected("the upsert returned no row"))?;
        let by_name = query_one(
            &txn,
            "INSERT INTO login_name_failures (login, window_start, failures, updated_at)
                 VALUES (?, ?, 1, ?)
                 ON CONFLICT (login) DO UPDATE SET
                    failures = CASE WHEN login_name_failures.window_start + ? <= ?
                                    THEN 1 ELSE login_name_failures.failures + 1 END,
                    window_start = CASE WHEN login_name_failures.window_start + ? <= ?
                                        THEN ? ELSE login_name_failures.window_start END,
                    updated_at = ?
                 RETURNING failures, window_start",
            vec![
                name.into(),
                now.into(),
                now.into(),
                window.into(),
                now.into(),
                window.into(),
                now.into(),
                now.into(),
                now.into(),
            ],
        )
        .await?
        .ok_or_else(|| PortError::unexpected("the upsert returned no row"))?;
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
        let locked = execute(
            &txn,
            "UPDATE login_failures
                    SET locked_until = ?, lockouts = lockouts + 1, failures = 0, updated_at = ?
                  WHERE login = ? AND address = ? AND locked_until <= ?",
            vec![
                micros(until).into(),
                micros(now).into(),
                name.into(),
                address.into(),
                micros(now).into(),
            ],
        )
        .await?
            == 1;
        commit_with(txn, Some(event).filter(|_| locked)).await?;
        Ok(locked)
    }

    async fn clear_pair(&self, name: &str, address: &str) -> Result<(), PortError> {
        let name = self.stored(name);
        let name = name.as_str();
        self.execute(
            "DELETE FROM login_failures WHERE login = ? AND address = ?",
            vec![name.into(), address.into()],
        )
        .await?;
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
            execute(
                &txn,
                "DELETE FROM login_failures WHERE login = ?",
                vec![name.as_str().into()],
            )
            .await?;
            execute(
                &txn,
                "DELETE FROM login_name_failures WHERE login = ?",
                vec![name.as_str().into()],
            )
            .await?;
        }
        commit_with(txn, event.as_ref()).await
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        let before = micros(before);
        let pairs = self
            .execute(
                "DELETE FROM login_failures WHERE updated_at < ?",
                vec![before.into()],
            )
            .await?;
        let names = self
            .execute(
                "DELETE FROM login_name_failures WHERE updated_at < ?",
                vec![before.into()],
            )
            .await?;
        Ok(pairs + names)
    }
}
