//! The settings layers every UserHub binary reads, so that the server and
//! the operators' migration CLI agree on them: built-in defaults,
//! `config/default.toml`, `config/<APP_ENV>.toml`, a `.env` file, then the
//! process environment (highest). Keys are the environment variable names,
//! lower-cased in TOML; an empty variable means "not set".

use std::path::Path;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Toml};

/// The SQLite file used when `DATABASE_URL` is empty.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://userhub.db?mode=rwc";

/// Loads `.env` from the working directory into the environment; variables
/// the environment already sets win.
///
/// # Errors
/// A `.env` file that exists but cannot be read or parsed.
pub fn load_dotenv() -> anyhow::Result<()> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(err) if err.not_found() => Ok(()),
        Err(err) => Err(err).context("reading .env"),
    }
}

/// The layers, lowest first: `dir/default.toml`, `dir/<app_env>.toml` (the
/// environment's `APP_ENV`, else the file's, else `development`), then
/// `env` without its empty variables.
#[must_use]
pub fn layers(dir: &Path, env: Env) -> Figment {
    let env = NonEmpty(env);
    let defaults = NonEmpty(Toml::file(dir.join("default.toml")));
    let app_env: String = Figment::new()
        .merge(&defaults)
        .merge(&env)
        .extract_inner("app_env")
        .unwrap_or_else(|_| "development".to_owned());
    let app_env = app_env.trim().to_ascii_lowercase();
    Figment::new()
        .merge(defaults)
        .merge(NonEmpty(Toml::file(dir.join(format!("{app_env}.toml")))))
        .merge(env)
}

/// The database URL to connect to: [`DEFAULT_DATABASE_URL`] when empty; the
/// original service's forms `postgresql://` and `postgresql+asyncpg://`
/// mean `postgres://`; an SQLite file is created when missing.
#[must_use]
pub fn database_url(configured: &str) -> String {
    let url = configured.trim();
    if url.is_empty() {
        return DEFAULT_DATABASE_URL.to_owned();
    }
    for alias in ["postgresql+asyncpg://", "postgresql://"] {
        if let Some(rest) = url.strip_prefix(alias) {
            return format!("postgres://{rest}");
        }
    }
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        let separator = if url.contains('?') { '&' } else { '?' };
        return format!("{url}{separator}mode=rwc");
    }
    url.to_owned()
}

/// The URL without its password (if it has one), for messages.
#[must_use]
pub fn redact(raw: &str) -> String {
    if let Ok(mut url) = url::Url::parse(raw) {
        if url.password().is_none() {
            return raw.to_owned();
        }
        if url.set_password(Some("***")).is_ok() {
            return url.to_string();
        }
    }
    // A URL that does not parse (a bad port, say) is what start-up errors
    // quote most: mask whatever sits between `user:` and the last `@`.
    match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match raw[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &raw[..scheme + 3], &raw[at..]),
            None => raw.to_owned(),
        },
        _ => raw.to_owned(),
    }
}

/// A layer without its empty (or blank) values: `PORT=` in a copied
/// `.env.example`, or `jwt_secret_key = ""` in a TOML file, means "not
/// set", whatever the setting's type. The one place that rule lives.
struct NonEmpty<P>(P);

impl<P: figment::Provider> figment::Provider for NonEmpty<P> {
    fn metadata(&self) -> figment::Metadata {
        self.0.metadata()
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut data = self.0.data()?;
        for dict in data.values_mut() {
            dict.retain(|_, value| {
                !matches!(value, figment::value::Value::String(_, s) if s.trim().is_empty())
            });
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    // figment's test jail returns its own (large) error type.
    #![allow(clippy::result_large_err)]

    use figment::Jail;
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    struct Probe {
        database_url: Option<String>,
        port: Option<u16>,
    }

    #[test]
    fn the_app_env_file_overrides_the_default_file_and_the_environment_both() {
        Jail::expect_with(|jail| {
            jail.create_dir("config")?;
            jail.create_file("config/default.toml", "port = 9000\ndatabase_url = \"a\"")?;
            jail.create_file("config/production.toml", "port = 9001")?;
            jail.set_env("APP_ENV", "Production");
            jail.set_env("DATABASE_URL", "b");
            let probe: Probe = layers(Path::new("config"), Env::raw()).extract()?;
            assert_eq!(probe.port, Some(9001));
            assert_eq!(probe.database_url.as_deref(), Some("b"));
            Ok(())
        });
    }

    #[test]
    fn an_empty_variable_is_not_set() {
        Jail::expect_with(|jail| {
            jail.create_dir("config")?;
            jail.create_file("config/default.toml", "port = 9000")?;
            jail.set_env("PORT", "");
            jail.set_env("DATABASE_URL", "  ");
            let probe: Probe = layers(Path::new("config"), Env::raw()).extract()?;
            assert_eq!(probe.port, Some(9000));
            assert_eq!(probe.database_url, None);
            Ok(())
        });
    }

    #[test]
    fn database_urls_in_the_original_services_forms_are_accepted() {
        assert_eq!(database_url(""), DEFAULT_DATABASE_URL);
        assert_eq!(
            database_url("postgresql+asyncpg://u:p@h/db"),
            "postgres://u:p@h/db"
        );
        assert_eq!(database_url("postgresql://h/db"), "postgres://h/db");
        assert_eq!(
            database_url("sqlite://other.db"),
            "sqlite://other.db?mode=rwc"
        );
        assert_eq!(database_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn only_a_password_is_masked() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/userhub"),
            "postgres://app:***@db:5432/userhub"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/userhub"),
            "postgres://postgres@127.0.0.1:5432/userhub"
        );
        assert_eq!(
            redact("sqlite://userhub.db?mode=rwc"),
            "sqlite://userhub.db?mode=rwc"
        );
        // Malformed URLs are the ones error messages quote.
        assert_eq!(
            redact("postgres://app:s3cret@db:notaport/userhub"),
            "postgres://app:***@db:notaport/userhub"
        );
    }
}
