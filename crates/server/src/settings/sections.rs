//! Every setting, declared once: its doc, type, default and range. The
//! field is named after its environment variable (lower-cased in TOML).
//! `config/default.toml` and `.env.example` are generated from these
//! declarations (a test fails when they differ); docs/configuration.md's table describes
//! them for operators.

use secrecy::SecretString;

use super::choices::{AppEnv, DbPooler, JwtAlgorithm, LogFormat, RateLimitStore, SmtpTlsSetting};
use super::declare::{Days, Hours, Minutes, Seconds, Span, section};
use super::rules::{
    self, direct_url, log_filter, origins, pooler, required_in_production, together, within,
};

section! {
    /// Listening, serving HTTP and logging.
    #[derive(garde::Validate)]
    pub struct ServerSettings("server") {
        /// `development` or `production`; production refuses weak set-ups
        /// (no JWT key, no SMTP server, no PUBLIC_URL).
        app_env: AppEnv = AppEnv::Development,
        /// Listen address.
        host: String = "127.0.0.1".into(),
        /// Listen port; 0 picks a free one.
        port: u16 = 8000,
        /// Worker threads; 0 means one per CPU core.
        workers: usize = 0,
        /// Comma-separated origins allowed by CORS.
        #[garde(custom(origins))]
        cors_origins: String = String::new(),
        /// Largest request line and header block, in bytes; larger get 431.
        max_header_bytes: usize = 16 * 1024,
        /// Largest accepted request body, in bytes.
        max_body_bytes: usize = 64 * 1024,
        /// Seconds a request body may take to arrive after its head (408 then).
        #[garde(custom(within(1, 300)))]
        body_timeout_seconds: Seconds = Span(10),
        /// Seconds between the shutdown signal and closing the listener,
        /// while `/health` answers 503 so that load balancers move away.
        shutdown_delay_seconds: Seconds = Span(5),
        /// Seconds in-flight requests get to finish once the listener is closed.
        shutdown_timeout_seconds: Seconds = Span(30),
        /// Take the client IP from the last `X-Forwarded-For` entry: only
        /// behind a proxy that sets it, or clients could pick their own address.
        trust_forwarded_for: bool = false,
        /// The base of links in mails (the web app that shows the reset
        /// form), e.g. `https://app.example.com`; empty means `http://HOST:PORT`.
        #[garde(custom(rules::public_url))]
        public_url: String = String::new(),
        /// Log filter, `RUST_LOG` syntax.
        #[garde(custom(log_filter))]
        rust_log: String = "info".into(),
        /// `pretty` or `json`.
        log_format: LogFormat = LogFormat::Pretty,
        /// Serve the browser console at `/admin/`; `false` answers 404 there.
        admin_console: bool = true,
    }
}

