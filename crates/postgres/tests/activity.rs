//! The activity store against a real cluster, a fresh database per test.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use ordo_crypto::RandomApiKeys;
use ordo_domain::activity::{
    Endpoint, Hit, HitBatch, HitMethod, HitPrincipal, HitSource, HitStatus, HitStore,
    PrincipalKind, UsageStore,
};
use ordo_domain::clients::{
    ApiKeys, ClientId, ClientName, ClientRateLimit, ClientRecord, ClientRepository, IpAllowList,
    NewClient,
};
use ordo_domain::customers::Email;
use ordo_postgres::synthetic_hits::{self, SyntheticClients, SyntheticHits};
use ordo_postgres::testing::{count, fresh_database};
use ordo_postgres::{PgActivityStore, PgClientRepository, PgPool, PoolConfig};
use uuid::Uuid;

/// How a store under test writes its batches.
#[derive(Clone, Copy)]
enum Writes {
    /// `INSERT … unnest` on a pooled connection.
    Pooled,
    /// `COPY` on a connection of its own, as the application's.
    Copied,
}

async fn store() -> (PgActivityStore, PgClientRepository, PgPool) {
    store_writing(Writes::Pooled).await
}

async fn store_writing(writes: Writes) -> (PgActivityStore, PgClientRepository, PgPool) {
    let database = fresh_database().await.expect("test database");
    let pool = database.pool(8).expect("pool");
    let store = match writes {
        Writes::Pooled => PgActivityStore::new(pool.clone()),
        Writes::Copied => {
            PgActivityStore::new(pool.clone()).copying_over(&database.url, &PoolConfig::default())
        }
    };
    (
        store,
        PgClientRepository::new(
            pool.clone(),
            std::sync::Arc::new(
                ordo_crypto::DataKeyring::new(
                    &"activity-test-data-key-0123456789".to_owned().into(),
                    None,
                )
                .expect("keyring"),
            ),
        ),
        pool,
    )
}

async fn register(clients: &PgClientRepository, id: u128, name: &str) -> ClientId {
    let key = RandomApiKeys.new_key();
    let id = ClientId::from_uuid(Uuid::from_u128(id));
    clients
        .insert(ClientRecord {
            id,
            client: NewClient {
                name: ClientName::parse(name).expect("name"),
                email: Email::parse("robot@example.com").expect("email"),
                ip_allowlist: IpAllowList::default(),
                rate_limit: ClientRateLimit::default(),
            },
            key_digest: RandomApiKeys.digest(&key),
            key_prefix: key.prefix().to_owned(),
            at: Utc::now(),
        })
        .await
        .expect("registered");
    id
}

fn client(id: ClientId) -> HitPrincipal {
    HitPrincipal::new(PrincipalKind::Client, id.as_uuid())
}

fn hit(principal: HitPrincipal, at: DateTime<Utc>) -> Hit {
    Hit {
        principal,
        occurred_at: at,
        method: HitMethod::Post,
        endpoint: Endpoint::parse("/v1/orders/{id}").expect("endpoint"),
        status: Some(HitStatus::new(201).expect("status")),
        latency: Some(std::time::Duration::from_micros(1500)),
        ip: Some("203.0.113.9".parse().expect("ip")),
        source: HitSource::Observed,
    }
}

fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, minute, 0)
        .single()
        .expect("an instant")
}

#[tokio::test]
async fn a_batch_is_stored_raw_and_counted_per_hour_and_a_retry_counts_nothing_twice() {
    a_batch_is_stored_once(Writes::Pooled).await;
}

#[tokio::test]
async fn a_copied_batch_is_stored_raw_and_counted_per_hour_and_a_retry_counts_nothing_twice() {
    a_batch_is_stored_once(Writes::Copied).await;
}

async fn a_batch_is_stored_once(writes: Writes) {
    let (store, clients, pool) = store_writing(writes).await;
    let a = client(register(&clients, 1, "A").await);
    let batch = HitBatch::new(
        Uuid::now_v7(),
        vec![
            hit(a, at(9, 10, 0)),
            hit(a, at(9, 10, 59)),
            hit(a, at(9, 11, 0)),
            hit(a, at(10, 0, 0)),
        ],
    );

    store.write(&batch).await.expect("written");
    store.write(&batch).await.expect("the retry is a no-op");

    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM activity_hits")
            .await
            .expect("counted"),
        4
    );
    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM activity_hits WHERE ip = '203.0.113.9' AND latency_us = 1500 AND status = 201").await.expect("counted"),
        4
    );
    let hourly = store
        .hourly(at(9, 0, 0), at(11, 0, 0), None)
        .await
        .expect("hourly");
    let seen: Vec<_> = hourly.iter().map(|c| (c.hour, c.requests)).collect();
    assert_eq!(
        seen,
        [(at(9, 10, 0), 2), (at(9, 11, 0), 1), (at(10, 0, 0), 1)]
    );
    // Two days, two partitions, made on demand.
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'activity_hits'::regclass"
        )
        .await
        .expect("counted"),
        2
    );
}

