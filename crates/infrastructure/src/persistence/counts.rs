//! [`RequestCounter`] in `request_counts`: one row per key, holding the
//! current fixed window and its count, moved by one upsert so that
//! concurrent requests on every instance are each counted once.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use userhub_domain::PortError;
use userhub_domain::ports::RequestCounter;

use super::{Database, DbResultExt, execute, micros, query_one};

/// Rate-limit counts shared by every server instance.
#[derive(Clone, Debug)]
pub struct SeaOrmRequestCounter {
    db: Database,
}

impl SeaOrmRequestCounter {
    /// Counts on this database.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl RequestCounter for SeaOrmRequestCounter {
    async fn count(
        &self,
        key: &str,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<u32, PortError> {
        let length = micros(OffsetDateTime::UNIX_EPOCH + window).max(1);
        let start = micros(now) / length * length;
        let row = query_one(
            self.db.connection(),
            "INSERT INTO request_counts (key, window_start, hits) VALUES (?, ?, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               hits = CASE WHEN request_counts.window_start = excluded.window_start \
                           THEN request_counts.hits + 1 ELSE 1 END, \
               window_start = excluded.window_start \
             RETURNING hits",
            vec![key.into(), start.into()],
        )
        .await?
        .ok_or_else(|| PortError::unexpected("the request count upsert returned no row"))?;
        let hits: i32 = row.try_get("", "hits").port()?;
        Ok(u32::try_from(hits).unwrap_or(u32::MAX))
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        execute(
            self.db.connection(),
            "DELETE FROM request_counts WHERE window_start < ?",
            vec![micros(before).into()],
        )
        .await
    }
}