section! {
    /// The database and its connection pool.
    #[derive(garde::Validate)]
    pub struct DatabaseSettings("database") {
        /// `postgres://…` or `sqlite://…`; empty means the SQLite file
        /// `userhub.db` in the working directory.
        #[garde(custom(rules::database_url))]
        database_url: String = String::new(),
        /// `pgbouncer` when `DATABASE_URL` is a PgBouncer in transaction
        /// pooling mode; `none` for a direct connection.
        #[garde(custom(pooler(&self.database_url)))]
        db_pooler: DbPooler = DbPooler::None,
        /// On PostgreSQL, concurrent authenticating reads share round trips
        /// (docs/decisions/0004); `false` runs each as its own query.
        db_batch_reads: bool = true,
        /// A direct PostgreSQL URL for migrations (they need a session of
        /// their own); required with `DB_POOLER=pgbouncer` when migrations run.
        #[garde(custom(direct_url(self.db_pooler, self.run_migrations)))]
        database_direct_url: Option<String> = None,
        /// Most pooled connections.
        #[garde(custom(within(1, 10_000)))]
        db_pool_max_size: u32 = 16,
        /// Connections kept open while idle (at most `DB_POOL_MAX_SIZE`).
        #[garde(custom(within(0, self.db_pool_max_size.into())))]
        db_pool_min_idle: u32 = 0,
        /// Seconds a request waits for a pooled connection before answering 503.
        #[garde(custom(within(1, 3600)))]
        db_acquire_timeout_seconds: Seconds = Span(3),
        /// Seconds an idle connection is kept.
        db_idle_timeout_seconds: Seconds = Span(300),
        /// Seconds opening the first connection at start may take.
        #[garde(custom(within(1, 3600)))]
        db_connect_timeout_seconds: Seconds = Span(5),
        /// Seconds a server started before its database keeps retrying the
        /// first connection (a log line per try); 0 gives up at once.
        #[garde(custom(within(0, 3600)))]
        db_startup_wait_seconds: Seconds = Span(0),
        /// Seconds a PostgreSQL statement may run or wait for a lock before
        /// it is cancelled (the request answers 503); 0 means no limit.
        db_statement_timeout_seconds: Seconds = Span(10),
        /// Apply pending migrations at start.
        run_migrations: bool = true,
        /// Seconds between deletions of ended sessions; 0 turns them off.
        session_cleanup_interval_seconds: Seconds = Span(3600),
        /// Days an audit event is kept.
        #[garde(custom(within(1, 36_500)))]
        audit_retention_days: Days = Span(90),
    }
}

section! {
    /// Access and refresh tokens.
    #[derive(garde::Validate)]
    pub struct TokenSettings("tokens") {
        /// HMAC key for access tokens, at least 32 bytes; required when
        /// APP_ENV=production. Make one: openssl rand -hex 32
        #[serde(skip_serializing)]
        jwt_secret_key: Option<SecretString> = None,
        /// Signing algorithm: `HS256`, `RS256` or `EdDSA`.
        jwt_algorithm: JwtAlgorithm = JwtAlgorithm::Hs256,
        /// PEM private key for RS256 / EdDSA.
        jwt_private_key_file: Option<String> = None,
        /// PEM public key for RS256 / EdDSA, published as a JWK Set.
        jwt_public_key_file: Option<String> = None,
        /// HS256: the key signed with before a rotation; it still verifies
        /// tokens (until they expire), never signs.
        #[serde(skip_serializing)]
        jwt_previous_secret_key: Option<SecretString> = None,
        /// RS256 / EdDSA: the public key of the pair used before a
        /// rotation; it is still published and still verifies tokens, never signs.
        jwt_previous_public_key_file: Option<String> = None,
        /// `iss` of issued tokens.
        jwt_issuer: String = "userhub".into(),
        /// `aud` of issued tokens.
        jwt_audience: String = "userhub-api".into(),
        /// Clock skew tolerated on `exp`/`nbf`, in seconds.
        jwt_leeway_seconds: Seconds = Span(5),
        /// Access-token lifetime.
        #[garde(custom(within(1, 525_600)))]
        access_token_expire_minutes: Minutes = Span(30),
        /// Refresh-token (session) lifetime.
        #[garde(custom(within(1, 3650)))]
        refresh_token_expire_days: Days = Span(7),
        /// Seconds a spent refresh token still yields its successor (for a
        /// client that raced two refreshes); 0 treats every reuse as theft.
        #[garde(custom(within(0, 3600)))]
        refresh_reuse_grace_seconds: Seconds = Span(0),
        /// Longest lifetime of a personal access token, in days.
        #[garde(custom(within(1, 3650)))]
        pat_max_days: u32 = 365,
    }
}

