//! The actix-web adapter: UserHub's HTTP contract (`../shared/API.md`) on
//! top of the domain's use cases.

mod app;
mod console;
mod cursor;
mod dto;
mod error;
mod extract;
mod lifecycle;
mod metrics;
mod middleware;
mod openapi;
mod rate_limit;
mod routes;
mod scopes;
mod state;
mod validation;

pub use app::{ApiSettings, build_app};
pub use console::ConsoleSettings;
pub use cursor::CursorKey;
pub use error::ApiError;
pub use lifecycle::Lifecycle;
pub use metrics::Metrics;
pub use openapi::ApiDoc;
pub use rate_limit::{AuthRateLimit, HashBudget};
pub use routes::webhooks::payload::webhook_body;
pub use state::ApiState;

#[cfg(test)]
mod tests;
