//! Checkout in PostgreSQL: [`PgCheckoutStore`], the checkout's unit of work and
//! its outbox, composed of the building blocks of orders, stock and baskets.
//!
//! `begin` is one transaction, taking locks in the documented order: the basket
//! row (so concurrent checkouts of one basket queue, and all but the first find
//! it checked out), then the customer's schedule lock, the product rows in id
//! order, and the day's number counter last. The basket, checkout, outbox and
//! key rows are written before the customer's lock is taken, so the shared
//! locks are held only by the reservation, the order's insert and the commit.
//! The checkout, outbox and key rows reference the order, which is written by
//! the last statement; their foreign keys are checked at commit.
//!
//! Reconciliation and the dispatchers claim rows with `FOR UPDATE SKIP LOCKED`
//! in a short transaction of their own, writing the worker's claim token and
//! how long it holds the row (`claimed_until`): no lock is held while the
//! upstream is called, no other worker takes a held row up until its lease ran
//! out, and a result is written only where the row still carries the worker's
//! token, so a worker that overran its lease cannot overwrite the attempt of
//! the one that took over.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use ordo_domain::baskets::BasketId;
use ordo_domain::checkout::{
    Checkout, CheckoutState, CheckoutStore, CheckoutUpdate, ClaimToken, NewCheckout, Outbox,
    OutboxBacklog, OutboxDelivery, StartCheckoutError,
};
use ordo_domain::orders::{Order, OrderId, OrderStatus, SpacingWindow, StockMoves};
use ordo_domain::upstream::{PaymentToken, UpstreamOrderStatus, UpstreamPaymentId};
use uuid::Uuid;

use crate::baskets::{Read, StoredBasket, load_basket, store_basket_row};
use crate::errors::{Doing, TxError};
use crate::idempotency::link_key_to_order;
use crate::orders::{
    OrderRow, insert_numbered_order, lines_of, placing_error, reserve_for, with_lines,
};
use crate::pool::{PgPool, checkout};
use crate::schema::{checkouts, orders, outbox};
use crate::stock::move_stock;

/// The only kind of outbox row so far: the upstream order's final status.
const UPSTREAM_ORDER_STATUS: &str = "upstream_order_status";

/// [`CheckoutStore`] and [`Outbox`] over PostgreSQL.
#[derive(Clone)]
pub struct PgCheckoutStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgCheckoutStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCheckoutStore").finish_non_exhaustive()
    }
}

impl PgCheckoutStore {
    /// A store using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = checkouts, check_for_backend(diesel::pg::Pg))]
struct CheckoutRow {
    order_id: Uuid,
    basket_id: Uuid,
    state: String,
    payment_token: String,
    payment_id: Option<String>,
    attempts: i32,
    last_error: Option<String>,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    claim_token: Option<Uuid>,
    claimed_until: Option<DateTime<Utc>>,
    interrupted: bool,
}

impl CheckoutRow {
    /// The checkout, with its order's total, held under `claim` if the row
    /// carries that claim.
    fn into_domain(self, order: &Order, claim: Option<ClaimToken>) -> anyhow::Result<Checkout> {
        let held = claim.filter(|c| self.claim_token == Some(c.as_uuid()));
        Ok(Checkout {
            order_id: OrderId::from_uuid(self.order_id),
            basket_id: BasketId::from_uuid(self.basket_id),
            state: CheckoutState::parse(&self.state)?,
            total: order.total(),
            payment_token: PaymentToken::parse(&self.payment_token)?,
            payment_id: self
                .payment_id
                .as_deref()
                .map(UpstreamPaymentId::parse)
                .transpose()?,
            attempts: u32::try_from(self.attempts)?,
            created_at: self.created_at,
            interrupted: self.interrupted,
            claim: held,
        })
    }
}

/// What recording a step writes on the checkout row (fields left `None` are
/// kept): the state, the error, when it is due again, the payment once known,
/// and the claim given up.
#[derive(AsChangeset)]
#[diesel(table_name = checkouts, treat_none_as_null = false)]
struct CheckoutStep<'a> {
    state: &'a str,
    last_error: Option<Option<&'a str>>,
    next_attempt_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    payment_id: Option<&'a str>,
    claim_token: Option<Option<Uuid>>,
    claimed_until: Option<Option<DateTime<Utc>>>,
}