section! {
    /// Passwords, logins, limits and the first superuser.
    #[derive(garde::Validate)]
    pub struct AccountSettings("accounts") {
        /// bcrypt work factor, 10 to 31; hashes made at another cost are
        /// replaced at the next successful login.
        #[garde(custom(within(super::MIN_BCRYPT_COST.into(), 31)))]
        bcrypt_cost: u32 = 12,
        /// Lowest zxcvbn score (0–4) a new password needs; 0 turns the
        /// estimate off.
        #[garde(custom(within(0, 4)))]
        password_min_score: u8 = 2,
        /// Consecutive failed logins that lock an account; 0 turns locking off.
        login_max_failures: u32 = 5,
        /// Length of the first lock, in seconds; each further lock doubles it.
        #[garde(custom(within(1, 31_536_000)))]
        login_lockout_seconds: Seconds = Span(60),
        /// Longest lock, in seconds (at least `LOGIN_LOCKOUT_SECONDS`).
        #[garde(custom(within(self.login_lockout_seconds.0, 365 * 86_400)))]
        login_lockout_max_seconds: Seconds = Span(3600),
        /// Failed password checks of one login name per hour, from every
        /// address, after which the name is refused until the hour is
        /// over; 0 turns the budget off.
        login_max_failures_per_name_per_hour: u32 = 100,
        /// Requests per minute one client IP may make to register, login
        /// and refresh together; 0 turns the limit off.
        auth_rate_limit_per_minute: u32 = 30,
        /// Requests per minute one caller may make to endpoints that hash a
        /// password behind authentication (change-password, a profile
        /// update with a password, creating a user); 0 turns the budget off.
        password_hash_budget_per_minute: u32 = 10,
        /// Writes per minute per account (profile, second factor, linked
        /// identities); 0 turns the limit off.
        #[garde(custom(within(0, 100_000)))]
        user_write_limit_per_minute: u32 = 30,
        /// Where the per-IP limit and the hashing budget are counted:
        /// `memory` (this process) or `database` (shared by every instance).
        rate_limit_store: RateLimitStore = RateLimitStore::Memory,
        /// Refuse logins (403, after the password check) and refreshes of
        /// users whose address is not verified.
        require_verified_email: bool = false,
        /// Changing one's own email needs the current password; `false` is
        /// weaker (a stolen access token can then move the account).
        email_change_requires_password: bool = true,
        /// Minutes after signing in during which a session may add a way in
        /// without the password (linking a provider account by GET); 0
        /// always asks for the password.
        #[garde(custom(within(0, 1440)))]
        reauth_window_minutes: Minutes = Span(10),
        /// Superuser created at start if absent (needs the password too).
        first_superuser_email: Option<String> = None,
        /// Its password.
        #[serde(skip_serializing)]
        first_superuser_password: Option<SecretString> = None,
        /// Its username.
        first_superuser_username: String = "admin".into(),
    }
}

section! {
    /// The mail the service sends and the links in it.
    #[derive(garde::Validate)]
    pub struct MailSettings("mail") {
        /// SMTP server; empty writes each mail to the log instead (refused
        /// in production).
        #[garde(custom(required_in_production("mail would only be logged")))]
        smtp_host: String = String::new(),
        /// SMTP port; empty means 587 (STARTTLS), 465 (TLS) or 25 (none).
        smtp_port: Option<u16> = None,
        /// SMTP login, if the server wants one (with SMTP_PASSWORD).
        #[garde(custom(together(&self.smtp_password, "SMTP_PASSWORD")))]
        smtp_username: Option<String> = None,
        /// Its password.
        #[serde(skip_serializing)]
        smtp_password: Option<SecretString> = None,
        /// `starttls`, `tls` or `none`.
        smtp_tls: SmtpTlsSetting = SmtpTlsSetting::StartTls,
        /// Seconds to wait for the SMTP server at each step.
        #[garde(custom(within(1, 300)))]
        smtp_timeout_seconds: Seconds = Span(10),
        /// `From` of every mail: an address, or `Name <address>`.
        mail_from: String = "UserHub <no-reply@localhost>".into(),
        /// Attempts at delivering one mail before it is given up (and logged).
        #[garde(custom(within(1, 100)))]
        mail_max_attempts: u32 = 8,
        /// Seconds before a failed mail's second attempt; each further wait doubles.
        #[garde(custom(within(1, 3600)))]
        mail_retry_seconds: Seconds = Span(30),
        /// Reset, verification and revert links one address may be mailed
        /// per hour; more are not sent (the answers stay the same).
        #[garde(custom(within(1, 1000)))]
        mail_max_per_address_per_hour: u32 = 5,
        /// Minutes a password-reset link works.
        #[garde(custom(within(1, 1440)))]
        password_reset_token_minutes: Minutes = Span(30),
        /// Hours a verification link works.
        #[garde(custom(within(1, 720)))]
        verify_token_hours: Hours = Span(48),
        /// Days a link that undoes an email change works.
        #[garde(custom(within(1, 90)))]
        revert_email_token_days: Days = Span(7),
    }
}

