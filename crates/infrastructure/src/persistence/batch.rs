//! Concurrent reads of one kind share a round trip.
//!
//! Under load most of the server's CPU per authenticated read went to
//! sending the query to PostgreSQL and being woken for its answer, and
//! PostgreSQL's to being woken for it (BENCHMARKS.md). A [`Batcher`] has a
//! task per shard that takes every read queued on its channel (up to
//! [`MAX_BATCH`]), runs them as one query, answers each, and takes the
//! next. A lone read goes at once; every read is run after it was asked
//! for, so none sees older data than it would alone.
//!
//! A read that gives up (its client went away, or the acquire timeout
//! passed) only drops its reply: the task is never cancelled, so no shard
//! can be left waiting for a reader that is gone.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sea_orm::DbErr;
use tokio::sync::{mpsc, oneshot};

/// The most keys one round trip carries.
const MAX_BATCH: usize = 128;

/// A read's error, shared by the reads of its batch.
pub(crate) type SharedErr = Arc<DbErr>;

/// What answers a batch of keys: one value per key, in their order.
pub(crate) type Run<K, V> = Arc<dyn Fn(Vec<K>) -> Answers<V> + Send + Sync>;

/// The answers of one batch, to come.
pub(crate) type Answers<V> =
    std::pin::Pin<Box<dyn Future<Output = Result<Vec<V>, DbErr>> + Send + 'static>>;

type Waiter<K, V> = (K, oneshot::Sender<Result<V, SharedErr>>);

/// A shard's queue, its task started on first use.
type Queue<K, V> = OnceLock<mpsc::UnboundedSender<Waiter<K, V>>>;

/// Batches reads of `K` into one query that answers a `V` per key.
///
/// Keys are queued per shard (a shard per processor, chosen by the calling
/// thread), so that the worker threads do not contend for one queue and a
/// shard's task runs on the thread that first used it, next to its readers.
pub(crate) struct Batcher<K, V> {
    shards: Box<[Queue<K, V>]>,
    run: Run<K, V>,
    /// The longest a read waits for its answer: the pool's acquire
    /// timeout, so that no read waits longer for a connection batched than
    /// it would alone.
    deadline: Duration,
}

impl<K, V> std::fmt::Debug for Batcher<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

thread_local! {
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

impl<K: Copy + Send + 'static, V: Send + 'static> Batcher<K, V> {
    /// A batcher with a shard per processor whose batches `run` answers,
    /// and whose reads give up after `deadline` (the pool's acquire timeout).
    pub(crate) fn new(deadline: Duration, run: Run<K, V>) -> Self {
        let shards = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            shards: (0..shards).map(|_| OnceLock::new()).collect(),
            run,
            deadline,
        }
    }

    /// The calling thread's shard, its task started on first use.
    fn shard(&self) -> &mpsc::UnboundedSender<Waiter<K, V>> {
        let index = SHARD.with(|slot| {
            slot.get().unwrap_or_else(|| {
                let index = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
                slot.set(Some(index));
                index
            })
        });
        self.shards[index % self.shards.len()].get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(drain(receiver, self.run.clone()));
            sender
        })
    }

    /// The answer for `key`, read with the others queued at the time.
    pub(crate) async fn load(&self, key: K) -> Result<V, SharedErr> {
        let (reply, answer) = oneshot::channel();
        if self.shard().send((key, reply)).is_err() {
            // The shard's task is gone (its runtime stopped): read alone.
            return alone(key, &self.run).await;
        }
        match tokio::time::timeout(self.deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => alone(key, &self.run).await,
            Err(_) => Err(Arc::new(DbErr::ConnectionAcquire(
                sea_orm::ConnAcquireErr::Timeout,
            ))),
        }
    }
}

