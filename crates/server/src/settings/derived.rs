//! What the adapters and use cases are configured with, derived from the
//! settings.

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use userhub_infrastructure::{PreviousKey, SealingKey, SigningKey};

use super::{AppEnv, DbPooler, JwtAlgorithm, Settings, SmtpTlsSetting};

impl Settings {
    /// Whether this is a production deployment.
    #[must_use]
    pub fn is_production(&self) -> bool {
        self.server.app_env == AppEnv::Production
    }

    /// The base of links in mails, without a trailing slash.
    #[must_use]
    pub fn public_url(&self) -> String {
        let url = self.server.public_url.trim().trim_end_matches('/');
        if url.is_empty() {
            format!("http://{}:{}", self.server.host, self.server.port)
        } else {
            url.to_owned()
        }
    }

    /// The relying party of passkeys, checked: every origin on the RP ID.
    ///
    /// # Errors
    /// One line naming the setting that is wrong.
    pub fn webauthn(&self) -> anyhow::Result<userhub_infrastructure::WebauthnSettings> {
        let public = url::Url::parse(&self.public_url()).context("PUBLIC_URL")?;
        // WebAuthn refuses IP addresses: a development server on
        // 127.0.0.1 serves its passkeys to http://localhost instead.
        let mut default_origin = public.clone();
        if matches!(public.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
            default_origin
                .set_host(Some("localhost"))
                .context("PUBLIC_URL")?;
        }
        let configured = &self.webauthn;
        let rp_id = match configured.webauthn_rp_id.trim() {
            "" => default_origin.host_str().unwrap_or("localhost").to_owned(),
            id => id.to_owned(),
        };
        let origins = super::split_origins(&configured.webauthn_origins);
        let origins = if origins.is_empty() {
            vec![default_origin]
        } else {
            origins
                .iter()
                .map(|o| url::Url::parse(o).with_context(|| format!("WEBAUTHN_ORIGINS: {o}")))
                .collect::<anyhow::Result<_>>()?
        };
        let settings = userhub_infrastructure::WebauthnSettings {
            rp_id,
            rp_name: configured.webauthn_rp_name.clone(),
            origins,
        };
        settings.validate().map_err(anyhow::Error::msg)?;
        Ok(settings)
    }

    /// The CORS origins, separated by commas or white space.
    #[must_use]
    pub fn cors_origins(&self) -> Vec<String> {
        super::split_origins(&self.server.cors_origins)
    }

    /// The SMTP server's settings, or `None` to log mail instead.
    #[must_use]
    pub fn smtp(&self) -> Option<userhub_infrastructure::SmtpSettings> {
        use userhub_infrastructure::SmtpTls;
        let mail = &self.mail;
        let host = mail.smtp_host.trim();
        if host.is_empty() {
            return None;
        }
        let tls = match mail.smtp_tls {
            SmtpTlsSetting::StartTls => SmtpTls::StartTls,
            SmtpTlsSetting::Tls => SmtpTls::Tls,
            SmtpTlsSetting::None => SmtpTls::None,
        };
        Some(userhub_infrastructure::SmtpSettings {
            host: host.to_owned(),
            port: mail.smtp_port.unwrap_or_else(|| tls.default_port()),
            tls,
            credentials: mail.smtp_username.clone().zip(mail.smtp_password.clone()),
            from: mail.mail_from.clone(),
            timeout: mail.smtp_timeout_seconds.std(),
        })
    }

    /// The rules of account recovery.
    #[must_use]
    pub fn recovery(&self) -> userhub_domain::services::RecoveryConfig {
        let mail = &self.mail;
        userhub_domain::services::RecoveryConfig {
            reset_token_ttl: mail.password_reset_token_minutes.time(),
            verify_token_ttl: mail.verify_token_hours.time(),
            public_url: self.public_url(),
            password_policy: self.password_policy(),
            max_attempts: mail.mail_max_attempts,
            retry_base: mail.mail_retry_seconds.time(),
            revert_token_ttl: mail.revert_email_token_days.time(),
            max_links_per_address_per_hour: mail.mail_max_per_address_per_hour,
        }
    }

    /// The login lockout policy.
    #[must_use]
    pub fn lockout(&self) -> userhub_domain::services::LockoutPolicy {
        let accounts = &self.accounts;
        userhub_domain::services::LockoutPolicy {
            max_failures: accounts.login_max_failures,
            base: accounts.login_lockout_seconds.time(),
            cap: accounts.login_lockout_max_seconds.time(),
            max_failures_per_name_per_hour: accounts.login_max_failures_per_name_per_hour,
        }
    }

