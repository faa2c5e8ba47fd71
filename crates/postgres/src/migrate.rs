use anyhow::Context;
use diesel::{Connection, RunQueryDsl};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The workspace's `migrations/` folder, compiled into the binary.
const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Applies every migration that `database_url` does not have yet.
///
/// Diesel's migration harness is synchronous, so it runs on a blocking thread over
/// an async connection wrapped as a sync one.
///
/// Instances starting together on a new database (replicas of one deployment)
/// migrate one after another under a session-level advisory lock: the first
/// applies the migrations, the others wait and then find nothing left to apply.
/// Without it they would all create the same tables at once, and all but one fail.
///
/// # Errors
/// When the database cannot be reached or a migration fails.
#[tracing::instrument(skip_all)]
pub async fn run_migrations(database_url: &str) -> anyhow::Result<()> {
    let url = database_url.to_owned();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let _entered = span.enter();
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
            .context("connecting to PostgreSQL to run migrations")?;
        // Held until the connection closes at the end of this block, whatever
        // happens in between.
        diesel::sql_query("SELECT pg_advisory_lock(hashtextextended('ordo:migrations', 0))")
            .execute(&mut conn)
            .context("waiting for other instances' migrations")?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!(e))
            .context("applying migrations")?;
        for version in applied {
            tracing::info!(%version, "applied migration");
        }
        Ok(())
    })
    .await
    .context("the migration task panicked")?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::empty_database;

    #[tokio::test]
    async fn instances_migrating_one_new_database_at_once_all_succeed() {
        let database = empty_database().await.expect("an empty database");
        let results =
            futures::future::join_all((0..4).map(|_| run_migrations(&database.url))).await;
        for result in results {
            result.expect("every instance's migrations succeed");
        }
    }
}
