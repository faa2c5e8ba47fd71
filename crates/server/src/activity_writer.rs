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
//!
//! What `kill -9` loses: the hits in memory, at most those accepted during one
//! flush interval plus one batch in flight (durable mode: none that were answered).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ordo_domain::activity::{ActivitySink, Hit, HitBatch, HitStore, RecordHitsError};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
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
struct Submission {
    hits: Vec<Hit>,
    /// Told once the hits are committed (durable mode).
    committed: Option<oneshot::Sender<()>>,
}

/// The [`ActivitySink`] the application's handlers and middleware use.
#[derive(Clone)]
pub struct BatchedActivitySink {
    queue: mpsc::UnboundedSender<Submission>,
    room: Arc<Semaphore>,
    durable: bool,
    retry_after: Duration,
}

impl std::fmt::Debug for BatchedActivitySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedActivitySink")
            .field("room", &self.room.available_permits())
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

/// The background task that writes what the sink accepted.
pub struct ActivityWriter {
    queue: mpsc::UnboundedReceiver<Submission>,
    room: Arc<Semaphore>,
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
    let room = Arc::new(Semaphore::new(config.capacity));
    let retry_after = config.flush_interval.max(Duration::from_secs(1));
    Ok((
        BatchedActivitySink {
            queue: sender,
            room: room.clone(),
            durable: config.durable,
            retry_after,
        },
        ActivityWriter {
            queue: receiver,
            room,
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
        match self.room.try_acquire_many(count) {
            Ok(permit) => {
                // Given back by the writer once the hits are committed.
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    fn give_back(&self, count: usize) {
        self.room.add_permits(count);
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
        if self.queue.send(Submission { hits, committed }).is_err() {
            self.give_back(count);
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
        let kept = self.reserve(1)
            && self
                .queue
                .send(Submission {
                    hits: vec![hit],
                    committed: None,
                })
                .map_err(|_| self.give_back(1))
                .is_ok();
        if !kept {
            metrics::counter!("activity_hits_dropped_total").increment(1);
        }
        kept
    }
}

/// The hits waiting for the next batch.
#[derive(Default)]
struct Pending {
    submissions: Vec<Submission>,
    hits: usize,
    /// When the oldest of them must be written.
    due: Option<Instant>,
}

impl Pending {
    fn add(&mut self, submission: Submission, flush_interval: Duration) {
        if self.submissions.is_empty() {
            self.due = Some(Instant::now() + flush_interval);
        }
        self.hits += submission.hits.len();
        self.submissions.push(submission);
    }
}

impl ActivityWriter {
    /// Writes batches until `cancel`, then writes everything still queued.
    ///
    /// # Errors
    /// None: a failing database is retried, not given up on.
    pub async fn run(mut self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut pending = Pending::default();
        loop {
            let due = pending.due;
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                received = self.queue.recv() => {
                    let Some(submission) = received else { break };
                    pending.add(submission, self.config.flush_interval);
                    if self.config.durable {
                        // Group commit: whatever else is already queued joins this batch.
                        while pending.hits < self.config.batch_size {
                            let Ok(more) = self.queue.try_recv() else { break };
                            pending.add(more, self.config.flush_interval);
                        }
                        self.flush(&mut pending).await;
                    } else if pending.hits >= self.config.batch_size {
                        self.flush(&mut pending).await;
                    }
                }
                () = sleep_until(due), if due.is_some() => self.flush(&mut pending).await,
            }
        }
        // The HTTP server has stopped: nothing can be added but what is queued.
        self.queue.close();
        while let Some(submission) = self.queue.recv().await {
            pending.add(submission, self.config.flush_interval);
            if pending.hits >= self.config.batch_size {
                self.flush(&mut pending).await;
            }
        }
        self.flush(&mut pending).await;
        tracing::info!("the activity writer wrote every accepted hit");
        Ok(())
    }

    /// Writes the pending hits as one batch, retrying until it is stored.
    async fn flush(&self, pending: &mut Pending) {
        let Pending {
            submissions, hits, ..
        } = std::mem::take(pending);
        if hits == 0 {
            return;
        }
        let mut all = Vec::with_capacity(hits);
        let mut waiting = Vec::new();
        for submission in submissions {
            all.extend(submission.hits);
            waiting.extend(submission.committed);
        }
        let batch = HitBatch::new(Uuid::now_v7(), all);
        let mut backoff = Duration::from_millis(50);
        let mut attempt = 1_u32;
        while let Err(e) = self.store.write(&batch).await {
            tracing::warn!(
                error = format!("{e:#}"),
                attempt,
                hits,
                retry_in_ms = backoff.as_millis(),
                "could not write a batch of hits; keeping them and retrying"
            );
            metrics::counter!("activity_batch_retries_total").increment(1);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
            attempt += 1;
        }
        metrics::counter!("activity_hits_written_total").increment(hits as u64);
        self.room.add_permits(hits);
        for tell in waiting {
            let _ = tell.send(());
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
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
