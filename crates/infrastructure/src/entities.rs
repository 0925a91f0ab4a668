//! SeaORM entities, one per table, mirroring the migrations: what the
//! adapters read rows into and build statements from (entity API, or
//! sea-query with the entities' columns). Conversions to domain types live
//! in the repositories, not here.
//!
//! Times: the tables the API shows rows of (`users`, `sessions`,
//! `personal_access_tokens`, `passkeys`) hold
//! timestamps; bookkeeping rows (tokens, jobs, counters, the audit trail,
//! webhooks and their deliveries, which a trigger writes)
//! hold integer microseconds since the epoch, with 0 meaning "not yet",
//! so that a spend or claim is one comparison with 0 that reads alike on
//! PostgreSQL and SQLite, and ordering and expiry are integer comparisons.

pub mod audit_event;
pub mod email_reservation;
pub mod login_failure;
pub mod login_name_failure;
pub mod mail_job;
pub mod mfa_challenge;
pub mod mfa_recovery_code;
pub mod oauth_spent_state;
pub mod passkey;
pub mod personal_access_token;
pub mod recovery_token;
pub mod request_count;
pub mod server_secret;
pub mod session;
pub mod spent_refresh_token;
pub mod user;
pub mod user_count;
pub mod user_identity;
pub mod user_totp;
pub mod webauthn_ceremony;
pub mod webhook;
pub mod webhook_attempt;
pub mod webhook_delivery;
