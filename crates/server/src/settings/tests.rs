//! Settings: layering, the generated files, and every refusal.

// figment's test jail returns its own (large) error type.
#![allow(clippy::result_large_err)]

use std::path::Path;

use figment::Jail;
use figment::providers::Env;
use secrecy::ExposeSecret;

use super::*;
use userhub_infrastructure::{PreviousKey, SigningKey};

fn repository_path(name: &str) -> String {
    format!("{}/../../{name}", env!("CARGO_MANIFEST_DIR"))
}

fn env() -> Env {
    environment()
}

/// The default settings with `tweak` applied.
fn with(tweak: impl FnOnce(&mut Settings)) -> Settings {
    with_base(Settings::default(), tweak)
}

/// `base` with `tweak` applied.
fn with_base(mut base: Settings, tweak: impl FnOnce(&mut Settings)) -> Settings {
    tweak(&mut base);
    base
}

/// `config/default.toml` and `.env.example` are generated from the
/// declarations, so they cannot drift: a changed declaration fails here
/// until `UPDATE_CONFIG_FILES=1 cargo test -p userhub-server settings`
/// rewrites them. The settings table of docs/configuration.md names every
/// variable.
#[test]
fn the_config_files_and_readme_match_the_code() {
    for (file, text) in [
        ("config/default.toml", default_toml()),
        (".env.example", env_example()),
    ] {
        let path = repository_path(file);
        if std::env::var_os("UPDATE_CONFIG_FILES").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "{file} is not what the declarations generate; run UPDATE_CONFIG_FILES=1 cargo test -p userhub-server settings"
        );
    }
    let readme = std::fs::read_to_string(repository_path("docs/configuration.md")).unwrap();
    for key in keys() {
        assert!(
            readme.contains(&format!("`{}`", key.to_uppercase())),
            "docs/configuration.md's settings table lacks {}",
            key.to_uppercase()
        );
    }
    // The table's defaults: `a`, `b` for `A`, `B`; "empty" and "unset"
    // as the generated `.env.example` writes them; other words (a
    // default computed at start) are left to the reader.
    let generated = env_example();
    let defaults: std::collections::HashMap<String, String> =
        dotenvy::from_read_iter(generated.as_bytes())
            .map(|pair| pair.expect("a valid .env line"))
            .map(|(key, value)| (key.to_ascii_lowercase(), value))
            .collect();
    let cells = |cell: &str| -> Vec<String> {
        cell.split("`, `")
            .map(|c| c.trim().trim_matches('`').to_owned())
            .collect()
    };
    for row in readme.lines().filter(|l| l.starts_with("| `")) {
        let columns: Vec<&str> = row.split(" | ").collect();
        let names = cells(columns[0].trim_start_matches("| "));
        let stated = columns[1].trim();
        for (i, name) in names.iter().enumerate() {
            let Some(default) = defaults.get(&name.to_ascii_lowercase()) else {
                continue;
            };
            let expected = match stated {
                "empty" | "unset" => String::new(),
                _ if stated.starts_with('`') => {
                    cells(stated)[i.min(cells(stated).len() - 1)].clone()
                }
                _ => continue,
            };
            assert_eq!(
                *default, expected,
                "docs/configuration.md states {stated} as the default of {name}"
            );
        }
    }
}

/// The generated TOML, read back over nothing, is the built-in defaults;
/// the generated `.env.example`, read as an environment, is too.
#[test]
fn the_generated_files_read_back_as_the_defaults() {
    let defaults = format!("{:#?}", Settings::default());
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file("config/default.toml", &default_toml())?;
        let settings = Settings::from_layers(Path::new("config"), env()).unwrap();
        assert_eq!(format!("{settings:#?}"), defaults);
        Ok(())
    });
    Jail::expect_with(|jail| {
        // Read as the server reads a `.env` file.
        let example = env_example();
        for pair in dotenvy::from_read_iter(example.as_bytes()) {
            let (key, value) = pair.expect("a valid .env line");
            jail.set_env(key, value);
        }
        let settings = Settings::from_layers(Path::new("missing"), env()).unwrap();
        assert_eq!(format!("{settings:#?}"), defaults);
        Ok(())
    });
}

