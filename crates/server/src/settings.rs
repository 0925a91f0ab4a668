//! Settings, layered: built-in defaults, `config/default.toml`,
//! `config/<APP_ENV>.toml`, a `.env` file, then the process environment
//! (highest). Keys are the environment variable names, lower-cased in TOML.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use figment::providers::Env;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use userhub_infrastructure::{PreviousKey, SigningKey};

use crate::telemetry::LogFormat;

pub use userhub_config::DEFAULT_DATABASE_URL;

/// The lowest bcrypt cost a deployed server accepts.
pub const MIN_BCRYPT_COST: u32 = 10;

/// Every setting, named after its environment variable.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `development` (default) or `production`; production refuses weak set-ups.
    pub app_env: AppEnv,
    /// Listen address.
    pub host: String,
    /// Listen port; 0 picks a free one.
    pub port: u16,
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// `postgres://…` or `sqlite://…`; empty means [`DEFAULT_DATABASE_URL`].
    pub database_url: String,
    /// `pgbouncer` when `DATABASE_URL` is a PgBouncer in transaction
    /// pooling mode; `none` (the default) for a direct connection.
    pub db_pooler: DbPooler,
    /// A direct PostgreSQL URL for migrations (they need a session of their
    /// own); required with `DB_POOLER=pgbouncer` when migrations run.
    pub database_direct_url: Option<String>,
    /// Most pooled connections.
    pub db_pool_max_size: u32,
    /// Connections kept open while idle.
    pub db_pool_min_idle: u32,
    /// Seconds a request waits for a pooled connection before answering 503.
    pub db_acquire_timeout_seconds: u64,
    /// Seconds an idle connection is kept.
    pub db_idle_timeout_seconds: u64,
    /// Seconds opening the first connection at start may take.
    pub db_connect_timeout_seconds: u64,
    /// Seconds a server started before its database keeps retrying the
    /// first connection (a log line per try); 0 gives up at once.
    pub db_startup_wait_seconds: u64,
    /// Seconds a PostgreSQL statement may run or wait for a lock before it
    /// is cancelled (the request answers 503); 0 means no limit.
    pub db_statement_timeout_seconds: u64,
    /// Seconds between the shutdown signal and closing the listener, while
    /// `/health` answers 503 so that load balancers move away.
    pub shutdown_delay_seconds: u64,
    /// Seconds in-flight requests get to finish once the listener is closed.
    pub shutdown_timeout_seconds: u64,
    /// Largest request line and header block, in bytes; larger get 431.
    pub max_header_bytes: usize,
    /// Apply pending migrations at start.
    pub run_migrations: bool,
    /// HMAC key for access tokens, at least 32 bytes.
    pub jwt_secret_key: Option<SecretString>,
    /// Signing algorithm: `HS256`, `RS256` or `EdDSA`.
    pub jwt_algorithm: JwtAlgorithm,
    /// PEM private key for RS256 / EdDSA.
    pub jwt_private_key_file: Option<String>,
    /// PEM public key for RS256 / EdDSA, published as a JWK Set.
    pub jwt_public_key_file: Option<String>,
    /// HS256: the key signed with before a rotation; it still verifies
    /// tokens (until they expire), never signs.
    pub jwt_previous_secret_key: Option<SecretString>,
    /// RS256 / EdDSA: the public key of the pair used before a rotation;
    /// it is still published and still verifies tokens, never signs.
    pub jwt_previous_public_key_file: Option<String>,
    /// `iss` of issued tokens.
    pub jwt_issuer: String,
    /// `aud` of issued tokens.
    pub jwt_audience: String,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    pub jwt_leeway_seconds: u64,
    /// Access-token lifetime.
    pub access_token_expire_minutes: u64,
    /// Refresh-token (session) lifetime.
    pub refresh_token_expire_days: u64,
    /// Comma-separated origins allowed by CORS.
    pub cors_origins: String,
    /// bcrypt work factor.
    pub bcrypt_cost: u32,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a request body may take to arrive after its head (408 then).
    pub body_timeout_seconds: u64,
    /// Seconds a spent refresh token still yields its successor (for a
    /// client that raced two refreshes); 0 treats every reuse as theft.
    pub refresh_reuse_grace_seconds: u64,
    /// Requests per minute one client IP may make to register, login and
    /// refresh together; 0 turns the limit off.
    pub auth_rate_limit_per_minute: u32,
    /// Where the per-IP limit and the hashing budget are counted: `memory`
    /// (this process) or `database` (shared by every instance).
    pub rate_limit_store: RateLimitStore,
    /// Take the client IP from the last `X-Forwarded-For` entry: only behind
    /// a proxy that sets it, or clients could pick their own address.
    pub trust_forwarded_for: bool,
    /// Seconds between deletions of ended sessions; 0 turns them off.
    pub session_cleanup_interval_seconds: u64,
    /// Lowest zxcvbn score (0–4) a new password needs; 0 turns the estimate off.
    pub password_min_score: u8,
    /// Consecutive failed logins that lock an account; 0 turns locking off.
    pub login_max_failures: u32,
    /// Length of the first lock, in seconds; each further lock doubles it.
    pub login_lockout_seconds: u64,
    /// Longest lock, in seconds.
    pub login_lockout_max_seconds: u64,
    /// Failed password checks of one login name per hour, from every
    /// address, after which the name is refused until the hour is over; 0
    /// turns the budget off.
    pub login_max_failures_per_name_per_hour: u32,
    /// Requests per minute one caller may make to endpoints that hash a
    /// password behind authentication (change-password, a profile update
    /// with a password, creating a user); 0 turns the budget off.
    pub password_hash_budget_per_minute: u32,
    /// Superuser created at start if absent (needs the password too).
    pub first_superuser_email: Option<String>,
    /// Its password.
    pub first_superuser_password: Option<SecretString>,
    /// Its username.
    pub first_superuser_username: String,
    /// SMTP server for the mail the service sends; empty writes each mail
    /// to the log instead (refused in production).
    pub smtp_host: String,
    /// SMTP port; unset means 587 (STARTTLS), 465 (TLS) or 25 (none).
    pub smtp_port: Option<u16>,
    /// SMTP login, if the server wants one.
    pub smtp_username: Option<String>,
    /// Its password.
    pub smtp_password: Option<SecretString>,
    /// `starttls` (default), `tls` or `none`.
    pub smtp_tls: SmtpTlsSetting,
    /// Seconds to wait for the SMTP server at each step.
    pub smtp_timeout_seconds: u64,
    /// `From` of every mail: an address, or `Name <address>`.
    pub mail_from: String,
    /// Attempts at delivering one mail before it is given up (and logged).
    pub mail_max_attempts: u32,
    /// Seconds before a failed mail's second attempt; each further wait doubles.
    pub mail_retry_seconds: u64,
    /// The base of links in mails (the web app that shows the reset form),
    /// e.g. `https://app.example.com`; unset means `http://HOST:PORT`.
    pub public_url: String,
    /// Days an audit event is kept.
    pub audit_retention_days: u64,
    /// Minutes a password-reset link works.
    pub password_reset_token_minutes: u64,
    /// Hours a verification link works.
    pub verify_token_hours: u64,
    /// Refuse logins (403, after the password check) and refreshes of
    /// users whose address is not verified.
    pub require_verified_email: bool,
    /// Changing one's own email needs the current password; `false` is
    /// weaker (a stolen access token can then move the account).
    pub email_change_requires_password: bool,
    /// Days a link that undoes an email change works.
    pub revert_email_token_days: u64,
    /// Reset, verification and revert links one address may be mailed per
    /// hour; more are not sent (the answers stay the same).
    pub mail_max_per_address_per_hour: u32,
    /// Profile writes per minute per account; 0 turns the limit off.
    pub user_write_limit_per_minute: u32,
    /// Log filter, `RUST_LOG` syntax.
    pub rust_log: String,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            app_env: AppEnv::Development,
            host: "127.0.0.1".into(),
            port: 8000,
            workers: 0,
            database_url: String::new(),
            db_pooler: DbPooler::None,
            database_direct_url: None,
            db_pool_max_size: 16,
            db_pool_min_idle: 0,
            db_acquire_timeout_seconds: 3,
            db_idle_timeout_seconds: 300,
            db_connect_timeout_seconds: 5,
            db_startup_wait_seconds: 0,
            db_statement_timeout_seconds: 10,
            shutdown_delay_seconds: 5,
            shutdown_timeout_seconds: 30,
            max_header_bytes: 16 * 1024,
            run_migrations: true,
            jwt_secret_key: None,
            jwt_algorithm: JwtAlgorithm::Hs256,
            jwt_private_key_file: None,
            jwt_public_key_file: None,
            jwt_previous_secret_key: None,
            jwt_previous_public_key_file: None,
            jwt_issuer: "userhub".into(),
            jwt_audience: "userhub-api".into(),
            jwt_leeway_seconds: 5,
            access_token_expire_minutes: 30,
            refresh_token_expire_days: 7,
            cors_origins: String::new(),
            bcrypt_cost: 12,
            max_body_bytes: 64 * 1024,
            body_timeout_seconds: 10,
            refresh_reuse_grace_seconds: 0,
            auth_rate_limit_per_minute: 30,
            rate_limit_store: RateLimitStore::Memory,
            trust_forwarded_for: false,
            session_cleanup_interval_seconds: 3600,
            password_min_score: 2,
            login_max_failures: 5,
            login_lockout_seconds: 60,
            login_lockout_max_seconds: 3600,
            login_max_failures_per_name_per_hour: 100,
            password_hash_budget_per_minute: 10,
            first_superuser_email: None,
            first_superuser_password: None,
            first_superuser_username: "admin".into(),
            smtp_host: String::new(),
            smtp_port: None,
            smtp_username: None,
            smtp_password: None,
            smtp_tls: SmtpTlsSetting::StartTls,
            smtp_timeout_seconds: 10,
            mail_from: "UserHub <no-reply@localhost>".into(),
            mail_max_attempts: 8,
            mail_retry_seconds: 30,
            public_url: String::new(),
            audit_retention_days: 90,
            password_reset_token_minutes: 30,
            verify_token_hours: 48,
            require_verified_email: false,
            email_change_requires_password: true,
            revert_email_token_days: 7,
            mail_max_per_address_per_hour: 5,
            user_write_limit_per_minute: 30,
            rust_log: "info".into(),
            log_format: LogFormat::Pretty,
        }
    }
}

