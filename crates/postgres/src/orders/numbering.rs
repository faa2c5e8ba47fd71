//! Order numbers: the day's running number, taken in the statement that writes the
//! order.

use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Date, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_domain::orders::{NewOrder, OrderStatus};

use super::rows::OrderLineRow;

/// Inserts the order in `status` (`placed` from `/v1/orders`, `pending_payment`
/// from checkout) and its lines and assigns its number, in one statement.
///
/// The number comes from a counter row per day, updated inside the order's own
/// transaction: a rolled-back order gives its number back, so numbers stay
/// gapless. That row lock serialises every order of the day until commit, so it is
/// taken in the last statement before `COMMIT`, which also writes the order and its
/// lines: the lock is held for one statement and the commit, nothing else. The
/// counter's CHECK (at most 999 999) makes a full day fail instead of repeating.
pub(crate) async fn insert_numbered(
    conn: &mut AsyncPgConnection,
    order: &NewOrder,
    status: OrderStatus,
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
        .bind::<Text, _>(status.as_str())
        .get_result(conn)
        .await?;
    Ok(numbered.number)
}

/// The statement of [`insert_numbered`]: `$1` the day, `$2` the order id, `$3` the
/// customer, `$4` scheduled_at, `$5` total_minor, `$6` currency, `$7` note, `$8`
/// created_at, `$9`–`$15` the lines as arrays (line_no, product_id, sku, name,
/// quantity, unit_price_minor, reserves_stock), `$16` the status; it returns the number, formatted as
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
           $3, $16, $4, $5, $6, $7, 0, 1, $8, $8
    FROM next
    RETURNING number
), lines AS (
    INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity, unit_price_minor, reserves_stock)
    SELECT $2, l.* FROM unnest($9::int[], $10::uuid[], $11::text[], $12::text[], $13::int[], $14::bigint[], $15::bool[])
        AS l(line_no, product_id, sku, name, quantity, unit_price_minor, reserves_stock)
)
SELECT number FROM inserted";
