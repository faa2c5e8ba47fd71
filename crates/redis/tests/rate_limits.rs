//! The Redis rate-limit store against a real `redis-server`: it decides exactly as
//! the in-memory store does, atomically under concurrency, all-or-nothing across
//! policies, with keys that expire, and it reports an unreachable or silent Redis
//! as the port's error (a silent one within the timeout) rather than failing
//! otherwise.
#![allow(clippy::unwrap_used)] // a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use ordo_domain::ratelimit::{
    Decision, LimitCheck, RateKey, RateLimitOutcome, RateLimitStore, RatePolicy,
};
use ordo_redis::testing::RedisServer;
use ordo_redis::{Redis, RedisConfig, RedisRateLimits};
use ordo_server::rate_limits::InMemoryRateLimits;
use redis::AsyncCommands;

async fn store_on(server: &RedisServer) -> RedisRateLimits {
    RedisRateLimits::new(redis_at(server.url()).await)
}

async fn redis_at(url: &str) -> Redis {
    Redis::connect(&RedisConfig {
        url: url.to_owned(),
        timeout: Duration::from_millis(500),
    })
    .await
    .expect("a Redis URL")
}

/// A plain connection, to look at what the store left in Redis.
async fn inspect(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

fn check(key: RateKey, per_minute: u32, burst: u32) -> LimitCheck {
    LimitCheck {
        key,
        policy: RatePolicy::per_minute(per_minute, burst).unwrap(),
    }
}

fn client(n: u128) -> RateKey {
    RateKey::Client(uuid::Uuid::from_u128(n))
}

/// A small deterministic generator, so the comparison is reproducible.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

#[tokio::test]
async fn every_decision_and_figure_equals_the_in_memory_stores() {
    let Some(server) = RedisServer::start_or_skip("every_decision_and_figure_equals") else {
        return;
    };
    let redis = store_on(&server).await;
    let memory = InMemoryRateLimits::new(100_000);
    let keys = [
        client(1),
        client(2),
        RateKey::User(uuid::Uuid::from_u128(3)),
        RateKey::address("203.0.113.9".parse().unwrap()),
        RateKey::login_address("2001:db8::1".parse().unwrap()),
        RateKey::login_email("Ann@Example.com").unwrap(),
    ];
    let policies = [(60, 5), (600, 100), (1, 5), (30, 20), (6_000, 3), (7, 1)];
    let mut seed = 7;
    let mut now = t0();
    let (mut allowed, mut denied) = (0, 0);
    let mut last_step = std::time::Instant::now();
    for step in 0..2_000 {
        // Redis expires keys by its own clock: the simulated clock never falls
        // behind it, or a key whose allowance is not yet whole by the simulated
        // time (a TTL of a few milliseconds) could vanish on a slow machine.
        let elapsed = last_step.elapsed();
        last_step = std::time::Instant::now();
        now += TimeDelta::from_std(elapsed).expect("a short step");
        // Runs of simultaneous requests, gaps of up to three seconds with
        // sub-microsecond parts, and now and then an hour of quiet.
        match lcg(&mut seed) % 10 {
            0..=3 => {}
            4..=8 => {
                now +=
                    TimeDelta::nanoseconds(i64::try_from(lcg(&mut seed) % 3_000_000_000).unwrap());
            }
            _ => now += TimeDelta::hours(1),
        }
        // One to three checks, as a login attempt makes; a key may repeat.
        let count = 1 + lcg(&mut seed) % 3;
        let checks: Vec<LimitCheck> = (0..count)
            .map(|_| {
                let key = keys[usize::try_from(lcg(&mut seed)).unwrap() % keys.len()].clone();
                let (per_minute, burst) =
                    policies[usize::try_from(lcg(&mut seed)).unwrap() % policies.len()];
                check(key, per_minute, burst)
            })
            .collect();

        let expected = memory.check(&checks, now).await.unwrap();
        let actual = redis.check(&checks, now).await.unwrap();

        assert_eq!(actual, expected, "step {step}: {checks:?} at {now}");
        if expected.is_allowed() {
            allowed += 1;
        } else {
            denied += 1;
        }
    }
    // The sequence exercises both outcomes, not just one.
    assert!(
        allowed > 200 && denied > 200,
        "{allowed} allowed, {denied} denied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_200_concurrent_checks_of_a_burst_of_10_exactly_10_are_allowed() {
    let Some(server) = RedisServer::start_or_skip("of_200_concurrent_checks") else {
        return;
    };
    let store = Arc::new(store_on(&server).await);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .check(&[check(client(10), 60, 10)], t0())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut remaining = Vec::new();
    for task in tasks {
        if let Decision::Allowed {
            remaining: left, ..
        } = task.await.unwrap().decisions[0]
        {
            remaining.push(left);
        }
    }
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..10).collect::<Vec<u32>>(),
        "each allowed check took its own unit"
    );
}