#[test]
fn every_variable_is_declared_once() {
    let keys = keys();
    let mut unique = keys.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), keys.len());
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
        let settings = Settings::from_layers(Path::new("config"), env()).unwrap();
        assert_eq!(settings.server.port, 9100);
        assert_eq!(settings.accounts.bcrypt_cost, 11);
        assert_eq!(settings.cors_origins(), vec!["http://a".to_owned()]);
        assert_eq!(settings.tokens.access_token_expire_minutes, Span(30));
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
        let settings = Settings::from_layers(Path::new("config"), env()).unwrap();
        let defaults = Settings::default();
        assert!(settings.tokens.jwt_secret_key.is_none());
        assert!(settings.accounts.first_superuser_email.is_none());
        assert_eq!(settings.server.port, defaults.server.port);
        assert_eq!(settings.accounts.bcrypt_cost, defaults.accounts.bcrypt_cost);
        assert!(settings.database.run_migrations);
        assert_eq!(settings.server.log_format, defaults.server.log_format);
        assert_eq!(settings.server.host, defaults.server.host);
        assert_eq!(settings.tokens.jwt_algorithm, defaults.tokens.jwt_algorithm);
        assert_eq!(settings.server.rust_log, defaults.server.rust_log);
        assert_eq!(settings.tokens.jwt_issuer, defaults.tokens.jwt_issuer);
        assert_eq!(
            settings.server.shutdown_delay_seconds,
            defaults.server.shutdown_delay_seconds
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
        (|s| s.server.cors_origins = "*".into(), "CORS_ORIGINS: `*`"),
        (
            |s| s.server.cors_origins = "localhost:3000".into(),
            "CORS_ORIGINS: `localhost:3000`",
        ),
        (
            |s| s.server.cors_origins = "http://a/path".into(),
            "CORS_ORIGINS: `http://a/path`",
        ),
        (|s| s.server.rust_log = "info,=[".into(), "RUST_LOG=info,=["),
        (
            |s| s.database.database_url = "mysql://u:secret@h/db".into(),
            "DATABASE_URL=mysql://u:***@h/db",
        ),
        (
            |s| s.database.db_pool_max_size = 0,
            "DB_POOL_MAX_SIZE=0: expected a number from 1",
        ),
        (
            |s| s.database.db_pool_min_idle = 17,
            "DB_POOL_MIN_IDLE=17: expected a number from 0 to 16",
        ),
        (
            |s| s.database.db_acquire_timeout_seconds = Span(0),
            "DB_ACQUIRE_TIMEOUT_SECONDS=0",
        ),
        (
            |s| s.database.db_connect_timeout_seconds = Span(0),
            "DB_CONNECT_TIMEOUT_SECONDS=0",
        ),
        (
            |s| s.tokens.access_token_expire_minutes = Span(0),
            "ACCESS_TOKEN_EXPIRE_MINUTES=0",
        ),
        (
            |s| s.tokens.refresh_token_expire_days = Span(0),
            "REFRESH_TOKEN_EXPIRE_DAYS=0",
        ),
        (
            |s| s.tokens.refresh_reuse_grace_seconds = Span(7200),
            "REFRESH_REUSE_GRACE_SECONDS=7200",
        ),
        (
            |s| s.accounts.login_lockout_seconds = Span(0),
            "LOGIN_LOCKOUT_SECONDS=0",
        ),
        (
            |s| s.accounts.login_lockout_max_seconds = Span(30),
            "LOGIN_LOCKOUT_MAX_SECONDS=30: expected a number from 60",
        ),
        (
            |s| s.accounts.password_min_score = 5,
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
        message = Settings::from_layers(Path::new("config"), env())
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
        let settings = Settings::from_layers(Path::new("config"), env()).unwrap();
        assert_eq!(settings.server.app_env, AppEnv::Production);
        assert_eq!(settings.tokens.jwt_algorithm, JwtAlgorithm::EdDsa);
        Ok(())
    });
}

