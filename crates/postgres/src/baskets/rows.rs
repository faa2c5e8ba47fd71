//! The rows of `baskets` and `basket_lines`, their conversion to and from the
//! domain's `Basket`, and the connection-level steps on them that any transaction
//! can compose (a later checkout store marks a basket checked out in the same
//! transaction that writes the order).

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_domain::baskets::{Basket, BasketId, BasketStatus};
use ordo_domain::customers::CustomerId;
use ordo_domain::{Currency, Money, Version};
use uuid::Uuid;

use crate::orders::LineColumns;
use crate::schema::{basket_lines, baskets};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = baskets, check_for_backend(diesel::pg::Pg))]
pub(crate) struct BasketRow {
    id: Uuid,
    customer_id: Option<Uuid>,
    status: String,
    total_minor: i64,
    currency: String,
    expires_at: DateTime<Utc>,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = basket_lines, check_for_backend(diesel::pg::Pg))]
pub(crate) struct BasketLineRow {
    basket_id: Uuid,
    line_no: i32,
    product_id: Uuid,
    sku: String,
    name: String,
    quantity: i32,
    unit_price_minor: i64,
    reserves_stock: bool,
}

/// A basket as stored: its row and its lines, numbered from 1 in the basket's order.
pub(crate) struct StoredBasket {
    row: BasketRow,
    lines: Vec<BasketLineRow>,
}

impl StoredBasket {
    /// The rows of `basket`.
    ///
    /// # Errors
    /// When a line does not fit its columns.
    pub(crate) fn of(basket: &Basket) -> anyhow::Result<Self> {
        let id = basket.id().as_uuid();
        let lines = basket
            .lines()
            .iter()
            .zip(1..)
            .map(|(line, line_no)| {
                let LineColumns {
                    product_id,
                    sku,
                    name,
                    quantity,
                    unit_price_minor,
                    reserves_stock,
                } = LineColumns::of(line)
                    .with_context(|| format!("line {line_no} of basket {id}"))?;
                Ok(BasketLineRow {
                    basket_id: id,
                    line_no,
                    product_id,
                    sku,
                    name,
                    quantity,
                    unit_price_minor,
                    reserves_stock,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            row: BasketRow {
                id,
                customer_id: basket.customer_id().map(|c| c.as_uuid()),
                status: basket.status().as_str().to_owned(),
                total_minor: basket.total().minor(),
                currency: basket.total().currency().as_str().to_owned(),
                expires_at: basket.expires_at(),
                version: basket.version().get(),
                created_at: basket.created_at(),
                updated_at: basket.updated_at(),
            },
            lines,
        })
    }

    /// Rebuilds the basket; rows only hold values written from domain types, so a
    /// failure means the database was edited by hand.
    pub(crate) fn into_domain(self) -> anyhow::Result<Basket> {
        let Self { row, lines } = self;
        let id = row.id;
        let build = || -> anyhow::Result<Basket> {
            let currency = Currency::parse(&row.currency)?;
            let lines = lines
                .into_iter()
                .map(|l| {
                    LineColumns {
                        product_id: l.product_id,
                        sku: l.sku,
                        name: l.name,
                        quantity: l.quantity,
                        unit_price_minor: l.unit_price_minor,
                        reserves_stock: l.reserves_stock,
                    }
                    .into_line(currency)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(Basket::restore(
                BasketId::from_uuid(row.id),
                row.customer_id.map(CustomerId::from_uuid),
                BasketStatus::parse(&row.status)?,
                lines,
                Money::new(row.total_minor, currency),
                row.expires_at,
                row.created_at,
                row.updated_at,
                Version::new(row.version)?,
            ))
        };
        build().with_context(|| format!("basket {id} holds values Ordo never writes"))
    }
}

/// How a basket is read: as it is, or held against other writers until the
/// transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Plain,
    ForUpdate,
}

/// One basket with its lines, or `None`. With `Read::ForUpdate` (inside a
/// transaction), its row stays locked until the transaction ends, which
/// serialises every change of one basket; lines are only written by holders of
/// that lock, so they need none of their own.
pub(crate) async fn load_basket(
    conn: &mut AsyncPgConnection,
    id: BasketId,
    read: Read,
) -> QueryResult<Option<StoredBasket>> {
    let query = baskets::table
        .filter(baskets::id.eq(id.as_uuid()))
        .select(BasketRow::as_select());
    let row = match read {
        Read::Plain => query.first(conn).await,
        Read::ForUpdate => query.for_update().first(conn).await,
    }
    .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let lines = basket_lines::table
        .filter(basket_lines::basket_id.eq(id.as_uuid()))
        .order(basket_lines::line_no)
        .select(BasketLineRow::as_select())
        .load(conn)
        .await?;
    Ok(Some(StoredBasket { row, lines }))
}

/// Inserts a new basket and its lines.
pub(crate) async fn insert_basket(
    conn: &mut AsyncPgConnection,
    basket: &StoredBasket,
) -> QueryResult<()> {
    diesel::insert_into(baskets::table)
        .values(&basket.row)
        .execute(conn)
        .await?;
    insert_lines(conn, &basket.lines).await
}

/// Overwrites a stored basket and replaces its lines. The caller holds the
/// basket's lock (see [`load_basket`]) and decided the new state in the domain.
pub(crate) async fn store_basket(
    conn: &mut AsyncPgConnection,
    basket: &StoredBasket,
) -> QueryResult<()> {
    store_basket_row(conn, basket).await?;
    diesel::delete(basket_lines::table.filter(basket_lines::basket_id.eq(basket.row.id)))
        .execute(conn)
        .await?;
    insert_lines(conn, &basket.lines).await
}

/// Overwrites a stored basket's row and keeps its lines: for the changes of
/// status that leave the lines as they are (checking out, reopening), which
/// run inside checkout's transactions and so should not rewrite the lines.
pub(crate) async fn store_basket_row(
    conn: &mut AsyncPgConnection,
    basket: &StoredBasket,
) -> QueryResult<()> {
    diesel::update(baskets::table.filter(baskets::id.eq(basket.row.id)))
        .set(&basket.row)
        .execute(conn)
        .await
        .map(drop)
}

/// Deletes a basket; its lines go with it (`ON DELETE CASCADE`).
pub(crate) async fn delete_basket(conn: &mut AsyncPgConnection, id: BasketId) -> QueryResult<()> {
    diesel::delete(baskets::table.filter(baskets::id.eq(id.as_uuid())))
        .execute(conn)
        .await
        .map(drop)
}

async fn insert_lines(conn: &mut AsyncPgConnection, lines: &[BasketLineRow]) -> QueryResult<()> {
    if lines.is_empty() {
        return Ok(());
    }
    diesel::insert_into(basket_lines::table)
        .values(lines)
        .execute(conn)
        .await
        .map(drop)
}
