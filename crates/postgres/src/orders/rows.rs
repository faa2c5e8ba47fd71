//! The rows of `orders` and `order_lines`, and their conversion to and from the
//! domain's `Order`: the one place where an order's storage shape is known.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_domain::catalog::{ProductId, ProductName, Sku};
use ordo_domain::customers::CustomerId;
use ordo_domain::orders::{
    FulfillmentInfo, NewOrder, Order, OrderId, OrderLine, OrderNote, OrderNumber, OrderStatus,
    PaymentInfo, Quantity,
};
use ordo_domain::{Currency, Money, Version};
use uuid::Uuid;

use crate::errors::Doing;
use crate::prebuilt::{Bind, Prebuilt, statement};
use crate::schema::{order_lines, orders};

statement! {
    /// The lines of several orders, by order and line.
    LinesOfOrders: diesel::dsl::AsSelect<OrderLineRow, diesel::pg::Pg>,
        Bind<diesel::sql_types::Array<diesel::sql_types::Uuid>, Vec<Uuid>> =
        order_lines::table
            .filter(order_lines::order_id.eq_any(Vec::<Uuid>::new()))
            .order((order_lines::order_id, order_lines::line_no))
            .select(OrderLineRow::as_select())
}

statement! {
    /// The lines of one order, in line order.
    LinesOfOrder: diesel::dsl::AsSelect<OrderLineRow, diesel::pg::Pg>,
        Bind<diesel::sql_types::Uuid, Uuid> =
        order_lines::table
            .filter(order_lines::order_id.eq(Uuid::nil()))
            .order(order_lines::line_no)
            .select(OrderLineRow::as_select())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders, check_for_backend(diesel::pg::Pg))]
pub(crate) struct OrderRow {
    pub(crate) id: Uuid,
    pub(crate) number: String,
    pub(crate) customer_id: Uuid,
    pub(crate) status: String,
    pub(crate) scheduled_at: DateTime<Utc>,
    pub(crate) total_minor: i64,
    pub(crate) currency: String,
    pub(crate) note: Option<String>,
    pub(crate) payment_status: Option<String>,
    pub(crate) payment_reference: Option<String>,
    pub(crate) fulfillment_status: Option<String>,
    pub(crate) fulfillment_reference: Option<String>,
    pub(crate) fulfillment_attempts: i32,
    pub(crate) version: i32,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl OrderRow {
    /// The row `INSERT_NUMBERED_ORDER` wrote for `order` in `status` under
    /// `number`, without reading it back.
    pub(crate) fn numbered(order: &NewOrder, status: OrderStatus, number: String) -> Self {
        Self {
            id: order.id.as_uuid(),
            number,
            customer_id: order.customer_id.as_uuid(),
            status: status.as_str().to_owned(),
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
        }
    }
}

/// The columns of a stored priced line, which order lines and basket lines share:
/// the one place where a line's storage shape is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineColumns {
    pub(crate) product_id: Uuid,
    pub(crate) sku: String,
    pub(crate) name: String,
    pub(crate) quantity: i32,
    pub(crate) unit_price_minor: i64,
    pub(crate) reserves_stock: bool,
}

impl LineColumns {
    /// The columns of `line`.
    ///
    /// # Errors
    /// When the quantity does not fit the column (`Quantity` keeps it far below),
    /// rather than storing a different number.
    pub(crate) fn of(line: &OrderLine) -> anyhow::Result<Self> {
        Ok(Self {
            product_id: line.product_id().as_uuid(),
            sku: line.sku().as_str().to_owned(),
            name: line.name().as_str().to_owned(),
            quantity: i32::try_from(line.quantity().get()).context("a line's quantity")?,
            unit_price_minor: line.unit_price().minor(),
            reserves_stock: line.reserves_stock(),
        })
    }