#[test]
fn production_refuses_to_only_log_mail_and_mail_settings_are_checked() {
    fn production() -> Settings {
        with(|s| {
            s.server.app_env = AppEnv::Production;
            s.mail.smtp_host = "smtp.example.com".into();
            s.server.public_url = "https://app.example.com".into();
            s.mfa.mfa_encryption_key = Some("ab".repeat(32).into());
            s.tokens.jwt_secret_key = Some("k".repeat(32).into());
        })
    }
    assert_eq!(checked(|s| *s = production()), Ok(()));
    type Tweak = fn(&mut Settings);
    let cases: [(Tweak, &str); 5] = [
        (
            |s| {
                *s = production();
                s.mail.smtp_host = String::new();
            },
            "SMTP_HOST is required when APP_ENV=production",
        ),
        (
            |s| {
                *s = production();
                s.server.public_url = String::new();
            },
            "PUBLIC_URL is required when APP_ENV=production",
        ),
        (
            |s| s.server.public_url = "app.example.com".into(),
            "PUBLIC_URL=app.example.com",
        ),
        (
            |s| s.mail.smtp_username = Some("mailer".into()),
            "SMTP_USERNAME and SMTP_PASSWORD go together",
        ),
        (|s| s.mail.mail_max_attempts = 0, "MAIL_MAX_ATTEMPTS=0"),
    ];
    for (tweak, expected) in cases {
        let message = checked(tweak).unwrap_err();
        assert!(message.starts_with(expected), "{message}");
    }
    let settings = with(|s| {
        s.server.public_url = "https://example.com/app/".into();
    });
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
        let settings = with(|s| {
            s.mail.smtp_host = "mail.example.com".into();
            s.mail.smtp_tls = tls;
        });
        assert_eq!(settings.smtp().unwrap().port, port);
    }
    Jail::expect_with(|jail| {
        jail.set_env("SMTP_TLS", "ssl");
        let message = Settings::from_layers(Path::new("config"), env())
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
    let settings = with(|s| {
        s.server.cors_origins = "http://a http://b:8080, https://c/".into();
    });
    assert_eq!(settings.validate().map_err(|e| e.to_string()), Ok(()));
    assert_eq!(
        settings.cors_origins(),
        ["http://a", "http://b:8080", "https://c"]
    );
}

/// An empty value means "not set" in every layer and for every type: the
/// default stands, and a blank secret is no secret.
#[test]
fn a_blank_value_in_a_file_means_unset() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file(
            "config/default.toml",
            "port = \"\"\njwt_secret_key = \"  \"\nsmtp_port = \"\"\nfirst_superuser_email = \"\"",
        )?;
        jail.create_file("config/development.toml", "smtp_username = \" \"")?;
        let settings = Settings::from_layers(Path::new("config"), env()).unwrap();
        assert_eq!(settings.server.port, 8000);
        assert!(settings.tokens.jwt_secret_key.is_none());
        assert_eq!(settings.mail.smtp_port, None);
        assert_eq!(settings.mail.smtp_username, None);
        assert_eq!(settings.accounts.first_superuser_email, None);
        assert_eq!(settings.validate().map_err(|e| e.to_string()), Ok(()));
        Ok(())
    });
}

#[test]
fn the_app_env_file_is_layered_over_the_default_file() {
    Jail::expect_with(|jail| {
        jail.create_dir("config")?;
        jail.create_file("config/default.toml", "port = 9000")?;
        jail.create_file("config/production.toml", "port = 9200")?;
        jail.set_env("APP_ENV", "production");
        let settings = Settings::from_layers(Path::new("config"), env()).unwrap();
        assert_eq!(settings.server.port, 9200);
        assert!(settings.is_production());
        Ok(())
    });
}

