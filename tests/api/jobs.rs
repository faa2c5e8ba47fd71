//! `/v1/jobs`: the registered jobs, schedule changes that take effect without a
//! restart (and invalid ones that change nothing), manual runs that never run a
//! job twice at once, disabling, and `expire-baskets` doing its work.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeDelta, TimeZone, Utc};
use ordo_api_tests::{ManualClock, Reply, TestApp, id_of, spawn_app};
use ordo_domain::scheduling::Job;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const POLL: Duration = Duration::from_millis(50);

fn clock() -> ManualClock {
    ManualClock::at(
        Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7)
            .single()
            .expect("an instant"),
    )
}

/// A job that counts its runs and how many ran at once; each run waits for a
/// permit when the job is `gated`.
#[derive(Debug, Default)]
struct Probe {
    started: AtomicUsize,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
    gate: Option<Semaphore>,
}

impl Probe {
    fn gated() -> Self {
        Self {
            gate: Some(Semaphore::new(0)),
            ..Self::default()
        }
    }

    fn release_one(&self) {
        if let Some(gate) = &self.gate {
            gate.add_permits(1);
        }
    }
}

#[async_trait]
impl Job for Probe {
    async fn run(&self) -> anyhow::Result<()> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.acquire().await?.forget();
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn patch_job(app: &TestApp, name: &str, body: Value) -> Reply {
    app.send(Method::PATCH, &format!("/v1/jobs/{name}"), Some(&body))
        .await
}

async fn run_now(app: &TestApp, name: &str) -> Reply {
    app.send(Method::POST, &format!("/v1/jobs/{name}/run"), None)
        .await
}

async fn job(app: &TestApp, name: &str) -> Value {
    let jobs = app.get("/v1/jobs").await;
    assert_eq!(jobs.status, StatusCode::OK, "{jobs:?}");
    jobs.body
        .as_array()
        .expect("a list")
        .iter()
        .find(|j| j["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not listed: {jobs:?}"))
}

async fn runs(app: &TestApp, name: &str) -> Vec<Value> {
    let reply = app.get(&format!("/v1/jobs/{name}/runs")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    reply.body["items"].as_array().expect("items").clone()
}

/// Waits (up to 10 s) until `done` holds of the job's runs, newest first.
async fn wait_for_runs(app: &TestApp, name: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..200 {
        let runs = runs(app, name).await;
        if done(&runs) {
            return runs;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{name}: not reached; runs: {:?}", runs(app, name).await);
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("not reached: {what}");
}

#[tokio::test]
async fn jobs_are_listed_with_their_default_schedule_for_administrators_only() {
    let clock = clock();
    let app = spawn_app()
        .as_admin()
        .with_clock(Arc::new(clock.clone()))
        .await;
    let as_staff = spawn_app().sharing_database_of(&app).await;

    let expire = job(&app, "expire-baskets").await;
    let refused = as_staff.get("/v1/jobs").await;

    assert_eq!(expire["schedule"], "* * * * *");
    assert_eq!(expire["enabled"], true);
    assert_eq!(expire["next_run_at"], "2031-03-04T05:07:00Z");
    assert_eq!(expire["last_run"], Value::Null);
    assert_eq!(expire["version"], 1);
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.problem_code(), "forbidden");
    let listed = app.get("/v1/jobs").await.body;
    let mut schedules: Vec<(String, String)> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|j| {
            (
                j["name"].as_str().unwrap_or_default().to_owned(),
                j["schedule"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    schedules.sort();
    let expected = [
        ("dispatch-outbox", "* * * * *"),
        ("expire-baskets", "* * * * *"),
        ("prune-activity", "0 3 * * *"),
        ("reconcile-payments", "* * * * *"),
        ("rollup-sales", "* * * * *"),
        ("sync-catalog", "0 * * * *"),
    ]
    .map(|(name, schedule)| (name.to_owned(), schedule.to_owned()));
    assert_eq!(schedules, expected);
}

#[tokio::test]
async fn every_job_does_its_capability_s_work_when_run_by_hand() {
    let app = spawn_app()
        .as_admin()
        .with_upstream_sim(ordo_upstream_sim::SimConfig::healthy())
        .with_scheduler(POLL, 60)
        .await;
    let mirrored_before = app
        .count("SELECT count(*) AS n FROM products WHERE external_id IS NOT NULL")
        .await;

    for name in [
        "sync-catalog",
        "dispatch-outbox",
        "reconcile-payments",
        "prune-activity",
        "rollup-sales",
    ] {
        let requested = run_now(&app, name).await;
        assert_eq!(
            requested.status,
            StatusCode::ACCEPTED,
            "{name}: {requested:?}"
        );
        let run_id = requested.body["run_id"]
            .as_str()
            .expect("a run id")
            .to_owned();
        let runs = wait_for_runs(&app, name, |runs| {
            runs.iter().any(|r| {
                r["id"] == run_id.as_str() && r["status"] != "pending" && r["status"] != "running"
            })
        })
        .await;
        let run = runs
            .iter()
            .find(|r| r["id"] == run_id.as_str())
            .expect("the run");
        assert_eq!(run["status"], "succeeded", "{name}: {run:?}");
    }

    let mirrored_after = app
        .count("SELECT count(*) AS n FROM products WHERE external_id IS NOT NULL")
        .await;
    assert_eq!(mirrored_before, 0, "nothing is synced before the job runs");
    assert!(
        mirrored_after > 0,
        "sync-catalog mirrored the simulator's products"
    );
}

#[tokio::test]
async fn an_invalid_cron_expression_is_422_and_changes_nothing() {
    let app = spawn_app().as_admin().await;
    let before = job(&app, "expire-baskets").await;

    let mut replies = Vec::new();
    for schedule in [
        json!("every minute"),
        json!("61 * * * *"),
        json!("0 0 30 2 *"),
        json!(""),
    ] {
        replies.push(
            patch_job(
                &app,
                "expire-baskets",
                json!({ "schedule": schedule, "enabled": false }),
            )
            .await,
        );
    }
    let wrong_type = patch_job(&app, "expire-baskets", json!({ "schedule": 5 })).await;
    let unknown_field = patch_job(&app, "expire-baskets", json!({ "cron": "* * * * *" })).await;

    for reply in &replies {
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
        assert_eq!(reply.problem_code(), "validation_failed");
        assert_eq!(reply.body["errors"][0]["field"], "schedule", "{reply:?}");
    }
    assert_eq!(wrong_type.problem_code(), "validation_failed");
    assert_eq!(unknown_field.problem_code(), "validation_failed");
    assert_eq!(job(&app, "expire-baskets").await, before);
}

#[tokio::test]
async fn a_new_schedule_takes_effect_at_once_and_honours_if_match() {
    let clock = clock();
    let app = spawn_app()
        .as_admin()
        .with_clock(Arc::new(clock.clone()))
        .await;

    let changed = patch_job(
        &app,
        "expire-baskets",
        json!({ "schedule": " 30 3 * * * " }),
    )
    .await;
    let stale = app
        .client
        .patch(format!("{}/v1/jobs/expire-baskets", app.address))
        .header("if-match", "\"1\"")
        .json(&json!({ "enabled": false }))
        .send()
        .await
        .expect("sent");
    let stale = Reply::read(stale).await;

    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    assert_eq!(changed.header("etag"), Some("\"2\""));
    assert_eq!(changed.body["schedule"], "30 3 * * *");
    assert_eq!(changed.body["next_run_at"], "2031-03-05T03:30:00Z");
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        job(&app, "expire-baskets").await["next_run_at"],
        "2031-03-05T03:30:00Z"
    );
}

#[tokio::test]
async fn an_unknown_job_is_404_on_every_route() {
    let app = spawn_app().as_admin().await;

    for (method, path, body) in [
        (Method::GET, "/v1/jobs/no-such-job/runs", None),
        (Method::POST, "/v1/jobs/no-such-job/run", None),
        (
            Method::PATCH,
            "/v1/jobs/no-such-job",
            Some(json!({"enabled": false})),
        ),
        (Method::POST, "/v1/jobs/NOT%20A%20NAME/run", None),
    ] {
        let reply = app.send(method, path, body.as_ref()).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}: {reply:?}");
        assert_eq!(reply.problem_code(), "job_not_found");
    }
}

#[tokio::test]
async fn expire_baskets_run_by_hand_marks_the_baskets_whose_time_ran_out() {
    let clock = clock();
    let app = spawn_app()
        .with_clock(Arc::new(clock.clone()))
        .with_settings(|s| s.baskets.ttl_secs = 3600)
        .with_scheduler(POLL, 60)
        .await;
    let old = app.post("/v1/baskets", &json!({})).await.body;
    clock.advance(TimeDelta::minutes(30));
    let fresh = app.post("/v1/baskets", &json!({})).await.body;
    clock.advance(TimeDelta::minutes(31));
    // The scheduled run came due too: let it (or the manual one) do the work.
    let requested = app
        .send_as_admin(Method::POST, "/v1/jobs/expire-baskets/run", None)
        .await;

    assert_eq!(requested.status, StatusCode::ACCEPTED, "{requested:?}");
    assert_eq!(requested.body["status"], "pending");
    let run_id = requested.body["run_id"]
        .as_str()
        .expect("a run id")
        .to_owned();
    let admin_app = spawn_app().as_admin().sharing_database_of(&app).await;
    let runs = wait_for_runs(&admin_app, "expire-baskets", |runs| {
        runs.iter()
            .any(|r| r["id"] == run_id.as_str() && r["status"] == "succeeded")
    })
    .await;
    let manual = runs
        .iter()
        .find(|r| r["id"] == run_id.as_str())
        .expect("the manual run");
    // The scheduled run that came due with the clock may already be waiting
    // when the request arrives; the request then shares it (and its run_id).
    assert!(
        manual["trigger"] == "manual" || manual["trigger"] == "schedule",
        "{manual}"
    );
    assert_eq!(manual["attempts"], 1);
    assert_eq!(manual["error"], Value::Null);
    assert!(manual["instance"].as_str().is_some_and(|i| !i.is_empty()));
    let stored = |id: &str| {
        format!("SELECT count(*) AS n FROM baskets WHERE id = '{id}' AND status = 'expired'")
    };
    assert_eq!(app.count(&stored(id_of(&old))).await, 1);
    assert_eq!(app.count(&stored(id_of(&fresh))).await, 0);
    // Reads showed it expired before; the job changed nothing they show.
    let read = app.get(&format!("/v1/baskets/{}", id_of(&old))).await;
    assert_eq!(read.body["status"], "expired");
    assert_eq!(read.body["version"], old["version"]);
    assert_eq!(read.body["updated_at"], old["updated_at"]);
    let listed = job(&admin_app, "expire-baskets").await;
    assert!(listed["last_run"].is_object(), "{listed}");
}

#[tokio::test]
async fn a_manual_run_while_one_runs_waits_for_it_and_requests_meanwhile_share_one_run() {
    let probe = Arc::new(Probe::gated());
    let app = spawn_app()
        .as_admin()
        .with_job("probe", "0 0 1 1 *", probe.clone())
        .with_scheduler(POLL, 60)
        .await;

    let first = run_now(&app, "probe").await;
    wait_until("the first run started", || {
        probe.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let second = run_now(&app, "probe").await;
    let third = run_now(&app, "probe").await;
    // Polls go by while the first run holds the job.
    tokio::time::sleep(POLL * 6).await;
    let while_running = runs(&app, "probe").await;
    let started_while_running = probe.started.load(Ordering::SeqCst);
    probe.release_one();
    wait_until("the second run started", || {
        probe.started.load(Ordering::SeqCst) == 2
    })
    .await;
    probe.release_one();
    let done = wait_for_runs(&app, "probe", |runs| {
        runs.len() == 2 && runs.iter().all(|r| r["status"] == "succeeded")
    })
    .await;

    for reply in [&first, &second, &third] {
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
        assert_eq!(reply.body["status"], "pending");
    }
    assert_ne!(first.body["run_id"], second.body["run_id"]);
    assert_eq!(
        second.body["run_id"], third.body["run_id"],
        "one queued run is shared"
    );
    assert_eq!(started_while_running, 1);
    assert_eq!(while_running.len(), 2);
    assert_eq!(while_running[0]["id"], second.body["run_id"]);
    assert_eq!(while_running[0]["status"], "pending");
    assert_eq!(while_running[1]["status"], "running");
    assert_eq!(probe.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(done[0]["id"], second.body["run_id"], "newest first");
    assert_eq!(done[1]["id"], first.body["run_id"]);
}

#[tokio::test]
async fn a_disabled_job_has_no_scheduled_runs_until_enabled_again() {
    let clock = clock();
    let probe = Arc::new(Probe::default());
    let app = spawn_app()
        .as_admin()
        .with_clock(Arc::new(clock.clone()))
        .with_job("probe", "* * * * *", probe.clone())
        .with_scheduler(POLL, 60)
        .await;
    clock.advance(TimeDelta::minutes(1));
    // Finished, not merely started: the clock jumps further than the run's lease
    // below, which would let a run still in flight be taken over and run again.
    wait_for_runs(&app, "probe", |runs| {
        runs.len() == 1 && runs[0]["status"] == "succeeded"
    })
    .await;

    let disabled = patch_job(&app, "probe", json!({ "enabled": false })).await;
    clock.advance(TimeDelta::minutes(10));
    tokio::time::sleep(POLL * 8).await;
    let while_disabled = probe.started.load(Ordering::SeqCst);
    let enabled = patch_job(&app, "probe", json!({ "enabled": true })).await;
    clock.advance(TimeDelta::minutes(1));
    wait_until("a run once enabled", || {
        probe.started.load(Ordering::SeqCst) == 2
    })
    .await;

    assert_eq!(disabled.status, StatusCode::OK, "{disabled:?}");
    assert_eq!(disabled.body["enabled"], false);
    assert_eq!(disabled.body["next_run_at"], Value::Null);
    assert!(disabled.body["last_run"].is_object(), "{disabled:?}");
    assert_eq!(while_disabled, 1);
    // Enabled at 05:17:07: next due at 05:18.
    assert_eq!(enabled.body["next_run_at"], "2031-03-04T05:18:00Z");
    let runs = runs(&app, "probe").await;
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["trigger"] == "schedule"));
    assert_eq!(runs[0]["requested_at"], "2031-03-04T05:18:00Z");
    assert_eq!(runs[1]["requested_at"], "2031-03-04T05:07:00Z");
}
