//! A customer's schedule: the lock that serialises writes to it and the spacing
//! check made while holding that lock.

use anyhow::Context;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_domain::customers::CustomerId;
use ordo_domain::orders::{
    OrderId, OrderStatus, ScheduledOrder, SpacingConflict, SpacingWindow, find_conflict,
};
use uuid::Uuid;

use crate::errors::TxError;
use crate::schema::orders;

/// Serialises writes to one customer's schedule until the transaction ends, so
/// that the spacing check and the write that follows act as one step even when
/// requests race.
///
/// An advisory lock rather than an exclusion constraint because the spacing window
/// is configuration, not schema: changing it must not need a migration, and an
/// exclusion constraint would also reject legacy rows the moment the window grew.
pub(crate) async fn lock_customer_schedule(
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
///
/// # Errors
/// `Rule` with the conflict; `Database`; a stored status Ordo never writes is an
/// error too (as `Rule(E::from(anyhow))`), never silently read as `placed`.
pub(crate) async fn check_spacing<E>(
    conn: &mut AsyncPgConnection,
    customer: CustomerId,
    at: DateTime<Utc>,
    exclude: Option<OrderId>,
    window: SpacingWindow,
) -> Result<(), TxError<E>>
where
    E: From<SpacingConflict> + From<anyhow::Error>,
{
    let (from, to) = window.neighbourhood(at);
    let nearby: Vec<(Uuid, DateTime<Utc>, String)> = orders::table
        .filter(orders::customer_id.eq(customer.as_uuid()))
        .filter(orders::status.ne(OrderStatus::Cancelled.as_str()))
        .filter(orders::scheduled_at.gt(from))
        .filter(orders::scheduled_at.lt(to))
        .select((orders::id, orders::scheduled_at, orders::status))
        .load(conn)
        .await?;
    let nearby = nearby
        .into_iter()
        .map(|(id, scheduled_at, status)| {
            Ok(ScheduledOrder {
                id: OrderId::from_uuid(id),
                scheduled_at,
                status: OrderStatus::parse(&status)
                    .with_context(|| format!("order {id} holds a status Ordo never writes"))?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|e| TxError::Rule(e.into()))?;
    match find_conflict(at, exclude, &nearby, window) {
        Some(conflict) => Err(TxError::Rule(
            SpacingConflict {
                conflicting: conflict.id,
                window,
            }
            .into(),
        )),
        None => Ok(()),
    }
}
