//! The checks a setting declares with `#[garde(custom(...))]`, and how
//! garde's report becomes the lines an operator reads.
//!
//! A rule's message is what follows the variable's name on its line:
//! `=value: …` when it quotes the value, `: …` when it does not (a secret,
//! an empty value), or ` and …` / ` is …` when it reads as a sentence.

use anyhow::{Context as _, bail};

use super::{DbPooler, Problems};

/// What the rules know beyond the settings themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checks {
    /// `APP_ENV=production`: weak set-ups are refused.
    pub production: bool,
}

fn error(message: impl std::fmt::Display) -> garde::Error {
    garde::Error::new(message.to_string())
}

/// A number from `min` to `max`, both included.
pub fn within<T: Copy + Into<u64>>(
    min: u64,
    max: u64,
) -> impl FnOnce(&T, &Checks) -> garde::Result {
    move |value, _| {
        let value: u64 = (*value).into();
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(error(format_args!(
                "={value}: expected a number from {min} to {max}"
            )))
        }
    }
}

/// Set when `APP_ENV=production`; `why` says what goes wrong without it.
pub fn required_in_production(why: &'static str) -> impl FnOnce(&str, &Checks) -> garde::Result {
    move |value, checks| {
        if checks.production && value.trim().is_empty() {
            Err(error(format_args!(
                " is required when APP_ENV=production ({why})"
            )))
        } else {
            Ok(())
        }
    }
}

/// Set together with `other` (`other_key` names it), or neither is.
pub fn together<'a, T, U>(
    other: &'a Option<U>,
    other_key: &'static str,
) -> impl FnOnce(&Option<T>, &Checks) -> garde::Result + 'a {
    move |value, _| {
        if value.is_some() == other.is_some() {
            Ok(())
        } else {
            Err(error(format_args!(
                " and {other_key} go together: set both or neither"
            )))
        }
    }
}

/// An origin as browsers send it: `http` or `https`, a host, maybe a port,
/// nothing else (no `*`, no path).
pub(super) fn check_origin(origin: &str) -> anyhow::Result<()> {
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

/// Origins separated by commas or white space, each as [`check_origin`]
/// wants it.
pub fn origins(value: &str, _: &Checks) -> garde::Result {
    let bad: Vec<String> = super::split_origins(value)
        .iter()
        .filter_map(|origin| {
            check_origin(origin)
                .err()
                .map(|err| format!("`{origin}`: {err:#}"))
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(error(format_args!(": {}", bad.join("; "))))
    }
}

/// The base of links in mails: an origin with an optional path, required
/// in production.
pub fn public_url(value: &str, checks: &Checks) -> garde::Result {
    required_in_production("the base of links in mails")(value, checks)?;
    let url = value.trim().trim_end_matches('/');
    if url.is_empty() {
        return Ok(());
    }
    let origin_end = url
        .find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(url.len());
    check_origin(&url[..origin_end]).map_err(|err| error(format_args!("={value}: {err:#}")))
}

/// A `RUST_LOG` filter that parses.
pub fn log_filter(value: &str, _: &Checks) -> garde::Result {
    tracing_subscriber::EnvFilter::try_new(value)
        .map(drop)
        .map_err(|err| error(format_args!("={value}: {err}")))
}

/// A PostgreSQL or SQLite URL (empty means the SQLite default); quoted
/// without its password.
pub fn database_url(value: &str, _: &Checks) -> garde::Result {
    let url = userhub_config::database_url(value);
    if url.starts_with("postgres://") || url.starts_with("sqlite:") {
        Ok(())
    } else {
        Err(error(format_args!(
            "={}: expected postgres://, postgresql://, postgresql+asyncpg:// or sqlite://",
            userhub_config::redact(value)
        )))
    }
}

/// Behind PgBouncer, `DATABASE_URL` is PostgreSQL.
pub fn pooler(database_url: &str) -> impl FnOnce(&DbPooler, &Checks) -> garde::Result + '_ {
    move |pooler, _| {
        if *pooler == DbPooler::Pgbouncer
            && !userhub_config::database_url(database_url).starts_with("postgres://")
        {
            Err(error("=pgbouncer: DATABASE_URL must be a postgres:// URL"))
        } else {
            Ok(())
        }
    }
}

/// Behind PgBouncer, migrations need a direct PostgreSQL URL (unless they
/// do not run).
pub fn direct_url(
    pooler: DbPooler,
    run_migrations: bool,
) -> impl FnOnce(&Option<String>, &Checks) -> garde::Result {
    move |direct, _| match direct {
        _ if pooler != DbPooler::Pgbouncer => Ok(()),
        Some(url) if !userhub_config::database_url(url).starts_with("postgres://") => {
            Err(error(format_args!(
                "={}: expected a postgres:// URL",
                userhub_config::redact(url)
            )))
        }
        None if run_migrations => Err(error(
            ": required with DB_POOLER=pgbouncer (migrations need a direct connection), or set RUN_MIGRATIONS=false",
        )),
        _ => Ok(()),
    }
}

/// Turns garde's report into one line per problem, each starting with the
/// variable's name.
pub(super) fn lines(report: &garde::Report) -> Problems {
    Problems(
        report
            .iter()
            .map(|(path, err)| {
                let path = path.to_string();
                let key = path
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                let message = err.message();
                if message.starts_with(['=', ':', ' ']) {
                    format!("{key}{message}")
                } else {
                    format!("{key}: {message}")
                }
            })
            .collect(),
    )
}