impl<'a> CheckoutStep<'a> {
    fn of(update: &'a CheckoutUpdate) -> Self {
        Self {
            state: update.to.as_str(),
            last_error: Some(update.error.as_deref()),
            next_attempt_at: update.next_attempt_at,
            updated_at: update.at,
            payment_id: update.payment_id.as_ref().map(UpstreamPaymentId::as_str),
            claim_token: Some(None),
            claimed_until: Some(None),
        }
    }
}

/// What recording a step writes on the checkout's order (fields left `None`
/// are kept): the state's status, the payment once known, and the pending
/// fulfilment once the upstream order exists (its id is ours).
#[derive(AsChangeset)]
#[diesel(table_name = orders, treat_none_as_null = false)]
struct OrderStep<'a> {
    status: &'a str,
    payment_status: Option<&'a str>,
    payment_reference: Option<Option<&'a str>>,
    fulfillment_status: Option<&'a str>,
    fulfillment_reference: Option<String>,
    updated_at: DateTime<Utc>,
}

impl<'a> OrderStep<'a> {
    fn of(update: &'a CheckoutUpdate) -> Self {
        let placed = update.placed_upstream;
        Self {
            status: update.to.order_status().as_str(),
            payment_status: update.payment.as_ref().map(|p| p.status.as_str()),
            payment_reference: update.payment.as_ref().map(|p| p.reference.as_deref()),
            fulfillment_status: placed.then_some("pending"),
            fulfillment_reference: placed.then(|| update.order_id.as_uuid().to_string()),
            updated_at: update.at,
        }
    }
}

fn target_status(state: CheckoutState) -> Option<&'static str> {
    match state {
        CheckoutState::Paid => Some("completed"),
        CheckoutState::PaymentFailed => Some("failed"),
        _ => None,
    }
}

