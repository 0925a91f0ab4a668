//! [`RequestCounter`] in `request_counts`: one row per key, holding the
//! current fixed window and its count, moved by one upsert so that
//! concurrent requests on every instance are each counted once.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, FromQueryResult};
use time::{Duration, OffsetDateTime};
use userhub_domain::PortError;
use userhub_domain::ports::RequestCounter;

use super::{Database, DbResultExt, micros};
use crate::entities::request_count;

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
        let length = Ord::max(micros(OffsetDateTime::UNIX_EPOCH + window), 1);
        let start = micros(now) / length * length;
        let hits = Expr::col((request_count::Entity, request_count::Column::Hits));
        let same_window =
            Expr::col((request_count::Entity, request_count::Column::WindowStart)).eq(start);
        let upsert = Query::insert()
            .into_table(request_count::Entity)
            .columns([
                request_count::Column::Key,
                request_count::Column::WindowStart,
                request_count::Column::Hits,
            ])
            .values_panic([key.into(), start.into(), 1.into()])
            .on_conflict(
                OnConflict::column(request_count::Column::Key)
                    .value(
                        request_count::Column::Hits,
                        Expr::case(same_window, hits.add(1)).finally(1),
                    )
                    .value(request_count::Column::WindowStart, start)
                    .to_owned(),
            )
            .returning_all()
            .to_owned();
        let row = self
            .db
            .connection()
            .query_one(&upsert)
            .await
            .port()?
            .ok_or_else(|| PortError::unexpected("the request count upsert returned no row"))?;
        let count = request_count::Model::from_query_result(&row, "").port()?;
        Ok(u32::try_from(count.hits).unwrap_or(u32::MAX))
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, PortError> {
        let stale = Query::delete()
            .from_table(request_count::Entity)
            .and_where(Expr::col(request_count::Column::WindowStart).lt(micros(before)))
            .to_owned();
        let done = self.db.connection().execute(&stale).await.port()?;
        Ok(done.rows_affected())
    }
}
