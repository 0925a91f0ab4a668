//! UserHub's core: the `User` model and its validated value types, the ports
//! the adapters implement, and the use cases holding every business rule.
//!
//! Nothing here knows about HTTP, SQL or any framework: adapters depend on this
//! crate, never the other way round.

pub mod error;
pub mod model;
pub mod ports;
pub mod services;

pub use error::PortError;
