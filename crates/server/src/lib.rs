//! The UserHub server: settings, telemetry and the wiring of adapters into
//! use cases. Only this crate names concrete adapter types.

mod application;
pub mod settings;
pub mod telemetry;

pub use application::{Application, Stopper};
pub use settings::{
    AppEnv, DEFAULT_SCOPES, DbPooler, JwtAlgorithm, OAuthProvider, RateLimitStore, Settings,
    SmtpTlsSetting, Span,
};
