use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Utc;
use ordo_domain::activity::{Endpoint, HitMethod, HitPrincipal, HitSource, PrincipalKind};

use super::*;

/// A store that fails its first `failures` writes and remembers every attempt.
#[derive(Default)]
struct FlakyStore {
    failures: AtomicUsize,
    attempts: Mutex<Vec<Uuid>>,
    stored: Mutex<Vec<HitBatch>>,
}

#[async_trait]
impl HitStore for FlakyStore {
    async fn write(&self, batch: &HitBatch) -> anyhow::Result<()> {
        self.attempts.lock().unwrap().push(batch.id());
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
            .is_ok();
        if failing {
            anyhow::bail!("connection refused");
        }
        self.stored.lock().unwrap().push(batch.clone());
        Ok(())
    }

    async fn prepare(&self, _: chrono::NaiveDate, _: chrono::NaiveDate) -> anyhow::Result<()> {
        Ok(())
    }

    async fn prune(&self, _: chrono::NaiveDate) -> anyhow::Result<Vec<chrono::NaiveDate>> {
        Ok(vec![])
    }
}

impl FlakyStore {
    fn stored_hits(&self) -> usize {
        self.stored
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.hits().len())
            .sum()
    }
}

fn hits(n: usize) -> Vec<Hit> {
    (0..n)
        .map(|_| Hit {
            principal: HitPrincipal::new(PrincipalKind::Client, Uuid::nil()),
            occurred_at: Utc::now(),
            method: HitMethod::Get,
            endpoint: Endpoint::parse("/v1/x").unwrap(),
            status: None,
            latency: None,
            ip: None,
            source: HitSource::Reported,
        })
        .collect()
}

fn config() -> WriterConfig {
    WriterConfig {
        capacity: 1000,
        batch_size: 10_000,
        flush_interval: Duration::from_secs(3600),
        durable: false,
        max_backoff: Duration::from_millis(20),
    }
}

fn start(
    store: &Arc<FlakyStore>,
    config: WriterConfig,
) -> (
    BatchedActivitySink,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (sink, writer) = batched(store.clone(), config).unwrap();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(writer.run(cancel.clone()));
    (sink, cancel, task)
}

#[tokio::test]
async fn hits_beyond_the_room_are_refused_whole_and_observed_ones_dropped() {
    let store = Arc::new(FlakyStore::default());
    let (sink, cancel, task) = start(&store, config());

    sink.accept(hits(999)).await.expect("fits");
    let refused = sink.accept(hits(2)).await;
    let observed = sink.observe(hits(1).remove(0));
    let second_observed = sink.observe(hits(1).remove(0));

    assert!(matches!(
        refused,
        Err(RecordHitsError::Backpressure { retry_after }) if retry_after >= Duration::from_secs(1)
    ));
    assert!(observed, "one hit still fits");
    assert!(!second_observed, "the queue is full");
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(store.stored_hits(), 1000);
}

#[tokio::test]
async fn shutdown_writes_everything_accepted_exactly_once() {
    let store = Arc::new(FlakyStore::default());
    let (sink, cancel, task) = start(&store, config());
    for _ in 0..5 {
        sink.accept(hits(100)).await.expect("accepted");
    }

    cancel.cancel();
    task.await.unwrap().unwrap();

    assert_eq!(store.stored_hits(), 500);
    assert!(
        sink.accept(hits(1)).await.is_err(),
        "nothing is accepted once the writer has stopped"
    );
}

#[tokio::test]
async fn a_batch_reaching_the_size_is_written_without_waiting_for_the_interval() {
    let store = Arc::new(FlakyStore::default());
    let (sink, cancel, task) = start(
        &store,
        WriterConfig {
            batch_size: 300,
            ..config()
        },
    );

    for _ in 0..3 {
        sink.accept(hits(100)).await.expect("accepted");
    }
    for _ in 0..200 {
        if store.stored_hits() == 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    assert_eq!(store.stored_hits(), 300);
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_failing_write_is_retried_under_the_same_batch_id_holding_the_room() {
    let store = Arc::new(FlakyStore {
        failures: AtomicUsize::new(3),
        ..FlakyStore::default()
    });
    let (sink, cancel, task) = start(
        &store,
        WriterConfig {
            flush_interval: Duration::from_millis(10),
            ..config()
        },
    );

    sink.accept(hits(1000)).await.expect("accepted");
    // While the batch fails, its hits still hold the whole room.
    tokio::time::sleep(Duration::from_millis(15)).await;
    let while_failing = sink.accept(hits(1)).await;
    for _ in 0..200 {
        if store.stored_hits() == 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = sink.accept(hits(1)).await;

    assert!(matches!(
        while_failing,
        Err(RecordHitsError::Backpressure { .. })
    ));
    assert!(after.is_ok(), "the room is given back once written");
    let attempts = store.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 4);
    assert!(attempts.iter().all(|id| *id == attempts[0]));
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(store.stored_hits(), 1001);
}

#[tokio::test]
async fn in_durable_mode_a_request_is_answered_once_its_hits_are_stored() {
    let store = Arc::new(FlakyStore::default());
    let (sink, cancel, task) = start(
        &store,
        WriterConfig {
            durable: true,
            ..config()
        },
    );

    sink.accept(hits(10)).await.expect("accepted");

    assert_eq!(
        store.stored_hits(),
        10,
        "stored before the answer, without waiting an hour"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn hits_short_of_a_batch_wait_for_the_tick_and_are_written_within_one_interval() {
    let store = Arc::new(FlakyStore::default());
    let (sink, cancel, task) = start(
        &store,
        WriterConfig {
            flush_interval: Duration::from_millis(300),
            ..config()
        },
    );
    // The first tick is at once: let it pass with nothing queued.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let sent = std::time::Instant::now();

    for hit in hits(5) {
        assert!(sink.observe(hit));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before_the_tick = store.stored_hits();
    for _ in 0..200 {
        if store.stored_hits() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    assert_eq!(before_the_tick, 0, "a hit alone does not wake the writer");
    assert_eq!(store.stored_hits(), 5);
    assert!(
        sent.elapsed() < Duration::from_millis(300 + 200),
        "written within one flush interval (and some scheduling slack)"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}
