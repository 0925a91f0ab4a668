//! Adapters for UserHub's ports: SeaORM repositories for PostgreSQL and
//! SQLite, a bcrypt password hasher, a JWT token issuer and mailers.

mod entities;
pub mod hashing;
pub mod mail;
pub mod oidc;
pub mod persistence;
pub mod second_factor;
pub mod tokens;
pub mod webauthn;
pub mod webhooks;

pub use hashing::BcryptPasswordHasher;
pub use mail::{LogMailer, SmtpMailer, SmtpSettings, SmtpTls};
pub use oidc::{OidcProviderSettings, OidcProviders, OidcSettings};
pub use persistence::{
    Database, DatabaseSettings, SeaOrmAuditLog, SeaOrmIdentityRepository, SeaOrmLoginThrottle,
    SeaOrmMailQueue, SeaOrmMfaRepository, SeaOrmPasskeyRepository, SeaOrmPersonalTokenRepository,
    SeaOrmRecoveryTokens, SeaOrmRequestCounter, SeaOrmSessionRepository, SeaOrmUserRepository,
    SeaOrmWebhookStore,
};
pub use second_factor::{Sealer, SealingKey, TotpSecondFactor};
pub use tokens::{JwtSettings, JwtTokenIssuer, PreviousKey, SigningKey};
pub use webauthn::{WebauthnCeremonies, WebauthnSettings};
pub use webhooks::{HttpWebhookSender, RenderBody};
