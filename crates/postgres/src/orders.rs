//! Orders in PostgreSQL.
//!
//! Lock order, the same in every transaction so that writers queue instead of
//! deadlocking: the customer's advisory lock, then the order row, then the product
//! rows in id order, then the day's number counter.

use std::collections::BTreeMap;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Date, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ordo_domain::catalog::{ProductId, ProductName, Sku};
use ordo_domain::customers::CustomerId;
use ordo_domain::orders::{
    FulfillmentInfo, NewOrder, Order, OrderFilter, OrderId, OrderLine, OrderNote, OrderNumber,
    OrderRef, OrderRepository, OrderRevision, OrderStatus, PaymentInfo, PlaceOrderError,
    PricingError, Quantity, ScheduledOrder, SpacingConflict, SpacingWindow, StockShortage,
    UpdateOrderError, find_conflict,
};
use ordo_domain::{Currency, Money, Page, PageRequest, Version};
use uuid::Uuid;

use crate::errors::{TxError, foreign_key_violation, unexpected};
use crate::pool::{PgPool, checkout};
use crate::schema::{order_lines, orders, products};

/// [`OrderRepository`] over PostgreSQL.
#[derive(Clone)]
pub struct PgOrderRepository {
    pool: PgPool,
}

impl std::fmt::Debug for PgOrderRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOrderRepository").finish_non_exhaustive()
    }
}

impl PgOrderRepository {
    /// A repository using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders, check_for_backend(diesel::pg::Pg))]
struct OrderRow {
    id: Uuid,
    number: String,
    customer_id: Uuid,
    status: String,
    scheduled_at: DateTime<Utc>,
    total_minor: i64,
    currency: String,
    note: Option<String>,
    payment_status: Option<String>,
    payment_reference: Option<String>,
    fulfillment_status: Option<String>,
    fulfillment_reference: Option<String>,
    fulfillment_attempts: i32,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = order_lines, check_for_backend(diesel::pg::Pg))]
struct OrderLineRow {
    order_id: Uuid,
    line_no: i32,
    product_id: Uuid,
    sku: String,
    name: String,
    quantity: i32,
    unit_price_minor: i64,
    reserves_stock: bool,
}

fn line_rows(order_id: OrderId, lines: &[OrderLine]) -> Vec<OrderLineRow> {
    lines
        .iter()
        .zip(1..)
        .map(|(line, line_no)| OrderLineRow {
            order_id: order_id.as_uuid(),
            line_no,
            product_id: line.product_id.as_uuid(),
            sku: line.sku.as_str().to_owned(),
            name: line.name.as_str().to_owned(),
            quantity: i32::try_from(line.quantity.get()).unwrap_or(i32::MAX),
            unit_price_minor: line.unit_price.minor(),
            reserves_stock: line.reserves_stock,
        })
        .collect()
}

/// Inserts an order's lines. Diesel caches a batch insert as a prepared statement
/// only when its size is known at compile time, so common sizes go as arrays: one
/// round trip instead of two while the day's number counter is locked.
async fn insert_lines(conn: &mut AsyncPgConnection, lines: &[OrderLineRow]) -> QueryResult<usize> {
    macro_rules! as_array {
        ($($n:literal)*) => {
            $(if let Ok(array) = <&[OrderLineRow; $n]>::try_from(lines) {
                return diesel::insert_into(order_lines::table).values(array).execute(conn).await;
            })*
        };
    }
    as_array!(1 2 3 4 5 6 7 8);
    diesel::insert_into(order_lines::table)
        .values(lines)
        .execute(conn)
        .await
}