#[test]
fn production_refuses_to_start_without_a_long_enough_key() {
    let production = with(|s| {
        s.server.app_env = AppEnv::Production;
    });
    assert!(production.jwt_secret().is_err());
    let short = with(|s| {
        s.tokens.jwt_secret_key = Some("short".into());
    });
    assert!(short.jwt_secret().is_err());
    let good = with_base(production, |s| {
        s.tokens.jwt_secret_key = Some("k".repeat(32).into());
    });
    assert!(good.jwt_secret().is_ok());
}

#[test]
fn a_bcrypt_cost_below_10_is_refused() {
    assert!(
        with(|s| {
            s.accounts.bcrypt_cost = 9;
        })
        .validate()
        .is_err()
    );
    assert!(
        with(|s| {
            s.accounts.bcrypt_cost = 32;
        })
        .validate()
        .is_err()
    );
    assert!(
        with(|s| {
            s.accounts.bcrypt_cost = 10;
        })
        .validate()
        .is_ok()
    );
    assert!(Settings::default().validate().is_ok());
}

#[test]
fn asymmetric_algorithms_need_both_key_files() {
    let rs = with(|s| {
        s.tokens.jwt_algorithm = JwtAlgorithm::Rs256;
    });
    assert!(rs.jwt_keys().is_err());
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
    let ed = with(|s| {
        s.tokens.jwt_algorithm = JwtAlgorithm::EdDsa;
        s.tokens.jwt_private_key_file = Some(format!("{fixtures}/ed25519-private.pem"));
        s.tokens.jwt_public_key_file = Some(format!("{fixtures}/ed25519-public.pem"));
    });
    assert!(matches!(
        ed.jwt_keys().unwrap().0,
        SigningKey::Ed25519 { .. }
    ));
}

#[test]
fn a_previous_key_must_fit_the_algorithm_and_is_named_when_it_does_not() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
    let hs = with(|s| {
        s.tokens.jwt_secret_key = Some("k".repeat(32).into());
        s.tokens.jwt_previous_public_key_file = Some(format!("{fixtures}/ed25519-public.pem"));
    });
    let err = hs.jwt_keys().unwrap_err().to_string();
    assert!(err.starts_with("JWT_PREVIOUS_PUBLIC_KEY_FILE"), "{err}");
    let short = with(|s| {
        s.tokens.jwt_secret_key = Some("k".repeat(32).into());
        s.tokens.jwt_previous_secret_key = Some("short".into());
    });
    let err = short.jwt_keys().unwrap_err().to_string();
    assert!(err.starts_with("JWT_PREVIOUS_SECRET_KEY"), "{err}");
    let ed = with(|s| {
        s.tokens.jwt_algorithm = JwtAlgorithm::EdDsa;
        s.tokens.jwt_private_key_file = Some(format!("{fixtures}/ed25519-next-private.pem"));
        s.tokens.jwt_public_key_file = Some(format!("{fixtures}/ed25519-next-public.pem"));
        s.tokens.jwt_previous_public_key_file = Some(format!("{fixtures}/ed25519-public.pem"));
    });
    assert!(matches!(
        ed.jwt_keys().unwrap().1,
        Some(PreviousKey::Public(_))
    ));
    let ed_with_secret = with_base(ed, |s| {
        s.tokens.jwt_previous_secret_key = Some("k".repeat(32).into());
    });
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

#[test]
fn totp_encryption_keys_are_checked_and_required_in_production() {
    let err = |tweak: fn(&mut Settings)| checked(tweak).unwrap_err();
    assert!(
        err(|s| s.mfa.mfa_encryption_key = Some("abc".into())).starts_with("MFA_ENCRYPTION_KEY: ")
    );
    assert!(
        err(|s| s.mfa.mfa_previous_encryption_key = Some("ab".repeat(32).into()))
            .starts_with("MFA_PREVIOUS_ENCRYPTION_KEY needs MFA_ENCRYPTION_KEY")
    );
    assert!(
        err(|s| {
            s.server.app_env = AppEnv::Production;
            s.mail.smtp_host = "smtp.example.com".into();
            s.server.public_url = "https://app.example.com".into();
        })
        .starts_with("MFA_ENCRYPTION_KEY is required")
    );
    assert_eq!(
        checked(|s| s.mfa.mfa_encryption_key = Some("AB".repeat(32).into())),
        Ok(())
    );
}

