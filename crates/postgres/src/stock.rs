//! Stock: every write to `products.stock` goes through this module, whether an
//! order reserves or returns units or staff adjust the count, so both of its
//! bounds hold on every path: never below zero, never above
//! [`StockLevel::MAX`] (10¹² units, so that adding units back cannot overflow).
//! The table's CHECK constraints are the last line of defence behind both.
//!
//! Each function works on a connection the caller holds, usually inside a
//! transaction that also writes other rows (an order, an adjustment record).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_domain::catalog::{
    AdjustStockError, ProductId, StockAdjustment, StockLevel, StockShortage,
};
use ordo_domain::orders::StockMoves;
use uuid::Uuid;

use crate::errors::TxError;
use crate::prebuilt::{Bind, Prebuilt, statement};
use crate::products::ProductRow;
use crate::schema::{products, stock_adjustments};

type UnitsBind = Bind<diesel::sql_types::BigInt, i64>;

statement! {
    /// Takes `$1` units of product `$4` (gives them back when negative), bumping
    /// its version by `$2` and stamping it `$3`, only while its stock stays within
    /// 0 (`stock >= $5`, the units taken) and the bound (`stock <= $6`, the bound
    /// plus the units taken); returns the new stock. Prebuilt, so that an order's
    /// lines reuse one prepared statement instead of preparing it per line.
    TakeStock: diesel::sql_types::BigInt,
        (UnitsBind, (Bind<diesel::sql_types::Integer, i32>,
            (Bind<diesel::sql_types::Timestamptz, DateTime<Utc>>,
                (Bind<diesel::sql_types::Uuid, Uuid>, (UnitsBind, UnitsBind))))) =
        diesel::update(
            products::table
                .filter(products::id.eq(Uuid::nil()))
                .filter(products::stock.ge(0_i64))
                .filter(products::stock.le(0_i64)),
        )
        .set((
            products::stock.eq(products::stock - 0_i64),
            products::version.eq(products::version + 1),
            products::updated_at.eq(DateTime::<Utc>::UNIX_EPOCH),
        ))
        .returning(products::stock.assume_not_null())
}

/// Applies `moves` (decided by the domain) to the stock of the products that track
/// it: one conditional `UPDATE … WHERE stock >= take AND stock - take <= MAX` per
/// product, in id order (`StockMoves` iterates in the same byte order PostgreSQL
/// sorts UUIDs by), so that concurrent writers lock rows in the same order and
/// queue instead of deadlocking. Products that do not track stock are left alone.
///
/// # Errors
/// `Rule(StockShortage)` when a product has fewer units than it must give;
/// `Rule(anyhow)` when returning units would take a product above the bound
/// (possible only after stock was adjusted up while units were reserved).
pub(crate) async fn move_stock<E>(
    conn: &mut AsyncPgConnection,
    moves: &StockMoves,
    at: DateTime<Utc>,
) -> Result<(), TxError<E>>
where
    E: From<StockShortage> + From<anyhow::Error>,
{
    for (product, take) in moves.iter() {
        let id = product.as_uuid();
        let updated: Option<i64> = Prebuilt::<TakeStock>::new((
            Bind::new(take),
            (
                Bind::new(1),
                (
                    Bind::new(at),
                    (
                        Bind::new(id),
                        (
                            Bind::new(take),
                            Bind::new(StockLevel::MAX.saturating_add(take)),
                        ),
                    ),
                ),
            ),
        ))
        .get_result(conn)
        .await
        .optional()?;
        if updated.is_some() {
            continue;
        }
        // Not enough units, too many, or the product does not track stock (any more).
        let available: Option<Option<i64>> = products::table
            .find(id)
            .select(products::stock)
            .first(conn)
            .await
            .optional()?;
        match available {
            Some(Some(available)) if available < take => {
                return Err(TxError::Rule(
                    StockShortage {
                        product_id: product,
                        available,
                    }
                    .into(),
                ));
            }
            Some(Some(available)) => {
                return Err(TxError::Rule(
                    anyhow::anyhow!(
                        "returning {} units would take product {id} from {available} above {} units",
                        -take,
                        StockLevel::MAX
                    )
                    .into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[derive(Debug, Insertable)]
#[diesel(table_name = stock_adjustments)]
struct StockAdjustmentRow<'a> {
    id: Uuid,
    product_id: Uuid,
    delta: i64,
    reason: &'a str,
    stock_after: i64,
    created_at: DateTime<Utc>,
}

/// Adds `adjustment.delta` to product `id`'s stock and records the adjustment.
///
/// # Errors
/// `NotFound`, `NotTracked`, `InsufficientStock` below zero, `Invalid` above
/// [`StockLevel::MAX`].
pub(crate) async fn adjust(
    conn: &mut AsyncPgConnection,
    id: ProductId,
    adjustment: &StockAdjustment,
) -> Result<ProductRow, TxError<AdjustStockError>> {
    // Row lock: concurrent adjustments and orders of this product queue here,
    // so the check below and the write see the same stock.
    let current = products::table
        .find(id.as_uuid())
        .select(products::stock)
        .for_update()
        .first::<Option<i64>>(conn)
        .await
        .optional()?
        .ok_or(TxError::Rule(AdjustStockError::NotFound(id)))?
        .ok_or(TxError::Rule(AdjustStockError::NotTracked(id)))?;
    // Both bounds come from the domain: never below zero, never above
    // StockLevel::MAX (so returning an order's units cannot overflow).
    // |delta| <= StockLevel::MAX, so this cannot overflow.
    let after = current + adjustment.delta.get();
    if after < 0 {
        return Err(TxError::Rule(
            StockShortage {
                product_id: id,
                available: current,
            }
            .into(),
        ));
    }
    if after > StockLevel::MAX {
        return Err(TxError::Rule(AdjustStockError::Invalid {
            field: "delta",
            message: format!("stock would exceed {} units", StockLevel::MAX),
        }));
    }
    let updated = diesel::update(products::table.find(id.as_uuid()))
        .set((
            products::stock.eq(after),
            products::version.eq(products::version + 1),
            products::updated_at.eq(adjustment.at),
        ))
        .returning(ProductRow::as_returning())
        .get_result(conn)
        .await?;
    diesel::insert_into(stock_adjustments::table)
        .values(StockAdjustmentRow {
            id: adjustment.id.as_uuid(),
            product_id: id.as_uuid(),
            delta: adjustment.delta.get(),
            reason: &adjustment.reason,
            stock_after: after,
            created_at: adjustment.at,
        })
        .execute(conn)
        .await?;
    Ok(updated)
}
