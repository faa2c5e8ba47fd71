use anyhow::Context;
use diesel::Connection;
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