/// A shard's task: one batch at a time, of what is queued when the last
/// one ended; reads that gave up meanwhile are left out.
async fn drain<K: Copy, V>(mut queue: mpsc::UnboundedReceiver<Waiter<K, V>>, run: Run<K, V>) {
    let mut waiters = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut waiters, MAX_BATCH).await > 0 {
        waiters.retain(|(_, reply)| !reply.is_closed());
        if waiters.is_empty() {
            continue;
        }
        let keys = waiters.iter().map(|(key, _)| *key).collect();
        let outcome = run(keys).await;
        match outcome {
            Ok(values) if values.len() == waiters.len() => {
                for ((_, reply), value) in waiters.drain(..).zip(values) {
                    let _ = reply.send(Ok(value));
                }
            }
            outcome => {
                let err = Arc::new(outcome.err().unwrap_or_else(missing));
                for (_, reply) in waiters.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

async fn alone<K, V>(key: K, run: &Run<K, V>) -> Result<V, SharedErr> {
    let mut values = run(vec![key]).await.map_err(Arc::new)?;
    values.pop().ok_or_else(|| Arc::new(missing()))
}

fn missing() -> DbErr {
    DbErr::Custom("a batched read answered fewer keys than it was given".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A batcher whose batches double each key after `pause`, recording
    /// the batches it ran.
    fn doubling(pause: Duration, deadline: Duration) -> (Arc<Batcher<u32, u32>>, Batches) {
        let batches = Batches::default();
        let seen = batches.clone();
        let run: Run<u32, u32> = Arc::new(move |keys: Vec<u32>| {
            seen.0.lock().unwrap().push(keys.clone());
            Box::pin(async move {
                tokio::time::sleep(pause).await;
                Ok(keys.into_iter().map(|k| k * 2).collect())
            })
        });
        (Arc::new(Batcher::new(deadline, run)), batches)
    }

    #[derive(Clone, Default)]
    struct Batches(Arc<Mutex<Vec<Vec<u32>>>>);

    impl Batches {
        fn taken(&self) -> Vec<Vec<u32>> {
            self.0.lock().unwrap().clone()
        }
    }

    fn spawn_load(
        batcher: &Arc<Batcher<u32, u32>>,
        key: u32,
    ) -> tokio::task::JoinHandle<Result<u32, SharedErr>> {
        let batcher = batcher.clone();
        tokio::spawn(async move { batcher.load(key).await })
    }

    /// Time stands still until every task waits (tokio's paused clock), so
    /// the deadline is checked exactly, not raced.
    #[tokio::test(start_paused = true)]
    async fn a_read_queued_behind_a_slow_batch_gives_up_at_the_acquire_timeout() {
        // The database has no connection to give for 500 ms.
        let (batcher, _) = doubling(Duration::from_millis(500), Duration::from_millis(100));
        let first = spawn_load(&batcher, 1);
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        let second = batcher.load(2).await;
        assert!(
            matches!(
                second.as_ref().map_err(|e| e.as_ref()),
                Err(DbErr::ConnectionAcquire(_))
            ),
            "{second:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        // The read of the slow batch gives up at its deadline too.
        assert!(first.await.unwrap().is_err());
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_share_round_trips_and_each_gets_its_answer() {
        let (batcher, batches) = doubling(Duration::from_millis(20), Duration::from_secs(10));
        let tasks: Vec<_> = (0..200).map(|key| spawn_load(&batcher, key)).collect();
        for (key, task) in (0..200).zip(tasks) {
            assert_eq!(task.await.unwrap().unwrap(), key * 2);
        }
        let trips = batches.taken().len();
        assert!(trips < 100, "{trips} round trips for 200 reads");
    }

    #[tokio::test]
    async fn a_lone_read_goes_at_once() {
        let (batcher, batches) = doubling(Duration::ZERO, Duration::from_secs(10));
        for key in 0..3 {
            assert_eq!(batcher.load(key).await.unwrap(), key * 2);
        }
        assert_eq!(batches.taken(), [vec![0], vec![1], vec![2]]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_error_reaches_every_read_of_its_batch() {
        let run: Run<u32, u32> = Arc::new(|_| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Err(DbErr::Custom("down".into()))
            })
        });
        let batcher = Arc::new(Batcher::new(Duration::from_secs(10), run));
        let tasks: Vec<_> = (0..10).map(|key| spawn_load(&batcher, key)).collect();
        for task in tasks {
            assert!(task.await.unwrap().is_err());
        }
    }

    /// Reads dropped while queued are left out of the next batch, and one
    /// dropped while its batch is out costs the others nothing.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn dropped_reads_neither_stall_a_shard_nor_hold_up_others() {
        let (batcher, batches) = doubling(Duration::from_millis(400), Duration::from_secs(10));
        let first = spawn_load(&batcher, 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let queued: Vec<_> = (1..5).map(|key| spawn_load(&batcher, key)).collect();
        let gone = spawn_load(&batcher, 9);
        tokio::time::sleep(Duration::from_millis(10)).await;
        gone.abort();
        assert_eq!(first.await.unwrap().unwrap(), 0);
        // [1, 2, 3, 4] is out; the read of key 1 goes away meanwhile.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut queued = queued.into_iter();
        queued.next().unwrap().abort();
        for (key, task) in (2..5).zip(queued) {
            assert_eq!(task.await.unwrap().unwrap(), key * 2);
        }
        assert_eq!(batches.taken(), [vec![0], vec![1, 2, 3, 4]]);
        assert_eq!(batcher.load(7).await.unwrap(), 14, "the shard is free");
    }
}