#[async_trait]
impl CheckoutStore for PgCheckoutStore {
    #[tracing::instrument(level = "debug", skip_all, fields(basket_id = %new.basket_id, order_id = %new.order_id))]
    async fn begin(
        &self,
        new: NewCheckout,
        window: SpacingWindow,
    ) -> Result<(Checkout, Order), StartCheckoutError> {
        let mut conn = checkout(&self.pool).await?;
        let mut planned = None;
        let result = conn
            .transaction(
                async |conn| -> Result<(Checkout, Order), TxError<StartCheckoutError>> {
                    let basket = load_basket(conn, new.basket_id, Read::ForUpdate)
                        .await?
                        .ok_or(TxError::Rule(StartCheckoutError::BasketNotFound(
                            new.basket_id,
                        )))?
                        .into_domain()
                        .map_err(|e| TxError::Rule(e.into()))?;
                    let plan = new.plan(&basket).map_err(TxError::Rule)?;
                    planned = Some(plan.order.clone());
                    let stored =
                        StoredBasket::of(&plan.basket).map_err(|e| TxError::Rule(e.into()))?;
                    store_basket_row(conn, &stored).await?;
                    let row = CheckoutRow {
                        order_id: new.order_id.as_uuid(),
                        basket_id: new.basket_id.as_uuid(),
                        state: CheckoutState::Started.as_str().to_owned(),
                        payment_token: new.payment_token.as_str().to_owned(),
                        payment_id: None,
                        attempts: 0,
                        last_error: None,
                        next_attempt_at: new.lease_until,
                        created_at: new.at,
                        updated_at: new.at,
                        claim_token: Some(new.claim.as_uuid()),
                        claimed_until: Some(new.lease_until),
                        interrupted: false,
                    };
                    diesel::insert_into(checkouts::table)
                        .values(&row)
                        .execute(conn)
                        .await?;
                    diesel::insert_into(outbox::table)
                        .values((
                            outbox::id.eq(new.order_id.as_uuid()),
                            outbox::kind.eq(UPSTREAM_ORDER_STATUS),
                            outbox::order_id.eq(new.order_id.as_uuid()),
                            outbox::status.eq("waiting"),
                            outbox::created_at.eq(new.at),
                        ))
                        .execute(conn)
                        .await?;
                    if let Some((owner, key)) = &new.idempotency {
                        link_key_to_order(conn, owner, key, new.order_id).await?;
                    }
                    // The locks every checkout and order of the day contend
                    // for (the product rows, the day's counter) are taken last,
                    // so they are held for the fewest statements.
                    reserve_for(conn, &plan.order, window).await?;
                    let order =
                        insert_numbered_order(conn, &plan.order, OrderStatus::PendingPayment)
                            .await?;
                    let checkout = row
                        .into_domain(&order, Some(new.claim))
                        .map_err(|e| TxError::Rule(e.into()))?;
                    Ok((checkout, order))
                },
            )
            .await;
        result.map_err(|e| match (e, planned) {
            (TxError::Rule(e), _) => e,
            (TxError::Database(e), Some(order)) => placing_error(e, &order).into(),
            (TxError::Database(e), None) => {
                crate::errors::unexpected(e, "checking a basket out").into()
            }
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(order_id = %update.order_id, to = %update.to))]
    async fn record(&self, update: CheckoutUpdate) -> anyhow::Result<Option<(Checkout, Order)>> {
        let mut conn = checkout(&self.pool).await?;
        let id = update.order_id;
        // One statement per row touched: this transaction is on the request's
        // critical path (after the payment, before the answer).
        let result = conn
            .transaction(
                async |conn| -> Result<Option<(Checkout, Order)>, TxError<anyhow::Error>> {
                    let progressed = update.from != update.to;
                    let failing = update.to == CheckoutState::PaymentFailed && progressed;
                    // Lock order: the basket first, as in `begin` (only a failing
                    // step writes it).
                    let basket = if failing {
                        let basket_id: Option<Uuid> = checkouts::table
                            .find(id.as_uuid())
                            .select(checkouts::basket_id)
                            .first(conn)
                            .await
                            .optional()?;
                        let Some(basket_id) = basket_id else {
                            return Ok(None);
                        };
                        load_basket(conn, BasketId::from_uuid(basket_id), Read::ForUpdate).await?
                    } else {
                        None
                    };
                    let (keep_count, add_attempt) = if progressed { (0, 0) } else { (1, 1) };
                    let row: Option<CheckoutRow> = diesel::update(
                        checkouts::table
                            .filter(checkouts::order_id.eq(id.as_uuid()))
                            .filter(checkouts::state.eq(update.from.as_str()))
                            .filter(checkouts::claim_token.eq(update.claim.as_uuid())),
                    )
                    .set((
                        CheckoutStep::of(&update),
                        // Progress starts the count of fruitless attempts afresh.
                        checkouts::attempts.eq(checkouts::attempts * keep_count + add_attempt),
                    ))
                    .returning(CheckoutRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let order_row: OrderRow = diesel::update(orders::table.find(id.as_uuid()))
                        .set((
                            OrderStep::of(&update),
                            orders::version.eq(orders::version + 1),
                        ))
                        .returning(OrderRow::as_returning())
                        .get_result(conn)
                        .await?;
                    let lines = lines_of(conn, id).await?;
                    let order = crate::orders::assemble(order_row, lines).map_err(TxError::Rule)?;
                    if failing {
                        move_stock(conn, &StockMoves::release(order.lines()), update.at).await?;
                        let reopened = basket
                            .map(StoredBasket::into_domain)
                            .transpose()
                            .map_err(TxError::Rule)?
                            .and_then(|b| b.reopened(update.at, update.basket_ttl));
                        if let Some(reopened) = reopened {
                            let stored = StoredBasket::of(&reopened).map_err(TxError::Rule)?;
                            store_basket_row(conn, &stored).await?;
                        }
                    }
                    if let Some(target) = target_status(update.to) {
                        diesel::update(
                            outbox::table
                                .filter(outbox::order_id.eq(id.as_uuid()))
                                .filter(outbox::kind.eq(UPSTREAM_ORDER_STATUS))
                                .filter(outbox::status.eq("waiting")),
                        )
                        .set((
                            outbox::status.eq("ready"),
                            outbox::target_status.eq(target),
                            outbox::next_attempt_at.eq(update.at),
                        ))
                        .execute(conn)
                        .await?;
                    }
                    let checkout = row
                        .into_domain(&order, Some(update.claim))
                        .map_err(TxError::Rule)?;
                    Ok(Some((checkout, order)))
                },
            )
            .await;
        result.map_err(|e| e.into_domain("recording a checkout step"))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        claim: ClaimToken,
    ) -> anyhow::Result<Vec<(Checkout, Order)>> {
        let mut conn = checkout(&self.pool).await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .transaction(async |conn| -> QueryResult<Vec<CheckoutRow>> {
                let due: Vec<Uuid> = checkouts::table
                    .filter(checkouts::state.ne_all(settled()))
                    .filter(checkouts::next_attempt_at.le(now))
                    .filter(
                        checkouts::claimed_until
                            .is_null()
                            .or(checkouts::claimed_until.le(now)),
                    )
                    .order(checkouts::next_attempt_at)
                    .limit(limit)
                    .select(checkouts::order_id)
                    .for_update()
                    .skip_locked()
                    .load(conn)
                    .await?;
                diesel::update(checkouts::table.filter(checkouts::order_id.eq_any(&due)))
                    .set(take_over(claim.as_uuid(), lease_until))
                    .returning(CheckoutRow::as_returning())
                    .get_results(conn)
                    .await
            })
            .await
            .doing("claiming due checkouts")?;
        with_orders(&mut conn, rows, Some(claim)).await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn claim_one(
        &self,
        order_id: OrderId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        claim: ClaimToken,
    ) -> anyhow::Result<Option<(Checkout, Order)>> {
        let mut conn = checkout(&self.pool).await?;
        let id = order_id.as_uuid();
        let row = conn
            .transaction(async |conn| -> QueryResult<Option<CheckoutRow>> {
                let claimed = diesel::update(
                    checkouts::table
                        .filter(checkouts::order_id.eq(id))
                        .filter(checkouts::state.ne_all(settled()))
                        .filter(
                            checkouts::claimed_until
                                .is_null()
                                .or(checkouts::claimed_until.le(now)),
                        ),
                )
                .set(take_over(claim.as_uuid(), lease_until))
                .returning(CheckoutRow::as_returning())
                .get_result(conn)
                .await
                .optional()?;
                match claimed {
                    Some(row) => Ok(Some(row)),
                    None => checkouts::table
                        .find(id)
                        .select(CheckoutRow::as_select())
                        .first(conn)
                        .await
                        .optional(),
                }
            })
            .await
            .doing("claiming a checkout")?;
        let found = with_orders(&mut conn, row.into_iter().collect(), Some(claim)).await?;
        Ok(found.into_iter().next())
    }
}

/// What claiming a free or expired checkout writes: the new claim, and whether
/// an attempt was interrupted. Recording a step gives its claim up, so a claim
/// still on the row is an earlier attempt that ended without recording its
/// outcome, after which the payment may have been sent: the row keeps that
/// for good (a checkout that may have charged is never given up). The flag is
/// written by the takeover, off the checkout's critical path.
#[diesel::dsl::auto_type]
fn take_over(claim: Uuid, lease_until: DateTime<Utc>) -> _ {
    (
        checkouts::claim_token.eq(claim),
        checkouts::claimed_until.eq(lease_until),
        checkouts::interrupted.eq(checkouts::interrupted.or(checkouts::claim_token.is_not_null())),
    )
}

/// The states of settled checkouts: no worker takes them up.
fn settled() -> [&'static str; 2] {
    [
        CheckoutState::Paid.as_str(),
        CheckoutState::PaymentFailed.as_str(),
    ]
}

/// The checkouts of `rows` with their orders, held under `claim` where they
/// carry it.
async fn with_orders(
    conn: &mut diesel_async::AsyncPgConnection,
    rows: Vec<CheckoutRow>,
    claim: Option<ClaimToken>,
) -> anyhow::Result<Vec<(Checkout, Order)>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.order_id).collect();
    let order_rows: Vec<OrderRow> = orders::table
        .filter(orders::id.eq_any(&ids))
        .select(OrderRow::as_select())
        .load(conn)
        .await
        .doing("loading the orders of checkouts")?;
    let orders = with_lines(conn, order_rows).await?;
    rows.into_iter()
        .map(|row| {
            let order = orders
                .iter()
                .find(|o| o.id().as_uuid() == row.order_id)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("checkout {} has no order", row.order_id))?;
            Ok((row.into_domain(&order, claim)?, order))
        })
        .collect()
}