#[tokio::test]
async fn concurrent_writers_of_the_same_counters_add_up() {
    concurrent_writers_add_up(Writes::Pooled).await;
}

#[tokio::test]
async fn concurrent_copying_writes_of_the_same_counters_add_up() {
    concurrent_writers_add_up(Writes::Copied).await;
}

async fn concurrent_writers_add_up(writes: Writes) {
    let (store, clients, pool) = store_writing(writes).await;
    let a = client(register(&clients, 1, "A").await);
    let store = std::sync::Arc::new(store);
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let hits = (0..250).map(|_| hit(a, at(9, 10, 0))).collect();
                store.write(&HitBatch::new(Uuid::now_v7(), hits)).await
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("joined").expect("written");
    }

    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM activity_hits")
            .await
            .expect("counted"),
        2000
    );
    assert_eq!(
        count(
            &pool,
            "SELECT sum(requests)::int8 AS n FROM activity_hourly"
        )
        .await
        .expect("counted"),
        2000
    );
}

#[tokio::test]
async fn a_copying_store_whose_connection_was_cut_writes_again_on_a_new_one() {
    let (store, clients, pool) = store_writing(Writes::Copied).await;
    let a = client(register(&clients, 1, "A").await);
    let batch = |n| {
        HitBatch::new(
            Uuid::now_v7(),
            (0..n).map(|_| hit(a, at(9, 10, 0))).collect(),
        )
    };
    store.write(&batch(3)).await.expect("written");

    let cut = count(
        &pool,
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE application_name = 'ordo-activity-writer' AND datname = current_database()",
    )
    .await
    .expect("counted");
    let second = batch(4);
    let mut attempts = 0;
    let written = loop {
        attempts += 1;
        match store.write(&second).await {
            Ok(()) => break true,
            Err(_) if attempts < 3 => continue,
            Err(_) => break false,
        }
    };

    assert_eq!(cut, 1, "the store's own connection was found and cut");
    assert!(written, "written on a new connection");
    assert!(
        attempts <= 2,
        "one failed attempt at most, on the cut connection"
    );
    assert_eq!(stored_and_counted(&pool).await, (7, 7));
}

/// The raw hits stored and the sum of the hourly counts.
async fn stored_and_counted(pool: &PgPool) -> (i64, i64) {
    let raw = count(pool, "SELECT count(*) AS n FROM activity_hits").await;
    let counted = count(pool, "SELECT sum(requests)::int8 AS n FROM activity_hourly").await;
    (raw.expect("counted"), counted.expect("counted"))
}

#[tokio::test]
async fn the_top_clients_are_ordered_by_hits_then_id_within_the_window() {
    let (store, clients, _) = store().await;
    let a = register(&clients, 3, "A").await;
    let b = register(&clients, 1, "B").await;
    let c = register(&clients, 2, "C").await;
    let mut hits = Vec::new();
    hits.extend((0..3).map(|_| hit(client(a), at(9, 10, 0))));
    hits.extend((0..3).map(|_| hit(client(b), at(9, 11, 0))));
    hits.extend((0..2).map(|_| hit(client(c), at(9, 10, 30))));
    // Outside the window: before it, and after it.
    hits.extend((0..9).map(|_| hit(client(c), at(9, 9, 59))));
    hits.extend((0..9).map(|_| hit(client(c), at(9, 12, 0))));
    store
        .write(&HitBatch::new(Uuid::now_v7(), hits))
        .await
        .expect("written");

    let top = store
        .top_clients(at(9, 10, 0), at(9, 12, 0), 2)
        .await
        .expect("top");

    let seen: Vec<_> = top.iter().map(|t| (t.client.id, t.requests)).collect();
    assert_eq!(seen, [(b, 3), (a, 3)]);
    assert_eq!(top[1].client.name, "A");
}

