//! Orders in PostgreSQL: [`PgOrderRepository`], composed of connection-level
//! building blocks that any transaction can use — the rows ([`rows`]), the day's
//! number ([`numbering`]), the customer's schedule lock and spacing check
//! ([`schedule`]) and stock moves ([`crate::stock`]). A use-case store spanning
//! several ports (`PgCheckoutStore`) composes the same blocks inside its own
//! single transaction: [`reserve_for`], its own writes, [`insert_numbered_order`].
//!
//! Lock order, the same in every transaction so that writers queue instead of
//! deadlocking: the customer's advisory lock, then the order row, then the product
//! rows in id order, then the day's number counter.

mod numbering;
mod rows;
mod schedule;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ordo_domain::catalog::StockShortage;
use ordo_domain::idempotency::KeyOwner;
use ordo_domain::orders::{
    NewOrder, Order, OrderFilter, OrderId, OrderLine, OrderRef, OrderRepository, OrderRevision,
    OrderStatus, PlaceOrderError, PricingError, SpacingConflict, SpacingWindow, StockMoves,
    UpdateOrderError,
};
use ordo_domain::upstream::IdempotencyKey;
use ordo_domain::{Page, PageRequest, Version};
use uuid::Uuid;

pub use numbering::INSERT_NUMBERED_ORDER;
pub(crate) use numbering::insert_numbered;
pub(crate) use rows::{
    LineColumns, OrderRow, assemble, line_rows, lines_of, replace_lines, with_lines,
};
pub(crate) use schedule::{check_spacing, lock_customer_schedule};

use crate::errors::{Doing, TxError, foreign_key_violation, unexpected};
use crate::idempotency::link_key_to_order;
use crate::pool::{PgPool, checkout};
use crate::prebuilt::{Bind, Prebuilt, statement};
use crate::schema::orders;
use crate::stock::move_stock;
use rows::{LinesOfOrder, OrderLineRow};

type AsOrderRow = diesel::dsl::AsSelect<OrderRow, diesel::pg::Pg>;
type UuidBind = Bind<diesel::sql_types::Uuid, Uuid>;
type LimitBind = Bind<diesel::sql_types::BigInt, i64>;

statement! {
    /// One order by id (a primary key: at most one row, no `LIMIT` needed).
    OrderById: AsOrderRow, UuidBind =
        orders::table.filter(orders::id.eq(Uuid::nil())).select(OrderRow::as_select())
}

statement! {
    /// One order by number (unique).
    OrderByNumber: AsOrderRow, Bind<diesel::sql_types::Text, String> =
        orders::table.filter(orders::number.eq(String::new())).select(OrderRow::as_select())
}

statement! {
    /// A page of all orders, newest id first.
    OrderPage: AsOrderRow, (UuidBind, LimitBind) =
        orders::table
            .filter(orders::id.lt(Uuid::nil()))
            .order(orders::id.desc())
            .limit(0)
            .select(OrderRow::as_select())
}

statement! {
    /// A page of one customer's orders, newest id first.
    CustomerOrderPage: AsOrderRow, ((UuidBind, UuidBind), LimitBind) =
        orders::table
            .filter(orders::customer_id.eq(Uuid::nil()))
            .filter(orders::id.lt(Uuid::nil()))
            .order(orders::id.desc())
            .limit(0)
            .select(OrderRow::as_select())
}

/// The SQL text of each statement the order reads send, exactly as Ordo sends it:
/// the benchmark's reference sends these straight through tokio-postgres, so
/// that it does the same database work.
#[derive(Debug, Clone)]
pub struct OrderReadSql {
    /// One order by id (`$1`).
    pub order_by_id: String,
    /// The lines of one order (`$1`), in line order.
    pub lines_of_order: String,
    /// A page of one customer's orders (`$1`), ids below `$2`, at most `$3`.
    pub customer_page: String,
    /// The lines of several orders (`$1`, an array), by order and line.
    pub lines_of_orders: String,
}

impl OrderReadSql {
    /// The texts of this build.
    pub fn get() -> Self {
        use crate::prebuilt::Statement;
        Self {
            order_by_id: OrderById::template().text(),
            lines_of_order: LinesOfOrder::template().text(),
            customer_page: CustomerOrderPage::template().text(),
            lines_of_orders: rows::LinesOfOrders::template().text(),
        }
    }
}

