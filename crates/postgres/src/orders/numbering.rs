//! Order numbers: the day's running number, taken in the statement that writes the
//! order.

use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Date, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ordo_domain::orders::{NewOrder, OrderStatus};

use super::rows::OrderLineRow;
use crate::prebuilt::{Bind, PrebuiltRaw, raw_statement};

type NumberedBinds = (
    Bind<Date, chrono::NaiveDate>,
    (
        Bind<SqlUuid, uuid::Uuid>,
        (
            Bind<SqlUuid, uuid::Uuid>,
            (
                Bind<Timestamptz, chrono::DateTime<chrono::Utc>>,
                (
                    Bind<BigInt, i64>,
                    (
                        Bind<Text, String>,
                        (
                            Bind<Nullable<Text>, Option<String>>,
                            (
                                Bind<Timestamptz, chrono::DateTime<chrono::Utc>>,
                                (
                                    Bind<Array<Integer>, Vec<i32>>,
                                    (
                                        Bind<Array<SqlUuid>, Vec<uuid::Uuid>>,
                                        (
                                            Bind<Array<Text>, Vec<String>>,
                                            (
                                                Bind<Array<Text>, Vec<String>>,
                                                (
                                                    Bind<Array<Integer>, Vec<i32>>,
                                                    (
                                                        Bind<Array<BigInt>, Vec<i64>>,
                                                        (
                                                            Bind<Array<Bool>, Vec<bool>>,
                                                            Bind<Text, &'static str>,
                                                        ),
                                                    ),
                                                ),
                                            ),
                                        ),
                                    ),
                                ),
                            ),
                        ),
                    ),
                ),
            ),
        ),
    ),
);

raw_statement! {
    /// [`INSERT_NUMBERED_ORDER`], prepared once per connection (as `sql_query` it
    /// was prepared on every order, a round trip of its own).
    InsertNumberedOrder, NumberedBinds = INSERT_NUMBERED_ORDER
}

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
    let numbered: Numbered = PrebuiltRaw::<InsertNumberedOrder>::new((
        Bind::new(order.created_at.date_naive()),
        (
            Bind::new(order.id.as_uuid()),
            (
                Bind::new(order.customer_id.as_uuid()),
                (
                    Bind::new(order.scheduled_at),
                    (
                        Bind::new(order.total.minor()),
                        (
                            Bind::new(order.total.currency().as_str().to_owned()),
                            (
                                Bind::new(order.note.as_ref().map(|n| n.as_str().to_owned())),
                                (
                                    Bind::new(order.created_at),
                                    (
                                        Bind::new(lines.iter().map(|l| l.line_no).collect()),
                                        (
                                            Bind::new(lines.iter().map(|l| l.product_id).collect()),
                                            (
                                                Bind::new(
                                                    lines.iter().map(|l| l.sku.clone()).collect(),
                                                ),
                                                (
                                                    Bind::new(
                                                        lines
                                                            .iter()
                                                            .map(|l| l.name.clone())
                                                            .collect(),
                                                    ),
                                                    (
                                                        Bind::new(
                                                            lines
                                                                .iter()
                                                                .map(|l| l.quantity)
                                                                .collect(),
                                                        ),
                                                        (
                                                            Bind::new(
                                                                lines
                                                                    .iter()
                                                                    .map(|l| l.unit_price_minor)
                                                                    .collect(),
                                                            ),
                                                            (
                                                                Bind::new(
                                                                    lines
                                                                        .iter()
                                                                        .map(|l| l.reserves_stock)
                                                                        .collect(),
                                                                ),
                                                                Bind::new(status.as_str()),
                                                            ),
                                                        ),
                                                    ),
                                                ),
                                            ),
                                        ),
                                    ),
                                ),
                            ),
                        ),
                    ),
                ),
            ),
        ),
    ))
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