/// `APP_ENV`: how strict the server is about its set-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AppEnv {
    /// Tolerates a missing JWT key (a random one per run) and a log mailer.
    #[default]
    Development,
    /// Refuses weak or missing secrets.
    Production,
}

impl<'de> Deserialize<'de> for AppEnv {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one_of(
            deserializer,
            &[
                ("development", Self::Development),
                ("production", Self::Production),
            ],
            "`development` or `production`",
        )
    }
}

/// `JWT_ALGORITHM`: how access tokens are signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with `JWT_SECRET_KEY`.
    #[default]
    Hs256,
    /// RSA with the PEM key pair.
    Rs256,
    /// Ed25519 with the PEM key pair.
    EdDsa,
}

impl JwtAlgorithm {
    const NAMES: [(&'static str, Self); 3] = [
        ("HS256", Self::Hs256),
        ("RS256", Self::Rs256),
        ("EdDSA", Self::EdDsa),
    ];
}

impl std::fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = Self::NAMES
            .iter()
            .find(|(_, value)| value == self)
            .map_or("HS256", |(name, _)| name);
        f.write_str(name)
    }
}

impl std::str::FromStr for JwtAlgorithm {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(raw.trim()))
            .map(|(_, value)| *value)
            .ok_or_else(|| format!("`{raw}`: expected `HS256`, `RS256` or `EdDSA`"))
    }
}

impl<'de> Deserialize<'de> for JwtAlgorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one_of(deserializer, &Self::NAMES, "`HS256`, `RS256` or `EdDSA`")
    }
}

/// `SMTP_TLS`: how the mail connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmtpTlsSetting {
    /// STARTTLS, required.
    #[default]
    StartTls,
    /// TLS from the first byte.
    Tls,
    /// None: a relay on a trusted network only.
    None,
}

impl<'de> Deserialize<'de> for SmtpTlsSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one_of(
            deserializer,
            &[
                ("starttls", Self::StartTls),
                ("tls", Self::Tls),
                ("none", Self::None),
            ],
            "`starttls`, `tls` or `none`",
        )
    }
}

