use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::clock::MockClock;
use crate::ids::MockIdSource;
use crate::scheduling::{Lease, MockJobStore, RunStatus, RunTrigger, Schedule};

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
        .single()
        .expect("a valid instant")
}

fn policy() -> SchedulingPolicy {
    SchedulingPolicy {
        claims: ClaimPolicy {
            lease: Lease::from_secs(30).expect("lease"),
            max_attempts: 3,
        },
        history: TimeDelta::days(7),
    }
}

fn service(store: MockJobStore) -> SchedulingService {
    let mut clock = MockClock::new();
    clock.expect_now().returning(noon);
    let mut ids = MockIdSource::new();
    ids.expect_new_id()
        .returning(|| uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001));
    SchedulingService::new(Arc::new(store), Arc::new(clock), Arc::new(ids), policy())
}

fn name(raw: &str) -> JobName {
    JobName::parse(raw).expect("a job name")
}

fn running_run() -> JobRun {
    let job = JobState::registered(
        &JobDefinition {
            name: name("expire-baskets"),
            default_schedule: Schedule::parse("*/5 * * * *").expect("schedule"),
        },
        noon() - TimeDelta::minutes(10),
    );
    crate::scheduling::claim(
        &job,
        &[],
        RunId::generate(),
        &ClaimContext {
            now: noon() - TimeDelta::seconds(10),
            instance: InstanceId::parse("a").expect("instance"),
            policy: policy().claims,
        },
    )
    .taken
    .expect("a due job is taken")
}

#[tokio::test]
async fn registered_jobs_are_first_due_at_their_schedules_next_instant() {
    let mut store = MockJobStore::new();
    store
        .expect_register()
        .withf(|jobs| {
            jobs.len() == 1
                && jobs[0].enabled()
                && jobs[0].next_run_at() == Some(noon() + TimeDelta::hours(1))
        })
        .times(1)
        .returning(|_| Ok(()));

    service(store)
        .register(&[JobDefinition {
            name: name("prune-activity"),
            default_schedule: Schedule::parse("0 * * * *").expect("schedule"),
        }])
        .await
        .expect("registered");
}

#[tokio::test]
async fn a_renewal_extends_the_lease_from_now_and_tells_when_the_run_was_taken_over() {
    let run = running_run();
    let mut store = MockJobStore::new();
    let mut held = [true, false].into_iter();
    store
        .expect_store_held()
        .withf(|run| run.lease_expires_at() == Some(noon() + TimeDelta::seconds(30)))
        .times(2)
        .returning(move |_| Ok(held.next().unwrap_or(false)));
    let service = service(store);

    let renewed = service.renew(&run).await.expect("renewed");
    let lost = service.renew(&run).await.expect("renewed");

    assert_eq!(
        renewed.and_then(|r| r.lease_expires_at()),
        Some(noon() + TimeDelta::seconds(30))
    );
    assert_eq!(lost, None);
}

#[tokio::test]
async fn a_failed_run_is_stored_with_its_error_and_no_lease() {
    let run = running_run();
    let mut store = MockJobStore::new();
    store
        .expect_store_held()
        .withf(|run| {
            run.status() == RunStatus::Failed
                && run.error() == Some("the upstream is down")
                && run.finished_at() == Some(noon())
                && run.lease_expires_at().is_none()
                && run.trigger() == RunTrigger::Schedule
        })
        .times(1)
        .returning(|_| Ok(true));

    let recorded = service(store)
        .finish(&run, Err("the upstream is down".to_owned()))
        .await
        .expect("stored");

    assert!(recorded);
}

#[tokio::test]
async fn a_claim_offers_each_job_with_a_fresh_run_id_at_the_clocks_instant() {
    let mut store = MockJobStore::new();
    store
        .expect_claim()
        .withf(|candidates, ctx| {
            candidates.len() == 2
                && ctx.now == noon()
                && ctx.instance.as_str() == "host:1:abc"
                && ctx.policy == policy().claims
        })
        .times(1)
        .returning(|_, _| Ok(Vec::new()));

    let taken = service(store)
        .claim_due(
            &InstanceId::parse("host:1:abc").expect("instance"),
            &[name("expire-baskets"), name("sync-catalog")],
        )
        .await
        .expect("claimed");

    assert!(taken.is_empty());
}

#[tokio::test]
async fn history_older_than_the_policy_keeps_is_pruned() {
    let mut store = MockJobStore::new();
    store
        .expect_prune()
        .withf(|before| *before == noon() - TimeDelta::days(7))
        .times(1)
        .returning(|_| Ok(4));

    assert_eq!(service(store).prune().await.expect("pruned"), 4);
}
