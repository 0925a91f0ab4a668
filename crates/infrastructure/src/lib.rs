//! Adapters for UserHub's ports: SeaORM repositories for PostgreSQL and
//! SQLite, a bcrypt password hasher, a JWT token issuer and mailers.

mod entities;
pub mod hashing;
pub mod mail;
pub mod persistence;
pub mod tokens;

pub use hashing::BcryptPasswordHasher;
pub use mail::{LogMailer, SmtpMailer, SmtpSettings, SmtpTls};
pub use persistence::{
    Database, DatabaseSettings, SeaOrmAuditLog, SeaOrmLoginThrottle, SeaOrmMailQueue,
    SeaOrmRecoveryTokens, SeaOrmRequestCounter, SeaOrmSessionRepository, SeaOrmUserRepository,
};
pub use tokens::{JwtSettings, JwtTokenIssuer, PreviousKey, SigningKey};
