//! The pool's per-thread shards: a thread that adopted one takes its connections
//! from it, within its bound, while every other thread keeps the shared ones.

use std::time::Duration;

use diesel::sql_types::Integer;
use diesel_async::RunQueryDsl;
use ordo_postgres::testing::fresh_database;
use ordo_postgres::{MIN_SHARED, PgPool, PoolConfig, connect_pool};

/// The server process behind a connection of `pool`, taken on the calling thread.
async fn backend_of(pool: &PgPool) -> anyhow::Result<i32> {
    let mut conn = pool.get().await?;
    Ok(
        diesel::select(diesel::dsl::sql::<Integer>("pg_backend_pid()"))
            .get_result(&mut conn)
            .await?,
    )
}

/// A pool of `size` whose callers wait 300 ms at most for a connection, so that
/// a test can see a bound refuse.
fn impatient_pool(url: &str, size: usize) -> PgPool {
    connect_pool(
        url,
        &PoolConfig {
            wait: Duration::from_millis(300),
            ..PoolConfig::with_max_size(size)
        },
    )
    .expect("a pool")
}

/// Runs `work` on a thread of its own with a single-threaded runtime, as an
/// actix-web worker runs its requests.
fn on_worker_thread<T: Send + 'static>(
    work: impl AsyncFnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(work())
    })
}

#[tokio::test]
async fn an_adopted_thread_takes_its_own_connections_within_its_bound() {
    let db = fresh_database().await.expect("a database");
    let pool = impatient_pool(&db.url, 4);
    let shared = backend_of(&pool).await.expect("a shared connection");

    let worker_pool = pool.clone();
    let (first, again, while_held) = on_worker_thread(async move || {
        worker_pool.adopt_thread(1).expect("a shard");
        worker_pool
            .adopt_thread(1)
            .expect("adopting twice is a no-op");
        let first = backend_of(&worker_pool)
            .await
            .expect("the shard's connection");
        let again = backend_of(&worker_pool).await.expect("the same connection");
        let held = worker_pool
            .get()
            .await
            .expect("the shard's only connection");
        let while_held = worker_pool.get().await.map(|_| ());
        drop(held);
        (first, again, while_held)
    })
    .join()
    .expect("the worker thread");

    assert_eq!(first, again, "a shard of one reuses its connection");
    assert_ne!(
        first, shared,
        "the shard opened its own connection rather than taking the shared one"
    );
    assert!(
        while_held.is_err(),
        "a shard of one hands out no second connection, not even from the shared ones"
    );
    assert_eq!(
        backend_of(&pool).await.expect("a shared connection"),
        shared,
        "threads without a shard keep using the shared connections"
    );
}

#[tokio::test]
async fn shards_of_two_pools_on_one_thread_stay_apart() {
    let first_db = fresh_database().await.expect("a database");
    let second_db = fresh_database().await.expect("another database");
    let first = first_db.pool(2).expect("a pool");
    let second = second_db.pool(2).expect("another pool");
    let names = on_worker_thread(async move || {
        first.adopt_thread(1).expect("a shard");
        second.adopt_thread(1).expect("another shard");
        let mut names = Vec::new();
        for pool in [&first, &second] {
            let mut conn = pool.get().await.expect("a connection");
            let name: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
                "current_database()",
            ))
            .get_result(&mut conn)
            .await
            .expect("the database's name");
            names.push(name);
        }
        names
    })
    .join()
    .expect("the worker thread");
    assert_eq!(names, [first_db.name, second_db.name]);
}

#[tokio::test]
async fn sharing_out_splits_the_size_exactly_and_leaves_the_shared_connections_a_quarter() {
    let db = fresh_database().await.expect("a database");
    let pool = impatient_pool(&db.url, 10);
    assert!(
        pool.share_out(11).is_none(),
        "fewer connections than workers: nothing to split"
    );
    let shares = pool.share_out(4).expect("10 connections over 4 workers");
    assert_eq!(
        shares.sizes(),
        [3, 3, 2, 2],
        "together exactly the pool's size"
    );

    let taken = shares.clone();
    on_worker_thread(async move || {
        for _ in 0..4 {
            taken.adopt().expect("a share");
        }
    })
    .join()
    .expect("the worker thread taking every share");

    let held: Vec<_> = futures::future::join_all((0..MIN_SHARED).map(|_| pool.get()))
        .await
        .into_iter()
        .map(|c| c.expect("a shared connection"))
        .collect();
    assert!(
        pool.get().await.is_err(),
        "a quarter of 10, at least MIN_SHARED, are shared"
    );
    // A worker started once every share is taken (one restarted) gets no shard
    // of its own: it waits for the shared connections like everyone else.
    let restarted_pool = pool.clone();
    let restarted = on_worker_thread(async move || {
        shares.adopt().expect("no share left is no error");
        restarted_pool.get().await.map(|_| ())
    })
    .join()
    .expect("the restarted worker");
    assert!(restarted.is_err(), "it took no connection beyond the bound");
    drop(held);
}