#[test]
fn the_webhook_retry_base_is_checked() {
    let err = |tweak: fn(&mut Settings)| checked(tweak).unwrap_err();
    assert_eq!(
        err(|s| s.webhooks.webhook_retry_base_seconds = Span(0)),
        "WEBHOOK_RETRY_BASE_SECONDS=0: expected a number from 1 to 3600"
    );
    assert_eq!(
        err(|s| s.webhooks.webhook_retry_base_seconds = Span(3601)),
        "WEBHOOK_RETRY_BASE_SECONDS=3601: expected a number from 1 to 3600"
    );
    assert_eq!(
        checked(|s| s.webhooks.webhook_retry_base_seconds = Span(1)),
        Ok(())
    );
}

#[test]
fn providers_are_read_by_name_and_each_mistake_is_named() {
    Jail::expect_with(|jail| {
        jail.set_env("OAUTH_PROVIDERS", "Corp, google");
        jail.set_env("OAUTH_CORP_ISSUER", "https://id.example.com/");
        jail.set_env("OAUTH_CORP_CLIENT_ID", "userhub");
        jail.set_env("OAUTH_CORP_CLIENT_SECRET", "s3cret");
        jail.set_env("OAUTH_GOOGLE_ISSUER", "https://accounts.google.com");
        jail.set_env("OAUTH_GOOGLE_CLIENT_ID", "id.apps.googleusercontent.com");
        jail.set_env("OAUTH_GOOGLE_CLIENT_SECRET", "g");
        jail.set_env("OAUTH_GOOGLE_SCOPES", "openid email");
        let settings = Settings::from_layers(Path::new("."), env()).unwrap();
        let [corp, google] = settings.oauth_providers.as_slice() else {
            panic!("two providers expected, got {:?}", settings.oauth_providers);
        };
        assert_eq!(corp.name, "corp");
        assert_eq!(corp.issuer, "https://id.example.com");
        assert_eq!(corp.client_secret.expose_secret(), "s3cret");
        assert_eq!(corp.scopes, DEFAULT_SCOPES);
        assert_eq!(google.scopes, "openid email");
        settings.validate().unwrap();

        jail.set_env("OAUTH_GOOGLE_CLIENT_SECRET", "");
        let err = Settings::from_layers(Path::new("."), env()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "OAUTH_GOOGLE_CLIENT_SECRET: required for the provider `google` of OAUTH_PROVIDERS"
        );
        jail.set_env("OAUTH_PROVIDERS", "corp,my-idp");
        let err = Settings::from_layers(Path::new("."), env()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("OAUTH_PROVIDERS: `my-idp` is no provider name")
        );
        jail.set_env("OAUTH_PROVIDERS", "corp,corp");
        let err = Settings::from_layers(Path::new("."), env()).unwrap_err();
        assert_eq!(err.to_string(), "OAUTH_PROVIDERS: `corp` is named twice");
        Ok(())
    });
    let provider = |issuer: &str| OAuthProvider {
        name: "corp".into(),
        issuer: issuer.into(),
        client_id: "c".into(),
        client_secret: "s".to_owned().into(),
        scopes: DEFAULT_SCOPES.into(),
    };
    let err = checked(|s| s.oauth_providers = vec![provider("not a url")]).unwrap_err();
    assert!(
        err.starts_with("OAUTH_CORP_ISSUER=not a url: expected an https:// URL"),
        "{err}"
    );
    assert!(checked(|s| s.oauth_providers = vec![provider("http://id.example.com")]).is_ok());
    let production = |issuer: &str| {
        let issuer = issuer.to_owned();
        checked(move |s| {
            s.server.app_env = AppEnv::Production;
            s.server.public_url = "https://app.example.com".into();
            s.mail.smtp_host = "smtp.example.com".into();
            s.mfa.mfa_encryption_key = Some("ab".repeat(32).into());
            s.tokens.jwt_secret_key = Some("k".repeat(32).into());
            s.oauth_providers = vec![provider(&issuer)];
        })
    };
    assert_eq!(production("https://id.example.com"), Ok(()));
    assert_eq!(production("http://127.0.0.1:9000"), Ok(()));
    assert_eq!(
        production("http://id.example.com"),
        Err("OAUTH_CORP_ISSUER=http://id.example.com: expected an https:// URL".into())
    );
}

