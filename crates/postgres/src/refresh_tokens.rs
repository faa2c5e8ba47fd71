//! Refresh tokens in PostgreSQL, by digest.
//!
//! Revoking a family and adding a token to it are serialised by a per-family
//! advisory lock. Without it, a rotation that won a race could store its new token
//! just after the loser revoked the family (each `READ COMMITTED` statement missing
//! the other's uncommitted row), leaving one live token in a revoked family — the
//! very token a thief who won the race would hold.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ordo_domain::auth::{
    RefreshFamilyId, RefreshTokenHash, RefreshTokenStore, StoredRefreshToken, UserId,
};
use uuid::Uuid;

use crate::errors::unexpected;
use crate::pool::{PgPool, checkout};
use crate::schema::refresh_tokens;

/// [`RefreshTokenStore`] over PostgreSQL.
#[derive(Clone)]
pub struct PgRefreshTokenStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgRefreshTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRefreshTokenStore")
            .finish_non_exhaustive()
    }
}

impl PgRefreshTokenStore {
    /// A store using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Holds the lock of `family` until the transaction ends.
async fn lock_family(conn: &mut AsyncPgConnection, family: RefreshFamilyId) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<Text, _>(format!("ordo.refresh-family:{}", family.as_uuid()))
        .execute(conn)
        .await
        .map(drop)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
struct RefreshTokenRow {
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<RefreshTokenRow> for StoredRefreshToken {
    fn from(row: RefreshTokenRow) -> Self {
        Self {
            user: UserId::from_uuid(row.user_id),
            family: RefreshFamilyId::from_uuid(row.family_id),
            expires_at: row.expires_at,
            used_at: row.used_at,
            revoked_at: row.revoked_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = refresh_tokens)]
struct NewRefreshTokenRow {
    hash: String,
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

#[async_trait]
impl RefreshTokenStore for PgRefreshTokenStore {
    async fn insert(
        &self,
        hash: RefreshTokenHash,
        token: StoredRefreshToken,
    ) -> anyhow::Result<()> {
        let family = token.family;
        let mut row = NewRefreshTokenRow {
            hash: hash.as_str().to_owned(),
            user_id: token.user.as_uuid(),
            family_id: family.as_uuid(),
            expires_at: token.expires_at,
            used_at: token.used_at,
            revoked_at: token.revoked_at,
        };
        let mut conn = checkout(&self.pool).await?;
        conn.transaction(async |conn| -> QueryResult<()> {
            lock_family(conn, family).await?;
            // A family revoked before this token arrives revokes it too.
            let family_revoked: Option<DateTime<Utc>> = refresh_tokens::table
                .filter(refresh_tokens::family_id.eq(family.as_uuid()))
                .select(diesel::dsl::min(refresh_tokens::revoked_at))
                .get_result(conn)
                .await?;
            row.revoked_at = row.revoked_at.or(family_revoked);
            diesel::insert_into(refresh_tokens::table)
                .values(&row)
                .execute(conn)
                .await
                .map(drop)
        })
        .await
        .map_err(|e| unexpected(e, "storing a refresh token"))
    }

    async fn find(&self, hash: &RefreshTokenHash) -> anyhow::Result<Option<StoredRefreshToken>> {
        let mut conn = checkout(&self.pool).await?;
        let row = refresh_tokens::table
            .find(hash.as_str())
            .select(RefreshTokenRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(|e| unexpected(e, "loading a refresh token"))?;
        Ok(row.map(StoredRefreshToken::from))
    }

    async fn mark_used(&self, hash: &RefreshTokenHash, at: DateTime<Utc>) -> anyhow::Result<bool> {
        let mut conn = checkout(&self.pool).await?;
        // One conditional UPDATE: racing callers queue on the row lock, and each
        // re-checks `used_at IS NULL` on the row as the previous one left it (READ
        // COMMITTED re-evaluates the WHERE after the wait), so only the first
        // changes a row.
        let updated = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::hash.eq(hash.as_str()))
                .filter(refresh_tokens::used_at.is_null()),
        )
        .set(refresh_tokens::used_at.eq(at))
        .execute(&mut conn)
        .await
        .map_err(|e| unexpected(e, "marking a refresh token used"))?;
        Ok(updated == 1)
    }

    async fn revoke_family(
        &self,
        family: RefreshFamilyId,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut conn = checkout(&self.pool).await?;
        conn.transaction(async |conn| -> QueryResult<()> {
            lock_family(conn, family).await?;
            // A token revoked before keeps the time it was first revoked.
            diesel::update(
                refresh_tokens::table
                    .filter(refresh_tokens::family_id.eq(family.as_uuid()))
                    .filter(refresh_tokens::revoked_at.is_null()),
            )
            .set(refresh_tokens::revoked_at.eq(at))
            .execute(conn)
            .await
            .map(drop)
        })
        .await
        .map_err(|e| unexpected(e, "revoking a refresh token family"))
    }
}
