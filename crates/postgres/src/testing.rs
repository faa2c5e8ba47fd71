//! Databases for tests: one throw-away cluster per test process, migrations applied
//! once to a template database, and a fresh copy of the template for every test
//! (`CREATE DATABASE … TEMPLATE` takes milliseconds), so no test shares mutable state
//! with another and none needs a server started by hand.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::sync::OnceCell;

use crate::cluster::{Durability, LocalCluster, LocalClusterConfig};
use crate::migrate::run_migrations;
use crate::pool::{PgPool, PoolConfig, connect_pool};

const TEMPLATE: &str = "ordo_template";

static CLUSTER: OnceCell<LocalCluster> = OnceCell::const_new();

/// A freshly created, migrated database of the test process's cluster.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// Its connection URL.
    pub url: String,
    /// Its name.
    pub name: String,
}

impl TestDatabase {
    /// A pool of up to `size` connections to it.
    ///
    /// # Errors
    /// When the pool cannot be built.
    pub fn pool(&self, size: usize) -> anyhow::Result<PgPool> {
        connect_pool(
            &self.url,
            &PoolConfig {
                wait: Duration::from_secs(30),
                ..PoolConfig::with_max_size(size)
            },
        )
    }

    /// `pg_dump --data-only` of `table`, as an operator would take a backup.
    ///
    /// # Errors
    /// When `pg_dump` (PostgreSQL's client tools, installed beside the server)
    /// cannot run or fails.
    pub fn dump(&self, table: &str) -> anyhow::Result<String> {
        let output = std::process::Command::new("pg_dump")
            .args(["--data-only", &format!("--table={table}"), &self.url])
            .output()
            .context("running pg_dump")?;
        anyhow::ensure!(
            output.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    }
}

async fn cluster() -> anyhow::Result<&'static LocalCluster> {
    CLUSTER
        .get_or_try_init(|| async {
            // The system temp dir: the `postgres` user, which runs the server when
            // tests run as root, can reach it, unlike a 0700 home directory.
            let data_dir: PathBuf = std::env::temp_dir().join(format!(
                "ordo-test-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            let cluster = LocalCluster::start(LocalClusterConfig {
                data_dir,
                durability: Durability::Ephemeral,
            })
            .await
            .context("starting the test cluster")?;
            cluster.ensure_database(TEMPLATE).await?;
            run_migrations(&cluster.database_url(TEMPLATE)).await?;
            anyhow::Ok(cluster)
        })
        .await
}

/// A new database with every migration applied, private to the caller.
///
/// # Errors
/// When the cluster cannot be started or the database not created.
pub async fn fresh_database() -> anyhow::Result<TestDatabase> {
    let cluster = cluster().await?;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = AsyncPgConnection::establish(&cluster.database_url("postgres")).await?;
    // Copies from one template can collide when tests start at the same instant
    // ("source database is being accessed by other users"); a short retry settles it.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let created = diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
            .execute(&mut conn)
            .await;
        match created {
            Ok(_) => break,
            Err(e) if attempt < 20 => {
                tracing::debug!(error = %e, "retrying CREATE DATABASE");
                tokio::time::sleep(Duration::from_millis(25 * attempt)).await;
            }
            Err(e) => return Err(e).context("creating a test database"),
        }
    }
    Ok(TestDatabase {
        url: cluster.database_url(&name),
        name,
    })
}

/// A new database without any table, as a new deployment's starts: for tests
/// of what happens before and during the first migration.
///
/// # Errors
/// When the cluster cannot be started or the database not created.
pub async fn empty_database() -> anyhow::Result<TestDatabase> {
    let cluster = cluster().await?;
    let name = format!("e_{}", uuid::Uuid::new_v4().simple());
    cluster.ensure_database(&name).await?;
    Ok(TestDatabase {
        url: cluster.database_url(&name),
        name,
    })
}

/// One number from SQL (`SELECT … AS n`), for tests that must inspect rows.
///
/// # Errors
/// When no connection is available or the query fails.
pub async fn count(pool: &PgPool, sql: &str) -> anyhow::Result<i64> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = pool.get().await.context("a test connection")?;
    let conn: &mut AsyncPgConnection = &mut conn;
    let count = diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .with_context(|| format!("counting with {sql}"))?;
    Ok(count.n)
}