/// `DB_POOLER`: what `DATABASE_URL` points at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DbPooler {
    /// PostgreSQL itself (or a pooler in session mode).
    #[default]
    None,
    /// PgBouncer in transaction pooling mode.
    Pgbouncer,
}

impl<'de> Deserialize<'de> for DbPooler {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one_of(
            deserializer,
            &[("none", Self::None), ("pgbouncer", Self::Pgbouncer)],
            "`none` or `pgbouncer`",
        )
    }
}

/// `RATE_LIMIT_STORE`: where request budgets are counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RateLimitStore {
    /// In each process: enough for one instance.
    #[default]
    Memory,
    /// In the database: every instance spends the same budget.
    Database,
}

impl<'de> Deserialize<'de> for RateLimitStore {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one_of(
            deserializer,
            &[("memory", Self::Memory), ("database", Self::Database)],
            "`memory` or `database`",
        )
    }
}

/// One of a few names, in any case and with blanks around.
fn one_of<'de, D: Deserializer<'de>, T: Copy>(
    deserializer: D,
    choices: &[(&str, T)],
    expected: &'static str,
) -> Result<T, D::Error> {
    let raw = String::deserialize(deserializer)?;
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(raw.trim()))
        .map(|(_, value)| *value)
        .ok_or_else(|| serde::de::Error::invalid_value(serde::de::Unexpected::Str(&raw), &expected))
}

/// A figment error in one line that names the variable (and the file, when
/// the value came from one): `PORT: invalid type: found string "x", expected u16`.
fn describe(err: &figment::Error) -> String {
    let key = err
        .path
        .last()
        .map_or_else(String::new, |k| k.to_ascii_uppercase());
    let file = err
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .and_then(|source| source.file_path())
        .map(|path| format!(" (in {})", path.display()))
        .unwrap_or_default();
    if key.is_empty() {
        format!("invalid settings{file}: {}", err.kind)
    } else {
        format!("{key}{file}: {}", err.kind)
    }
}

/// A count of seconds as a [`time::Duration`], saturating (ranges are
/// checked at start).
fn seconds(value: u64) -> time::Duration {
    time::Duration::seconds(i64::try_from(value).unwrap_or(i64::MAX))
}

/// A day in seconds.
const DAY: u64 = 86_400;

/// Environment variables read, lower-cased.
const KEYS: &[&str] = &[
    "app_env",
    "host",
    "port",
    "workers",
    "database_url",
    "db_pooler",
    "database_direct_url",
    "db_pool_max_size",
    "db_pool_min_idle",
    "db_acquire_timeout_seconds",
    "db_idle_timeout_seconds",
    "db_connect_timeout_seconds",
    "db_startup_wait_seconds",
    "db_statement_timeout_seconds",
    "shutdown_delay_seconds",
    "shutdown_timeout_seconds",
    "max_header_bytes",
    "run_migrations",
    "jwt_secret_key",
    "jwt_algorithm",
    "jwt_private_key_file",
    "jwt_public_key_file",
    "jwt_previous_secret_key",
    "jwt_previous_public_key_file",
    "jwt_issuer",
    "jwt_audience",
    "jwt_leeway_seconds",
    "access_token_expire_minutes",
    "refresh_token_expire_days",
    "cors_origins",
    "bcrypt_cost",
    "max_body_bytes",
    "body_timeout_seconds",
    "refresh_reuse_grace_seconds",
    "auth_rate_limit_per_minute",
    "rate_limit_store",
    "trust_forwarded_for",
    "session_cleanup_interval_seconds",
    "password_min_score",
    "login_max_failures",
    "login_lockout_seconds",
    "login_lockout_max_seconds",
    "login_max_failures_per_name_per_hour",
    "password_hash_budget_per_minute",
    "first_superuser_email",
    "first_superuser_password",
    "first_superuser_username",
    "smtp_host",
    "smtp_port",
    "smtp_username",
    "smtp_password",
    "smtp_tls",
    "smtp_timeout_seconds",
    "mail_from",
    "mail_max_attempts",
    "mail_retry_seconds",
    "public_url",
    "audit_retention_days",
    "password_reset_token_minutes",
    "verify_token_hours",
    "require_verified_email",
    "email_change_requires_password",
    "revert_email_token_days",
    "mail_max_per_address_per_hour",
    "user_write_limit_per_minute",
    "rust_log",
    "log_format",
];

/// An origin as browsers send it: `http` or `https`, a host, maybe a port,
/// nothing else (no `*`, no path).
fn check_origin(origin: &str) -> anyhow::Result<()> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .context("expected an origin with a scheme, such as https://app.example.com")?;
    let (host, port) = rest
        .rsplit_once(':')
        .map_or((rest, None), |(h, p)| (h, Some(p)));
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    if !host_ok || !port_ok {
        bail!("expected scheme://host[:port], without a path or wildcard");
    }
    Ok(())
}

impl Settings {
    /// Reads the layers from the working directory and the environment.
    ///
    /// # Errors
    /// A malformed file or value.
    pub fn load() -> anyhow::Result<Self> {
        // .env fills in variables the environment does not set.
        userhub_config::load_dotenv()?;
        let settings = Self::from_layers(Path::new("config"), Env::raw().only(KEYS))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses settings that are unsafe outside tests (which build their
    /// settings directly and may use a cheap bcrypt cost).
    ///
    /// # Errors
    /// The first unsafe setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(MIN_BCRYPT_COST..=31).contains(&self.bcrypt_cost) {
            bail!(
                "BCRYPT_COST must be between {MIN_BCRYPT_COST} and 31, not {}",
                self.bcrypt_cost
            );
        }
        self.check_ranges()?;
        for origin in self.cors_origins() {
            check_origin(&origin).with_context(|| format!("CORS_ORIGINS: `{origin}`"))?;
        }
        let url = self.database_url();
        if !url.starts_with("postgres://") && !url.starts_with("sqlite:") {
            bail!(
                "DATABASE_URL={}: expected postgres://, postgresql://, postgresql+asyncpg:// or sqlite://",
                userhub_config::redact(&self.database_url)
            );
        }
        self.check_pooler()?;
        self.check_mail()?;
        tracing_subscriber::EnvFilter::try_new(&self.rust_log)
            .with_context(|| format!("RUST_LOG={}", self.rust_log))?;
        Ok(())
    }