section! {
    /// The second factor (TOTP).
    #[derive(garde::Validate)]
    pub struct MfaSettings("mfa") {
        /// 64 hexadecimal digits (openssl rand -hex 32) that encrypt TOTP
        /// and webhook signing secrets at rest; required when APP_ENV=production. Empty in
        /// development: a key the server keeps in its database.
        #[serde(skip_serializing)]
        mfa_encryption_key: Option<SecretString> = None,
        /// The key used before a rotation: secrets sealed with it still
        /// open; new ones are sealed with MFA_ENCRYPTION_KEY.
        #[serde(skip_serializing)]
        mfa_previous_encryption_key: Option<SecretString> = None,
        /// The name authenticator apps show next to the account.
        mfa_issuer: String = "UserHub".into(),
    }
}

section! {
    /// Passkeys (WebAuthn): the relying party browsers bind them to.
    #[derive(garde::Validate)]
    pub struct WebauthnSettings("webauthn") {
        /// The RP ID: the domain passkeys belong to (every origin is it or
        /// under it); empty means the host of PUBLIC_URL (`localhost` when
        /// that is an IP address, which WebAuthn does not allow).
        webauthn_rp_id: String = String::new(),
        /// The name browsers show while a passkey is made.
        webauthn_rp_name: String = "UserHub".into(),
        /// Comma-separated origins a passkey ceremony may come from (the
        /// front ends' pages); empty means the origin of PUBLIC_URL.
        #[garde(custom(origins))]
        webauthn_origins: String = String::new(),
    }
}

section! {
    /// Webhooks: deliveries of audit events to the team's services.
    #[derive(garde::Validate)]
    pub struct WebhookSettings("webhooks") {
        /// Seconds before a failed delivery's first retry; each next one
        /// waits about twice as long (at most 6 hours), for 24 hours.
        #[garde(custom(within(1, 3600)))]
        webhook_retry_base_seconds: Seconds = Span(5),
        /// Let endpoints be on loopback, private and link-local addresses
        /// (development and tests only: it opens the server to request
        /// forgery against its own network).
        webhook_allow_private_networks: bool = false,
    }
}

section! {
    /// Sign-in with OpenID providers. Each provider named in
    /// OAUTH_PROVIDERS also reads OAUTH_<NAME>_ISSUER, OAUTH_<NAME>_CLIENT_ID,
    /// OAUTH_<NAME>_CLIENT_SECRET and OAUTH_<NAME>_SCOPES.
    #[derive(garde::Validate)]
    pub struct OAuthSettings("oauth") {
        /// Provider names, comma-separated (lower-case letters, digits and
        /// `_`); empty turns provider sign-in off.
        oauth_providers: String = String::new(),
        /// The base of the redirect URIs given to providers
        /// (`<base>/api/auth/oauth/<name>/callback`); empty means PUBLIC_URL.
        oauth_redirect_base_url: String = String::new(),
        /// Link a first provider sign-in to the local account with the
        /// same address, when the provider says the address is verified;
        /// `false` refuses it (OAUTH_USER_ALREADY_EXISTS).
        oauth_associate_by_email: bool = false,
        /// Seconds a browser may spend at the provider before its sign-in
        /// (the `state` and its cookie) is void.
        #[garde(custom(within(30, 3600)))]
        oauth_state_ttl_seconds: Seconds = Span(600),
    }
}
