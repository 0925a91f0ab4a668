//! Settings, layered: built-in defaults, `config/default.toml`,
//! `config/<APP_ENV>.toml`, a `.env` file, then the process environment
//! (highest). Keys are the environment variable names, lower-cased in TOML.
//!
//! Each setting is declared once, in [`sections`]; the sections are read
//! one by one so that an error names the variable it is about.

mod choices;
pub(crate) mod declare;
mod derived;
mod oauth;
mod sections;

use std::path::Path;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::Env;
use secrecy::ExposeSecret;

pub use choices::{AppEnv, DbPooler, JwtAlgorithm, LogFormat, RateLimitStore, SmtpTlsSetting};
pub use declare::{Days, Hours, Minutes, Seconds, Span};
pub use oauth::{DEFAULT_SCOPES, OAuthProvider};
pub use sections::{
    AccountSettings, DatabaseSettings, MailSettings, MfaSettings, OAuthSettings, ServerSettings,
    TokenSettings,
};
pub use userhub_config::DEFAULT_DATABASE_URL;

use declare::{Section, check_range};

/// The lowest bcrypt cost a deployed server accepts.
pub const MIN_BCRYPT_COST: u32 = 10;

/// Every setting, by section.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Listening, serving HTTP and logging.
    pub server: ServerSettings,
    /// The database and its pool.
    pub database: DatabaseSettings,
    /// Access and refresh tokens.
    pub tokens: TokenSettings,
    /// Passwords, logins, limits and the first superuser.
    pub accounts: AccountSettings,
    /// Mail and the links in it.
    pub mail: MailSettings,
    /// The second factor.
    pub mfa: MfaSettings,
    /// Sign-in with OpenID providers.
    pub oauth: OAuthSettings,
    /// The providers `oauth.oauth_providers` names, with their variables.
    pub oauth_providers: Vec<OAuthProvider>,
}

/// The sections, each as a writer of its generated lines.
const RENDERERS: [fn(&mut String, bool); 7] = [
    declare::render::<ServerSettings>,
    declare::render::<DatabaseSettings>,
    declare::render::<TokenSettings>,
    declare::render::<AccountSettings>,
    declare::render::<MailSettings>,
    declare::render::<MfaSettings>,
    declare::render::<OAuthSettings>,
];

/// Every variable read, lower-cased.
#[must_use]
pub fn keys() -> Vec<&'static str> {
    [
        ServerSettings::ENTRIES,
        DatabaseSettings::ENTRIES,
        TokenSettings::ENTRIES,
        AccountSettings::ENTRIES,
        MailSettings::ENTRIES,
        MfaSettings::ENTRIES,
        OAuthSettings::ENTRIES,
    ]
    .iter()
    .flat_map(|entries| entries.iter().map(|e| e.key))
    .collect()
}

/// The text `config/default.toml` has: every setting with its default.
#[must_use]
pub fn default_toml() -> String {
    declare::render_toml(&RENDERERS)
}