    /// Reads `dir/default.toml`, `dir/<app_env>.toml`, then `env`.
    ///
    /// # Errors
    /// A malformed file or value, named by its variable.
    pub fn from_layers(dir: &Path, env: Env) -> anyhow::Result<Self> {
        let settings: Self = userhub_config::layers(dir, env)
            .extract()
            .map_err(|err| anyhow::anyhow!(describe(&err)))?;
        Ok(settings.without_empty_values())
    }

    /// Refuses numbers outside what the server can honour, instead of
    /// silently clamping them.
    fn check_ranges(&self) -> anyhow::Result<()> {
        let ranges: [(&str, u64, u64, u64); 21] = [
            (
                "REVERT_EMAIL_TOKEN_DAYS",
                self.revert_email_token_days,
                1,
                90,
            ),
            (
                "MAIL_MAX_PER_ADDRESS_PER_HOUR",
                self.mail_max_per_address_per_hour.into(),
                1,
                1000,
            ),
            (
                "USER_WRITE_LIMIT_PER_MINUTE",
                self.user_write_limit_per_minute.into(),
                0,
                100_000,
            ),
            (
                "DB_STARTUP_WAIT_SECONDS",
                self.db_startup_wait_seconds,
                0,
                3600,
            ),
            ("AUDIT_RETENTION_DAYS", self.audit_retention_days, 1, 36_500),
            ("BODY_TIMEOUT_SECONDS", self.body_timeout_seconds, 1, 300),
            ("VERIFY_TOKEN_HOURS", self.verify_token_hours, 1, 30 * 24),
            ("SMTP_TIMEOUT_SECONDS", self.smtp_timeout_seconds, 1, 300),
            ("MAIL_MAX_ATTEMPTS", self.mail_max_attempts.into(), 1, 100),
            ("MAIL_RETRY_SECONDS", self.mail_retry_seconds, 1, 3600),
            (
                "PASSWORD_RESET_TOKEN_MINUTES",
                self.password_reset_token_minutes,
                1,
                24 * 60,
            ),
            ("DB_POOL_MAX_SIZE", self.db_pool_max_size.into(), 1, 10_000),
            (
                "DB_POOL_MIN_IDLE",
                self.db_pool_min_idle.into(),
                0,
                self.db_pool_max_size.into(),
            ),
            (
                "DB_ACQUIRE_TIMEOUT_SECONDS",
                self.db_acquire_timeout_seconds,
                1,
                3600,
            ),
            (
                "DB_CONNECT_TIMEOUT_SECONDS",
                self.db_connect_timeout_seconds,
                1,
                3600,
            ),
            (
                "ACCESS_TOKEN_EXPIRE_MINUTES",
                self.access_token_expire_minutes,
                1,
                365 * 24 * 60,
            ),
            (
                "REFRESH_TOKEN_EXPIRE_DAYS",
                self.refresh_token_expire_days,
                1,
                3650,
            ),
            (
                "REFRESH_REUSE_GRACE_SECONDS",
                self.refresh_reuse_grace_seconds,
                0,
                3600,
            ),
            (
                "LOGIN_LOCKOUT_SECONDS",
                self.login_lockout_seconds,
                1,
                365 * DAY,
            ),
            (
                "LOGIN_LOCKOUT_MAX_SECONDS",
                self.login_lockout_max_seconds,
                self.login_lockout_seconds,
                365 * DAY,
            ),
            ("PASSWORD_MIN_SCORE", self.password_min_score.into(), 0, 4),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                bail!("{name}={value}: expected a number from {min} to {max}");
            }
        }
        Ok(())
    }

    fn check_mail(&self) -> anyhow::Result<()> {
        if self.is_production() && self.smtp_host.trim().is_empty() {
            bail!("SMTP_HOST is required when APP_ENV=production (mail would only be logged)");
        }
        if self.is_production() && self.public_url.trim().is_empty() {
            bail!("PUBLIC_URL is required when APP_ENV=production (the base of links in mails)");
        }
        if !self.public_url.trim().is_empty() {
            let url = self.public_url.trim().trim_end_matches('/');
            let origin_end = url
                .find("://")
                .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
                .unwrap_or(url.len());
            check_origin(&url[..origin_end])
                .with_context(|| format!("PUBLIC_URL={}", self.public_url))?;
        }
        if self.smtp_username.is_some() != self.smtp_password.is_some() {
            bail!("SMTP_USERNAME and SMTP_PASSWORD go together: set both or neither");
        }
        Ok(())
    }

    /// The base of links in mails, without a trailing slash.
    #[must_use]
    pub fn public_url(&self) -> String {
        let url = self.public_url.trim().trim_end_matches('/');
        if url.is_empty() {
            format!("http://{}:{}", self.host, self.port)
        } else {
            url.to_owned()
        }
    }

    /// The SMTP server's settings, or `None` to log mail instead.
    #[must_use]
    pub fn smtp(&self) -> Option<userhub_infrastructure::SmtpSettings> {
        use userhub_infrastructure::SmtpTls;
        let host = self.smtp_host.trim();
        if host.is_empty() {
            return None;
        }
        let tls = match self.smtp_tls {
            SmtpTlsSetting::StartTls => SmtpTls::StartTls,
            SmtpTlsSetting::Tls => SmtpTls::Tls,
            SmtpTlsSetting::None => SmtpTls::None,
        };
        Some(userhub_infrastructure::SmtpSettings {
            host: host.to_owned(),
            port: self.smtp_port.unwrap_or_else(|| tls.default_port()),
            tls,
            credentials: self.smtp_username.clone().zip(self.smtp_password.clone()),
            from: self.mail_from.clone(),
            timeout: Duration::from_secs(self.smtp_timeout_seconds),
        })
    }

    /// How long audit events are kept.
    #[must_use]
    pub fn audit_retention(&self) -> time::Duration {
        time::Duration::days(i64::try_from(self.audit_retention_days).unwrap_or(i64::MAX))
    }

    /// The rules of account recovery.
    #[must_use]
    pub fn recovery(&self) -> userhub_domain::services::RecoveryConfig {
        userhub_domain::services::RecoveryConfig {
            reset_token_ttl: seconds(self.password_reset_token_minutes.saturating_mul(60)),
            verify_token_ttl: seconds(self.verify_token_hours.saturating_mul(3600)),
            public_url: self.public_url(),
            password_policy: self.password_policy(),
            max_attempts: self.mail_max_attempts,
            retry_base: seconds(self.mail_retry_seconds),
            revert_token_ttl: seconds(self.revert_email_token_days.saturating_mul(DAY)),
            max_links_per_address_per_hour: self.mail_max_per_address_per_hour,
        }
    }

    /// Access-token lifetime.
    #[must_use]
    pub fn access_token_ttl(&self) -> time::Duration {
        seconds(self.access_token_expire_minutes.saturating_mul(60))
    }

    /// Refresh-token (session) lifetime.
    #[must_use]
    pub fn refresh_token_ttl(&self) -> time::Duration {
        seconds(self.refresh_token_expire_days.saturating_mul(DAY))
    }

    /// How long a spent refresh token still yields its successor.
    #[must_use]
    pub fn refresh_reuse_grace(&self) -> time::Duration {
        seconds(self.refresh_reuse_grace_seconds)
    }

    /// `KEY=` (as in a copied `.env.example`) means "not set".
    fn without_empty_values(mut self) -> Self {
        let blank = |s: &str| s.trim().is_empty();
        self.jwt_secret_key = self.jwt_secret_key.filter(|k| !blank(k.expose_secret()));
        self.jwt_previous_secret_key = self
            .jwt_previous_secret_key
            .filter(|k| !blank(k.expose_secret()));
        self.first_superuser_email = self.first_superuser_email.filter(|e| !blank(e));
        self.database_direct_url = self.database_direct_url.filter(|u| !blank(u));
        self.smtp_username = self.smtp_username.filter(|u| !blank(u));
        self.smtp_password = self.smtp_password.filter(|p| !blank(p.expose_secret()));
        self.first_superuser_password = self
            .first_superuser_password
            .filter(|p| !blank(p.expose_secret()));
        self
    }

    /// PgBouncer needs PostgreSQL behind it, and migrations a direct URL.
    fn check_pooler(&self) -> anyhow::Result<()> {
        if self.db_pooler != DbPooler::Pgbouncer {
            return Ok(());
        }
        if !self.database_url().starts_with("postgres://") {
            bail!("DB_POOLER=pgbouncer: DATABASE_URL must be a postgres:// URL");
        }
        match self.direct_database_url() {
            Some(url) if !url.starts_with("postgres://") => bail!(
                "DATABASE_DIRECT_URL={}: expected a postgres:// URL",
                userhub_config::redact(&url)
            ),
            None if self.run_migrations => bail!(
                "DATABASE_DIRECT_URL: required with DB_POOLER=pgbouncer (migrations need a direct connection), or set RUN_MIGRATIONS=false"
            ),
            _ => Ok(()),
        }
    }

    /// The URL migrations run on: `DATABASE_DIRECT_URL` behind a pooler,
    /// else the database itself.
    #[must_use]
    pub fn direct_database_url(&self) -> Option<String> {
        match self.db_pooler {
            DbPooler::None => Some(self.database_url()),
            DbPooler::Pgbouncer => self
                .database_direct_url
                .as_deref()
                .map(userhub_config::database_url),
        }
    }

    /// Whether this is a production deployment.
    #[must_use]
    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }

    /// The database URL, defaulting to the embedded SQLite file. The
    /// original service's forms `postgresql://` and `postgresql+asyncpg://`
    /// mean `postgres://`; an SQLite file is created when missing.
    #[must_use]
    pub fn database_url(&self) -> String {
        userhub_config::database_url(&self.database_url)
    }

    /// Pool settings for the database adapter.
    #[must_use]
    pub fn database(&self) -> userhub_infrastructure::DatabaseSettings {
        userhub_infrastructure::DatabaseSettings {
            url: self.database_url(),
            max_connections: self.db_pool_max_size,
            min_connections: self.db_pool_min_idle,
            acquire_timeout: Duration::from_secs(self.db_acquire_timeout_seconds),
            idle_timeout: Duration::from_secs(self.db_idle_timeout_seconds),
            connect_timeout: Duration::from_secs(self.db_connect_timeout_seconds),
            statement_timeout: Duration::from_secs(self.db_statement_timeout_seconds),
            pgbouncer: self.db_pooler == DbPooler::Pgbouncer,
        }
    }

    /// The login lockout policy.
    #[must_use]
    pub fn lockout(&self) -> userhub_domain::services::LockoutPolicy {
        userhub_domain::services::LockoutPolicy {
            max_failures: self.login_max_failures,
            base: seconds(self.login_lockout_seconds),
            cap: seconds(self.login_lockout_max_seconds),
            max_failures_per_name_per_hour: self.login_max_failures_per_name_per_hour,
        }
    }

    /// The rules for new passwords.
    #[must_use]
    pub fn password_policy(&self) -> userhub_domain::model::PasswordPolicy {
        userhub_domain::model::PasswordPolicy {
            min_score: self.password_min_score,
        }
    }

    /// The CORS origins, separated by commas or white space.
    #[must_use]
    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_origins
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|o| !o.is_empty())
            .map(|o| o.trim_end_matches('/').to_owned())
            .collect()
    }

    /// The access-token signing key for `JWT_ALGORITHM`, and the key
    /// signed with before a rotation, which still verifies.
    ///
    /// HS256 signs with `JWT_SECRET_KEY` (previous: `JWT_PREVIOUS_SECRET_KEY`).
    /// RS256 and EdDSA sign with the PEM key pair in `JWT_PRIVATE_KEY_FILE` /
    /// `JWT_PUBLIC_KEY_FILE` (previous: `JWT_PREVIOUS_PUBLIC_KEY_FILE`, a
    /// public key of the same algorithm).
    ///
    /// # Errors
    /// A missing or unreadable key, or a previous key that does not fit
    /// the algorithm.
    pub fn jwt_keys(&self) -> anyhow::Result<(SigningKey, Option<PreviousKey>)> {
        let algorithm = self.jwt_algorithm;
        let read = |path: &str, name: &str| -> anyhow::Result<String> {
            std::fs::read_to_string(path).with_context(|| format!("reading {name} ({path})"))
        };
        let previous_file = self
            .jwt_previous_public_key_file
            .as_deref()
            .filter(|p| !p.trim().is_empty());
        if algorithm == JwtAlgorithm::Hs256 {
            if previous_file.is_some() {
                bail!(
                    "JWT_PREVIOUS_PUBLIC_KEY_FILE: only for RS256 and EdDSA; with HS256 set JWT_PREVIOUS_SECRET_KEY"
                );
            }
            let previous = match &self.jwt_previous_secret_key {
                Some(key) if key.expose_secret().len() >= 32 => {
                    Some(PreviousKey::Hmac(key.clone()))
                }
                Some(_) => bail!("JWT_PREVIOUS_SECRET_KEY must be at least 32 bytes"),
                None => None,
            };
            return Ok((SigningKey::Hmac(self.jwt_secret()?), previous));
        }
        if self.jwt_previous_secret_key.is_some() {
            bail!(
                "JWT_PREVIOUS_SECRET_KEY: only for HS256; with {algorithm} set JWT_PREVIOUS_PUBLIC_KEY_FILE"
            );
        }
        let required = |path: &Option<String>, name: &str| -> anyhow::Result<String> {
            let path = path.as_deref().filter(|p| !p.trim().is_empty());
            let path = path.with_context(|| format!("JWT_ALGORITHM={algorithm} needs {name}"))?;
            read(path, name)
        };
        let private_pem = SecretString::from(required(
            &self.jwt_private_key_file,
            "JWT_PRIVATE_KEY_FILE",
        )?);
        let public_pem = required(&self.jwt_public_key_file, "JWT_PUBLIC_KEY_FILE")?;
        let previous = previous_file
            .map(|path| read(path, "JWT_PREVIOUS_PUBLIC_KEY_FILE"))
            .transpose()?
            .map(PreviousKey::Public);
        let signing = match algorithm {
            JwtAlgorithm::Rs256 => SigningKey::Rsa {
                private_pem,
                public_pem,
            },
            // EdDSA; HS256 returned above.
            JwtAlgorithm::EdDsa | JwtAlgorithm::Hs256 => SigningKey::Ed25519 {
                private_pem,
                public_pem,
            },
        };
        Ok((signing, previous))
    }

    /// The HMAC key: the configured one, or in development a random key
    /// for this run (tokens then die with the process).
    ///
    /// # Errors
    /// A missing key in production, or a key shorter than 32 bytes.
    pub fn jwt_secret(&self) -> anyhow::Result<SecretString> {
        match &self.jwt_secret_key {
            Some(key) if key.expose_secret().len() >= 32 => Ok(key.clone()),
            Some(_) => bail!("JWT_SECRET_KEY must be at least 32 bytes"),
            None if self.is_production() => {
                bail!("JWT_SECRET_KEY is required when APP_ENV=production")
            }
            None => {
                tracing::warn!(
                    "JWT_SECRET_KEY is not set: using a random key for this run; tokens end with it"
                );
                let mut random = [0_u8; 32];
                getrandom::fill(&mut random).context("no system randomness")?;
                Ok(SecretString::from(
                    random
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    // figment's test jail returns its own (large) error type.
    #![allow(clippy::result_large_err)]

    use figment::Jail;

    use super::*;

    fn repository_file(name: &str) -> String {
        let path = format!("{}/../../{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// `config/default.toml`, `.env.example` and README say what the code
    /// does: every key they name is a setting, the TOML's values are the
    /// built-in defaults, and every setting is in `.env.example` and README.
    /// A new setting that misses one of them, or a default changed in one
    /// place only, fails here.
    #[test]
    fn the_config_files_and_readme_match_the_code() {
        let toml = repository_file("config/default.toml");
        let mut in_toml = Vec::new();
        for line in toml.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, _) = line.split_once('=').expect("key = value");
            let key = key.trim().to_owned();
            assert!(
                KEYS.contains(&key.as_str()),
                "config/default.toml: unknown key {key}"
            );
            in_toml.push(key);
        }
        // The file's values, applied over nothing but serde's defaults, are
        // the built-in defaults (compared through Debug: secrets print alike).
        use figment::providers::Format as _;
        let from_file: Settings = figment::Figment::from(figment::providers::Toml::string(&toml))
            .extract()
            .unwrap();
        assert_eq!(
            format!("{from_file:#?}"),
            format!("{:#?}", Settings::default()),
            "config/default.toml disagrees with Settings::default()"
        );
        let example = repository_file(".env.example");
        let in_example: Vec<String> = example
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, _)| k.trim().to_ascii_lowercase())
            })
            .collect();
        let readme = repository_file("README.md");
        for key in KEYS {
            assert!(
                in_example.iter().any(|k| k == key),
                ".env.example lacks {}",
                key.to_uppercase()
            );
            assert!(
                readme.contains(&format!("`{}`", key.to_uppercase())),
                "README's settings table lacks {}",
                key.to_uppercase()
            );
        }
        for key in &in_example {
            assert!(KEYS.contains(&key.as_str()), ".env.example: unknown {key}");
        }
    }

    #[test]
    fn environment_overrides_toml_which_overrides_defaults() {
        Jail::expect_with(|jail| {
            jail.create_dir("config")?;
            jail.create_file(
                "config/default.toml",
                "port = 9000\nbcrypt_cost = 11\ncors_origins = \"http://a\"",
            )?;
            jail.set_env("PORT", "9100");
            let settings =
                Settings::from_layers(Path::new("config"), Env::raw().only(KEYS)).unwrap();
            assert_eq!(settings.port, 9100);
            assert_eq!(settings.bcrypt_cost, 11);
            assert_eq!(settings.cors_origins(), vec!["http://a".to_owned()]);
            assert_eq!(settings.access_token_expire_minutes, 30);
            Ok(())
        });
    }

    #[test]
    fn empty_values_mean_unset() {
        Jail::expect_with(|jail| {
            jail.set_env("JWT_SECRET_KEY", "");
            jail.set_env("FIRST_SUPERUSER_EMAIL", " ");
            for key in [
                "PORT",
                "BCRYPT_COST",
                "RUN_MIGRATIONS",
                "LOG_FORMAT",
                "HOST",
                "JWT_ALGORITHM",
                "RUST_LOG",
                "JWT_ISSUER",
                "SHUTDOWN_DELAY_SECONDS",
            ] {
                jail.set_env(key, "");
            }
            let settings =
                Settings::from_layers(Path::new("config"), Env::raw().only(KEYS)).unwrap();
            let defaults = Settings::default();
            assert!(settings.jwt_secret_key.is_none());
            assert!(settings.first_superuser_email.is_none());
            assert_eq!(settings.port, defaults.port);
            assert_eq!(settings.bcrypt_cost, defaults.bcrypt_cost);
            assert!(settings.run_migrations);
            assert_eq!(settings.log_format, defaults.log_format);
            assert_eq!(settings.host, defaults.host);
            assert_eq!(settings.jwt_algorithm, defaults.jwt_algorithm);
            assert_eq!(settings.rust_log, defaults.rust_log);
            assert_eq!(settings.jwt_issuer, defaults.jwt_issuer);
            assert_eq!(
                settings.shutdown_delay_seconds,
                defaults.shutdown_delay_seconds
            );
            Ok(())
        });
    }

    fn checked(tweak: impl FnOnce(&mut Settings)) -> Result<(), String> {
        let mut settings = Settings::default();
        tweak(&mut settings);
        settings.validate().map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn each_mistyped_setting_is_named_with_what_it_expects() {
        type Tweak = fn(&mut Settings);
        let cases: [(Tweak, &str); 15] = [
            (|s| s.cors_origins = "*".into(), "CORS_ORIGINS: `*`"),
            (
                |s| s.cors_origins = "localhost:3000".into(),
                "CORS_ORIGINS: `localhost:3000`",
            ),
            (
                |s| s.cors_origins = "http://a/path".into(),
                "CORS_ORIGINS: `http://a/path`",
            ),
            (|s| s.rust_log = "info,=[".into(), "RUST_LOG=info,=["),
            (
                |s| s.database_url = "mysql://u:secret@h/db".into(),
                "DATABASE_URL=mysql://u:***@h/db",
            ),
            (
                |s| s.db_pool_max_size = 0,
                "DB_POOL_MAX_SIZE=0: expected a number from 1",
            ),
            (
                |s| s.db_pool_min_idle = 17,
                "DB_POOL_MIN_IDLE=17: expected a number from 0 to 16",
            ),
            (
                |s| s.db_acquire_timeout_seconds = 0,
                "DB_ACQUIRE_TIMEOUT_SECONDS=0",
            ),
            (
                |s| s.db_connect_timeout_seconds = 0,
                "DB_CONNECT_TIMEOUT_SECONDS=0",
            ),
            (
                |s| s.access_token_expire_minutes = 0,
                "ACCESS_TOKEN_EXPIRE_MINUTES=0",
            ),
            (
                |s| s.refresh_token_expire_days = 0,
                "REFRESH_TOKEN_EXPIRE_DAYS=0",
            ),
            (
                |s| s.refresh_reuse_grace_seconds = 7200,
                "REFRESH_REUSE_GRACE_SECONDS=7200",
            ),
            (|s| s.login_lockout_seconds = 0, "LOGIN_LOCKOUT_SECONDS=0"),
            (
                |s| s.login_lockout_max_seconds = 30,
                "LOGIN_LOCKOUT_MAX_SECONDS=30: expected a number from 60",
            ),
            (
                |s| s.password_min_score = 5,
                "PASSWORD_MIN_SCORE=5: expected a number from 0 to 4",
            ),
        ];
        for (tweak, expected) in cases {
            let message = checked(tweak).unwrap_err();
            assert!(message.starts_with(expected), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }

    fn layered_error(key: &str, value: &str) -> String {
        let mut message = String::new();
        Jail::expect_with(|jail| {
            jail.set_env(key, value);
            message = Settings::from_layers(Path::new("config"), Env::raw().only(KEYS))
                .map(drop)
                .map_err(|e| format!("{e:#}"))
                .unwrap_err();
            Ok(())
        });
        message
    }

    #[test]
    fn a_mistyped_variable_is_named_with_its_value_and_what_it_expects() {
        for (key, value, expected) in [
            ("APP_ENV", "prod", "`development` or `production`"),
            ("JWT_ALGORITHM", "ES256", "`HS256`, `RS256` or `EdDSA`"),
            ("LOG_FORMAT", "xml", "`pretty` or `json`"),
            ("PORT", "eighty", "u16"),
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "-5", "u64"),
            ("RUN_MIGRATIONS", "maybe", "bool"),
            ("RATE_LIMIT_STORE", "redis", "`memory` or `database`"),
        ] {
            let message = layered_error(key, value);
            assert!(message.starts_with(&format!("{key}: ")), "{message}");
            assert!(message.contains(value), "{message}");
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn choices_ignore_case() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_ENV", "Production");
            jail.set_env("JWT_ALGORITHM", "eddsa");
            let settings =
                Settings::from_layers(Path::new("config"), Env::raw().only(KEYS)).unwrap();
            assert_eq!(settings.app_env, AppEnv::Production);
            assert_eq!(settings.jwt_algorithm, JwtAlgorithm::EdDsa);
            Ok(())
        });
    }

    #[test]
    fn production_refuses_to_only_log_mail_and_mail_settings_are_checked() {
        fn production() -> Settings {
            Settings {
                app_env: AppEnv::Production,
                smtp_host: "smtp.example.com".into(),
                public_url: "https://app.example.com".into(),
                ..Settings::default()
            }
        }
        assert_eq!(checked(|s| *s = production()), Ok(()));
        type Tweak = fn(&mut Settings);
        let cases: [(Tweak, &str); 5] = [
            (
                |s| {
                    *s = production();
                    s.smtp_host = String::new();
                },
                "SMTP_HOST is required when APP_ENV=production",
            ),
            (
                |s| {
                    *s = production();
                    s.public_url = String::new();
                },
                "PUBLIC_URL is required when APP_ENV=production",
            ),
            (
                |s| s.public_url = "app.example.com".into(),
                "PUBLIC_URL=app.example.com",
            ),
            (
                |s| s.smtp_username = Some("mailer".into()),
                "SMTP_USERNAME and SMTP_PASSWORD go together",
            ),
            (|s| s.mail_max_attempts = 0, "MAIL_MAX_ATTEMPTS=0"),
        ];
        for (tweak, expected) in cases {
            let message = checked(tweak).unwrap_err();
            assert!(message.starts_with(expected), "{message}");
        }
        let settings = Settings {
            public_url: "https://example.com/app/".into(),
            ..Settings::default()
        };
        assert_eq!(settings.validate().map_err(|e| e.to_string()), Ok(()));
        assert_eq!(settings.public_url(), "https://example.com/app");
        assert_eq!(Settings::default().public_url(), "http://127.0.0.1:8000");
    }

    #[test]
    fn smtp_settings_default_the_port_by_tls_mode() {
        assert!(Settings::default().smtp().is_none());
        for (tls, port) in [
            (SmtpTlsSetting::StartTls, 587),
            (SmtpTlsSetting::Tls, 465),
            (SmtpTlsSetting::None, 25),
        ] {
            let settings = Settings {
                smtp_host: "mail.example.com".into(),
                smtp_tls: tls,
                ..Settings::default()
            };
            assert_eq!(settings.smtp().unwrap().port, port);
        }
        Jail::expect_with(|jail| {
            jail.set_env("SMTP_TLS", "ssl");
            let message = Settings::from_layers(Path::new("config"), Env::raw().only(KEYS))
                .map(drop)
                .map_err(|e| e.to_string())
                .unwrap_err();
            assert!(message.starts_with("SMTP_TLS: "), "{message}");
            assert!(message.contains("`starttls`, `tls` or `none`"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn origins_may_be_separated_by_commas_or_spaces() {
        let settings = Settings {
            cors_origins: "http://a http://b:8080, https://c/".into(),
            ..Settings::default()
        };
        assert_eq!(settings.validate().map_err(|e| e.to_string()), Ok(()));
        assert_eq!(
            settings.cors_origins(),
            ["http://a", "http://b:8080", "https://c"]
        );
    }

    #[test]
    fn the_app_env_file_is_layered_over_the_default_file() {
        Jail::expect_with(|jail| {
            jail.create_dir("config")?;
            jail.create_file("config/default.toml", "port = 9000")?;
            jail.create_file("config/production.toml", "port = 9200")?;
            jail.set_env("APP_ENV", "production");
            let settings =
                Settings::from_layers(Path::new("config"), Env::raw().only(KEYS)).unwrap();
            assert_eq!(settings.port, 9200);
            assert!(settings.is_production());
            Ok(())
        });
    }

    #[test]
    fn production_refuses_to_start_without_a_long_enough_key() {
        let production = Settings {
            app_env: AppEnv::Production,
            ..Settings::default()
        };
        assert!(production.jwt_secret().is_err());
        let short = Settings {
            jwt_secret_key: Some("short".into()),
            ..Settings::default()
        };
        assert!(short.jwt_secret().is_err());
        let good = Settings {
            jwt_secret_key: Some("k".repeat(32).into()),
            ..production
        };
        assert!(good.jwt_secret().is_ok());
    }

    #[test]
    fn a_bcrypt_cost_below_10_is_refused() {
        assert!(
            Settings {
                bcrypt_cost: 9,
                ..Settings::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Settings {
                bcrypt_cost: 32,
                ..Settings::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Settings {
                bcrypt_cost: 10,
                ..Settings::default()
            }
            .validate()
            .is_ok()
        );
        assert!(Settings::default().validate().is_ok());
    }

    #[test]
    fn asymmetric_algorithms_need_both_key_files() {
        let rs = Settings {
            jwt_algorithm: JwtAlgorithm::Rs256,
            ..Settings::default()
        };
        assert!(rs.jwt_keys().is_err());
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
        let ed = Settings {
            jwt_algorithm: JwtAlgorithm::EdDsa,
            jwt_private_key_file: Some(format!("{fixtures}/ed25519-private.pem")),
            jwt_public_key_file: Some(format!("{fixtures}/ed25519-public.pem")),
            ..Settings::default()
        };
        assert!(matches!(
            ed.jwt_keys().unwrap().0,
            SigningKey::Ed25519 { .. }
        ));
    }

    #[test]
    fn a_previous_key_must_fit_the_algorithm_and_is_named_when_it_does_not() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
        let hs = Settings {
            jwt_secret_key: Some("k".repeat(32).into()),
            jwt_previous_public_key_file: Some(format!("{fixtures}/ed25519-public.pem")),
            ..Settings::default()
        };
        let err = hs.jwt_keys().unwrap_err().to_string();
        assert!(err.starts_with("JWT_PREVIOUS_PUBLIC_KEY_FILE"), "{err}");
        let short = Settings {
            jwt_secret_key: Some("k".repeat(32).into()),
            jwt_previous_secret_key: Some("short".into()),
            ..Settings::default()
        };
        let err = short.jwt_keys().unwrap_err().to_string();
        assert!(err.starts_with("JWT_PREVIOUS_SECRET_KEY"), "{err}");
        let ed = Settings {
            jwt_algorithm: JwtAlgorithm::EdDsa,
            jwt_private_key_file: Some(format!("{fixtures}/ed25519-next-private.pem")),
            jwt_public_key_file: Some(format!("{fixtures}/ed25519-next-public.pem")),
            jwt_previous_public_key_file: Some(format!("{fixtures}/ed25519-public.pem")),
            ..Settings::default()
        };
        assert!(matches!(
            ed.jwt_keys().unwrap().1,
            Some(PreviousKey::Public(_))
        ));
        let ed_with_secret = Settings {
            jwt_previous_secret_key: Some("k".repeat(32).into()),
            ..ed
        };
        let err = ed_with_secret.jwt_keys().unwrap_err().to_string();
        assert!(err.starts_with("JWT_PREVIOUS_SECRET_KEY"), "{err}");
    }

    #[test]
    fn development_without_a_key_gets_a_random_one() {
        let a = Settings::default().jwt_secret().unwrap();
        let b = Settings::default().jwt_secret().unwrap();
        assert!(a.expose_secret().len() >= 32);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn an_empty_database_url_means_the_embedded_sqlite_file() {
        assert_eq!(Settings::default().database_url(), DEFAULT_DATABASE_URL);
    }
}
