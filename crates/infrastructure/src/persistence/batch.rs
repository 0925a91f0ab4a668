//! Concurrent reads of one kind share a round trip.
//!
//! Under load most of the server's CPU per authenticated read went to
//! sending the query to PostgreSQL and being woken for its answer, and
//! PostgreSQL's to being woken for it (BENCHMARKS.md). A [`Batcher`] runs
//! the first read at once; reads that arrive while it is out wait for it,
//! then go together in the next round trip. A lone read is never delayed,
//! and every read is run after it was asked for, so none sees older data
//! than it would alone.

use std::cell::Cell;
use std::mem;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use std::time::Duration;

use sea_orm::DbErr;
use tokio::sync::oneshot;

/// The most keys one round trip carries.
const MAX_BATCH: usize = 128;

/// A read's error, shared by the reads of its batch.
pub(crate) type SharedErr = Arc<DbErr>;

/// Batches reads of `K` into one query that answers a `V` per key.
///
/// Keys are queued per shard (a shard per processor, chosen by the calling
/// thread), so that the worker threads do not contend for one lock and a
/// batch's answers mostly wake tasks of the thread that ran it. At most
/// one batch per shard is out at a time.
pub(crate) struct Batcher<K, V> {
    shards: Box<[SharedShard<K, V>]>,
    /// The longest a read waits for its answer, queued behind a batch or
    /// leading one: the pool's acquire timeout, so that no read waits
    /// longer for a connection batched than it would alone.
    deadline: Duration,
}

type SharedShard<K, V> = Arc<Mutex<Shard<K, V>>>;

struct Shard<K, V> {
    busy: bool,
    queue: Vec<Waiter<K, V>>,
}

struct Waiter<K, V> {
    key: K,
    reply: oneshot::Sender<Reply<K, V>>,
}

enum Reply<K, V> {
    /// The read's answer.
    Done(Result<V, SharedErr>),
    /// Lead the next batch.
    Lead(Handoff<K, V>),
}

/// The next batch, handed to the waiter that leads it.
struct Handoff<K, V> {
    /// The shard's lead: if this is dropped undelivered (its reader went
    /// away), the lead passes on rather than leaving the shard busy.
    lead: Lead<K, V>,
    /// The receiver's own key.
    own: K,
    /// The other reads of the batch.
    others: Vec<Waiter<K, V>>,
}

impl<K, V> std::fmt::Debug for Batcher<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("shards", &self.shards.len())
            .finish()
    }
}