#[test]
fn a_production_start_lists_every_missing_setting_at_once() {
    let err = checked(|s| {
        s.server.app_env = AppEnv::Production;
        s.accounts.bcrypt_cost = 4;
    })
    .unwrap_err();
    let lines: Vec<&str> = err.lines().collect();
    for expected in [
        "BCRYPT_COST=4: expected a number from 10 to 31",
        "SMTP_HOST is required when APP_ENV=production (mail would only be logged)",
        "PUBLIC_URL is required when APP_ENV=production (the base of links in mails)",
        "MFA_ENCRYPTION_KEY is required when APP_ENV=production (it encrypts TOTP and webhook secrets)",
        "JWT_SECRET_KEY is required when APP_ENV=production",
    ] {
        assert!(lines.contains(&expected), "{expected} not in {lines:?}");
    }
    assert_eq!(lines.len(), 5, "{lines:?}");
}

#[test]
fn every_malformed_value_is_named_in_one_run() {
    Jail::expect_with(|jail| {
        jail.set_env("PORT", "eighty");
        jail.set_env("RUN_MIGRATIONS", "maybe");
        jail.set_env("BCRYPT_COST", "high");
        let err = Settings::from_layers(Path::new("config"), env()).unwrap_err();
        let lines = err.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        for key in ["PORT: ", "RUN_MIGRATIONS: ", "BCRYPT_COST: "] {
            assert!(
                lines.iter().any(|l| l.starts_with(key)),
                "{key} in {lines:?}"
            );
        }
        Ok(())
    });
}

#[test]
fn passkey_origins_must_be_on_the_rp_id_and_default_to_the_public_url() {
    // The default: a development server on 127.0.0.1 serves passkeys to localhost.
    let relying_party = Settings::default().webauthn().unwrap();
    assert_eq!(relying_party.rp_id, "localhost");
    assert_eq!(relying_party.origins[0].as_str(), "http://localhost:8000/");
    let public = with(|s| s.server.public_url = "https://app.example.com".into());
    let relying_party = public.webauthn().unwrap();
    assert_eq!(relying_party.rp_id, "app.example.com");
    assert_eq!(
        relying_party.origins[0].as_str(),
        "https://app.example.com/"
    );
    let shared = with(|s| {
        s.webauthn.webauthn_rp_id = "example.com".into();
        s.webauthn.webauthn_origins = "https://app.example.com, https://example.com".into();
    });
    assert_eq!(shared.webauthn().unwrap().origins.len(), 2);
    let message = checked(|s| {
        s.webauthn.webauthn_rp_id = "example.com".into();
        s.webauthn.webauthn_origins = "https://example.org".into();
    })
    .unwrap_err();
    assert!(
        message.starts_with(
            "WEBAUTHN_ORIGINS: https://example.org/ is not on WEBAUTHN_RP_ID example.com"
        ),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1);
    let message = checked(|s| s.webauthn.webauthn_origins = "not a url".into()).unwrap_err();
    assert!(message.starts_with("WEBAUTHN_ORIGINS"), "{message}");
}