#[async_trait]
impl Outbox for PgCheckoutStore {
    #[tracing::instrument(level = "debug", skip(self))]
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        claim: ClaimToken,
    ) -> anyhow::Result<Vec<OutboxDelivery>> {
        let mut conn = checkout(&self.pool).await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .transaction(
                async |conn| -> QueryResult<Vec<(Uuid, Uuid, Option<String>, i32)>> {
                    let due: Vec<Uuid> = outbox::table
                        .filter(outbox::status.eq("ready"))
                        .filter(outbox::next_attempt_at.le(now))
                        .filter(
                            outbox::claimed_until
                                .is_null()
                                .or(outbox::claimed_until.le(now)),
                        )
                        .order(outbox::next_attempt_at)
                        .limit(limit)
                        .select(outbox::id)
                        .for_update()
                        .skip_locked()
                        .load(conn)
                        .await?;
                    diesel::update(outbox::table.filter(outbox::id.eq_any(&due)))
                        .set((
                            outbox::claim_token.eq(claim.as_uuid()),
                            outbox::claimed_until.eq(lease_until),
                        ))
                        .returning((
                            outbox::id,
                            outbox::order_id,
                            outbox::target_status,
                            outbox::attempts,
                        ))
                        .get_results(conn)
                        .await
                },
            )
            .await
            .doing("claiming due outbox rows")?;
        rows.into_iter()
            .map(|(id, order_id, target, attempts)| {
                let status = match target.as_deref() {
                    Some("completed") => UpstreamOrderStatus::Completed,
                    Some("failed") => UpstreamOrderStatus::Failed,
                    other => anyhow::bail!("outbox row {id} holds the target {other:?}"),
                };
                Ok(OutboxDelivery {
                    id,
                    order_id: OrderId::from_uuid(order_id),
                    status,
                    attempts: u32::try_from(attempts)?,
                    claim,
                })
            })
            .collect()
    }

    async fn delivered(
        &self,
        id: Uuid,
        claim: ClaimToken,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        self.after_attempt(id, claim, Attempt::Delivered(at)).await
    }

    async fn retry_later(
        &self,
        id: Uuid,
        claim: ClaimToken,
        error: String,
        next_attempt_at: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        self.after_attempt(
            id,
            claim,
            Attempt::Failed {
                error,
                next_attempt_at,
            },
        )
        .await
    }

    async fn abandon(
        &self,
        id: Uuid,
        claim: ClaimToken,
        error: String,
        at: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        self.after_attempt(id, claim, Attempt::Abandoned { error, at })
            .await
    }

    async fn backlog(&self) -> anyhow::Result<OutboxBacklog> {
        let mut conn = checkout(&self.pool).await?;
        let (pending, oldest): (i64, Option<DateTime<Utc>>) = outbox::table
            .filter(outbox::status.eq_any(["waiting", "ready"]))
            .select((
                diesel::dsl::count_star(),
                diesel::dsl::min(outbox::created_at),
            ))
            .first(&mut conn)
            .await
            .doing("measuring the outbox")?;
        Ok(OutboxBacklog {
            pending: u64::try_from(pending)?,
            oldest_pending_since: oldest,
        })
    }
}