thread_local! {
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

impl<K: Copy + Send, V: Send> Batcher<K, V> {
    /// A batcher with a shard per processor, whose reads give up after
    /// `deadline` (the pool's acquire timeout).
    pub(crate) fn new(deadline: Duration) -> Self {
        let shards = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            deadline,
            shards: (0..shards)
                .map(|_| {
                    Arc::new(Mutex::new(Shard {
                        busy: false,
                        queue: Vec::new(),
                    }))
                })
                .collect(),
        }
    }

    fn shard(&self) -> &SharedShard<K, V> {
        let index = SHARD.with(|slot| {
            slot.get().unwrap_or_else(|| {
                let index = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
                slot.set(Some(index));
                index
            })
        });
        &self.shards[index % self.shards.len()]
    }

    /// The answer for `key`. `run` answers a batch of keys, one value per
    /// key in their order; it is called by whichever read leads the batch.
    pub(crate) async fn load<F, Fut>(&self, key: K, run: F) -> Result<V, SharedErr>
    where
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<V>, DbErr>>,
    {
        let shard = self.shard();
        let (reply, answer) = oneshot::channel();
        if enqueue_or_lead(shard, Waiter { key, reply }) {
            // The first read waits for a connection as it would alone.
            let lead = Lead(Some(shard.clone()));
            return lead.run(Vec::new(), key, &run).await;
        }
        // A read queued behind a batch waits at most the acquire timeout in
        // all: on time-out it is dropped as a client that went away would
        // be, and its lead (if it had one) passes on.
        let deadline = tokio::time::Instant::now() + self.deadline;
        let waited = tokio::time::timeout_at(deadline, async {
            match answer.await {
                Ok(Reply::Done(result)) => result,
                Ok(Reply::Lead(next)) => next.lead.run(next.others, next.own, &run).await,
                // The leader was dropped (its client went away) with this key
                // in its batch: read alone.
                Err(_) => alone(key, &run).await,
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(Arc::new(DbErr::ConnectionAcquire(
                sea_orm::ConnAcquireErr::Timeout,
            )))
        })
    }
}

fn lock<K, V>(shard: &Mutex<Shard<K, V>>) -> std::sync::MutexGuard<'_, Shard<K, V>> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Queues `waiter` while the shard has a batch out (false); else marks
/// it busy, for the caller to lead (true).
fn enqueue_or_lead<K, V>(shard: &Mutex<Shard<K, V>>, waiter: Waiter<K, V>) -> bool {
    let mut state = lock(shard);
    if state.busy {
        state.queue.push(waiter);
        false
    } else {
        state.busy = true;
        true
    }
}

async fn alone<K, V, F, Fut>(key: K, run: &F) -> Result<V, SharedErr>
where
    F: Fn(Vec<K>) -> Fut,
    Fut: Future<Output = Result<Vec<V>, DbErr>>,
{
    let mut values = run(vec![key]).await.map_err(Arc::new)?;
    values.pop().ok_or_else(|| Arc::new(missing()))
}

fn missing() -> DbErr {
    DbErr::Custom("a batched read answered fewer keys than it was given".into())
}

/// The lead of a shard: the right to have its one batch out. Dropped,
/// with its future or undelivered in a [`Handoff`], it hands the queue to
/// the next waiter, or frees the shard. `None` once disarmed.
struct Lead<K, V>(Option<SharedShard<K, V>>);

impl<K: Copy, V> Lead<K, V> {
    async fn run<F, Fut>(self, others: Vec<Waiter<K, V>>, own: K, run: &F) -> Result<V, SharedErr>
    where
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = Result<Vec<V>, DbErr>>,
    {
        let mut keys = Vec::with_capacity(others.len() + 1);
        keys.push(own);
        keys.extend(others.iter().map(|w| w.key));
        let outcome = run(keys).await;
        match outcome {
            Ok(values) if values.len() == others.len() + 1 => {
                let mut values = values.into_iter();
                let mine = values.next().ok_or_else(|| Arc::new(missing()));
                for (waiter, value) in others.into_iter().zip(values) {
                    let _ = waiter.reply.send(Reply::Done(Ok(value)));
                }
                mine
            }
            Ok(_) => fail(others, Arc::new(missing())),
            Err(err) => fail(others, Arc::new(err)),
        }
    }
}

fn fail<K, V>(others: Vec<Waiter<K, V>>, err: SharedErr) -> Result<V, SharedErr> {
    for waiter in others {
        let _ = waiter.reply.send(Reply::Done(Err(err.clone())));
    }
    Err(err)
}

impl<K, V> Drop for Lead<K, V> {
    fn drop(&mut self) {
        let Some(shard) = self.0.take() else {
            return;
        };
        let mut state = lock(&shard);
        loop {
            if state.queue.is_empty() {
                state.busy = false;
                return;
            }
            let take = state.queue.len().min(MAX_BATCH);
            let rest = state.queue.split_off(take);
            let mut others = mem::replace(&mut state.queue, rest);
            let next = others.remove(0);
            let handoff = Handoff {
                lead: Lead(Some(shard.clone())),
                own: next.key,
                others,
            };
            // A waiter whose read was dropped cannot lead: its batch goes to
            // the next one. (The returned lead is disarmed, not dropped, as
            // this holds the shard's lock.)
            match next.reply.send(Reply::Lead(handoff)) {
                Ok(()) => return,
                Err(Reply::Lead(mut handoff)) => {
                    handoff.lead.0 = None;
                    let rest = mem::take(&mut state.queue);
                    state.queue = handoff.others;
                    state.queue.extend(rest);
                }
                Err(Reply::Done(_)) => unreachable!("sent a Lead"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Answers each key doubled, after a pause, counting round trips.
    async fn double(trips: &AtomicUsize, keys: Vec<u32>) -> Result<Vec<u32>, DbErr> {
        trips.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(keys.into_iter().map(|k| k * 2).collect())
    }

    /// Time stands still until every task waits (tokio's paused clock), so
    /// the deadline is checked exactly, not raced.
    #[tokio::test(start_paused = true)]
    async fn a_read_queued_behind_a_slow_batch_gives_up_at_the_acquire_timeout() {
        let batcher = Arc::new(Batcher::<u32, u32>::new(Duration::from_millis(100)));
        // The database has no connection to give for 500 ms.
        let slow = |keys: Vec<u32>| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(keys)
        };
        let first = {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.load(1, slow).await })
        };
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        let second = batcher.load(2, slow).await;
        assert!(
            matches!(
                second.as_ref().map_err(|e| e.as_ref()),
                Err(DbErr::ConnectionAcquire(_))
            ),
            "{second:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        // The slow batch still answers its own read.
        assert_eq!(first.await.unwrap().unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_share_round_trips_and_each_gets_its_answer() {
        let batcher = Arc::new(Batcher::<u32, u32>::new(Duration::from_secs(10)));
        let trips = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..200)
            .map(|key| {
                let (batcher, trips) = (batcher.clone(), trips.clone());
                tokio::spawn(async move { batcher.load(key, |keys| double(&trips, keys)).await })
            })
            .collect();
        for (key, task) in (0..200).zip(tasks) {
            assert_eq!(task.await.unwrap().unwrap(), key * 2);
        }
        let trips = trips.load(Ordering::SeqCst);
        assert!(trips < 100, "{trips} round trips for 200 reads");
    }

    #[tokio::test]
    async fn a_lone_read_goes_at_once_and_frees_its_shard() {
        let batcher = Batcher::<u32, u32>::new(Duration::from_secs(10));
        let trips = AtomicUsize::new(0);
        for key in 0..3 {
            assert_eq!(
                batcher
                    .load(key, |keys| double(&trips, keys))
                    .await
                    .unwrap(),
                key * 2
            );
        }
        assert_eq!(trips.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_error_reaches_every_read_of_its_batch() {
        let batcher = Arc::new(Batcher::<u32, u32>::new(Duration::from_secs(10)));
        let tasks: Vec<_> = (0..10)
            .map(|key| {
                let batcher = batcher.clone();
                tokio::spawn(async move {
                    batcher
                        .load(key, |_| async {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            Err::<Vec<u32>, _>(DbErr::Custom("down".into()))
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_err());
        }
    }

    /// The lead is handed to a read whose future is dropped before it
    /// takes it: the lead passes on and the shard does not stay busy.
    #[tokio::test(flavor = "current_thread")]
    async fn a_lead_handed_to_a_dropped_read_passes_on() {
        let batcher = Arc::new(Batcher::<u32, u32>::new(Duration::from_secs(10)));
        let trips = Arc::new(AtomicUsize::new(0));
        let load = |key: u32| {
            let (batcher, trips) = (batcher.clone(), trips.clone());
            async move { batcher.load(key, |keys| double(&trips, keys)).await }
        };
        let first = tokio::spawn(load(0));
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Queued, then never polled again.
        let mut dropped = Box::pin(load(1));
        tokio::select! {
            biased;
            _ = &mut dropped => unreachable!("queued behind the first"),
            () = std::future::ready(()) => {}
        }
        let behind = tokio::spawn(load(2));
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The first batch ends and hands [1, 2] to the read of key 1.
        assert_eq!(first.await.unwrap().unwrap(), 0);
        drop(dropped);
        assert_eq!(behind.await.unwrap().unwrap(), 4);
        let next = tokio::time::timeout(Duration::from_secs(5), load(3)).await;
        assert_eq!(next.expect("the shard is free").unwrap(), 6);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_reads_of_a_dropped_leaders_batch_read_alone() {
        let batcher = Arc::new(Batcher::<u32, u32>::new(Duration::from_secs(10)));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let load = |key: u32| {
            let (batcher, batches) = (batcher.clone(), batches.clone());
            tokio::spawn(async move {
                batcher
                    .load(key, |keys| {
                        batches.lock().unwrap().push(keys.clone());
                        async move {
                            tokio::time::sleep(Duration::from_millis(400)).await;
                            Ok(keys.into_iter().map(|k| k * 2).collect())
                        }
                    })
                    .await
            })
        };
        let first = load(0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let queued: Vec<_> = (1..5).map(load).collect();
        // At 400 ms the first batch ends and hands the queue to the read of
        // key 1, which leads [1, 2, 3, 4]; it is dropped while that is out.
        assert_eq!(first.await.unwrap().unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut queued = queued.into_iter();
        queued.next().unwrap().abort();
        for (key, task) in (2..5).zip(queued) {
            assert_eq!(task.await.unwrap().unwrap(), key * 2);
        }
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches[..2], [vec![0], vec![1, 2, 3, 4]]);
        let mut alone = batches[2..].to_vec();
        alone.sort();
        assert_eq!(alone, [vec![2], vec![3], vec![4]]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_leader_hands_its_queue_on() {
        let batcher = Arc::new(Batcher::<u32, u32>::new(Duration::from_secs(10)));
        let trips = Arc::new(AtomicUsize::new(0));
        // The leader, dropped while its round trip is out.
        let leader = {
            let (batcher, trips) = (batcher.clone(), trips.clone());
            tokio::spawn(async move { batcher.load(0, |keys| double(&trips, keys)).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let waiters: Vec<_> = (1..5)
            .map(|key| {
                let (batcher, trips) = (batcher.clone(), trips.clone());
                tokio::spawn(async move { batcher.load(key, |keys| double(&trips, keys)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(5)).await;
        leader.abort();
        for (key, task) in (1..5).zip(waiters) {
            assert_eq!(task.await.unwrap().unwrap(), key * 2);
        }
        // And the shard is free again.
        assert_eq!(
            batcher.load(9, |keys| double(&trips, keys)).await.unwrap(),
            18
        );
    }
}
