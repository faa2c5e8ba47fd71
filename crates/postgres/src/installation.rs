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

#[derive(diesel::QueryableByName)]
struct SecretRow {
    #[diesel(sql_type = Text)]
    value: String,
}

/// The sandbox secret `name`: the one stored, or `generated` stored now when there
/// is none yet. Racing callers all get the one value that was stored first.
///
/// # Errors
/// When the database fails.
pub async fn sandbox_secret(pool: &PgPool, name: &str, generated: &str) -> anyhow::Result<String> {
    let mut conn = checkout(pool).await?;
    diesel::sql_query(
        "INSERT INTO sandbox_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind::<Text, _>(name)
    .bind::<Text, _>(generated)
    .execute(&mut conn)
    .await
    .map_err(|e| unexpected(e, "storing a sandbox secret"))?;
    let row: SecretRow = diesel::sql_query("SELECT value FROM sandbox_secrets WHERE name = $1")
        .bind::<Text, _>(name)
        .get_result(&mut conn)
        .await
        .map_err(|e| unexpected(e, "reading a sandbox secret"))?;
    Ok(row.value)
}
