//! The scheduler across instances: three schedulers on one database, polling
//! at the same instants over an hour of a hand-moved clock, run each due instant
//! exactly once; a run whose instance is killed mid-way is taken over once its
//! lease runs out; a run asked for by hand while a scheduled one runs waits for
//! it, whichever instance polls; a schedule changed through one instance is
//! followed by the others without a restart; old history is pruned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ordo_api_tests::ManualClock;
use ordo_domain::Clock;
use ordo_domain::scheduling::{
    InstanceId, Job, JobChanges, JobName, RunStatus, RunTrigger, Schedule, SchedulingService,
};
use ordo_postgres::PgPool;
use ordo_postgres::testing::fresh_database;
use ordo_server::scheduler::{JobRegistry, Scheduler};
use ordo_server::{Adapters, Services, Settings};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 4, 12, 0, 30)
        .single()
        .expect("an instant")
}

/// Records the clock's instant of every run, and how many ran at once.
#[derive(Debug)]
struct Recorder {
    clock: ManualClock,
    seen: Mutex<Vec<DateTime<Utc>>>,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl Recorder {
    fn new(clock: &ManualClock) -> Arc<Self> {
        Arc::new(Self {
            clock: clock.clone(),
            seen: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
        })
    }

    fn seen(&self) -> Vec<DateTime<Utc>> {
        self.seen.lock().expect("the record").clone()
    }
}

#[async_trait]
impl Job for Recorder {
    async fn run(&self) -> anyhow::Result<()> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        self.seen.lock().expect("the record").push(self.clock.now());
        // Long enough for the other instances' polls to overlap this run.
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Holds every run until a permit is released, counting runs and how many ran
/// at once.
#[derive(Debug)]
struct Gated {
    gate: tokio::sync::Semaphore,
    started: AtomicUsize,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl Gated {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            gate: tokio::sync::Semaphore::new(0),
            started: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Job for Gated {
    async fn run(&self) -> anyhow::Result<()> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        self.gate.acquire().await?.forget();
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Hangs on its first run (its instance is then killed); later runs succeed.
#[derive(Debug, Default)]
struct HangsOnce {
    calls: AtomicUsize,
}

#[async_trait]
impl Job for HangsOnce {
    async fn run(&self) -> anyhow::Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

/// The scheduling service of one instance over `pool`, on `clock`.
async fn scheduling(pool: &PgPool, clock: &ManualClock, lease_secs: u64) -> SchedulingService {
    let mut settings = Settings::default();
    settings.scheduler.lease_secs = lease_secs;
    let data_keys = ordo_server::app::data_keyring(&settings, pool)
        .await
        .expect("the sandbox's data key");
    let mut adapters = Adapters::postgres(pool, data_keys);
    adapters.clock = Arc::new(clock.clone());
    Services::assemble(&adapters, &settings)
        .expect("services")
        .scheduling
}

async fn instance(
    pool: &PgPool,
    clock: &ManualClock,
    registry: &JobRegistry,
    name: &str,
    lease_secs: u64,
) -> Scheduler {
    let service = scheduling(pool, clock, lease_secs).await;
    service
        .register(&registry.definitions())
        .await
        .expect("jobs registered");
    Scheduler::new(
        service,
        registry,
        InstanceId::parse(name).expect("an instance id"),
    )
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    ordo_postgres::testing::count(pool, sql)
        .await
        .expect("the count query runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_run_each_due_instant_exactly_once_over_an_hour() {
    let database = fresh_database().await.expect("a database");
    let pool = database.pool(16).expect("a pool");
    let clock = ManualClock::at(start());
    let every_minute = Recorder::new(&clock);
    let every_five = Recorder::new(&clock);
    let mut registry = JobRegistry::default();
    registry
        .register("every-minute", "* * * * *", every_minute.clone())
        .expect("registered");
    registry
        .register("every-five", "*/5 * * * *", every_five.clone())
        .expect("registered");
    let mut instances = Vec::new();
    for name in ["a", "b", "c"] {
        instances.push(Arc::new(instance(&pool, &clock, &registry, name, 60).await));
    }

    let mut taken_by = std::collections::HashMap::<String, usize>::new();
    for _ in 0..60 {
        clock.advance(TimeDelta::minutes(1));
        // Every instance polls at once, twice: the second round finds nothing.
        for _ in 0..2 {
            let polls: Vec<_> = instances
                .iter()
                .map(|scheduler| {
                    let scheduler = scheduler.clone();
                    tokio::spawn(async move {
                        let taken = scheduler.tick().await.expect("a poll");
                        (scheduler.instance().to_string(), taken.len())
                    })
                })
                .collect();
            for poll in polls {
                let (instance, taken) = poll.await.expect("the poll's task");
                *taken_by.entry(instance).or_default() += taken;
            }
        }
    }

    // Each run happened at the first poll after its instant came due.
    let expected_minutes: Vec<DateTime<Utc>> =
        (1..=60).map(|m| start() + TimeDelta::minutes(m)).collect();
    let mut seen = every_minute.seen();
    seen.sort();
    assert_eq!(seen, expected_minutes);
    assert_eq!(every_five.seen().len(), 12, "{:?}", every_five.seen());
    assert_eq!(every_minute.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(every_five.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(taken_by.values().sum::<usize>(), 72, "{taken_by:?}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) AS n FROM job_runs WHERE job_name = 'every-minute' AND status = 'succeeded'"
        )
        .await,
        60
    );
    // One run per due instant: the instants they were requested for are distinct.
    assert_eq!(
        count(
            &pool,
            "SELECT count(DISTINCT requested_at) AS n FROM job_runs WHERE job_name = 'every-five'"
        )
        .await,
        12
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) AS n FROM job_runs WHERE status <> 'succeeded'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_run_whose_instance_was_killed_mid_way_is_taken_over_once_its_lease_ran_out() {
    let database = fresh_database().await.expect("a database");
    let pool = database.pool(8).expect("a pool");
    let clock = ManualClock::at(start());
    let job = Arc::new(HangsOnce::default());
    let mut registry = JobRegistry::default();
    registry
        .register("hangs-once", "0 0 1 1 *", job.clone())
        .expect("registered");
    let doomed = instance(&pool, &clock, &registry, "doomed", 30).await;
    let survivor = instance(&pool, &clock, &registry, "survivor", 30).await;
    let name = JobName::parse("hangs-once").expect("a name");
    let requested = survivor_service(&pool, &clock)
        .await
        .trigger(name)
        .await
        .expect("queued");

    // The doomed instance takes the run and is killed while the job runs: its
    // future (job and lease renewals) is dropped.
    let killed = tokio::time::timeout(Duration::from_millis(300), doomed.tick()).await;
    let stranded = run_row(&pool).await;
    let too_early = survivor.tick().await.expect("a poll");
    clock.advance(TimeDelta::seconds(31));
    let taken_over = survivor.tick().await.expect("a poll");
    let finished = run_row(&pool).await;

    assert!(killed.is_err(), "the job hung");
    assert_eq!(stranded, ("running".to_owned(), "doomed".to_owned(), 1));
    assert!(too_early.is_empty(), "the lease still held");
    assert_eq!(taken_over.len(), 1);
    assert_eq!(taken_over[0].id(), requested.id(), "the same run, retried");
    assert_eq!(taken_over[0].status(), RunStatus::Running);
    assert_eq!(finished, ("succeeded".to_owned(), "survivor".to_owned(), 2));
    assert_eq!(job.calls.load(Ordering::SeqCst), 2);
    assert_eq!(count(&pool, "SELECT count(*) AS n FROM job_runs").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_asked_for_while_a_scheduled_run_runs_waits_for_it_whichever_instance_polls() {
    let database = fresh_database().await.expect("a database");
    let pool = database.pool(8).expect("a pool");
    let clock = ManualClock::at(start());
    let job = Gated::new();
    let mut registry = JobRegistry::default();
    registry
        .register("gated", "* * * * *", job.clone())
        .expect("registered");
    let a = Arc::new(instance(&pool, &clock, &registry, "a", 60).await);
    let b = instance(&pool, &clock, &registry, "b", 60).await;
    let service = scheduling(&pool, &clock, 60).await;
    clock.advance(TimeDelta::minutes(1));

    // Instance a takes the scheduled run and holds it until the gate opens.
    let scheduled = tokio::spawn({
        let a = a.clone();
        async move { a.tick().await }
    });
    for _ in 0..200 {
        if job.started.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let manual = service
        .trigger(JobName::parse("gated").expect("a name"))
        .await
        .expect("queued");
    let while_running = b.tick().await.expect("a poll");
    let also_while_running = a.tick().await.expect("a poll");
    job.gate.add_permits(1);
    let scheduled = scheduled.await.expect("the poll's task").expect("a poll");
    job.gate.add_permits(1);
    let after = b.tick().await.expect("a poll");

    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].trigger(), RunTrigger::Schedule);
    assert!(while_running.is_empty(), "{while_running:?}");
    assert!(also_while_running.is_empty(), "{also_while_running:?}");
    assert_eq!(manual.status(), RunStatus::Pending);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id(), manual.id(), "the run asked for, once free");
    assert_eq!(job.started.load(Ordering::SeqCst), 2);
    assert_eq!(job.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) AS n FROM job_runs WHERE status = 'succeeded'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_schedule_changed_through_one_instance_is_followed_by_another_without_a_restart() {
    let database = fresh_database().await.expect("a database");
    let pool = database.pool(8).expect("a pool");
    let clock = ManualClock::at(start());
    let recorder = Recorder::new(&clock);
    let mut registry = JobRegistry::default();
    registry
        .register("yearly", "0 0 1 1 *", recorder.clone())
        .expect("registered");
    let follower = instance(&pool, &clock, &registry, "follower", 60).await;
    let name = JobName::parse("yearly").expect("a name");
    // Another instance (the one that served the PATCH) changes the schedule.
    let changer = scheduling(&pool, &clock, 60).await;

    clock.advance(TimeDelta::minutes(1));
    let before_change = follower.tick().await.expect("a poll");
    let changed = changer
        .update(
            name.clone(),
            JobChanges {
                schedule: Some(Schedule::parse("*/10 * * * *").expect("a schedule")),
                enabled: None,
            },
            None,
        )
        .await
        .expect("changed");
    // 12:01:30: next due at 12:10.
    clock.advance(TimeDelta::minutes(5));
    let too_early = follower.tick().await.expect("a poll");
    clock.advance(TimeDelta::minutes(4));
    let due = follower.tick().await.expect("a poll");
    changer
        .update(
            name,
            JobChanges {
                schedule: None,
                enabled: Some(false),
            },
            None,
        )
        .await
        .expect("disabled");
    clock.advance(TimeDelta::minutes(20));
    let disabled = follower.tick().await.expect("a poll");

    assert!(before_change.is_empty());
    assert_eq!(
        changed.job.next_run_at(),
        Some(
            Utc.with_ymd_and_hms(2031, 3, 4, 12, 10, 0)
                .single()
                .expect("an instant")
        )
    );
    assert!(too_early.is_empty(), "{too_early:?}");
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0].requested_at(),
        Utc.with_ymd_and_hms(2031, 3, 4, 12, 10, 0)
            .single()
            .expect("an instant")
    );
    assert!(disabled.is_empty(), "{disabled:?}");
    assert_eq!(recorder.seen().len(), 1);
}

async fn survivor_service(pool: &PgPool, clock: &ManualClock) -> SchedulingService {
    scheduling(pool, clock, 30).await
}

/// Status, instance and attempts of the only run.
async fn run_row(pool: &PgPool) -> (String, String, i32) {
    use diesel::QueryableByName;
    use diesel::sql_types::{Integer, Text};
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        status: String,
        #[diesel(sql_type = Text)]
        instance: String,
        #[diesel(sql_type = Integer)]
        attempts: i32,
    }
    let mut conn = pool.get().await.expect("a connection");
    let row: Row = diesel::sql_query("SELECT status, instance, attempts FROM job_runs")
        .get_result(&mut conn)
        .await
        .expect("one run");
    (row.status, row.instance, row.attempts)
}

#[tokio::test]
async fn finished_runs_older_than_the_history_are_pruned_and_open_ones_kept() {
    let database = fresh_database().await.expect("a database");
    let pool = database.pool(8).expect("a pool");
    let clock = ManualClock::at(start());
    let recorder = Recorder::new(&clock);
    let mut registry = JobRegistry::default();
    registry
        .register("every-minute", "* * * * *", recorder.clone())
        .expect("registered");
    let scheduler = instance(&pool, &clock, &registry, "a", 60).await;
    let service = scheduling(&pool, &clock, 60).await;
    for _ in 0..3 {
        clock.advance(TimeDelta::minutes(1));
        scheduler.tick().await.expect("a poll");
    }
    service
        .trigger(JobName::parse("every-minute").expect("a name"))
        .await
        .expect("queued");

    // Kept for 30 days by default.
    clock.advance(TimeDelta::days(30) - TimeDelta::minutes(3));
    let within = service.prune().await.expect("pruned");
    clock.advance(TimeDelta::minutes(4));
    let after = service.prune().await.expect("pruned");

    assert_eq!(within, 0);
    assert_eq!(after, 3);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) AS n FROM job_runs WHERE status = 'pending'"
        )
        .await,
        1
    );
    assert_eq!(count(&pool, "SELECT count(*) AS n FROM job_runs").await, 1);
}