/// How a delivery attempt ended.
enum Attempt {
    Delivered(DateTime<Utc>),
    Failed {
        error: String,
        next_attempt_at: DateTime<Utc>,
    },
    Abandoned {
        error: String,
        at: DateTime<Utc>,
    },
}

impl PgCheckoutStore {
    /// Records a delivery attempt on the outbox row, if it still carries `claim`
    /// (giving the claim up), and, in the same transaction, on its order's
    /// fulfilment (the status once delivered or given up, the attempts always),
    /// so the order shows how its completion upstream goes. `false` when the
    /// row no longer carries the claim: nothing is written.
    async fn after_attempt(
        &self,
        id: Uuid,
        claim: ClaimToken,
        attempt: Attempt,
    ) -> anyhow::Result<bool> {
        let mut conn = checkout(&self.pool).await?;
        conn.transaction(async |conn| -> QueryResult<bool> {
            let released = diesel::update(
                outbox::table
                    .filter(outbox::id.eq(id))
                    .filter(outbox::claim_token.eq(claim.as_uuid())),
            )
            .set((
                outbox::claim_token.eq(None::<Uuid>),
                outbox::claimed_until.eq(None::<DateTime<Utc>>),
            ))
            .execute(conn)
            .await?;
            if released == 0 {
                return Ok(false);
            }
            let row = outbox::table.find(id);
            let (order_id, attempts, settled): (Uuid, i32, Option<(String, DateTime<Utc>)>) =
                match attempt {
                    Attempt::Delivered(at) => {
                        let (order_id, attempts, target): (Uuid, i32, Option<String>) =
                            diesel::update(row)
                                .set((
                                    outbox::status.eq("delivered"),
                                    outbox::attempts.eq(outbox::attempts + 1),
                                    outbox::delivered_at.eq(at),
                                    outbox::next_attempt_at.eq(None::<DateTime<Utc>>),
                                ))
                                .returning((
                                    outbox::order_id,
                                    outbox::attempts,
                                    outbox::target_status,
                                ))
                                .get_result(conn)
                                .await?;
                        (order_id, attempts, target.map(|t| (t, at)))
                    }
                    Attempt::Failed {
                        error,
                        next_attempt_at,
                    } => {
                        let (order_id, attempts) = diesel::update(row)
                            .set((
                                outbox::attempts.eq(outbox::attempts + 1),
                                outbox::last_error.eq(error),
                                outbox::next_attempt_at.eq(next_attempt_at),
                            ))
                            .returning((outbox::order_id, outbox::attempts))
                            .get_result(conn)
                            .await?;
                        (order_id, attempts, None)
                    }
                    Attempt::Abandoned { error, at } => {
                        let (order_id, attempts) = diesel::update(row)
                            .set((
                                outbox::status.eq("abandoned"),
                                outbox::attempts.eq(outbox::attempts + 1),
                                outbox::last_error.eq(error),
                                outbox::next_attempt_at.eq(None::<DateTime<Utc>>),
                            ))
                            .returning((outbox::order_id, outbox::attempts))
                            .get_result(conn)
                            .await?;
                        (order_id, attempts, Some(("abandoned".to_owned(), at)))
                    }
                };
            let order = orders::table.find(order_id);
            match settled {
                Some((status, at)) => {
                    diesel::update(order)
                        .set((
                            orders::fulfillment_status.eq(status),
                            orders::fulfillment_attempts.eq(attempts),
                            orders::version.eq(orders::version + 1),
                            orders::updated_at.eq(at),
                        ))
                        .execute(conn)
                        .await?
                }
                None => {
                    diesel::update(order)
                        .set((
                            orders::fulfillment_attempts.eq(attempts),
                            orders::version.eq(orders::version + 1),
                        ))
                        .execute(conn)
                        .await?
                }
            };
            Ok(true)
        })
        .await
        .doing("recording a delivery attempt")
    }
}
