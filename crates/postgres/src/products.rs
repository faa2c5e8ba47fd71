//! The catalog in PostgreSQL.

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ordo_domain::catalog::{
    AdjustStockError, CreateProductError, DeleteProductError, NewProduct, PriceMinor, Product,
    ProductChanges, ProductDeletion, ProductId, ProductKind, ProductName, ProductRepository, Sku,
    StockAdjustment, StockLevel, UpdateProductError,
};
use ordo_domain::{Currency, Money, Page, PageRequest, Version};
use uuid::Uuid;

use crate::errors::{Doing, TxError, foreign_key_violation, unexpected, unique_violation};
use crate::pool::{PgPool, checkout};
use crate::prebuilt::{Bind, Prebuilt, statement};
use crate::schema::{order_lines, products};
use crate::stock;

/// [`ProductRepository`] over PostgreSQL.
#[derive(Clone)]
pub struct PgProductRepository {
    pool: PgPool,
}

impl std::fmt::Debug for PgProductRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgProductRepository")
            .finish_non_exhaustive()
    }
}

impl PgProductRepository {
    /// A repository using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = products, check_for_backend(diesel::pg::Pg))]
pub(crate) struct ProductRow {
    id: Uuid,
    sku: String,
    name: String,
    kind: String,
    price_minor: i64,
    currency: String,
    stock: Option<i64>,
    low_stock_threshold: Option<i64>,
    active: bool,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ProductRow {
    fn from_new(id: ProductId, product: &NewProduct, at: DateTime<Utc>) -> Self {
        Self {
            id: id.as_uuid(),
            sku: product.sku().as_str().to_owned(),
            name: product.name().as_str().to_owned(),
            kind: product.kind().as_str().to_owned(),
            price_minor: product.price().minor(),
            currency: product.price().currency().as_str().to_owned(),
            stock: product.stock().map(StockLevel::get),
            low_stock_threshold: product.low_stock_threshold().map(StockLevel::get),
            active: true,
            version: Version::FIRST.get(),
            created_at: at,
            updated_at: at,
        }
    }

    /// Rows only ever hold values written from domain types and guarded by CHECK
    /// constraints, so a failure here means the database was edited by hand.
    fn into_domain(self) -> anyhow::Result<Product> {
        let currency = Currency::parse(&self.currency)?;
        Ok::<_, anyhow::Error>(Product::restore(
            ProductId::from_uuid(self.id),
            Sku::parse(&self.sku)?,
            ProductName::parse(&self.name)?,
            ProductKind::parse(&self.kind)?,
            Money::price(self.price_minor, currency)?,
            self.stock.map(StockLevel::parse).transpose()?,
            self.low_stock_threshold
                .map(StockLevel::parse)
                .transpose()?,
            self.active,
            Version::new(self.version)?,
            self.created_at,
            self.updated_at,
        ))
        .with_context(|| format!("product {} holds values Ordo never writes", self.id))
    }
}

#[derive(Debug, AsChangeset)]
#[diesel(table_name = products)]
struct ProductChangeset {
    sku: Option<String>,
    name: Option<String>,
    price_minor: Option<i64>,
    currency: Option<String>,
    low_stock_threshold: Option<Option<i64>>,
    active: Option<bool>,
    updated_at: DateTime<Utc>,
}

statement! {
    /// The products of some ids (`= ANY($1)`, one array bind). Prebuilt, so that
    /// pricing an order reuses one prepared statement.
    ProductsByIds: diesel::dsl::AsSelect<ProductRow, diesel::pg::Pg>,
        Bind<diesel::sql_types::Array<diesel::sql_types::Uuid>, Vec<Uuid>> =
        products::table
            .filter(products::id.eq_any(Vec::<Uuid>::new()))
            .select(ProductRow::as_select())
}

pub(crate) async fn load_products(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> anyhow::Result<Vec<Product>> {
    Prebuilt::<ProductsByIds>::new(Bind::new(ids.to_vec()))
        .load(conn)
        .await
        .doing("loading products")?
        .into_iter()
        .map(ProductRow::into_domain)
        .collect()
}

#[async_trait]
impl ProductRepository for PgProductRepository {
    #[tracing::instrument(level = "debug", skip_all, fields(product_id = %id))]
    async fn insert(
        &self,
        id: ProductId,
        product: NewProduct,
        at: DateTime<Utc>,
    ) -> Result<Product, CreateProductError> {
        let mut conn = checkout(&self.pool).await?;
        let row = diesel::insert_into(products::table)
            .values(ProductRow::from_new(id, &product, at))
            .returning(ProductRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some("products_sku_key") => CreateProductError::SkuTaken {
                    sku: product.sku().to_string(),
                },
                _ => unexpected(e, "inserting a product").into(),
            })?;
        Ok(row.into_domain()?)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(product_id = %id))]
    async fn find(&self, id: ProductId) -> anyhow::Result<Option<Product>> {
        let mut conn = checkout(&self.pool).await?;
        products::table
            .find(id.as_uuid())
            .select(ProductRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .doing("loading a product")?
            .map(ProductRow::into_domain)
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(products = ids.len()))]
    async fn find_many(&self, ids: &[ProductId]) -> anyhow::Result<Vec<Product>> {
        let ids: Vec<Uuid> = ids.iter().map(ProductId::as_uuid).collect();
        let mut conn = checkout(&self.pool).await?;
        load_products(&mut conn, &ids).await
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn list(&self, page: PageRequest) -> anyhow::Result<Page<Product>> {
        let mut conn = checkout(&self.pool).await?;
        let mut query = products::table
            .select(ProductRow::as_select())
            .order(products::id.desc())
            .limit(i64::from(page.limit.get()) + 1)
            .into_boxed();
        if let Some(after) = page.after {
            query = query.filter(products::id.lt(after));
        }
        let rows = query.load(&mut conn).await.doing("listing products")?;
        let products = rows
            .into_iter()
            .map(ProductRow::into_domain)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Page::from_overfetched(products, page.limit, |p| {
            p.id().as_uuid()
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(product_id = %id))]
    async fn update(
        &self,
        id: ProductId,
        changes: ProductChanges,
        expected: Option<Version>,
        at: DateTime<Utc>,
    ) -> Result<Product, UpdateProductError> {
        let wanted_sku = changes.sku.as_ref().map(ToString::to_string);
        let changeset = ProductChangeset {
            sku: changes.sku.map(|s| s.as_str().to_owned()),
            name: changes.name.map(|n| n.as_str().to_owned()),
            price_minor: changes.price_minor.map(PriceMinor::get),
            currency: changes.currency.map(|c| c.as_str().to_owned()),
            low_stock_threshold: changes.low_stock_threshold.map(|t| t.map(StockLevel::get)),
            active: changes.active,
            updated_at: at,
        };
        let mut conn = checkout(&self.pool).await?;
        // The version condition makes the update itself the compare-and-set, so no
        // lock is held between reading and writing.
        let mut query = diesel::update(products::table)
            .filter(products::id.eq(id.as_uuid()))
            .into_boxed();
        if let Some(expected) = expected {
            query = query.filter(products::version.eq(expected.get()));
        }
        let updated = query
            .set((changeset, products::version.eq(products::version + 1)))
            .returning(ProductRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(|e| match unique_violation(&e) {
                Some("products_sku_key") => UpdateProductError::SkuTaken {
                    sku: wanted_sku.clone().unwrap_or_default(),
                },
                _ => unexpected(e, "updating a product").into(),
            })?;
        match updated {
            Some(row) => Ok(row.into_domain()?),
            None => {
                let exists = products::table
                    .find(id.as_uuid())
                    .select(products::id)
                    .first::<Uuid>(&mut conn)
                    .await
                    .optional()
                    .doing("checking a product exists")?;
                Err(match exists {
                    Some(_) => UpdateProductError::VersionMismatch(id),
                    None => UpdateProductError::NotFound(id),
                })
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(product_id = %id, adjustment_id = %adjustment.id))]
    async fn adjust_stock(
        &self,
        id: ProductId,
        adjustment: StockAdjustment,
    ) -> Result<Product, AdjustStockError> {
        let mut conn = checkout(&self.pool).await?;
        let result = conn
            .transaction(async |conn| -> Result<Product, TxError<AdjustStockError>> {
                let updated = stock::adjust(conn, id, &adjustment).await?;
                updated.into_domain().map_err(|e| TxError::Rule(e.into()))
            })
            .await;
        result.map_err(|e| e.into_domain("adjusting stock"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(product_id = %id))]
    async fn delete(
        &self,
        id: ProductId,
        at: DateTime<Utc>,
    ) -> Result<ProductDeletion, DeleteProductError> {
        let mut conn = checkout(&self.pool).await?;
        let used = diesel::select(diesel::dsl::exists(
            order_lines::table.filter(order_lines::product_id.eq(id.as_uuid())),
        ))
        .get_result::<bool>(&mut conn)
        .await
        .doing("checking whether orders use a product")?;
        if !used {
            let deleted = diesel::delete(products::table.find(id.as_uuid()))
                .execute(&mut conn)
                .await;
            match deleted {
                Ok(0) => return Err(DeleteProductError::NotFound(id)),
                Ok(_) => return Ok(ProductDeletion::Deleted),
                // An order took the product between the check and the delete, or a
                // basket holds it (kept, like an order's, so it is deactivated).
                Err(e) if foreign_key_violation(&e).is_some() => {}
                Err(e) => return Err(unexpected(e, "deleting a product").into()),
            }
        }
        let deactivated = diesel::update(products::table.find(id.as_uuid()))
            .set((
                products::active.eq(false),
                products::version.eq(products::version + 1),
                products::updated_at.eq(at),
            ))
            .execute(&mut conn)
            .await
            .doing("deactivating a product")?;
        if deactivated == 0 {
            return Err(DeleteProductError::NotFound(id));
        }
        Ok(ProductDeletion::Deactivated)
    }
}
