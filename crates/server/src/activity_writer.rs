//! The activity writer: hits accepted by the sink wait in a bounded in-memory
//! queue and are written in batches by one background task owned by the
//! application.
//!
//! - The bound counts hits, not requests: a request's hits take their room in the
//!   queue all at once or not at all, and the room is given back only once they
//!   are committed. A request that does not fit is refused (503
//!   `ingestion_backpressure` with `Retry-After`), never accepted and dropped; a hit
//!   the server observed itself is dropped instead (and counted in `/metrics`), so
//!   a full queue never fails the request it describes.
//! - A batch is written when it reaches `batch_size` hits or when its oldest hit
//!   has waited `flush_interval`, as one transaction (see `ordo_postgres::activity`).
//!   A failed write is retried with exponential backoff under the same batch id, so
//!   it is stored once even when a commit's answer was lost; meanwhile the hits stay
//!   in memory, still holding their room, and new requests are refused once the
//!   room is used up.
//! - On shutdown (after the HTTP server has stopped, so no request can add hits)
//!   the queue is closed and everything in it is written before the task returns.
//! - In durable mode a request's hits are answered only once their batch is
//!   committed; the writer then flushes as soon as the queue is momentarily empty
//!   (group commit) rather than waiting for `flush_interval`.
//! - Otherwise a hit does not wake the writer: it wakes every `flush_interval`,
//!   and early when `batch_size` hits are queued, and takes what the queue holds.
//!   Waking a parked task on every request cost each request a cross-thread
//!   wake-up, while a batch needs only one.
//!
//! What `kill -9` loses: the hits in memory, at most those accepted during one
//! flush interval plus one batch in flight (durable mode: none that were answered).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ordo_domain::activity::{ActivitySink, Hit, HitBatch, HitStore, RecordHitsError};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How the writer batches and how much it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Hits held in memory at most, queued or being written.
    pub capacity: usize,
    /// A batch is written once it has this many hits.
    pub batch_size: usize,
    /// …or once its oldest hit has waited this long.
    pub flush_interval: Duration,
    /// Answer a request only once its hits are committed.
    pub durable: bool,
    /// The longest wait between two attempts at a failed batch.
    pub max_backoff: Duration,
}

/// Hits of one request (or one observed hit) on their way to the writer.
enum Submission {
    /// A hit the server observed: no `Vec` of its own.
    Observed(Hit),
    /// A request's hits.
    Reported {
        hits: Vec<Hit>,
        /// Told once the hits are committed (durable mode).
        committed: Option<oneshot::Sender<()>>,
    },
}

impl Submission {
    fn len(&self) -> usize {
        match self {
            Self::Observed(_) => 1,
            Self::Reported { hits, .. } => hits.len(),
        }
    }
}

/// What the sink and the writer share besides the queue.
struct Shared {
    /// Room for hits, queued or being written.
    room: Semaphore,
    /// Hits sent and not yet taken by the writer.
    queued: AtomicUsize,
    /// Wakes the writer before its next tick.
    wake: Notify,
}

/// The [`ActivitySink`] the application's handlers and middleware use.
#[derive(Clone)]
pub struct BatchedActivitySink {
    queue: mpsc::UnboundedSender<Submission>,
    shared: Arc<Shared>,
    durable: bool,
    batch_size: usize,
    retry_after: Duration,
}

impl std::fmt::Debug for BatchedActivitySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedActivitySink")
            .field("room", &self.shared.room.available_permits())
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

/// The background task that writes what the sink accepted.
pub struct ActivityWriter {
    queue: mpsc::UnboundedReceiver<Submission>,
    shared: Arc<Shared>,
    store: Arc<dyn HitStore>,
    config: WriterConfig,
}

impl std::fmt::Debug for ActivityWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityWriter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A sink and the writer that empties it into `store`.
///
/// # Errors
/// When the capacity or batch size is zero.
pub fn batched(
    store: Arc<dyn HitStore>,
    config: WriterConfig,
) -> anyhow::Result<(BatchedActivitySink, ActivityWriter)> {
    anyhow::ensure!(
        config.capacity >= ordo_domain::activity::ActivityPolicy::MAX_HITS_PER_REQUEST,
        "activity.queue_capacity must hold one full request ({} hits)",
        ordo_domain::activity::ActivityPolicy::MAX_HITS_PER_REQUEST
    );
    anyhow::ensure!(
        config.batch_size > 0,
        "activity.batch_size must be positive"
    );
    let (sender, receiver) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        room: Semaphore::new(config.capacity),
        queued: AtomicUsize::new(0),
        wake: Notify::new(),
    });
    let retry_after = config.flush_interval.max(Duration::from_secs(1));
    Ok((
        BatchedActivitySink {
            queue: sender,
            shared: shared.clone(),
            durable: config.durable,
            batch_size: config.batch_size,
            retry_after,
        },
        ActivityWriter {
            queue: receiver,
            shared,
            store,
            config,
        },
    ))
}

