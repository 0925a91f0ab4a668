//! The actix-web adapter: UserHub's HTTP contract (`../shared/API.md`) on
//! top of the domain's use cases.

mod app;
mod error;
mod extract;
mod middleware;
mod rate_limit;
mod routes;
mod validation;

pub use app::{ApiSettings, ApiState, build_app};
pub use error::ApiError;
pub use rate_limit::AuthRateLimit;

#[cfg(test)]
mod tests;