#[tokio::test]
async fn a_request_refused_by_one_policy_uses_up_none_of_the_others() {
    let Some(server) = RedisServer::start_or_skip("a_request_refused_by_one_policy") else {
        return;
    };
    let store = store_on(&server).await;
    let strict = check(client(20), 60, 1);
    let loose = check(client(21), 60, 10);
    let first = store
        .check(&[strict.clone(), loose.clone()], t0())
        .await
        .unwrap();
    assert!(first.is_allowed());
    let mut redis = inspect(&server).await;
    let loose_tat: String = redis.get(RedisRateLimits::key_of(&loose)).await.unwrap();

    let refused = store.check(&[loose.clone(), strict], t0()).await.unwrap();

    assert!(!refused.is_allowed());
    assert!(
        refused.decisions[0].is_allowed(),
        "the loose policy alone would allow it"
    );
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(1)));
    let unchanged: String = redis.get(RedisRateLimits::key_of(&loose)).await.unwrap();
    assert_eq!(unchanged, loose_tat);
    let alone = store.check(&[loose], t0()).await.unwrap();
    assert!(matches!(
        alone.decisions[0],
        Decision::Allowed { remaining: 8, .. }
    ));
}

#[tokio::test]
async fn a_key_expires_a_second_after_its_allowance_is_whole_again() {
    let Some(server) = RedisServer::start_or_skip("a_key_expires") else {
        return;
    };
    let store = store_on(&server).await;
    let mut redis = inspect(&server).await;
    // 60 a minute: two requests push the theoretical arrival time two seconds ahead.
    let slow = check(client(30), 60, 5);
    for _ in 0..2 {
        store
            .check(std::slice::from_ref(&slow), Utc::now())
            .await
            .unwrap();
    }
    let ttl: i64 = redis.pttl(RedisRateLimits::key_of(&slow)).await.unwrap();
    assert!(
        (2_900..=3_000).contains(&ttl),
        "{ttl} ms: two seconds and the grace"
    );

    // 6 000 a minute: one request is whole again after 10 ms, and gone a second later.
    let fast = check(client(31), 6_000, 5);
    store
        .check(std::slice::from_ref(&fast), Utc::now())
        .await
        .unwrap();
    let key = RedisRateLimits::key_of(&fast);
    assert!(redis.exists::<_, bool>(&key).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(
        !redis.exists::<_, bool>(&key).await.unwrap(),
        "the idle key is gone"
    );
}

/// The store's decision once Redis answers again, within five seconds.
async fn check_once_redis_answers(
    store: &RedisRateLimits,
    limit: &[LimitCheck],
) -> RateLimitOutcome {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match store.check(limit, t0()).await {
            Ok(outcome) => return outcome,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("Redis answers again but the store still fails: {error:#}"),
        }
    }
}

