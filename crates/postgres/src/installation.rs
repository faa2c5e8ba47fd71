//! One-time events of an installation ("the sample data was loaded"), recorded in
//! the database so that they happen once per database, whatever is deleted later.

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

use crate::errors::unexpected;
use crate::pool::{PgPool, checkout};

/// Records `marker` unless it is recorded already; `true` when this call recorded
/// it, so exactly one caller proceeds, even when several race.
///
/// # Errors
/// When the database fails.
pub async fn claim_marker(pool: &PgPool, marker: &str) -> anyhow::Result<bool> {
    let mut conn = checkout(pool).await?;
    let inserted = diesel::sql_query(
        "INSERT INTO installation_markers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
    )
    .bind::<Text, _>(marker)
    .execute(&mut conn)
    .await
    .map_err(|e| unexpected(e, "recording an installation marker"))?;
    Ok(inserted == 1)
}

/// Forgets `marker`, so that the event can happen again (after it failed half-way).
///
/// # Errors
/// When the database fails.
pub async fn release_marker(pool: &PgPool, marker: &str) -> anyhow::Result<()> {
    let mut conn = checkout(pool).await?;
    diesel::sql_query("DELETE FROM installation_markers WHERE name = $1")
        .bind::<Text, _>(marker)
        .execute(&mut conn)
        .await
        .map_err(|e| unexpected(e, "forgetting an installation marker"))?;
    Ok(())
}
