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
mod unknown;

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
    /// Keys of `.env` and `config/*.toml` that name no setting, each with
    /// the nearest known name: warned about at start.
    pub unknown_keys: Vec<String>,
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

/// One section out of the layers; a section that does not read is
/// recorded in `problems` and its defaults stand in, so that the other
/// sections are still read and checked.
fn extract<S: Section + Default>(figment: &Figment, problems: &mut Problems) -> S {
    figment.extract().unwrap_or_else(|err: figment::Error| {
        problems.extend(err.into_iter().map(|e| describe(&e)));
        S::default()
    })
}

/// Every setting that is missing or wrong, one line each: a start reports
/// all of them at once rather than one per restart.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    /// Records the failure of one check.
    fn check(&mut self, outcome: anyhow::Result<()>) {
        if let Err(err) = outcome {
            self.0.push(format!("{err:#}"));
        }
    }

    fn extend(&mut self, lines: impl IntoIterator<Item = String>) {
        self.0.extend(lines);
    }

    /// The lines, in the order found.
    #[must_use]
    pub fn lines(&self) -> &[String] {
        &self.0
    }

    fn into_result(self) -> Result<(), Self> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Problems {}

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
    pub fn load() -> Result<Self, Problems> {
        // .env fills in variables the environment does not set.
        if let Err(err) = userhub_config::load_dotenv() {
            return Err(Problems(vec![format!("{err:#}")]));
        }
        let mut settings = Self::from_layers(Path::new("config"), environment())?;
        settings.validate()?;
        settings.unknown_keys = unknown::keys_in(Path::new(".env"), Path::new("config"));
        Ok(settings)
    }

    /// Reads `dir/default.toml`, `dir/<app_env>.toml`, then `env`.
    ///
    /// # Errors
    /// Every malformed file or value, each named by its variable.
    pub fn from_layers(dir: &Path, env: Env) -> Result<Self, Problems> {
        let figment = userhub_config::layers(dir, env);
        let mut problems = Problems::default();
        let mut settings = Self {
            server: extract(&figment, &mut problems),
            database: extract(&figment, &mut problems),
            tokens: extract(&figment, &mut problems),
            accounts: extract(&figment, &mut problems),
            mail: extract(&figment, &mut problems),
            mfa: extract(&figment, &mut problems),
            oauth: extract(&figment, &mut problems),
            oauth_providers: Vec::new(),
            unknown_keys: Vec::new(),
        };
        match oauth::providers(&figment, &settings.oauth.oauth_providers) {
            Ok(providers) => settings.oauth_providers = providers,
            Err(err) => problems.check(Err(err)),
        }
        problems.into_result()?;
        Ok(settings.without_empty_values())
    }

    /// Refuses settings that are unsafe outside tests (which build their
    /// settings directly and may use a cheap bcrypt cost).
    ///
    /// # Errors
    /// Every unsafe or missing setting, one line each.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        let cost = self.accounts.bcrypt_cost;
        if !(MIN_BCRYPT_COST..=31).contains(&cost) {
            problems.0.push(format!(
                "BCRYPT_COST must be between {MIN_BCRYPT_COST} and 31, not {cost}"
            ));
        }
        self.check_ranges(&mut problems);
        for origin in self.cors_origins() {
            problems
                .check(check_origin(&origin).with_context(|| format!("CORS_ORIGINS: `{origin}`")));
        }
        let url = self.database_url();
        if !url.starts_with("postgres://") && !url.starts_with("sqlite:") {
            problems.0.push(format!(
                "DATABASE_URL={}: expected postgres://, postgresql://, postgresql+asyncpg:// or sqlite://",
                userhub_config::redact(&self.database.database_url)
            ));
        }
        problems.check(self.check_pooler());
        self.check_mail(&mut problems);
        problems.check(self.sealing_keys().map(drop));
        problems.check(self.check_jwt());
        problems.check(self.check_oauth());
        let filter = &self.server.rust_log;
        problems.check(
            tracing_subscriber::EnvFilter::try_new(filter)
                .map(drop)
                .with_context(|| format!("RUST_LOG={filter}")),
        );
        problems.into_result()
    }

    /// The signing keys, as far as they can be checked without making a
    /// random development key (which [`Self::jwt_keys`] does, and logs).
    fn check_jwt(&self) -> anyhow::Result<()> {
        let development_key = self.tokens.jwt_algorithm == JwtAlgorithm::Hs256
            && self.tokens.jwt_secret_key.is_none()
            && !self.is_production();
        if development_key {
            return Ok(());
        }
        self.jwt_keys().map(drop)
    }

    /// Refuses numbers outside what the server can honour, instead of
    /// silently clamping them: the declared ranges, then the ranges that
    /// depend on another setting.
    fn check_ranges(&self, problems: &mut Problems) {
        problems.check(self.server.check_ranges());
        problems.check(self.database.check_ranges());
        problems.check(self.tokens.check_ranges());
        problems.check(self.accounts.check_ranges());
        problems.check(self.mail.check_ranges());
        problems.check(self.mfa.check_ranges());
        problems.check(self.oauth.check_ranges());
        let db = &self.database;
        problems.check(check_range(
            "db_pool_min_idle",
            db.db_pool_min_idle.into(),
            0,
            db.db_pool_max_size.into(),
        ));
        let accounts = &self.accounts;
        problems.check(check_range(
            "login_lockout_max_seconds",
            accounts.login_lockout_max_seconds.0,
            accounts.login_lockout_seconds.0,
            365 * 86_400,
        ));
    }

    fn check_mail(&self, problems: &mut Problems) {
        let mail = &self.mail;
        let public_url = self.server.public_url.trim();
        if self.is_production() && mail.smtp_host.trim().is_empty() {
            problems.0.push(
                "SMTP_HOST is required when APP_ENV=production (mail would only be logged)".into(),
            );
        }
        if self.is_production() && public_url.is_empty() {
            problems.0.push(
                "PUBLIC_URL is required when APP_ENV=production (the base of links in mails)"
                    .into(),
            );
        }
        if !public_url.is_empty() {
            let url = public_url.trim_end_matches('/');
            let origin_end = url
                .find("://")
                .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
                .unwrap_or(url.len());
            problems.check(
                check_origin(&url[..origin_end])
                    .with_context(|| format!("PUBLIC_URL={}", self.server.public_url)),
            );
        }
        if mail.smtp_username.is_some() != mail.smtp_password.is_some() {
            problems
                .0
                .push("SMTP_USERNAME and SMTP_PASSWORD go together: set both or neither".into());
        }
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