#[tokio::test]
async fn daily_counts_sum_the_hours_of_each_utc_day_of_one_client_or_all() {
    let (store, clients, _) = store().await;
    let a = register(&clients, 1, "A").await;
    let b = register(&clients, 2, "B").await;
    let hits = vec![
        hit(client(a), at(8, 23, 59)),
        hit(client(a), at(9, 0, 0)),
        hit(client(a), at(9, 23, 0)),
        hit(client(b), at(9, 1, 0)),
        hit(
            HitPrincipal::new(PrincipalKind::User, Uuid::from_u128(1)),
            at(9, 1, 0),
        ),
    ];
    store
        .write(&HitBatch::new(Uuid::now_v7(), hits))
        .await
        .expect("written");

    let mut all = store
        .client_days(None, at(8, 0, 0), at(10, 0, 0))
        .await
        .expect("days");
    all.sort_by_key(|c| (c.client, c.day));
    let only_a = store
        .client_days(Some(a), at(8, 0, 0), at(10, 0, 0))
        .await
        .expect("days");

    let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).expect("day");
    let seen: Vec<_> = all.iter().map(|c| (c.client, c.day, c.requests)).collect();
    assert_eq!(seen, [(a, day(8), 1), (a, day(9), 2), (b, day(9), 1)]);
    assert_eq!(only_a.len(), 2);
    let labels = store.clients(Some(b)).await.expect("labels");
    assert_eq!(labels.len(), 1);
    assert_eq!(labels[0].name, "B");
}

#[tokio::test]
async fn pruning_drops_the_partitions_before_the_first_kept_day_and_keeps_the_counts() {
    let (store, clients, pool) = store().await;
    let a = client(register(&clients, 1, "A").await);
    let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).expect("day");
    store.prepare(day(1), day(12)).await.expect("prepared");
    store
        .write(&HitBatch::new(
            Uuid::now_v7(),
            vec![
                hit(a, at(1, 5, 0)),
                hit(a, at(9, 5, 0)),
                hit(a, at(10, 5, 0)),
            ],
        ))
        .await
        .expect("written");

    let dropped = store.prune(day(10)).await.expect("pruned");

    assert_eq!(dropped, (1..10).map(day).collect::<Vec<_>>());
    assert_eq!(
        stored_and_counted(&pool).await,
        (1, 3),
        "one raw hit kept, the three counted kept"
    );
    // A late hit of a pruned day finds its partition made again.
    store
        .write(&HitBatch::new(Uuid::now_v7(), vec![hit(a, at(9, 6, 0))]))
        .await
        .expect("written after pruning");
    assert_eq!(
        count(&pool, "SELECT count(*) AS n FROM activity_hits")
            .await
            .expect("counted"),
        2
    );
}

#[tokio::test]
async fn synthetic_hits_agree_with_their_hourly_counts_and_lie_in_the_hours_asked_for() {
    let (_, _, pool) = store().await;
    synthetic_hits::create_clients(&pool, SyntheticClients { count: 20 })
        .await
        .expect("clients");
    let earlier = synthetic_hits::generate_hits(
        &pool,
        SyntheticHits {
            hits: 1_000,
            hours: 3,
        },
    )
    .await
    .expect("a first load");

    let generated = synthetic_hits::generate_hits(
        &pool,
        SyntheticHits {
            hits: 30_001,
            hours: 48,
        },
    )
    .await
    .expect("hits");

    let counted = |sql| count(&pool, sql);
    assert_eq!(earlier.hits, 1_000);
    assert_eq!(generated.hits, 30_001);
    assert_eq!(
        counted("SELECT count(*) AS n FROM activity_hits")
            .await
            .unwrap(),
        31_001
    );
    assert_eq!(
        counted("SELECT sum(requests)::int8 AS n FROM activity_hourly")
            .await
            .unwrap(),
        31_001
    );
    assert_eq!(
        counted(
            "SELECT count(*) AS n FROM ( \
                 SELECT principal_kind, principal_id, hour, requests FROM activity_hourly \
                 EXCEPT \
                 SELECT principal_kind, principal_id, date_trunc('hour', occurred_at, 'UTC'), count(*) \
                 FROM activity_hits GROUP BY 1, 2, 3) differing"
        )
        .await
        .unwrap(),
        0,
        "every (client, hour) counts exactly its raw hits"
    );
    assert_eq!(
        counted(
            "SELECT count(*) AS n FROM activity_hits \
             WHERE occurred_at > now() \
                OR occurred_at < (SELECT max(hour) FROM activity_hourly) - interval '47 hours'"
        )
        .await
        .unwrap(),
        0,
        "none in the future, none before the first of the 48 hours"
    );
    assert_eq!(
        counted("SELECT count(DISTINCT principal_id) AS n FROM activity_hourly WHERE hour < date_trunc('hour', now(), 'UTC')")
            .await
            .unwrap(),
        20,
        "spread over every client"
    );
    assert!(
        counted(
            "SELECT max(requests)::int8 AS n FROM (SELECT sum(requests) AS requests FROM activity_hourly GROUP BY principal_id) c"
        )
        .await
        .unwrap()
            > 3 * 31_001 / 20,
        "the busiest client makes far more than an even share"
    );
}
