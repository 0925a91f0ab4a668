//! Settings that are one of a few names.

use super::declare::choice;

choice! {
    /// `APP_ENV`: how strict the server is about its set-up.
    pub enum AppEnv {
        /// Tolerates a missing JWT key (a random one per run) and a log mailer.
        Development = "development",
        /// Refuses weak or missing secrets.
        Production = "production",
    }
    expecting "`development` or `production`"
}

choice! {
    /// `JWT_ALGORITHM`: how access tokens are signed.
    pub enum JwtAlgorithm {
        /// HMAC-SHA256 with `JWT_SECRET_KEY`.
        Hs256 = "HS256",
        /// RSA with the PEM key pair.
        Rs256 = "RS256",
        /// Ed25519 with the PEM key pair.
        EdDsa = "EdDSA",
    }
    expecting "`HS256`, `RS256` or `EdDSA`"
}

choice! {
    /// `SMTP_TLS`: how the mail connection is secured.
    pub enum SmtpTlsSetting {
        /// STARTTLS, required.
        StartTls = "starttls",
        /// TLS from the first byte.
        Tls = "tls",
        /// None: a relay on a trusted network only.
        None = "none",
    }
    expecting "`starttls`, `tls` or `none`"
}

choice! {
    /// `DB_POOLER`: what `DATABASE_URL` points at.
    pub enum DbPooler {
        /// PostgreSQL itself (or a pooler in session mode).
        None = "none",
        /// PgBouncer in transaction pooling mode.
        Pgbouncer = "pgbouncer",
    }
    expecting "`none` or `pgbouncer`"
}

choice! {
    /// `RATE_LIMIT_STORE`: where request budgets are counted.
    pub enum RateLimitStore {
        /// In each process: enough for one instance.
        Memory = "memory",
        /// In the database: every instance spends the same budget.
        Database = "database",
    }
    expecting "`memory` or `database`"
}

choice! {
    /// `LOG_FORMAT`: how log lines are written.
    pub enum LogFormat {
        /// Human-readable lines.
        Pretty = "pretty",
        /// One JSON object per line, for log collectors.
        Json = "json",
    }
    expecting "`pretty` or `json`"
}
