//! Idempotency keys in PostgreSQL: [`PgIdempotencyStore`], and the step that links
//! a key to the order its request created, inside that order's transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ordo_domain::idempotency::{
    IdempotencyClaim, IdempotencyRecord, IdempotencyStore, IdempotentRequest, KeyOwner,
    RequestFingerprint, StoredResponse,
};
use ordo_domain::orders::{KeyHeldElsewhere, OrderId};
use ordo_domain::upstream::IdempotencyKey;

use crate::errors::{Doing, TxError};
use crate::pool::{PgPool, checkout};
use crate::schema::idempotency_keys;

/// [`IdempotencyStore`] over PostgreSQL.
#[derive(Clone)]
pub struct PgIdempotencyStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgIdempotencyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgIdempotencyStore").finish_non_exhaustive()
    }
}

impl PgIdempotencyStore {
    /// A store using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = idempotency_keys, check_for_backend(diesel::pg::Pg))]
struct KeyRow {
    request_hash: String,
    response_status: Option<i32>,
    response_header_names: Option<Vec<String>>,
    response_header_values: Option<Vec<String>>,
    response_body: Option<Vec<u8>>,
    order_id: Option<uuid::Uuid>,
    lease_until: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl KeyRow {
    fn into_record(self) -> anyhow::Result<IdempotencyRecord> {
        let response = match self.response_status {
            None => None,
            Some(status) => Some(StoredResponse {
                status: u16::try_from(status)?,
                headers: self
                    .response_header_names
                    .unwrap_or_default()
                    .into_iter()
                    .zip(self.response_header_values.unwrap_or_default())
                    .collect(),
                body: self.response_body.unwrap_or_default(),
            }),
        };
        Ok(IdempotencyRecord {
            fingerprint: RequestFingerprint::parse(&self.request_hash)?,
            response,
            order_id: self.order_id.map(OrderId::from_uuid),
            lease_until: self.lease_until,
            expires_at: self.expires_at,
        })
    }
}

/// Links a claimed key to the order its request created, in the order's
/// transaction, if the key names no order yet: two requests with one key run
/// at once when a repetition took the key over after the first one's lease ran
/// out, and only the first of them to link places its order. The other's
/// `UPDATE` waits for that one's commit and then finds the key linked, and its
/// transaction is rolled back with `KeyHeldElsewhere` (the order the key names,
/// if any).
pub(crate) async fn link_key_to_order<E: From<KeyHeldElsewhere>>(
    conn: &mut AsyncPgConnection,
    owner: &KeyOwner,
    key: &IdempotencyKey,
    order: OrderId,
) -> Result<(), TxError<E>> {
    let this_key = idempotency_keys::table
        .filter(idempotency_keys::owner.eq(owner.as_str()))
        .filter(idempotency_keys::key.eq(key.as_str()));
    let linked = diesel::update(this_key.filter(idempotency_keys::order_id.is_null()))
        .set(idempotency_keys::order_id.eq(order.as_uuid()))
        .execute(conn)
        .await?;
    if linked == 1 {
        return Ok(());
    }
    let linked_order: Option<uuid::Uuid> = this_key
        .select(idempotency_keys::order_id)
        .first(conn)
        .await
        .optional()?
        .flatten();
    Err(TxError::Rule(
        KeyHeldElsewhere {
            linked_order: linked_order.map(OrderId::from_uuid),
        }
        .into(),
    ))
}

#[async_trait]
impl IdempotencyStore for PgIdempotencyStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn claim(
        &self,
        request: &IdempotentRequest,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<IdempotencyClaim> {
        let mut conn = checkout(&self.pool).await?;
        let owner = request.owner.as_str();
        let key = request.key.as_str();
        let hash = request.fingerprint.as_str();
        // A fresh key, the common case, is one statement on the request's
        // critical path, outside any transaction. A concurrent claim of the same
        // key waits on the insert for the first to commit, then finds its row:
        // exactly one claim inserts.
        let inserted = diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::owner.eq(owner),
                idempotency_keys::key.eq(key),
                idempotency_keys::request_hash.eq(hash),
                idempotency_keys::created_at.eq(now),
                idempotency_keys::lease_until.eq(lease_until),
                idempotency_keys::expires_at.eq(expires_at),
            ))
            .on_conflict_do_nothing()
            .execute(&mut conn)
            .await
            .doing("claiming an idempotency key")?;
        if inserted == 1 {
            return Ok(IdempotencyClaim::Claimed);
        }
        let result = conn
            .transaction(
                async |conn| -> Result<IdempotencyClaim, TxError<anyhow::Error>> {
                    let found: KeyRow = idempotency_keys::table
                        .filter(idempotency_keys::owner.eq(owner))
                        .filter(idempotency_keys::key.eq(key))
                        .select(KeyRow::as_select())
                        .for_update()
                        .first(conn)
                        .await?;
                    let record = found.into_record().map_err(TxError::Rule)?;
                    let claim = record.claim_by(&request.fingerprint, now);
                    let this_key = idempotency_keys::table
                        .filter(idempotency_keys::owner.eq(owner))
                        .filter(idempotency_keys::key.eq(key));
                    if let IdempotencyClaim::TakeOver { .. } = claim {
                        // Held by this request now: a further repetition waits
                        // for it as for any running request.
                        diesel::update(this_key)
                            .set(idempotency_keys::lease_until.eq(lease_until))
                            .execute(conn)
                            .await?;
                    }
                    if claim == IdempotencyClaim::Claimed {
                        // The old record expired: the key starts afresh.
                        diesel::update(this_key)
                            .set((
                                idempotency_keys::request_hash.eq(hash),
                                idempotency_keys::response_status.eq(None::<i32>),
                                idempotency_keys::response_header_names.eq(None::<Vec<String>>),
                                idempotency_keys::response_header_values.eq(None::<Vec<String>>),
                                idempotency_keys::response_body.eq(None::<Vec<u8>>),
                                idempotency_keys::order_id.eq(None::<uuid::Uuid>),
                                idempotency_keys::created_at.eq(now),
                                idempotency_keys::lease_until.eq(lease_until),
                                idempotency_keys::expires_at.eq(expires_at),
                            ))
                            .execute(conn)
                            .await?;
                    }
                    Ok(claim)
                },
            )
            .await;
        result.map_err(|e| e.into_domain("claiming an idempotency key"))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn complete(
        &self,
        owner: &KeyOwner,
        key: &IdempotencyKey,
        response: StoredResponse,
    ) -> anyhow::Result<()> {
        let mut conn = checkout(&self.pool).await?;
        let (names, values): (Vec<String>, Vec<String>) = response.headers.into_iter().unzip();
        diesel::update(
            idempotency_keys::table
                .filter(idempotency_keys::owner.eq(owner.as_str()))
                .filter(idempotency_keys::key.eq(key.as_str())),
        )
        .set((
            idempotency_keys::response_status.eq(i32::from(response.status)),
            idempotency_keys::response_header_names.eq(names),
            idempotency_keys::response_header_values.eq(values),
            idempotency_keys::response_body.eq(response.body),
        ))
        .execute(&mut conn)
        .await
        .doing("storing an idempotent response")
        .map(drop)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn release(&self, owner: &KeyOwner, key: &IdempotencyKey) -> anyhow::Result<()> {
        let mut conn = checkout(&self.pool).await?;
        diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::owner.eq(owner.as_str()))
                .filter(idempotency_keys::key.eq(key.as_str()))
                .filter(idempotency_keys::response_status.is_null())
                // A key linked to the order it created stays: a repetition
                // carries on with that order rather than making another.
                .filter(idempotency_keys::order_id.is_null()),
        )
        .execute(&mut conn)
        .await
        .doing("releasing an idempotency key")
        .map(drop)
    }
}