/// Rebuilds an order from its rows; rows only hold values written from domain
/// types, so a failure means the database was edited by hand.
fn assemble(row: OrderRow, lines: Vec<OrderLineRow>) -> anyhow::Result<Order> {
    let id = row.id;
    let build = || -> anyhow::Result<Order> {
        let currency = Currency::parse(&row.currency)?;
        let lines = lines
            .into_iter()
            .map(|l| -> anyhow::Result<OrderLine> {
                Ok(OrderLine {
                    product_id: ProductId::from_uuid(l.product_id),
                    sku: Sku::parse(&l.sku)?,
                    name: ProductName::parse(&l.name)?,
                    quantity: Quantity::parse(i64::from(l.quantity))?,
                    unit_price: Money::price(l.unit_price_minor, currency)?,
                    reserves_stock: l.reserves_stock,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Order {
            id: OrderId::from_uuid(row.id),
            number: OrderNumber::parse(&row.number)?,
            customer_id: CustomerId::from_uuid(row.customer_id),
            status: OrderStatus::parse(&row.status)?,
            scheduled_at: row.scheduled_at,
            lines,
            total: Money::new(row.total_minor, currency),
            note: row.note.as_deref().map(OrderNote::parse).transpose()?,
            payment: row.payment_status.clone().map(|status| PaymentInfo {
                status,
                reference: row.payment_reference.clone(),
            }),
            fulfillment: row
                .fulfillment_status
                .clone()
                .map(|status| FulfillmentInfo {
                    status,
                    reference: row.fulfillment_reference.clone(),
                    attempts: row.fulfillment_attempts,
                }),
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: Version::new(row.version)?,
        })
    };
    build().with_context(|| format!("order {id} holds values Ordo never writes"))
}

/// Loads the lines of `order_ids` and attaches them to their orders, keeping the
/// orders' order: two queries for any number of orders.
async fn with_lines(
    conn: &mut AsyncPgConnection,
    rows: Vec<OrderRow>,
) -> anyhow::Result<Vec<Order>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let lines: Vec<OrderLineRow> = order_lines::table
        .filter(order_lines::order_id.eq_any(&ids))
        .order((order_lines::order_id, order_lines::line_no))
        .select(OrderLineRow::as_select())
        .load(conn)
        .await
        .context("loading order lines")?;
    let mut by_order: BTreeMap<Uuid, Vec<OrderLineRow>> = BTreeMap::new();
    for line in lines {
        by_order.entry(line.order_id).or_default().push(line);
    }
    rows.into_iter()
        .map(|row| {
            let lines = by_order.remove(&row.id).unwrap_or_default();
            assemble(row, lines)
        })
        .collect()
}

/// Serialises writes to one customer's schedule until the transaction ends, so
/// that the spacing check and the write that follows act as one step even when
/// requests race.
///
/// An advisory lock rather than an exclusion constraint because the spacing window
/// is configuration, not schema: changing it must not need a migration, and an
/// exclusion constraint would also reject legacy rows the moment the window grew.
async fn lock_customer_schedule(
    conn: &mut AsyncPgConnection,
    customer: CustomerId,
) -> QueryResult<()> {
    // `void IS NULL` makes the call selectable; diesel caches the statement.
    let key = hashtextextended(format!("ordo.order-spacing:{}", customer.as_uuid()), 0_i64);
    diesel::select(pg_advisory_xact_lock(key).is_null())
        .get_result::<bool>(conn)
        .await
        .map(drop)
}

diesel::define_sql_function! {
    /// PostgreSQL's `hashtextextended(text, seed)`: a 64-bit hash of a text.
    fn hashtextextended(value: Text, seed: BigInt) -> BigInt;
}

diesel::define_sql_function! {
    /// PostgreSQL's `pg_advisory_xact_lock(key)`; it returns `void`, declared here
    /// as `Bool` only so that `… IS NULL` can be selected.
    fn pg_advisory_xact_lock(key: BigInt) -> diesel::sql_types::Bool;
}

/// The spacing rule, checked while holding the customer's schedule lock.
async fn check_spacing(
    conn: &mut AsyncPgConnection,
    customer: CustomerId,
    at: DateTime<Utc>,
    exclude: Option<OrderId>,
    window: SpacingWindow,
) -> Result<(), TxError<SpacingConflict>> {
    let (from, to) = window.neighbourhood(at);
    let nearby: Vec<(Uuid, DateTime<Utc>, String)> = orders::table
        .filter(orders::customer_id.eq(customer.as_uuid()))
        .filter(orders::status.ne(OrderStatus::Cancelled.as_str()))
        .filter(orders::scheduled_at.gt(from))
        .filter(orders::scheduled_at.lt(to))
        .select((orders::id, orders::scheduled_at, orders::status))
        .load(conn)
        .await?;
    let nearby: Vec<ScheduledOrder> = nearby
        .into_iter()
        .map(|(id, scheduled_at, status)| ScheduledOrder {
            id: OrderId::from_uuid(id),
            scheduled_at,
            status: OrderStatus::parse(&status).unwrap_or(OrderStatus::Placed),
        })
        .collect();
    match find_conflict(at, exclude, &nearby, window) {
        Some(conflict) => Err(TxError::Rule(SpacingConflict {
            conflicting: conflict.id,
            window,
        })),
        None => Ok(()),
    }
}

/// Units each product's stock must give (positive) or get back (negative).
type StockMoves = BTreeMap<Uuid, i64>;

fn reservations(lines: &[OrderLine]) -> StockMoves {
    lines
        .iter()
        .filter(|l| l.reserves_stock)
        .map(|l| (l.product_id.as_uuid(), i64::from(l.quantity.get())))
        .collect()
}

fn stored_reservations(lines: &[OrderLineRow]) -> StockMoves {
    lines
        .iter()
        .filter(|l| l.reserves_stock)
        .map(|l| (l.product_id, i64::from(l.quantity)))
        .collect()
}

/// What returning all of a stored order's reserved units means for stock.
fn releases(lines: &[OrderLineRow]) -> StockMoves {
    stored_reservations(lines)
        .into_iter()
        .map(|(product, units)| (product, -units))
        .collect()
}

/// The stored lines of one order, in line order.
async fn lines_of(conn: &mut AsyncPgConnection, id: OrderId) -> QueryResult<Vec<OrderLineRow>> {
    order_lines::table
        .filter(order_lines::order_id.eq(id.as_uuid()))
        .order(order_lines::line_no)
        .select(OrderLineRow::as_select())
        .load(conn)
        .await
}

/// Applies `moves` to the stock of the products that track it: one conditional
/// `UPDATE … WHERE stock >= take` per product, in id order (a `BTreeMap` iterates
/// in the same byte order PostgreSQL sorts UUIDs by), so that concurrent writers
/// lock rows in the same order and queue instead of deadlocking. The CHECK
/// (stock >= 0) stays as the last line of defence.
async fn move_stock(
    conn: &mut AsyncPgConnection,
    moves: &StockMoves,
    at: DateTime<Utc>,
) -> Result<(), TxError<StockShortage>> {
    for (&id, &take) in moves.iter().filter(|(_, take)| **take != 0) {
        let updated: Option<i64> = diesel::update(
            products::table
                .filter(products::id.eq(id))
                .filter(products::stock.ge(take)),
        )
        .set((
            products::stock.eq(products::stock - take),
            products::version.eq(products::version + 1),
            products::updated_at.eq(at),
        ))
        .returning(products::stock.assume_not_null())
        .get_result(conn)
        .await
        .optional()?;
        if updated.is_some() {
            continue;
        }
        // Not enough units, or the product does not track stock (any more).
        let available: Option<Option<i64>> = products::table
            .find(id)
            .select(products::stock)
            .first(conn)
            .await
            .optional()?;
        if let Some(Some(available)) = available {
            return Err(TxError::Rule(StockShortage {
                product_id: ProductId::from_uuid(id),
                available,
            }));
        }
    }
    Ok(())
}

/// Inserts the order and its lines and assigns its number, in one statement.
///
/// The number comes from a counter row per day, updated inside the order's own
/// transaction: a rolled-back order gives its number back, so numbers stay
/// gapless. That row lock serialises every order of the day until commit, so it is
/// taken in the last statement before `COMMIT`, which also writes the order and its
/// lines: the lock is held for one statement and the commit, nothing else. The
/// counter's CHECK (at most 999 999) makes a full day fail instead of repeating.
async fn insert_numbered(
    conn: &mut AsyncPgConnection,
    order: &NewOrder,
    lines: &[OrderLineRow],
) -> QueryResult<String> {
    #[derive(QueryableByName)]
    struct Numbered {
        #[diesel(sql_type = Text)]
        number: String,
    }
    let numbered: Numbered = diesel::sql_query(INSERT_NUMBERED_ORDER)
        .bind::<Date, _>(order.created_at.date_naive())
        .bind::<SqlUuid, _>(order.id.as_uuid())
        .bind::<SqlUuid, _>(order.customer_id.as_uuid())
        .bind::<Timestamptz, _>(order.scheduled_at)
        .bind::<BigInt, _>(order.total.minor())
        .bind::<Text, _>(order.total.currency().as_str())
        .bind::<Nullable<Text>, _>(order.note.as_ref().map(|n| n.as_str()))
        .bind::<Timestamptz, _>(order.created_at)
        .bind::<Array<Integer>, _>(lines.iter().map(|l| l.line_no).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(lines.iter().map(|l| l.product_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(lines.iter().map(|l| l.sku.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(lines.iter().map(|l| l.name.as_str()).collect::<Vec<_>>())
        .bind::<Array<Integer>, _>(lines.iter().map(|l| l.quantity).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(lines.iter().map(|l| l.unit_price_minor).collect::<Vec<_>>())
        .bind::<Array<Bool>, _>(lines.iter().map(|l| l.reserves_stock).collect::<Vec<_>>())
        .get_result(conn)
        .await?;
    Ok(numbered.number)
}

/// The statement of [`insert_numbered`]: `$1` the day, `$2` the order id, `$3` the
/// customer, `$4` scheduled_at, `$5` total_minor, `$6` currency, `$7` note, `$8`
/// created_at, `$9`–`$15` the lines as arrays (line_no, product_id, sku, name,
/// quantity, unit_price_minor, reserves_stock); it returns the number, formatted as
/// `OrderNumber` displays it. Public so that the benchmark's reference runs exactly
/// the statement Ordo runs.
pub const INSERT_NUMBERED_ORDER: &str = "\
WITH next AS (
    INSERT INTO order_number_counters (day, last_value) VALUES ($1, 1)
    ON CONFLICT (day) DO UPDATE SET last_value = order_number_counters.last_value + 1
    RETURNING last_value
), inserted AS (
    INSERT INTO orders (id, number, customer_id, status, scheduled_at, total_minor, currency, note,
                        fulfillment_attempts, version, created_at, updated_at)
    SELECT $2, 'ORD-' || to_char($1::date, 'YYYYMMDD') || '-' || lpad(next.last_value::text, 6, '0'),
           $3, 'placed', $4, $5, $6, $7, 0, 1, $8, $8
    FROM next
    RETURNING number
), lines AS (
    INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity, unit_price_minor, reserves_stock)
    SELECT $2, l.* FROM unnest($9::int[], $10::uuid[], $11::text[], $12::text[], $13::int[], $14::bigint[], $15::bool[])
        AS l(line_no, product_id, sku, name, quantity, unit_price_minor, reserves_stock)
)
SELECT number FROM inserted";

#[async_trait]
impl OrderRepository for PgOrderRepository {
    async fn insert(
        &self,
        order: NewOrder,
        window: SpacingWindow,
    ) -> Result<Order, PlaceOrderError> {
        let mut conn = checkout(&self.pool).await?;
        let first_product = <[OrderLine]>::first(&order.lines).map(|l| l.product_id);
        let result = conn
            .transaction(async |conn| -> Result<Order, TxError<PlaceOrderError>> {
                lock_customer_schedule(conn, order.customer_id).await?;
                check_spacing(conn, order.customer_id, order.scheduled_at, None, window)
                    .await
                    .map_err(TxError::widen)?;
                move_stock(conn, &reservations(&order.lines), order.created_at)
                    .await
                    .map_err(TxError::widen)?;
                let lines = line_rows(order.id, &order.lines);
                let number = insert_numbered(conn, &order, &lines).await?;
                let row = OrderRow {
                    id: order.id.as_uuid(),
                    number,
                    customer_id: order.customer_id.as_uuid(),
                    status: OrderStatus::Placed.as_str().to_owned(),
                    scheduled_at: order.scheduled_at,
                    total_minor: order.total.minor(),
                    currency: order.total.currency().as_str().to_owned(),
                    note: order.note.as_ref().map(|n| n.as_str().to_owned()),
                    payment_status: None,
                    payment_reference: None,
                    fulfillment_status: None,
                    fulfillment_reference: None,
                    fulfillment_attempts: 0,
                    version: Version::FIRST.get(),
                    created_at: order.created_at,
                    updated_at: order.created_at,
                };
                assemble(row, lines).map_err(|e| TxError::Rule(e.into()))
            })
            .await;
        result.map_err(|e| match e {
            TxError::Database(e)
                if foreign_key_violation(&e) == Some("orders_customer_id_fkey") =>
            {
                PlaceOrderError::CustomerNotFound(order.customer_id)
            }
            // A product was deleted between pricing and storing.
            TxError::Database(e)
                if foreign_key_violation(&e) == Some("order_lines_product_id_fkey") =>
            {
                match first_product {
                    Some(id) => PricingError::UnknownProduct(id).into(),
                    None => unexpected(e, "storing an order").into(),
                }
            }
            TxError::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::CheckViolation,
                info,
            )) if info.constraint_name() == Some("order_number_counters_last_value_check") => {
                PlaceOrderError::NumbersExhausted(order.created_at.date_naive())
            }
            e => e.into_domain("storing an order"),
        })
    }

    async fn find(&self, order: OrderRef) -> anyhow::Result<Option<Order>> {
        let mut conn = checkout(&self.pool).await?;
        // Two static queries rather than one boxed one: diesel caches only static
        // statements as prepared statements, and this is the hottest read.
        let row = match order {
            OrderRef::Id(id) => {
                orders::table
                    .filter(orders::id.eq(id.as_uuid()))
                    .select(OrderRow::as_select())
                    .first(&mut conn)
                    .await
            }
            OrderRef::Number(number) => {
                orders::table
                    .filter(orders::number.eq(number.to_string()))
                    .select(OrderRow::as_select())
                    .first(&mut conn)
                    .await
            }
        };
        let Some(row) = row.optional().context("loading an order")? else {
            return Ok(None);
        };
        Ok(with_lines(&mut conn, vec![row]).await?.pop())
    }

    async fn list(&self, filter: OrderFilter, page: PageRequest) -> anyhow::Result<Page<Order>> {
        let mut conn = checkout(&self.pool).await?;
        let limit = i64::from(page.limit.get()) + 1;
        // The first page continues "after" the largest UUID, so that the common
        // shapes (all orders, one customer's) are static, prepared-statement-cached
        // queries; other filter combinations use a boxed query.
        let after = page.after.unwrap_or(Uuid::max());
        let rows = match filter {
            OrderFilter {
                customer_id: None,
                status: None,
                from: None,
                to: None,
            } => {
                orders::table
                    .filter(orders::id.lt(after))
                    .order(orders::id.desc())
                    .limit(limit)
                    .select(OrderRow::as_select())
                    .load(&mut conn)
                    .await
            }
            OrderFilter {
                customer_id: Some(customer),
                status: None,
                from: None,
                to: None,
            } => {
                orders::table
                    .filter(orders::customer_id.eq(customer.as_uuid()))
                    .filter(orders::id.lt(after))
                    .order(orders::id.desc())
                    .limit(limit)
                    .select(OrderRow::as_select())
                    .load(&mut conn)
                    .await
            }
            filter => {
                let mut query = orders::table
                    .filter(orders::id.lt(after))
                    .order(orders::id.desc())
                    .limit(limit)
                    .select(OrderRow::as_select())
                    .into_boxed();
                if let Some(customer) = filter.customer_id {
                    query = query.filter(orders::customer_id.eq(customer.as_uuid()));
                }
                if let Some(status) = filter.status {
                    query = query.filter(orders::status.eq(status.as_str()));
                }
                if let Some(from) = filter.from {
                    query = query.filter(orders::scheduled_at.ge(from));
                }
                if let Some(to) = filter.to {
                    query = query.filter(orders::scheduled_at.lt(to));
                }
                query.load(&mut conn).await
            }
        };
        let rows = rows.context("listing orders")?;
        let orders = with_lines(&mut conn, rows).await?;
        Ok(Page::from_overfetched(orders, page.limit, |o| {
            o.id.as_uuid()
        }))
    }

    async fn revise(
        &self,
        revision: OrderRevision,
        window: SpacingWindow,
    ) -> Result<Order, UpdateOrderError> {
        let mut conn = checkout(&self.pool).await?;
        let id = revision.id;
        let result = conn
            .transaction(async |conn| -> Result<Order, TxError<UpdateOrderError>> {
                lock_customer_schedule(conn, revision.customer_id).await?;
                let current: Option<OrderRow> = orders::table
                    .filter(orders::id.eq(id.as_uuid()))
                    .filter(orders::version.eq(revision.expected.get()))
                    .select(OrderRow::as_select())
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                let Some(current) = current else {
                    return Err(TxError::Rule(UpdateOrderError::VersionMismatch(id)));
                };
                check_spacing(
                    conn,
                    revision.customer_id,
                    revision.scheduled_at,
                    Some(id),
                    window,
                )
                .await
                .map_err(TxError::widen)?;
                let old_lines = lines_of(conn, id).await?;
                let mut moves = reservations(&revision.lines);
                for (product, returned) in stored_reservations(&old_lines) {
                    *moves.entry(product).or_default() -= returned;
                }
                move_stock(conn, &moves, revision.at)
                    .await
                    .map_err(TxError::widen)?;
                diesel::delete(order_lines::table.filter(order_lines::order_id.eq(id.as_uuid())))
                    .execute(conn)
                    .await?;
                let lines = line_rows(id, &revision.lines);
                insert_lines(conn, &lines).await?;
                let row: OrderRow = diesel::update(orders::table.find(id.as_uuid()))
                    .set((
                        orders::scheduled_at.eq(revision.scheduled_at),
                        orders::total_minor.eq(revision.total.minor()),
                        orders::currency.eq(revision.total.currency().as_str()),
                        orders::note.eq(revision.note.as_ref().map(|n| n.as_str().to_owned())),
                        orders::version.eq(current.version + 1),
                        orders::updated_at.eq(revision.at),
                    ))
                    .returning(OrderRow::as_returning())
                    .get_result(conn)
                    .await?;
                assemble(row, lines).map_err(|e| TxError::Rule(e.into()))
            })
            .await;
        result.map_err(|e| match e {
            TxError::Database(e)
                if foreign_key_violation(&e) == Some("order_lines_product_id_fkey") =>
            {
                match <[OrderLine]>::first(&revision.lines) {
                    Some(line) => PricingError::UnknownProduct(line.product_id).into(),
                    None => unexpected(e, "revising an order").into(),
                }
            }
            e => e.into_domain("revising an order"),
        })
    }

    async fn transition(
        &self,
        id: OrderId,
        expected: Version,
        to: OrderStatus,
        release_stock: bool,
        at: DateTime<Utc>,
    ) -> anyhow::Result<Option<Order>> {
        let mut conn = checkout(&self.pool).await?;
        let result = conn
            .transaction(
                async |conn| -> Result<Option<Order>, TxError<anyhow::Error>> {
                    // The version condition is the compare-and-set; the row stays locked
                    // until commit, so the stock release below happens exactly once.
                    let row: Option<OrderRow> = diesel::update(
                        orders::table
                            .filter(orders::id.eq(id.as_uuid()))
                            .filter(orders::version.eq(expected.get())),
                    )
                    .set((
                        orders::status.eq(to.as_str()),
                        orders::version.eq(orders::version + 1),
                        orders::updated_at.eq(at),
                    ))
                    .returning(OrderRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let lines = lines_of(conn, id).await?;
                    if release_stock {
                        move_stock(conn, &releases(&lines), at)
                            .await
                            .map_err(TxError::widen)?;
                    }
                    assemble(row, lines).map(Some).map_err(TxError::Rule)
                },
            )
            .await;
        result.map_err(|e| e.into_domain("changing an order's status"))
    }

    async fn delete(
        &self,
        id: OrderId,
        expected: Version,
        release_stock: bool,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let mut conn = checkout(&self.pool).await?;
        let result = conn
            .transaction(async |conn| -> Result<bool, TxError<anyhow::Error>> {
                let locked: Option<Uuid> = orders::table
                    .filter(orders::id.eq(id.as_uuid()))
                    .filter(orders::version.eq(expected.get()))
                    .select(orders::id)
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                if locked.is_none() {
                    return Ok(false);
                }
                if release_stock {
                    let lines = lines_of(conn, id).await?;
                    move_stock(conn, &releases(&lines), at)
                        .await
                        .map_err(TxError::widen)?;
                }
                diesel::delete(orders::table.find(id.as_uuid()))
                    .execute(conn)
                    .await?;
                Ok(true)
            })
            .await;
        result.map_err(|e| e.into_domain("deleting an order"))
    }
}
