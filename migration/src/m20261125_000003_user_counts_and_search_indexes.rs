//! Listing at scale: the `total` of a page without counting the table, and
//! substring search through an index.
//!
//! - `user_counts` holds how many users there are for each
//!   (`is_active`, `is_superuser`) pair, kept exact by triggers in the same
//!   transaction as every change to `users`, so an unsearched listing sums
//!   at most four rows instead of counting a million.
//! - On PostgreSQL, `pg_trgm` GIN indexes serve `LIKE '%term%'` on username,
//!   lower-cased full name and e-mail (SQLite has no equivalent; it scans).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const CREATE_COUNTS: &str = "CREATE TABLE user_counts (
    is_active boolean NOT NULL,
    is_superuser boolean NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (is_active, is_superuser))";

const POSTGRES_UP: &[&str] = &[
    CREATE_COUNTS,
    "INSERT INTO user_counts (is_active, is_superuser, n)
        SELECT a, s, (SELECT count(*) FROM users WHERE is_active = a AND is_superuser = s)
        FROM (VALUES (true), (false)) AS active(a), (VALUES (true), (false)) AS superuser(s)",
    // One UPDATE for both rows of a change, so concurrent changes lock the
    // counter rows in the same order and cannot deadlock.
    "CREATE OR REPLACE FUNCTION user_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE user_counts SET n = n + 1
                WHERE is_active = NEW.is_active AND is_superuser = NEW.is_superuser;
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE user_counts SET n = n - 1
                WHERE is_active = OLD.is_active AND is_superuser = OLD.is_superuser;
        ELSE
            UPDATE user_counts
                SET n = n + CASE WHEN is_active = NEW.is_active
                                  AND is_superuser = NEW.is_superuser THEN 1 ELSE -1 END
                WHERE (is_active, is_superuser) IN
                    ((OLD.is_active, OLD.is_superuser), (NEW.is_active, NEW.is_superuser));
        END IF;
        RETURN NULL;
    END $$",
    "CREATE TRIGGER user_counts_insert_delete AFTER INSERT OR DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION user_counts_follow()",
    "CREATE TRIGGER user_counts_update AFTER UPDATE OF is_active, is_superuser ON users
        FOR EACH ROW
        WHEN (OLD.is_active IS DISTINCT FROM NEW.is_active
              OR OLD.is_superuser IS DISTINCT FROM NEW.is_superuser)
        EXECUTE FUNCTION user_counts_follow()",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_users_username_trgm ON users USING gin (username gin_trgm_ops)",
    "CREATE INDEX ix_users_full_name_trgm ON users USING gin (lower(full_name) gin_trgm_ops)",
    "CREATE INDEX ix_users_email_trgm ON users USING gin (email gin_trgm_ops)",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX IF EXISTS ix_users_email_trgm",
    "DROP INDEX IF EXISTS ix_users_full_name_trgm",
    "DROP INDEX IF EXISTS ix_users_username_trgm",
    "DROP TRIGGER IF EXISTS user_counts_update ON users",
    "DROP TRIGGER IF EXISTS user_counts_insert_delete ON users",
    "DROP FUNCTION IF EXISTS user_counts_follow()",
    "DROP TABLE IF EXISTS user_counts",
];

const SQLITE_UP: &[&str] = &[
    CREATE_COUNTS,
    "INSERT INTO user_counts (is_active, is_superuser, n)
        SELECT a, s, (SELECT count(*) FROM users WHERE is_active = a AND is_superuser = s)
        FROM (SELECT 1 AS a UNION ALL SELECT 0), (SELECT 1 AS s UNION ALL SELECT 0)",
    "CREATE TRIGGER user_counts_insert AFTER INSERT ON users BEGIN
        UPDATE user_counts SET n = n + 1
            WHERE is_active = NEW.is_active AND is_superuser = NEW.is_superuser;
    END",
    "CREATE TRIGGER user_counts_delete AFTER DELETE ON users BEGIN
        UPDATE user_counts SET n = n - 1
            WHERE is_active = OLD.is_active AND is_superuser = OLD.is_superuser;
    END",
    "CREATE TRIGGER user_counts_update AFTER UPDATE OF is_active, is_superuser ON users
        WHEN OLD.is_active IS NOT NEW.is_active OR OLD.is_superuser IS NOT NEW.is_superuser
    BEGIN
        UPDATE user_counts SET n = n - 1
            WHERE is_active = OLD.is_active AND is_superuser = OLD.is_superuser;
        UPDATE user_counts SET n = n + 1
            WHERE is_active = NEW.is_active AND is_superuser = NEW.is_superuser;
    END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS user_counts_update",
    "DROP TRIGGER IF EXISTS user_counts_delete",
    "DROP TRIGGER IF EXISTS user_counts_insert",
    "DROP TABLE IF EXISTS user_counts",
];

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    for sql in statements {
        conn.execute_unprepared(sql).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, POSTGRES_UP).await,
            _ => run(manager, SQLITE_UP).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => run(manager, POSTGRES_DOWN).await,
            _ => run(manager, SQLITE_DOWN).await,
        }
    }
}
