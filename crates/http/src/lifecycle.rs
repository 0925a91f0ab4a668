//! The process's shutdown state as the HTTP layer sees it: whether the
//! server is draining, and how many requests are in flight.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Shared by every worker and by the shutdown sequence.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    in_flight: AtomicUsize,
}

impl Lifecycle {
    /// From now on `/health` answers 503 and every response asks the client
    /// to close its connection, so load balancers and keep-alive clients
    /// move away before the listener stops.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has begun.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Requests being served right now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Counts a request until the guard is dropped.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self)
    }
}

/// One request in flight.
pub(crate) struct InFlight<'a>(&'a Lifecycle);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