/// The text `.env.example` has: every variable with its default.
#[must_use]
pub fn env_example() -> String {
    declare::render_env(&RENDERERS)
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

/// One section out of the layers.
fn extract<S: Section>(figment: &Figment) -> anyhow::Result<S> {
    figment
        .extract()
        .map_err(|err| anyhow::anyhow!(describe(&err)))
}

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

/// The process environment, as far as it configures the server: the
/// declared variables, and every `OAUTH_*` (a provider's variables are
/// named after it).
fn environment() -> Env {
    let known = keys();
    Env::raw()
        .filter(move |key| known.iter().any(|k| key == *k) || oauth::is_provider_key(key.as_str()))
}

impl Settings {
    /// Reads the layers from the working directory and the environment.
    ///
    /// # Errors
    /// A malformed file or value.
    pub fn load() -> anyhow::Result<Self> {
        // .env fills in variables the environment does not set.
        userhub_config::load_dotenv()?;
        let settings = Self::from_layers(Path::new("config"), environment())?;
        settings.validate()?;
        Ok(settings)
    }

    /// Reads `dir/default.toml`, `dir/<app_env>.toml`, then `env`.
    ///
    /// # Errors
    /// A malformed file or value, named by its variable.
    pub fn from_layers(dir: &Path, env: Env) -> anyhow::Result<Self> {
        let figment = userhub_config::layers(dir, env);
        let settings = Self {
            server: extract(&figment)?,
            database: extract(&figment)?,
            tokens: extract(&figment)?,
            accounts: extract(&figment)?,
            mail: extract(&figment)?,
            mfa: extract(&figment)?,
            oauth: extract(&figment)?,
            oauth_providers: Vec::new(),
        };
        let mut settings = settings;
        settings.oauth_providers = oauth::providers(&figment, &settings.oauth.oauth_providers)?;
        Ok(settings.without_empty_values())
    }

    /// Refuses settings that are unsafe outside tests (which build their
    /// settings directly and may use a cheap bcrypt cost).
    ///
    /// # Errors
    /// The first unsafe setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        let cost = self.accounts.bcrypt_cost;
        if !(MIN_BCRYPT_COST..=31).contains(&cost) {
            bail!("BCRYPT_COST must be between {MIN_BCRYPT_COST} and 31, not {cost}");
        }
        self.check_ranges()?;
        for origin in self.cors_origins() {
            check_origin(&origin).with_context(|| format!("CORS_ORIGINS: `{origin}`"))?;
        }
        let url = self.database_url();
        if !url.starts_with("postgres://") && !url.starts_with("sqlite:") {
            bail!(
                "DATABASE_URL={}: expected postgres://, postgresql://, postgresql+asyncpg:// or sqlite://",
                userhub_config::redact(&self.database.database_url)
            );
        }
        self.check_pooler()?;
        self.check_mail()?;
        self.sealing_keys()?;
        self.check_oauth()?;
        let filter = &self.server.rust_log;
        tracing_subscriber::EnvFilter::try_new(filter)
            .with_context(|| format!("RUST_LOG={filter}"))?;
        Ok(())
    }

    /// Refuses numbers outside what the server can honour, instead of
    /// silently clamping them: the declared ranges, then the ranges that
    /// depend on another setting.
    fn check_ranges(&self) -> anyhow::Result<()> {
        self.server.check_ranges()?;
        self.database.check_ranges()?;
        self.tokens.check_ranges()?;
        self.accounts.check_ranges()?;
        self.mail.check_ranges()?;
        self.mfa.check_ranges()?;
        self.oauth.check_ranges()?;
        let db = &self.database;
        check_range(
            "db_pool_min_idle",
            db.db_pool_min_idle.into(),
            0,
            db.db_pool_max_size.into(),
        )?;
        let accounts = &self.accounts;
        check_range(
            "login_lockout_max_seconds",
            accounts.login_lockout_max_seconds.0,
            accounts.login_lockout_seconds.0,
            365 * 86_400,
        )
    }

    fn check_mail(&self) -> anyhow::Result<()> {
        let mail = &self.mail;
        let public_url = self.server.public_url.trim();
        if self.is_production() && mail.smtp_host.trim().is_empty() {
            bail!("SMTP_HOST is required when APP_ENV=production (mail would only be logged)");
        }
        if self.is_production() && public_url.is_empty() {
            bail!("PUBLIC_URL is required when APP_ENV=production (the base of links in mails)");
        }
        if !public_url.is_empty() {
            let url = public_url.trim_end_matches('/');
            let origin_end = url
                .find("://")
                .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
                .unwrap_or(url.len());
            check_origin(&url[..origin_end])
                .with_context(|| format!("PUBLIC_URL={}", self.server.public_url))?;
        }
        if mail.smtp_username.is_some() != mail.smtp_password.is_some() {
            bail!("SMTP_USERNAME and SMTP_PASSWORD go together: set both or neither");
        }
        Ok(())
    }

    /// PgBouncer needs PostgreSQL behind it, and migrations a direct URL.
    fn check_pooler(&self) -> anyhow::Result<()> {
        if self.database.db_pooler != DbPooler::Pgbouncer {
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
            None if self.database.run_migrations => bail!(
                "DATABASE_DIRECT_URL: required with DB_POOLER=pgbouncer (migrations need a direct connection), or set RUN_MIGRATIONS=false"
            ),
            _ => Ok(()),
        }
    }

    /// `KEY=` (as in a copied `.env.example`) means "not set".
    fn without_empty_values(mut self) -> Self {
        let blank = |s: &str| s.trim().is_empty();
        let secret = |k: Option<secrecy::SecretString>| k.filter(|k| !blank(k.expose_secret()));
        let text = |t: Option<String>| t.filter(|t| !blank(t));
        let tokens = &mut self.tokens;
        tokens.jwt_secret_key = secret(tokens.jwt_secret_key.take());
        tokens.jwt_previous_secret_key = secret(tokens.jwt_previous_secret_key.take());
        tokens.jwt_private_key_file = text(tokens.jwt_private_key_file.take());
        tokens.jwt_public_key_file = text(tokens.jwt_public_key_file.take());
        tokens.jwt_previous_public_key_file = text(tokens.jwt_previous_public_key_file.take());
        let accounts = &mut self.accounts;
        accounts.first_superuser_email = text(accounts.first_superuser_email.take());
        accounts.first_superuser_password = secret(accounts.first_superuser_password.take());
        self.database.database_direct_url = text(self.database.database_direct_url.take());
        self.mail.smtp_username = text(self.mail.smtp_username.take());
        self.mail.smtp_password = secret(self.mail.smtp_password.take());
        self.mfa.mfa_encryption_key = secret(self.mfa.mfa_encryption_key.take());
        self.mfa.mfa_previous_encryption_key = secret(self.mfa.mfa_previous_encryption_key.take());
        self
    }
}

#[cfg(test)]
mod tests;