/// The rules of placing `order`, inside the caller's transaction: the customer's
/// schedule lock, the spacing check, the stock reservation. The caller writes the
/// order with [`insert_numbered_order`] last.
pub(crate) async fn reserve_for<E>(
    conn: &mut AsyncPgConnection,
    order: &NewOrder,
    window: SpacingWindow,
) -> Result<(), TxError<E>>
where
    E: From<SpacingConflict> + From<StockShortage> + From<anyhow::Error>,
{
    lock_customer_schedule(conn, order.customer_id).await?;
    check_spacing(conn, order.customer_id, order.scheduled_at, None, window).await?;
    move_stock(conn, &StockMoves::reserve(&order.lines), order.created_at).await
}

/// Writes `order` in `status` with its lines and the day's next number: the last
/// statement before the caller's `COMMIT` (see [`numbering`]).
pub(crate) async fn insert_numbered_order<E: From<anyhow::Error>>(
    conn: &mut AsyncPgConnection,
    order: &NewOrder,
    status: OrderStatus,
) -> Result<Order, TxError<E>> {
    let lines = line_rows(order.id, &order.lines).map_err(|e| TxError::Rule(e.into()))?;
    let number = insert_numbered(conn, order, status, &lines).await?;
    assemble(OrderRow::numbered(order, status, number), lines).map_err(|e| TxError::Rule(e.into()))
}

/// What a database error of placing `order` means to the order rules.
pub(crate) fn placing_error(error: diesel::result::Error, order: &NewOrder) -> PlaceOrderError {
    match error {
        e if foreign_key_violation(&e) == Some("orders_customer_id_fkey") => {
            PlaceOrderError::CustomerNotFound(order.customer_id)
        }
        // A product was deleted between pricing and storing.
        e if foreign_key_violation(&e) == Some("order_lines_product_id_fkey") => {
            match <[OrderLine]>::first(&order.lines) {
                Some(line) => PricingError::UnknownProduct(line.product_id()).into(),
                None => unexpected(e, "storing an order").into(),
            }
        }
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::CheckViolation,
            info,
        ) if info.constraint_name() == Some("order_number_counters_last_value_check") => {
            PlaceOrderError::NumbersExhausted(order.created_at.date_naive())
        }
        e => unexpected(e, "storing an order").into(),
    }
}

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

