//! The traits adapters implement. Every port is `Send + Sync + 'static` so a
//! service can hold it behind an `Arc<dyn …>` shared by all workers.
//!
//! A [`PortError`] from any method means the backing store failed; the
//! `# Errors` sections list only the other outcomes.

mod credentials;
mod identities;
mod mfa;
mod passkeys;
mod records;
mod recovery;
mod sessions;
mod system;
mod tokens;
mod users;
mod webhooks;

pub use credentials::*;
pub use identities::*;
pub use mfa::*;
pub use passkeys::*;
pub use records::*;
pub use recovery::*;
pub use sessions::*;
pub use system::*;
pub use tokens::*;
pub use users::*;
pub use webhooks::*;
