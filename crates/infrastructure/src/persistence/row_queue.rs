//! Writes to one row wait their turn in the server, not in the database.
//!
//! When many requests write one row at once (everyone editing one
//! profile, a script in a loop), each would take a pooled connection and
//! wait on PostgreSQL's row lock: the pool drains into one queue, and the
//! database spends more on its lock queue and on re-checking the newest
//! row version than on the writes. Here they queue on an in-process lock
//! instead, so the database sees one write to the row at a time and the
//! other connections stay free for everyone else. The database's row lock
//! still decides between replicas; this only spares it the crowd.

use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

/// How many locks rows share: two rows on one lock merely take turns, so
/// enough that concurrent writes to different rows seldom meet.
const STRIPES: usize = 1024;

/// A fixed set of locks, one per stripe of row ids.
#[derive(Debug)]
pub(crate) struct RowQueue {
    stripes: Box<[Mutex<()>]>,
}

impl RowQueue {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Waits for the turn to write row `id` (first come, first served);
    /// the turn lasts as long as the guard.
    pub(crate) async fn turn(&self, id: Uuid) -> MutexGuard<'_, ()> {
        // The low bits of v4 and v7 ids are random.
        let stripe = (id.as_u128() % STRIPES as u128) as usize;
        self.stripes[stripe].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn writes_to_one_row_take_turns_and_other_rows_do_not_wait() {
        let queue = RowQueue::new();
        let row = Uuid::now_v7();
        let held = queue.turn(row).await;
        let same = tokio::time::timeout(Duration::from_millis(20), queue.turn(row)).await;
        assert!(same.is_err(), "the second write to the row waits");
        let other = Uuid::from_u128(row.as_u128() + 1);
        let other = tokio::time::timeout(Duration::from_millis(20), queue.turn(other)).await;
        assert!(other.is_ok(), "another row's write does not");
        drop(other);
        drop(held);
        let again = tokio::time::timeout(Duration::from_millis(20), queue.turn(row)).await;
        assert!(again.is_ok(), "the turn passes on when the first is done");
    }
}
