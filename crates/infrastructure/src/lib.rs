//! Adapters for UserHub's ports: SeaORM repositories for PostgreSQL and
//! SQLite, a bcrypt password hasher and a JWT token issuer.

mod entities;
pub mod hashing;
pub mod persistence;
pub mod tokens;

pub use hashing::BcryptPasswordHasher;
pub use persistence::{
    Database, DatabaseSettings, SeaOrmLoginThrottle, SeaOrmSessionRepository, SeaOrmUserRepository,
};
pub use tokens::{JwtSettings, JwtTokenIssuer, SigningKey};
