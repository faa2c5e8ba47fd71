//! Baskets in PostgreSQL: [`PgBasketRepository`], composed of the connection-level
//! steps in [`rows`] that a later checkout store reuses inside its own transaction.
//!
//! Every change locks the basket's row (`SELECT … FOR UPDATE`) for the length of
//! a short transaction, applies the domain's rule to what it read and writes the
//! result: concurrent changes of one basket queue on that row instead of failing,
//! so none is lost and each raises the version by one. A compare-and-set on the
//! version alone would make all but one of twenty concurrent changes fail and
//! retry. Lock order where a transaction also touches orders or stock: the basket
//! first, then what `crate::orders` documents.

mod rows;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, RunQueryDsl};
use ordo_domain::VersionMatch;
use ordo_domain::baskets::{
    Basket, BasketEdit, BasketId, BasketRepository, ChangeBasketError, CreateBasketError,
    DeleteBasketError, LineChange,
};
use ordo_domain::orders::PricingError;

#[allow(unused_imports)] // the building blocks for a checkout store
pub(crate) use rows::{
    Read, StoredBasket, delete_basket, insert_basket, load_basket, store_basket, store_basket_row,
};

use crate::errors::{Doing, TxError, foreign_key_violation, unexpected};
use crate::pool::{PgPool, checkout};

/// [`BasketRepository`] over PostgreSQL.
#[derive(Clone)]
pub struct PgBasketRepository {
    pool: PgPool,
}

impl std::fmt::Debug for PgBasketRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBasketRepository").finish_non_exhaustive()
    }
}

impl PgBasketRepository {
    /// A repository using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl BasketRepository for PgBasketRepository {
    #[tracing::instrument(level = "debug", skip_all, fields(basket_id = %basket.id()))]
    async fn insert(&self, basket: Basket) -> Result<(), CreateBasketError> {
        let stored = StoredBasket::of(&basket)?;
        let mut conn = checkout(&self.pool).await?;
        let result = conn
            .transaction(async |conn| insert_basket(conn, &stored).await)
            .await;
        match result {
            // The customer was deleted after the service found it.
            Err(e) if foreign_key_violation(&e) == Some("baskets_customer_id_fkey") => {
                Err(match basket.customer_id() {
                    Some(customer) => CreateBasketError::CustomerNotFound(customer),
                    None => unexpected(e, "storing a basket").into(),
                })
            }
            result => Ok(result.doing("storing a basket")?),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(basket_id = %id))]
    async fn find(&self, id: BasketId) -> anyhow::Result<Option<Basket>> {
        let mut conn = checkout(&self.pool).await?;
        load_basket(&mut conn, id, Read::Plain)
            .await
            .doing("loading a basket")?
            .map(StoredBasket::into_domain)
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(basket_id = %id))]
    async fn edit(
        &self,
        id: BasketId,
        edit: BasketEdit,
        expected: Option<VersionMatch>,
    ) -> Result<Basket, ChangeBasketError> {
        let mut conn = checkout(&self.pool).await?;
        let result = conn
            .transaction(async |conn| -> Result<Basket, TxError<ChangeBasketError>> {
                let current = load_basket(conn, id, Read::ForUpdate)
                    .await?
                    .ok_or(TxError::Rule(ChangeBasketError::NotFound(id)))?
                    .into_domain()
                    .map_err(|e| TxError::Rule(e.into()))?;
                if expected
                    .as_ref()
                    .is_some_and(|expected| !expected.admits(current.version()))
                {
                    return Err(TxError::Rule(ChangeBasketError::VersionMismatch(id)));
                }
                let Some(changed) = current.edited(&edit).map_err(TxError::Rule)? else {
                    return Ok(current);
                };
                let stored = StoredBasket::of(&changed).map_err(|e| TxError::Rule(e.into()))?;
                store_basket(conn, &stored).await?;
                Ok(changed)
            })
            .await;
        result.map_err(|e| match e {
            // The product was deleted between pricing and storing.
            TxError::Database(e)
                if foreign_key_violation(&e) == Some("basket_lines_product_id_fkey") =>
            {
                match &edit.change {
                    LineChange::Set { product_id, .. } => {
                        PricingError::UnknownProduct(*product_id).into()
                    }
                    LineChange::Remove(_) => unexpected(e, "changing a basket").into(),
                }
            }
            e => e.into_domain("changing a basket"),
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(basket_id = %id))]
    async fn delete(&self, id: BasketId) -> Result<(), DeleteBasketError> {
        let mut conn = checkout(&self.pool).await?;
        let result = conn
            .transaction(async |conn| -> Result<(), TxError<DeleteBasketError>> {
                let current = load_basket(conn, id, Read::ForUpdate)
                    .await?
                    .ok_or(TxError::Rule(DeleteBasketError::NotFound(id)))?
                    .into_domain()
                    .map_err(|e| TxError::Rule(e.into()))?;
                current.check_deletable().map_err(TxError::Rule)?;
                delete_basket(conn, id).await?;
                Ok(())
            })
            .await;
        result.map_err(|e| e.into_domain("deleting a basket"))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn expire_due(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let mut conn = checkout(&self.pool).await?;
        let mut expired = 0;
        // In batches, so no statement holds many rows locked for long; a basket
        // being changed right now is skipped (its change sees it expired anyway,
        // by the domain's rule) and left for the next run. Version and
        // `updated_at` stay: reads already showed the basket expired.
        loop {
            let marked = diesel::sql_query(
                "UPDATE baskets SET status = 'expired' WHERE id IN ( \
                   SELECT id FROM baskets WHERE status = 'open' AND expires_at <= $1 \
                   ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind::<diesel::sql_types::Timestamptz, _>(now)
            .bind::<diesel::sql_types::BigInt, _>(EXPIRY_BATCH)
            .execute(&mut conn)
            .await
            .doing("expiring baskets")?;
            expired += u64::try_from(marked).unwrap_or(0);
            if i64::try_from(marked).unwrap_or(0) < EXPIRY_BATCH {
                return Ok(expired);
            }
        }
    }
}

/// How many baskets one statement of `expire_due` marks at most.
const EXPIRY_BATCH: i64 = 1000;