#[async_trait]
impl OrderRepository for PgOrderRepository {
    #[tracing::instrument(level = "debug", skip_all, fields(order_id = %order.id, customer_id = %order.customer_id))]
    async fn insert(
        &self,
        order: NewOrder,
        window: SpacingWindow,
        idempotency: Option<(KeyOwner, IdempotencyKey)>,
    ) -> Result<Order, PlaceOrderError> {
        let mut conn = checkout(&self.pool).await?;
        let result = conn
            .transaction(async |conn| -> Result<Order, TxError<PlaceOrderError>> {
                // Before the shared locks (only a repetition of this request
                // contends for the key's row): of two requests with one key,
                // the second to link stops here, before any stock or number.
                if let Some((owner, key)) = &idempotency {
                    link_key_to_order(conn, owner, key, order.id).await?;
                }
                reserve_for(conn, &order, window).await?;
                insert_numbered_order(conn, &order, OrderStatus::Placed).await
            })
            .await;
        result.map_err(|e| match e {
            TxError::Database(e) => placing_error(e, &order),
            TxError::Rule(e) => e,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(order = ?order))]
    async fn find(&self, order: OrderRef) -> anyhow::Result<Option<Order>> {
        let mut conn = checkout(&self.pool).await?;
        // Prebuilt statements: this is the hottest read.
        let (row, lines) = match order {
            OrderRef::Id(id) => {
                // Both statements need only the id, so they go out together
                // (pipelined on the one connection): one exchange with PostgreSQL
                // instead of two. The lines by `order_id = $1`: a cheaper plan
                // than `with_lines`'s `= ANY($1)` (the bench reference sends the
                // same statements, the same way). An id no order has costs the
                // lines' statement too, which finds nothing.
                let (mut for_order, mut for_lines): (&AsyncPgConnection, &AsyncPgConnection) =
                    (&conn, &conn);
                let (row, lines) = futures::join!(
                    Prebuilt::<OrderById>::new(Bind::new(id.as_uuid()))
                        .get_result::<OrderRow>(&mut for_order),
                    Prebuilt::<LinesOfOrder>::new(Bind::new(id.as_uuid()))
                        .load::<OrderLineRow>(&mut for_lines),
                );
                let Some(row) = row.optional().doing("loading an order")? else {
                    return Ok(None);
                };
                (row, lines.doing("loading order lines")?)
            }
            OrderRef::Number(number) => {
                let row = Prebuilt::<OrderByNumber>::new(Bind::new(number.to_string()))
                    .get_result::<OrderRow>(&mut conn)
                    .await
                    .optional()
                    .doing("loading an order")?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let lines = lines_of(&mut conn, OrderId::from_uuid(row.id))
                    .await
                    .doing("loading order lines")?;
                (row, lines)
            }
        };
        assemble(row, lines).map(Some)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(customer_id = ?filter.customer_id))]
    async fn list(&self, filter: OrderFilter, page: PageRequest) -> anyhow::Result<Page<Order>> {
        let mut conn = checkout(&self.pool).await?;
        let limit = i64::from(page.limit.get()) + 1;
        // The first page continues "after" the largest UUID, so that the common
        // shapes (all orders, one customer's) are prebuilt statements; other filter
        // combinations use a boxed query.
        let after = page.after.unwrap_or(Uuid::max());
        let rows = match filter {
            OrderFilter {
                customer_id: None,
                status: None,
                from: None,
                to: None,
            } => {
                Prebuilt::<OrderPage>::new((Bind::new(after), Bind::new(limit)))
                    .load(&mut conn)
                    .await
            }
            OrderFilter {
                customer_id: Some(customer),
                status: None,
                from: None,
                to: None,
            } => {
                Prebuilt::<CustomerOrderPage>::new((
                    (Bind::new(customer.as_uuid()), Bind::new(after)),
                    Bind::new(limit),
                ))
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
        let rows = rows.doing("listing orders")?;
        let orders = with_lines(&mut conn, rows).await?;
        Ok(Page::from_overfetched(orders, page.limit, |o| {
            o.id().as_uuid()
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(order_id = %revision.id, customer_id = %revision.customer_id))]
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
                .await?;
                let old_lines = lines_of(conn, id).await?;
                let old =
                    assemble(current.clone(), old_lines).map_err(|e| TxError::Rule(e.into()))?;
                let moves = StockMoves::revise(old.lines(), &revision.lines);
                move_stock(conn, &moves, revision.at).await?;
                let lines = line_rows(id, &revision.lines).map_err(|e| TxError::Rule(e.into()))?;
                replace_lines(conn, id, &lines).await?;
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
                    Some(line) => PricingError::UnknownProduct(line.product_id()).into(),
                    None => unexpected(e, "revising an order").into(),
                }
            }
            e => e.into_domain("revising an order"),
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(order_id = %id, to = %to))]
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
                    let order = assemble(row, lines).map_err(TxError::Rule)?;
                    if release_stock {
                        move_stock(conn, &StockMoves::release(order.lines()), at).await?;
                    }
                    Ok(Some(order))
                },
            )
            .await;
        result.map_err(|e| e.into_domain("changing an order's status"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(order_id = %id))]
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
                let locked: Option<OrderRow> = orders::table
                    .filter(orders::id.eq(id.as_uuid()))
                    .filter(orders::version.eq(expected.get()))
                    .select(OrderRow::as_select())
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                let Some(locked) = locked else {
                    return Ok(false);
                };
                if release_stock {
                    let lines = lines_of(conn, id).await?;
                    let order = assemble(locked, lines).map_err(TxError::Rule)?;
                    move_stock(conn, &StockMoves::release(order.lines()), at).await?;
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

#[cfg(test)]
mod tests {
    use diesel::pg::{Pg, PgQueryBuilder};
    use diesel::query_builder::{QueryBuilder, QueryFragment};

    use super::*;

    fn sql(query: &impl QueryFragment<Pg>) -> String {
        let mut builder = PgQueryBuilder::default();
        query.to_sql(&mut builder, &Pg).expect("renders");
        builder.finish()
    }

    #[test]
    fn a_prebuilt_statement_sends_the_text_of_its_dsl() {
        let customer = Uuid::now_v7();
        let prebuilt = Prebuilt::<CustomerOrderPage>::new((
            (Bind::new(customer), Bind::new(Uuid::max())),
            Bind::new(51),
        ));
        let dsl = orders::table
            .filter(orders::customer_id.eq(customer))
            .filter(orders::id.lt(Uuid::max()))
            .order(orders::id.desc())
            .limit(51)
            .select(OrderRow::as_select());
        assert_eq!(sql(&prebuilt), sql(&dsl));
        assert!(sql(&prebuilt).ends_with("LIMIT $3"), "{}", sql(&prebuilt));
    }
}
