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
pub(crate) mod rules;
mod sections;
mod unknown;

use std::path::Path;

use figment::Figment;
use figment::providers::Env;
use garde::Validate as _;

pub use choices::{AppEnv, DbPooler, JwtAlgorithm, LogFormat, RateLimitStore, SmtpTlsSetting};
pub use declare::{Days, Hours, Minutes, Seconds, Span};
pub use oauth::{DEFAULT_SCOPES, OAuthProvider};
pub use sections::*;
pub use userhub_config::DEFAULT_DATABASE_URL;

use declare::Section;
use rules::Checks;

/// The lowest bcrypt cost a deployed server accepts.
pub const MIN_BCRYPT_COST: u32 = 10;

/// Declares [`Settings`] from its list of sections, written once here:
/// the struct, the generated files' order, the variables read and the
/// reading itself follow it.
macro_rules! settings {
    ($($(#[doc = $doc:literal])* $field:ident: $section:ty,)*) => {
        /// Every setting, by section.
        #[derive(Clone, Debug, Default, garde::Validate)]
        #[garde(context(Checks))]
        pub struct Settings {
            $($(#[doc = $doc])* #[garde(dive)] pub $field: $section,)*
            /// The providers `oauth.oauth_providers` names, with their variables.
            #[garde(skip)]
            pub oauth_providers: Vec<OAuthProvider>,
            /// Keys of `.env` and `config/*.toml` that name no setting, each
            /// with the nearest known name: warned about at start.
            #[garde(skip)]
            pub unknown_keys: Vec<String>,
        }

        /// The sections, each as a writer of its generated lines.
        const RENDERERS: &[fn(&mut String, bool)] = &[$(declare::render::<$section>,)*];

        /// Every variable read, lower-cased.
        #[must_use]
        pub fn keys() -> Vec<&'static str> {
            [$(<$section as Section>::ENTRIES,)*]
                .iter()
                .flat_map(|entries| entries.iter().map(|e| e.key))
                .collect()
        }

        /// Each section out of the layers; a section that does not read
        /// is recorded in `problems` and its defaults stand in.
        fn read_sections(figment: &Figment, problems: &mut Problems) -> Settings {
            Settings {
                $($field: extract(figment, problems),)*
                oauth_providers: Vec::new(),
                unknown_keys: Vec::new(),
            }
        }
    };
}

settings! {
    /// Listening, serving HTTP and logging.
    server: ServerSettings,
    /// The database and its pool.
    database: DatabaseSettings,
    /// Access and refresh tokens.
    tokens: TokenSettings,
    /// Passwords, logins, limits and the first superuser.
    accounts: AccountSettings,
    /// Mail and the links in it.
    mail: MailSettings,
    /// The second factor.
    mfa: MfaSettings,
    /// Sign-in with OpenID providers.
    oauth: OAuthSettings,
    /// Passkeys.
    webauthn: WebauthnSettings,
    /// Webhooks.
    webhooks: WebhookSettings,
}

/// The text `config/default.toml` has: every setting with its default.
#[must_use]
pub fn default_toml() -> String {
    declare::render_toml(RENDERERS)
}

/// The text `.env.example` has: every variable with its default.
#[must_use]
pub fn env_example() -> String {
    declare::render_env(RENDERERS)
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

/// One section out of the layers, or its defaults (the problem recorded),
/// so that the other sections are still read and checked.
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
        let mut settings = read_sections(&figment, &mut problems);
        match oauth::providers(&figment, &settings.oauth.oauth_providers) {
            Ok(providers) => settings.oauth_providers = providers,
            Err(err) => problems.check(Err(err)),
        }
        problems.into_result()?;
        Ok(settings)
    }

    /// Refuses settings that are unsafe outside tests (which build their
    /// settings directly and may use a cheap bcrypt cost).
    ///
    /// # Errors
    /// Every unsafe or missing setting, one line each.
    pub fn validate(&self) -> Result<(), Problems> {
        let checks = Checks {
            production: self.is_production(),
        };
        let mut problems = match self.validate_with(&checks) {
            Ok(()) => Problems::default(),
            Err(report) => rules::lines(&report),
        };
        problems.check(self.sealing_keys().map(drop));
        problems.check(self.check_jwt());
        problems.check(self.check_oauth());
        problems.check(self.webauthn().map(drop));
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
}

/// CORS origins as written: separated by commas or white space.
fn split_origins(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|o| !o.is_empty())
        .map(|o| o.trim_end_matches('/').to_owned())
        .collect()
}

#[cfg(test)]
mod tests;