    /// The line these columns hold, priced in `currency`.
    ///
    /// # Errors
    /// When a column holds a value Ordo never writes.
    pub(crate) fn into_line(self, currency: Currency) -> anyhow::Result<OrderLine> {
        Ok(OrderLine::new(
            ProductId::from_uuid(self.product_id),
            Sku::parse(&self.sku)?,
            ProductName::parse(&self.name)?,
            Quantity::parse(i64::from(self.quantity))?,
            Money::price(self.unit_price_minor, currency)?,
            self.reserves_stock,
        )?)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = order_lines, check_for_backend(diesel::pg::Pg))]
pub(crate) struct OrderLineRow {
    pub(crate) order_id: Uuid,
    pub(crate) line_no: i32,
    pub(crate) product_id: Uuid,
    pub(crate) sku: String,
    pub(crate) name: String,
    pub(crate) quantity: i32,
    pub(crate) unit_price_minor: i64,
    pub(crate) reserves_stock: bool,
}

/// The rows of an order's lines, numbered from 1.
///
/// # Errors
/// When a quantity does not fit the column (`Quantity` keeps it far below), rather
/// than storing a different number.
pub(crate) fn line_rows(
    order_id: OrderId,
    lines: &[OrderLine],
) -> anyhow::Result<Vec<OrderLineRow>> {
    lines
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
                .with_context(|| format!("line {line_no} of order {order_id}"))?;
            Ok(OrderLineRow {
                order_id: order_id.as_uuid(),
                line_no,
                product_id,
                sku,
                name,
                quantity,
                unit_price_minor,
                reserves_stock,
            })
        })
        .collect()
}

/// Inserts an order's lines. Diesel caches a batch insert as a prepared statement
/// only when its size is known at compile time, so common sizes go as arrays: one
/// round trip instead of two while the day's number counter is locked.
pub(crate) async fn insert_lines(
    conn: &mut AsyncPgConnection,
    lines: &[OrderLineRow],
) -> QueryResult<usize> {
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
pub(crate) fn assemble(row: OrderRow, lines: Vec<OrderLineRow>) -> anyhow::Result<Order> {
    let id = row.id;
    let build = || -> anyhow::Result<Order> {
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
        Ok(Order::restore(
            OrderId::from_uuid(row.id),
            OrderNumber::parse(&row.number)?,
            CustomerId::from_uuid(row.customer_id),
            OrderStatus::parse(&row.status)?,
            row.scheduled_at,
            lines,
            Money::new(row.total_minor, currency),
            row.note.as_deref().map(OrderNote::parse).transpose()?,
            row.payment_status.clone().map(|status| PaymentInfo {
                status,
                reference: row.payment_reference.clone(),
            }),
            row.fulfillment_status
                .clone()
                .map(|status| FulfillmentInfo {
                    status,
                    reference: row.fulfillment_reference.clone(),
                    attempts: row.fulfillment_attempts,
                }),
            row.created_at,
            row.updated_at,
            Version::new(row.version)?,
        ))
    };
    build().with_context(|| format!("order {id} holds values Ordo never writes"))
}

/// Loads the lines of `order_ids` and attaches them to their orders, keeping the
/// orders' order: two queries for any number of orders.
pub(crate) async fn with_lines(
    conn: &mut AsyncPgConnection,
    rows: Vec<OrderRow>,
) -> anyhow::Result<Vec<Order>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let lines: Vec<OrderLineRow> = Prebuilt::<LinesOfOrders>::new(Bind::new(ids))
        .load(conn)
        .await
        .doing("loading order lines")?;
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

/// The stored lines of one order, in line order.
pub(crate) async fn lines_of(
    conn: &mut AsyncPgConnection,
    id: OrderId,
) -> QueryResult<Vec<OrderLineRow>> {
    Prebuilt::<LinesOfOrder>::new(Bind::new(id.as_uuid()))
        .load(conn)
        .await
}

/// Replaces the stored lines of order `id` with `lines`.
pub(crate) async fn replace_lines(
    conn: &mut AsyncPgConnection,
    id: OrderId,
    lines: &[OrderLineRow],
) -> QueryResult<()> {
    diesel::delete(order_lines::table.filter(order_lines::order_id.eq(id.as_uuid())))
        .execute(conn)
        .await?;
    insert_lines(conn, lines).await.map(drop)
}