#[tokio::test]
async fn an_unreachable_redis_is_the_ports_error_and_a_restarted_one_is_used_again() {
    let Some(mut server) = RedisServer::start_or_skip("an_unreachable_redis") else {
        return;
    };
    let store = store_on(&server).await;
    let limit = [check(client(40), 60, 10)];
    assert!(store.check(&limit, t0()).await.unwrap().is_allowed());

    server.stop();
    let started = std::time::Instant::now();
    let error = store.check(&limit, t0()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(format!("{error:#}").contains("Redis"), "{error:#}");
    assert!(store.check(&limit, t0()).await.is_err());

    // An empty Redis on the same address: the connection comes back by itself,
    // and the script is loaded again where it is unknown.
    server.restart().unwrap();
    let outcome = check_once_redis_answers(&store, &limit).await;
    assert!(matches!(
        outcome.decisions[0],
        Decision::Allowed { remaining: 9, .. }
    ));
}

#[tokio::test]
async fn a_redis_that_stops_answering_is_the_ports_error_within_the_timeout_and_then_used_again() {
    let Some(server) = RedisServer::start_or_skip("a_redis_that_stops_answering") else {
        return;
    };
    let store = store_on(&server).await;
    let limit = [check(client(45), 60, 10)];
    assert!(store.check(&limit, t0()).await.unwrap().is_allowed());

    // Connected but silent, as a Redis stuck on a slow command or behind a stalled
    // network is: it holds every other client's commands for 3 s.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3_000)
        .arg("ALL")
        .query_async(&mut inspect(&server).await)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let error = store.check(&limit, t0()).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_millis(2_500),
        "the store's 500 ms timeout decides, not Redis's pause: {waited:?}"
    );
    let chain: Vec<String> =
        std::iter::successors(Some(&error as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        })
        .map(ToString::to_string)
        .collect();
    // The client's response timeout and the store's own bound are the same length;
    // whichever fires first, the cause is the wait.
    assert!(
        chain
            .iter()
            .any(|cause| cause.contains("timed out") || cause.contains("did not answer")),
        "{chain:?}"
    );

    // Once it answers again, so does the store, and each answer is its own: two
    // decisions in a row take one unit each (an answer left over from the abandoned
    // command would shift them).
    let first = check_once_redis_answers(&store, &limit).await;
    let second = store.check(&limit, t0()).await.unwrap();
    let remaining = |outcome: &RateLimitOutcome| match outcome.decisions[0] {
        Decision::Allowed { remaining, .. } => remaining,
        Decision::Denied { .. } => panic!("denied: {outcome:?}"),
    };
    assert_eq!(remaining(&first) - 1, remaining(&second));
}

#[tokio::test]
async fn a_redis_unreachable_at_start_does_not_keep_the_store_from_being_built() {
    let Some(server) = RedisServer::start_or_skip("a_redis_unreachable_at_start") else {
        return;
    };
    let url = server.url().to_owned();
    drop(server);

    let store = RedisRateLimits::new(redis_at(&url).await);

    assert!(
        store
            .check(&[check(client(50), 60, 1)], t0())
            .await
            .is_err()
    );
}

/// The ids of the clients connected to the Redis at `url`, besides the one asking.
async fn client_ids(url: &str) -> Vec<u64> {
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let asking: u64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut redis)
        .await
        .unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut redis)
        .await
        .unwrap();
    // A connection whose last command was CLIENT … is one of these helpers (the
    // one `kill_client` used may not be closed yet), not the store's.
    list.lines()
        .filter(|line| !line.contains(" cmd=client|"))
        .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
        .filter(|id| *id != asking)
        .collect()
}

async fn kill_client(url: &str, id: u64) {
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut redis)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_thread_that_adopts_its_own_connection_decides_over_it() {
    let Some(server) = RedisServer::start_or_skip("a_thread_that_adopts") else {
        return;
    };
    let url = server.url().to_owned();
    let redis = redis_at(&url).await;
    let store = RedisRateLimits::new(redis.clone());
    let first = store
        .check(&[check(client(30), 60, 2)], t0())
        .await
        .unwrap();
    assert!(first.is_allowed());
    let shared = client_ids(&url).await;
    assert_eq!(shared.len(), 1, "the shared connection");
    assert!(!redis.uses_own_connection(), "this thread adopted none");

    // A thread of its own with a single-threaded runtime, as an HTTP worker has.
    let on_worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            redis.adopt_thread().unwrap();
            for _ in 0..500 {
                if redis.uses_own_connection() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(redis.uses_own_connection(), "its own connection answered");
            // Without the shared connection, a decision that took it would
            // connect it again.
            kill_client(&url, shared[0]).await;
            let second = store
                .check(&[check(client(30), 60, 2)], t0())
                .await
                .unwrap();
            (second, client_ids(&url).await)
        })
    });
    let (second, clients) = tokio::task::spawn_blocking(move || on_worker.join().unwrap())
        .await
        .unwrap();

    // The same allowance (burst 2, now used up), decided over the thread's own
    // connection: the shared one stayed closed.
    assert!(matches!(
        second.decisions[0],
        Decision::Allowed { remaining: 0, .. }
    ));
    assert_eq!(
        clients.len(),
        1,
        "only the thread's own connection: {clients:?}"
    );
}
