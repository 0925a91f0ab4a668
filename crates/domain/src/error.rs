//! The failure every port may report besides its own business outcomes.

use std::error::Error as StdError;

/// A boxed error from an adapter, kept for logging.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An infrastructure failure behind a port: nothing the caller did wrong.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The backing service (database, …) cannot be reached right now; retrying later may work.
    #[error("backing service unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else that went wrong in an adapter.
    #[error("unexpected adapter failure")]
    Unexpected(#[source] BoxError),
}

impl PortError {
    /// Wraps any error as [`PortError::Unexpected`].
    pub fn unexpected(err: impl Into<BoxError>) -> Self {
        Self::Unexpected(err.into())
    }
}