    /// The rules for new passwords.
    #[must_use]
    pub fn password_policy(&self) -> userhub_domain::model::PasswordPolicy {
        userhub_domain::model::PasswordPolicy {
            min_score: self.accounts.password_min_score,
        }
    }

    /// The database URL, defaulting to the embedded SQLite file. The
    /// original service's forms `postgresql://` and `postgresql+asyncpg://`
    /// mean `postgres://`; an SQLite file is created when missing.
    #[must_use]
    pub fn database_url(&self) -> String {
        userhub_config::database_url(&self.database.database_url)
    }

    /// The URL migrations run on: `DATABASE_DIRECT_URL` behind a pooler,
    /// else the database itself.
    #[must_use]
    pub fn direct_database_url(&self) -> Option<String> {
        match self.database.db_pooler {
            DbPooler::None => Some(self.database_url()),
            DbPooler::Pgbouncer => self
                .database
                .database_direct_url
                .as_deref()
                .map(userhub_config::database_url),
        }
    }

    /// Pool settings for the database adapter.
    #[must_use]
    pub fn database(&self) -> userhub_infrastructure::DatabaseSettings {
        let db = &self.database;
        userhub_infrastructure::DatabaseSettings {
            url: self.database_url(),
            max_connections: db.db_pool_max_size,
            min_connections: db.db_pool_min_idle,
            acquire_timeout: db.db_acquire_timeout_seconds.std(),
            idle_timeout: db.db_idle_timeout_seconds.std(),
            connect_timeout: db.db_connect_timeout_seconds.std(),
            statement_timeout: db.db_statement_timeout_seconds.std(),
            pgbouncer: db.db_pooler == DbPooler::Pgbouncer,
        }
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
        let tokens = &self.tokens;
        let algorithm = tokens.jwt_algorithm;
        let read = |path: &str, name: &str| -> anyhow::Result<String> {
            std::fs::read_to_string(path).with_context(|| format!("reading {name} ({path})"))
        };
        let previous_file = tokens
            .jwt_previous_public_key_file
            .as_deref()
            .filter(|p| !p.trim().is_empty());
        if algorithm == JwtAlgorithm::Hs256 {
            if previous_file.is_some() {
                bail!(
                    "JWT_PREVIOUS_PUBLIC_KEY_FILE: only for RS256 and EdDSA; with HS256 set JWT_PREVIOUS_SECRET_KEY"
                );
            }
            let previous = match &tokens.jwt_previous_secret_key {
                Some(key) if key.expose_secret().len() >= 32 => {
                    Some(PreviousKey::Hmac(key.clone()))
                }
                Some(_) => bail!("JWT_PREVIOUS_SECRET_KEY must be at least 32 bytes"),
                None => None,
            };
            return Ok((SigningKey::Hmac(self.jwt_secret()?), previous));
        }
        if tokens.jwt_previous_secret_key.is_some() {
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
            &tokens.jwt_private_key_file,
            "JWT_PRIVATE_KEY_FILE",
        )?);
        let public_pem = required(&tokens.jwt_public_key_file, "JWT_PUBLIC_KEY_FILE")?;
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
        match &self.tokens.jwt_secret_key {
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

    /// The keys that seal TOTP secrets: `MFA_ENCRYPTION_KEY` (`None`: in
    /// development, a key the server keeps) and the previous one.
    ///
    /// # Errors
    /// A key that is not 64 hexadecimal digits, or none in production.
    pub fn sealing_keys(&self) -> anyhow::Result<(Option<SealingKey>, Option<SealingKey>)> {
        let parse = |key: &Option<SecretString>, name: &str| {
            key.as_ref()
                .map(|k| SealingKey::from_hex(k.expose_secret()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))
        };
        let current = parse(&self.mfa.mfa_encryption_key, "MFA_ENCRYPTION_KEY")?;
        let previous = parse(
            &self.mfa.mfa_previous_encryption_key,
            "MFA_PREVIOUS_ENCRYPTION_KEY",
        )?;
        if current.is_none() && self.is_production() {
            bail!(
                "MFA_ENCRYPTION_KEY is required when APP_ENV=production (it encrypts TOTP and webhook secrets)"
            );
        }
        if current.is_none() && previous.is_some() {
            bail!(
                "MFA_PREVIOUS_ENCRYPTION_KEY needs MFA_ENCRYPTION_KEY (the key that replaces it)"
            );
        }
        Ok((current, previous))
    }
}
