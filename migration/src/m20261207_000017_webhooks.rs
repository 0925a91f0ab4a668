//! Webhooks: endpoints (`webhooks`), one delivery per event and endpoint
//! (`webhook_deliveries`) and the attempts of each (`webhook_attempts`).
//!
//! The audit trail is the outbox: a trigger on `audit_events` adds, in the
//! transaction that writes the event, a pending delivery for every enabled
//! endpoint whose filter takes it, so an event is never written without
//! its deliveries, whichever statement writes it. `events` is `*` or the
//! types between commas (`,user.created,user.deleted,`), so the filter is
//! one substring test in either database. A delivery's id is its event's
//! (UUIDv7: the time) with fresh random bits. Times are microseconds since
//! the epoch, 0 meaning "not yet", as in the other queues. Deliveries
//! belong to their event: the audit trail's retention purges them (and
//! their attempts) with it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &str = "
CREATE TABLE webhooks (
    id {uuid} PRIMARY KEY NOT NULL,
    url varchar(2048) NOT NULL,
    events text NOT NULL,
    description varchar(800) NULL,
    enabled boolean NOT NULL,
    disabled_reason text NULL,
    secret {bytes} NOT NULL,
    previous_secret {bytes} NULL,
    previous_until bigint NOT NULL DEFAULT 0,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    failing_since bigint NOT NULL DEFAULT 0,
    paused_until bigint NOT NULL DEFAULT 0,
    lease_owner {uuid} NULL,
    lease_until bigint NOT NULL DEFAULT 0
);
CREATE TABLE webhook_deliveries (
    id {uuid} PRIMARY KEY NOT NULL,
    webhook_id {uuid} NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id {uuid} NOT NULL REFERENCES audit_events (id) ON DELETE CASCADE,
    status varchar(16) NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    last_status integer NULL,
    last_error text NULL,
    next_attempt_at bigint NOT NULL,
    delivered_at bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX ux_webhook_deliveries_endpoint_event ON webhook_deliveries (webhook_id, event_id);
CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (webhook_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX ix_webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE TABLE webhook_attempts (
    id {uuid} PRIMARY KEY NOT NULL,
    delivery_id {uuid} NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at bigint NOT NULL,
    status integer NULL,
    error text NULL,
    duration_ms integer NOT NULL
);
CREATE INDEX ix_webhook_attempts_delivery ON webhook_attempts (delivery_id, at);
";

const POSTGRES_FAN_OUT: &str = "
CREATE OR REPLACE FUNCTION webhook_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, webhook_id, event_id, status, next_attempt_at)
    SELECT encode(overlay(uuid_send(NEW.id)
                          PLACING substring(uuid_send(gen_random_uuid()) FROM 9 FOR 8)
                          FROM 9 FOR 8), 'hex')::uuid,
           w.id, NEW.id, 'pending', NEW.at
    FROM webhooks w
    WHERE w.enabled AND (w.events = '*' OR strpos(w.events, ',' || NEW.type || ',') > 0);
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_events_to_webhooks AFTER INSERT ON audit_events
FOR EACH ROW WHEN (NEW.type NOT LIKE 'webhook.%') EXECUTE FUNCTION webhook_fan_out();
";

const SQLITE_FAN_OUT: &str = "
CREATE TRIGGER audit_events_to_webhooks AFTER INSERT ON audit_events
WHEN NEW.type NOT LIKE 'webhook.%'
BEGIN
    INSERT INTO webhook_deliveries (id, webhook_id, event_id, status, next_attempt_at)
    SELECT unhex(substr(hex(NEW.id), 1, 16) || printf('%02X', 128 + abs(random() % 64))
                 || hex(randomblob(7))),
           w.id, NEW.id, 'pending', NEW.at
    FROM webhooks w
    WHERE w.enabled AND (w.events = '*' OR instr(w.events, ',' || NEW.type || ',') > 0);
END;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let (tables, fan_out) = match manager.get_database_backend() {
            DbBackend::Postgres => (
                TABLES.replace("{uuid}", "uuid").replace("{bytes}", "bytea"),
                POSTGRES_FAN_OUT,
            ),
            _ => (
                TABLES
                    .replace("{uuid}", "uuid_text")
                    .replace("{bytes}", "blob"),
                SQLITE_FAN_OUT,
            ),
        };
        for statement in tables.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            db.execute_unprepared(statement).await?;
        }
        db.execute_unprepared(fan_out).await.map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(
                "DROP TRIGGER IF EXISTS audit_events_to_webhooks ON audit_events",
            )
            .await?;
            db.execute_unprepared("DROP FUNCTION IF EXISTS webhook_fan_out()")
                .await?;
        } else {
            db.execute_unprepared("DROP TRIGGER IF EXISTS audit_events_to_webhooks")
                .await?;
        }
        for table in ["webhook_attempts", "webhook_deliveries", "webhooks"] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
                .await?;
        }
        Ok(())
    }
}
