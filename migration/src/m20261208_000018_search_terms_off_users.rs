//! Search terms move off `users` (PostgreSQL only).
//!
//! The three trigram indexes on `users` (username, lower-cased full name,
//! e-mail) made every profile write a non-HOT update that added entries to
//! all seven indexes of the table, though only one indexed value changed.
//! The terms now live in `user_search`, one row per user and field, each
//! field under its own partial trigram index, kept by a trigger in the same
//! transaction as the change to `users`: a new full name rewrites that one
//! row and adds entries to that one field's index, and `users`
//! keeps only indexes that a profile write does not touch, so its updates
//! can be HOT (a fill factor of 90 leaves them room on the page).
//!
//! SQLite never had the indexes (it scans `users`); nothing changes there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Makes and fills `user_search`, its index and trigger, then drops the
/// indexes it replaces. The listing's query names the same field numbers.
const UP: &[&str] = &[
    "CREATE TABLE user_search (
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        field smallint NOT NULL,
        term text NOT NULL,
        PRIMARY KEY (user_id, field))",
    // 1: username, 2: full name (lower-cased, '' when there is none), 3: e-mail;
    // a user's three rows side by side, as the trigger writes them, so that
    // a user matching on two fields costs one heap page, not two.
    "INSERT INTO user_search (user_id, field, term)
        SELECT u.id, f.field, CASE f.field WHEN 1 THEN u.username
                                           WHEN 2 THEN coalesce(lower(u.full_name), '')
                                           ELSE u.email END
        FROM users u CROSS JOIN (VALUES (1::smallint), (2::smallint), (3::smallint)) AS f (field)
        ORDER BY u.created_at, u.id, f.field",
    // One index per field, as `users` had: a new full name adds entries to
    // the name's index alone, and a search walks only the fields it asks.
    "CREATE INDEX ix_user_search_username_trgm ON user_search USING gin (term gin_trgm_ops)
        WHERE field = 1",
    "CREATE INDEX ix_user_search_full_name_trgm ON user_search USING gin (term gin_trgm_ops)
        WHERE field = 2",
    "CREATE INDEX ix_user_search_email_trgm ON user_search USING gin (term gin_trgm_ops)
        WHERE field = 3",
    "CREATE OR REPLACE FUNCTION user_search_follow() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO user_search (user_id, field, term) VALUES
                (NEW.id, 1, NEW.username),
                (NEW.id, 2, coalesce(lower(NEW.full_name), '')),
                (NEW.id, 3, NEW.email);
            RETURN NULL;
        END IF;
        IF NEW.username IS DISTINCT FROM OLD.username THEN
            UPDATE user_search SET term = NEW.username WHERE user_id = NEW.id AND field = 1;
        END IF;
        IF NEW.full_name IS DISTINCT FROM OLD.full_name THEN
            UPDATE user_search SET term = coalesce(lower(NEW.full_name), '')
                WHERE user_id = NEW.id AND field = 2;
        END IF;
        IF NEW.email IS DISTINCT FROM OLD.email THEN
            UPDATE user_search SET term = NEW.email WHERE user_id = NEW.id AND field = 3;
        END IF;
        RETURN NULL;
    END $$",
    "CREATE TRIGGER user_search_insert AFTER INSERT ON users
        FOR EACH ROW EXECUTE FUNCTION user_search_follow()",
    "CREATE TRIGGER user_search_update AFTER UPDATE OF username, full_name, email ON users
        FOR EACH ROW
        WHEN (OLD.username IS DISTINCT FROM NEW.username
              OR OLD.full_name IS DISTINCT FROM NEW.full_name
              OR OLD.email IS DISTINCT FROM NEW.email)
        EXECUTE FUNCTION user_search_follow()",
    "DROP INDEX IF EXISTS ix_users_username_trgm",
    "DROP INDEX IF EXISTS ix_users_full_name_trgm",
    "DROP INDEX IF EXISTS ix_users_email_trgm",
    "ALTER TABLE users SET (fillfactor = 90)",
    // Plans for the first searches, before autovacuum gets to the table.
    "ANALYZE user_search",
];

const DOWN: &[&str] = &[
    "ALTER TABLE users RESET (fillfactor)",
    "CREATE INDEX ix_users_username_trgm ON users USING gin (username gin_trgm_ops)",
    "CREATE INDEX ix_users_full_name_trgm ON users USING gin (lower(full_name) gin_trgm_ops)",
    "CREATE INDEX ix_users_email_trgm ON users USING gin (email gin_trgm_ops)",
    "DROP TRIGGER IF EXISTS user_search_update ON users",
    "DROP TRIGGER IF EXISTS user_search_insert ON users",
    "DROP FUNCTION IF EXISTS user_search_follow()",
    "DROP TABLE IF EXISTS user_search",
];

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let conn = manager.get_connection();
    for sql in statements {
        conn.execute_unprepared(sql).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, DOWN).await
    }
}