impl BatchedActivitySink {
    /// Takes room for `count` hits, all or none.
    fn reserve(&self, count: usize) -> bool {
        let Ok(count) = u32::try_from(count) else {
            return false;
        };
        match self.shared.room.try_acquire_many(count) {
            Ok(permit) => {
                // Given back by the writer once the hits are committed.
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    fn give_back(&self, count: usize) {
        self.shared.room.add_permits(count);
    }

    /// Queues `submission`, whose room is taken, and wakes the writer when it
    /// should not wait for its tick: the hits fill a batch, or are to be committed
    /// before their request is answered.
    fn send(&self, submission: Submission) -> bool {
        let count = submission.len();
        let urgent = matches!(
            submission,
            Submission::Reported {
                committed: Some(_),
                ..
            }
        );
        // Counted before it is sent, so the writer never takes it off the count first.
        let before = self.shared.queued.fetch_add(count, Ordering::Relaxed);
        if self.queue.send(submission).is_err() {
            self.shared.queued.fetch_sub(count, Ordering::Relaxed);
            self.give_back(count);
            return false;
        }
        if urgent || (before < self.batch_size && before + count >= self.batch_size) {
            self.shared.wake.notify_one();
        }
        true
    }
}

#[async_trait]
impl ActivitySink for BatchedActivitySink {
    async fn accept(&self, hits: Vec<Hit>) -> Result<(), RecordHitsError> {
        let count = hits.len();
        if !self.reserve(count) {
            metrics::counter!("activity_hits_refused_total").increment(count as u64);
            return Err(RecordHitsError::Backpressure {
                retry_after: self.retry_after,
            });
        }
        let (committed, stored) = if self.durable {
            let (tell, told) = oneshot::channel();
            (Some(tell), Some(told))
        } else {
            (None, None)
        };
        if !self.send(Submission::Reported { hits, committed }) {
            return Err(anyhow::anyhow!("the activity writer has stopped").into());
        }
        if let Some(stored) = stored {
            stored.await.map_err(|_| {
                anyhow::anyhow!("the activity writer stopped before writing the hits")
            })?;
        }
        Ok(())
    }

    fn observe(&self, hit: Hit) -> bool {
        let kept = self.reserve(1) && self.send(Submission::Observed(hit));
        if !kept {
            metrics::counter!("activity_hits_dropped_total").increment(1);
        }
        kept
    }
}

/// The hits waiting for the next batch.
#[derive(Default)]
struct Pending {
    hits: Vec<Hit>,
    /// Told once these hits are committed.
    waiting: Vec<oneshot::Sender<()>>,
}

impl Pending {
    fn add(&mut self, submission: Submission) {
        match submission {
            Submission::Observed(hit) => self.hits.push(hit),
            Submission::Reported { hits, committed } => {
                self.hits.extend(hits);
                self.waiting.extend(committed);
            }
        }
    }
}

impl ActivityWriter {
    /// Writes batches until `cancel`, then writes everything still queued.
    ///
    /// # Errors
    /// None: a failing database is retried, not given up on.
    pub async fn run(mut self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut pending = Pending::default();
        let mut tick = tokio::time::interval(self.config.flush_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let ticked = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = self.shared.wake.notified() => false,
                _ = tick.tick() => true,
            };
            self.take_queued(&mut pending).await;
            // Woken early by a full batch, what is left over waits for the tick:
            // it has waited less than `flush_interval` since the last one.
            if ticked || self.config.durable {
                self.flush(&mut pending).await;
            }
        }
        // The HTTP server has stopped: nothing can be added but what is queued.
        self.queue.close();
        self.take_queued(&mut pending).await;
        self.flush(&mut pending).await;
        tracing::info!("the activity writer wrote every accepted hit");
        Ok(())
    }

    /// Moves the queued hits to `pending`, writing every full batch on the way.
    async fn take_queued(&mut self, pending: &mut Pending) {
        while let Ok(submission) = self.queue.try_recv() {
            self.shared
                .queued
                .fetch_sub(submission.len(), Ordering::Relaxed);
            pending.add(submission);
            if pending.hits.len() >= self.config.batch_size {
                self.flush(pending).await;
            }
        }
    }

    /// Writes the pending hits as one batch, retrying until it is stored.
    async fn flush(&self, pending: &mut Pending) {
        let Pending { hits, waiting } = std::mem::take(pending);
        let count = hits.len();
        if count == 0 {
            return;
        }
        let batch = HitBatch::new(Uuid::now_v7(), hits);
        let mut backoff = Duration::from_millis(50);
        let mut attempt = 1_u32;
        while let Err(e) = self.store.write(&batch).await {
            tracing::warn!(
                error = format!("{e:#}"),
                attempt,
                hits = count,
                retry_in_ms = backoff.as_millis(),
                "could not write a batch of hits; keeping them and retrying"
            );
            metrics::counter!("activity_batch_retries_total").increment(1);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
            attempt += 1;
        }
        metrics::counter!("activity_hits_written_total").increment(count as u64);
        self.shared.room.add_permits(count);
        for tell in waiting {
            let _ = tell.send(());
        }
    }
}

/// An [`ActivitySink`] without a queue: every call writes at once. For tools
/// that assemble the services without running the application (the benchmark's
/// seeding); the application itself uses [`BatchedActivitySink`].
pub struct DirectActivitySink {
    store: Arc<dyn HitStore>,
}

impl std::fmt::Debug for DirectActivitySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectActivitySink").finish_non_exhaustive()
    }
}

impl DirectActivitySink {
    /// Writes straight to `store`.
    pub fn new(store: Arc<dyn HitStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl ActivitySink for DirectActivitySink {
    async fn accept(&self, hits: Vec<Hit>) -> Result<(), RecordHitsError> {
        Ok(self
            .store
            .write(&HitBatch::new(Uuid::now_v7(), hits))
            .await?)
    }

    fn observe(&self, hit: Hit) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let store = self.store.clone();
        runtime.spawn(async move {
            if let Err(e) = store.write(&HitBatch::new(Uuid::now_v7(), vec![hit])).await {
                tracing::warn!(error = format!("{e:#}"), "could not write an observed hit");
            }
        });
        true
    }
}

#[cfg(test)]
mod tests;
