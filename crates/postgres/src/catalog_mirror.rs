//! The products that mirror the upstream catalog (those with an `external_id`),
//! kept in step by the catalog sync ([`CatalogMirror`]).
//!
//! A sync reads the mirrored products and writes the domain's plan in one
//! transaction, under one transaction-level advisory lock: syncs on every instance
//! sharing the database apply one after the other, so a second sync plans from what
//! the first wrote and finds nothing to do, and two never both create a product.
//! Requests do not take that lock; a product row changed by a request meanwhile is
//! still updated (name, price, active) under its row lock, and stock is never
//! written here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ordo_domain::catalog::{
    CatalogMirror, MirroredProduct, ProductId, ProductKind, SyncPlan, SyncReport, SyncedProduct,
};
use ordo_domain::{Currency, Money, Version};
use uuid::Uuid;

use crate::errors::TxError;
use crate::pool::{PgPool, checkout};
use crate::schema::products;

/// [`CatalogMirror`] over PostgreSQL.
#[derive(Clone)]
pub struct PgCatalogMirror {
    pool: PgPool,
}

impl std::fmt::Debug for PgCatalogMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCatalogMirror").finish_non_exhaustive()
    }
}

impl PgCatalogMirror {
    /// A mirror using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = products, check_for_backend(diesel::pg::Pg))]
struct MirroredRow {
    id: Uuid,
    external_id: Option<String>,
    name: String,
    price_minor: i64,
    currency: String,
    active: bool,
}

impl MirroredRow {
    fn into_domain(self) -> anyhow::Result<MirroredProduct> {
        Ok(MirroredProduct {
            id: ProductId::from_uuid(self.id),
            external_id: self.external_id.unwrap_or_default(),
            name: self.name,
            price: Money::price(self.price_minor, Currency::parse(&self.currency)?)?,
            active: self.active,
        })
    }
}

/// A product new upstream: a good whose stock is not tracked (the upstream has no
/// stock; a local admin may track it later).
#[derive(Insertable)]
#[diesel(table_name = products)]
struct NewMirroredRow {
    id: Uuid,
    sku: String,
    name: String,
    kind: &'static str,
    price_minor: i64,
    currency: String,
    active: bool,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    external_id: Option<String>,
}

impl NewMirroredRow {
    fn of(product: &SyncedProduct, at: DateTime<Utc>) -> Self {
        Self {
            id: product.id_if_new().as_uuid(),
            sku: product.sku().as_str().to_owned(),
            name: product.name().as_str().to_owned(),
            kind: ProductKind::Good.as_str(),
            price_minor: product.price().minor(),
            currency: product.price().currency().as_str().to_owned(),
            active: true,
            version: Version::FIRST.get(),
            created_at: at,
            updated_at: at,
            external_id: Some(product.external_id().as_str().to_owned()),
        }
    }
}

/// Holds the catalog sync's lock until the transaction ends.
async fn lock_sync(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<Text, _>("ordo.catalog-sync")
        .execute(conn)
        .await
        .map(drop)
}

async fn write_plan(
    conn: &mut AsyncPgConnection,
    plan: &SyncPlan,
    at: DateTime<Utc>,
) -> QueryResult<SyncReport> {
    let created = if plan.create.is_empty() {
        0
    } else {
        // A product whose SKU a local product holds already is left out: the sync
        // goes on with the others, and reports it as skipped.
        let rows: Vec<NewMirroredRow> = plan
            .create
            .iter()
            .map(|p| NewMirroredRow::of(p, at))
            .collect();
        diesel::insert_into(products::table)
            .values(rows)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?
    };
    for (id, product) in &plan.update {
        diesel::update(products::table.find(id.as_uuid()))
            .set((
                products::name.eq(product.name().as_str()),
                products::price_minor.eq(product.price().minor()),
                products::currency.eq(product.price().currency().as_str()),
                products::active.eq(true),
                products::version.eq(products::version + 1),
                products::updated_at.eq(at),
            ))
            .execute(conn)
            .await?;
    }
    let deactivated = if plan.deactivate.is_empty() {
        0
    } else {
        let ids: Vec<Uuid> = plan.deactivate.iter().map(ProductId::as_uuid).collect();
        diesel::update(products::table.filter(products::id.eq_any(ids)))
            .set((
                products::active.eq(false),
                products::version.eq(products::version + 1),
                products::updated_at.eq(at),
            ))
            .execute(conn)
            .await?
    };
    Ok(SyncReport {
        created,
        updated: plan.update.len(),
        deactivated,
        unchanged: plan.unchanged,
        skipped: plan.create.len() - created,
    })
}

#[async_trait]
impl CatalogMirror for PgCatalogMirror {
    #[tracing::instrument(level = "debug", skip_all, fields(upstream = upstream.len()))]
    async fn apply(
        &self,
        upstream: Vec<SyncedProduct>,
        at: DateTime<Utc>,
    ) -> anyhow::Result<SyncReport> {
        let mut conn = checkout(&self.pool).await?;
        let result = conn
            .transaction(async |conn| -> Result<SyncReport, TxError<anyhow::Error>> {
                lock_sync(conn).await?;
                let mirrored = products::table
                    .filter(products::external_id.is_not_null())
                    .select(MirroredRow::as_select())
                    .load(conn)
                    .await?
                    .into_iter()
                    .map(MirroredRow::into_domain)
                    .collect::<anyhow::Result<Vec<_>>>()
                    .map_err(TxError::Rule)?;
                let plan = SyncPlan::new(&upstream, &mirrored);
                Ok(write_plan(conn, &plan, at).await?)
            })
            .await;
        result.map_err(|e| e.into_domain("syncing the catalog"))
    }
}
