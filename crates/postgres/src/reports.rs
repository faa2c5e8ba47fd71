//! The reports' queries.
//!
//! Sales are the orders that count as a sale (`status IN ('placed', 'paid')`,
//! [`OrderStatus::counts_as_sale`](ordo_domain::orders::OrderStatus::counts_as_sale)) scheduled within the period: the same text in
//! every statement and in the predicate of the partial index `orders_sales_idx`
//! (migration `2026-11-24-000400_report_indexes`), so the planner can read a period as
//! one range of that index. Every figure is added up before anything is joined to
//! it: an order joins its one customer and its own lines, products and spellings
//! join already aggregated rows, and two aggregates of lines (sold and reserved)
//! are never joined to each other's rows, so no join multiplies a sum.
//!
//! Cities are compared trimmed and lower-cased by Unicode rules: the cluster's
//! default collation is `C`, whose `lower()` leaves non-ASCII letters alone, so
//! the comparison names the ICU root collation (`"und-x-icu"`, present in every
//! PostgreSQL built with ICU, as the usual packages and images are).
//!
//! **The daily rollup.** The city, stock and monthly reports read the sales of
//! the whole UTC days of a period from `sales_daily_city` / `sales_daily`
//! (migration `2026-11-25-000400_sales_rollup`) when the day is clean, and from
//! the orders for the partial days at the period's ends and for the days listed
//! in `sales_dirty_days` (changed since their rollup, or never rolled up):
//! `raw_ranges` is those instants, a handful of ranges of `orders_sales_idx`.
//! Both halves are read in one statement, so in one snapshot: a day is either
//! clean with its rollup rows, or dirty and read from the orders. The city
//! rollup holds a row per day, currency, city key (folded as below) and
//! product, not far fewer than the lines of a day, but read as one range of a
//! narrow table instead of one index probe per order; `sales_daily` (no city)
//! is far smaller.
//!
//! **`OFFSET 0`.** The lines of the orders read from the orders are read order by
//! order from `order_lines_report_idx` (an index-only probe per order), inside a
//! `LATERAL` subquery that `OFFSET 0` keeps the planner from flattening into a
//! plain join. Flattened, it estimates a hash join over *every* line cheaper
//! (random page cost 4 against sequential 1, as for disks), and reads a table
//! that grows with all history to answer about a day of it.
//!
//! The plan of the largest, sales per city, for the last 30 days (shape as
//! `tests/reports.rs` prints it on synthetic sales, which fails if a report
//! reads every order or never the rollup):
//!
//! ```text
//! Sort
//!   CTE days  ->  Result                                   (whole days lo..hi)
//!   CTE spellings  ->  HashAggregate (city as stored)  ->  Seq Scan on customers
//!   ->  Hash Join / Merge Join (names, products)
//!         ->  HashAggregate (city_key, product)
//!               ->  Append
//!                     ->  Nested Loop Anti Join                    (clean days)
//!                           ->  Bitmap Heap Scan on sales_daily_city s
//!                                 ->  Bitmap Index Scan on sales_daily_city_pkey
//!                                       Index Cond: ((day >= days.lo) AND (day < days.hi))
//!                           ->  Seq Scan on sales_dirty_days d
//!                     ->  Hash Join (spellings)
//!                           ->  HashAggregate (city as stored, product)  (raw ranges)
//!                                 ->  Nested Loop
//!                                       ->  Append (head, tail, dirty days)
//!                                       ->  Index Only Scan using orders_sales_idx on orders o
//!                                             Index Cond: ((scheduled_at >= rr.start) AND (scheduled_at < rr.stop))
//!                                       ->  Index Scan using customers_pkey on customers c
//!                                       ->  Index Only Scan using order_lines_report_idx on order_lines l
//! ```

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{
    BigInt, Bool, Integer, Nullable, SmallInt, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::RunQueryDsl;
use ordo_domain::Currency;
use ordo_domain::activity::{HitPrincipal, PrincipalKind};
use ordo_domain::catalog::ProductId;
use ordo_domain::customers::CustomerId;
use ordo_domain::reports::{
    CitySales, CustomerRanking, CustomerSales, MonthSales, MonthlySales, PrincipalHour,
    ProductUnits, ReportLimit, ReportPeriod, ReportQueries, StockLine, YearMonth,
};
use uuid::Uuid;

use crate::errors::Doing;
use crate::pool::{PgPool, checkout};

/// [`ReportQueries`] over PostgreSQL.
#[derive(Clone)]
pub struct PgReportQueries {
    pool: PgPool,
}

impl std::fmt::Debug for PgReportQueries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgReportQueries").finish_non_exhaustive()
    }
}

impl PgReportQueries {
    /// Queries using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// The customers with the most purchases: `$1`–`$2` the period, `$3` the currency,
/// `$4` the limit, `$5` true to rank by orders (else by spend). A customer's
/// orders are counted and summed on the sales index alone; only the `$4` winners
/// are joined to their customer rows.
pub const TOP_CUSTOMERS: &str = "\
WITH sales AS (
    SELECT o.customer_id, count(*) AS orders, sum(o.total_minor) AS spend
    FROM orders o
    WHERE o.status IN ('placed', 'paid')
      AND o.scheduled_at >= $1 AND o.scheduled_at < $2 AND o.currency = $3
    GROUP BY o.customer_id
    ORDER BY CASE WHEN $5 THEN count(*) END DESC, spend DESC, orders DESC, o.customer_id
    LIMIT $4
)
SELECT s.customer_id, c.name, btrim(c.city) AS city, s.orders,
       s.spend::bigint AS spend_minor
FROM sales s
JOIN customers c ON c.id = s.customer_id
ORDER BY CASE WHEN $5 THEN s.orders END DESC, s.spend DESC, s.orders DESC, s.customer_id";

/// The start of a sales statement over the period `$1`–`$2` (the caller goes on
/// with `, name AS (…)`): `days` the whole UTC days of the period (`lo` to `hi`,
/// excluded), which the rollup may answer for, and `raw_ranges` the instants the
/// orders themselves must answer for: the partial days at either end and each
/// whole day whose sales changed since it was rolled up (or never were).
macro_rules! sales_period_ctes {
    () => {
        "\
WITH days AS (
    SELECT b.lo, greatest(b.hi, b.lo) AS hi
    FROM (
        SELECT ((($1::timestamptz - interval '1 microsecond') AT TIME ZONE 'UTC')::date + 1) AS lo,
               ($2::timestamptz AT TIME ZONE 'UTC')::date AS hi
    ) b
), raw_ranges AS (
    SELECT r.start, r.stop
    FROM days, LATERAL (
        SELECT $1::timestamptz AS start, least($2::timestamptz, days.lo::timestamp AT TIME ZONE 'UTC') AS stop
        UNION ALL
        SELECT greatest($1::timestamptz, days.hi::timestamp AT TIME ZONE 'UTC'), $2::timestamptz
        UNION ALL
        SELECT d.day::timestamp AT TIME ZONE 'UTC', (d.day + 1)::timestamp AT TIME ZONE 'UTC'
        FROM sales_dirty_days d
        WHERE d.day >= days.lo AND d.day < days.hi
    ) r
    WHERE r.start < r.stop
)"
    };
}

/// The rows of a rollup table `$t` (alias `s`) for the clean whole days of the
/// period (the caller adds its own conditions with `AND …`).
macro_rules! rolled_up_days {
    ($t:literal) => {
        concat!(
            "FROM days JOIN ",
            $t,
            " s ON s.day >= days.lo AND s.day < days.hi
        WHERE NOT EXISTS (SELECT 1 FROM sales_dirty_days d WHERE d.day = s.day)"
        )
    };
}

/// The sales of `raw_ranges` read from the orders (alias `o`) and their lines
/// (alias `l`, read per order from `order_lines_report_idx`: see the module
/// note on `OFFSET 0`), after `$join` (another table joined to the order);
/// the caller adds its own conditions with `AND …`.
macro_rules! raw_sales_lines {
    ($join:literal) => {
        concat!(
            "FROM raw_ranges rr
        JOIN orders o ON o.scheduled_at >= rr.start AND o.scheduled_at < rr.stop
        ",
            $join,
            "
        CROSS JOIN LATERAL (
            SELECT l.product_id, l.quantity, l.unit_price_minor
            FROM order_lines l
            WHERE l.order_id = o.id
            OFFSET 0
        ) l
        WHERE o.status IN ('placed', 'paid')"
        )
    };
}

/// Units and revenue per city and product: `$1`–`$2` the period, `$3` the
/// currency. A city's name is the trimmed spelling most of its customers use
/// (ties: the first in byte order).
///
/// The clean whole days come from `sales_daily_city`, already by city key. The
/// rest, read from the orders, is added up per city *as stored* (a plain byte
/// comparison) and product first; the Unicode case folding, far dearer, is then
/// done once per distinct spelling (a few dozen), not once per line or customer.
/// Each order's lines are read by `order_lines_report_idx` (see the module note
/// on `OFFSET 0`).
pub const SALES_BY_CITY: &str = concat!(
    sales_period_ctes!(),
    ", spellings AS (
    SELECT city AS stored, lower(btrim(city) COLLATE \"und-x-icu\") AS city_key,
           btrim(city) AS spelling, count(*) AS customers
    FROM customers
    GROUP BY city
), names AS (
    SELECT DISTINCT ON (city_key) city_key, spelling
    FROM (
        SELECT city_key, spelling, sum(customers) AS customers
        FROM spellings
        GROUP BY 1, 2
    ) by_spelling
    ORDER BY city_key, customers DESC, spelling COLLATE \"C\"
), sold AS (
    SELECT c.city AS stored, l.product_id,
           sum(l.quantity) AS quantity, sum(l.quantity::bigint * l.unit_price_minor) AS revenue
        ",
    raw_sales_lines!("JOIN customers c ON c.id = o.customer_id"),
    " AND o.currency = $3
    GROUP BY 1, 2
), by_city AS (
    SELECT city_key, product_id, sum(quantity) AS quantity, sum(revenue) AS revenue
    FROM (
        SELECT s.city_key, s.product_id, s.units AS quantity, s.revenue_minor AS revenue
        ",
    rolled_up_days!("sales_daily_city"),
    " AND s.currency = $3
        UNION ALL
        SELECT sp.city_key, s.product_id, s.quantity, s.revenue
        FROM sold s
        JOIN spellings sp ON sp.stored = s.stored
    ) sales
    GROUP BY 1, 2
)
SELECT n.spelling AS city, p.id AS product_id, p.sku, p.name,
       b.quantity::bigint AS quantity, b.revenue::bigint AS revenue_minor
FROM by_city b
JOIN names n ON n.city_key = b.city_key
JOIN products p ON p.id = b.product_id
ORDER BY b.city_key, b.quantity DESC, p.sku"
);

/// Every product with tracked stock: `$1`–`$2` the window of `sold_30d`. Units
/// sold and units reserved are each added up per product before they meet the
/// product row; each order's lines are read by `order_lines_report_idx`
/// (see the module note on `OFFSET 0`).
pub const STOCK: &str = concat!(
    sales_period_ctes!(),
    ", sold AS (
    SELECT product_id, sum(units) AS units
    FROM (
        SELECT s.product_id, s.units
        ",
    rolled_up_days!("sales_daily"),
    "
        UNION ALL
        SELECT l.product_id, l.quantity
        ",
    raw_sales_lines!(""),
    "
    ) sales
    GROUP BY product_id
), reserved AS (
    SELECT l.product_id, sum(l.quantity) AS units
    FROM orders o
    CROSS JOIN LATERAL (
        SELECT l.product_id, l.quantity FROM order_lines l
        WHERE l.order_id = o.id AND l.reserves_stock
        OFFSET 0
    ) l
    WHERE o.status = 'pending_payment'
    GROUP BY l.product_id
)
SELECT p.id AS product_id, p.sku, p.name, p.stock,
       coalesce(r.units, 0)::bigint AS reserved,
       coalesce(s.units, 0)::bigint AS sold_30d,
       coalesce(p.stock <= p.low_stock_threshold, false) AS low_stock
FROM products p
LEFT JOIN sold s ON s.product_id = p.id
LEFT JOIN reserved r ON r.product_id = p.id
WHERE p.stock IS NOT NULL
ORDER BY p.sku"
);

/// Units and revenue per month, and units per product: `$1`–`$2` the period, `$3`
/// the currency. The lines are read once, added up per month and product; the
/// months come from `generate_series` (UTC calendar months, none for an empty
/// period) so that a month without a sale is a row of zeros. Rows of kind `m` are
/// the months in order, rows of kind `p` the products.
pub const MONTHLY_SALES: &str = concat!(
    sales_period_ctes!(),
    ", sold AS MATERIALIZED (
    SELECT date_trunc('month', day::timestamp) AS month, product_id,
           sum(units) AS units, sum(revenue) AS revenue
    FROM (
        SELECT s.day, s.product_id, s.units, s.revenue_minor AS revenue
        ",
    rolled_up_days!("sales_daily"),
    " AND s.currency = $3
        UNION ALL
        SELECT (o.scheduled_at AT TIME ZONE 'UTC')::date, l.product_id, l.quantity,
               l.quantity::bigint * l.unit_price_minor
        ",
    raw_sales_lines!(""),
    " AND o.currency = $3
    ) sales
    GROUP BY 1, 2
), months AS (
    SELECT generate_series(
        date_trunc('month', $1 AT TIME ZONE 'UTC'),
        date_trunc('month', ($2 - interval '1 microsecond') AT TIME ZONE 'UTC'),
        interval '1 month') AS month
    WHERE $1 < $2
)
SELECT 'm' AS kind, m.month AS month_start,
       extract(year FROM m.month)::int AS year, extract(month FROM m.month)::smallint AS month,
       NULL::uuid AS product_id, NULL::text AS sku,
       coalesce(sum(s.units), 0)::bigint AS units,
       coalesce(sum(s.revenue), 0)::bigint AS revenue_minor
FROM months m
LEFT JOIN sold s ON s.month = m.month
GROUP BY m.month
UNION ALL
SELECT 'p', NULL, NULL, NULL, p.id, p.sku, sum(s.units)::bigint, sum(s.revenue)::bigint
FROM sold s
JOIN products p ON p.id = s.product_id
GROUP BY p.id, p.sku
ORDER BY kind, month_start"
);

/// Requests per hour of the busiest principals: `$1`–`$2` the period (hours
/// starting within it), `$3` the number of principals. The principals are ranked
/// on a range of `activity_hourly_hour` (hour, principal_kind); only the `$3`
/// winners are joined to their hours (the primary key, by principal then hour)
/// and to their names: a client's name, a user's e-mail address, neither sealed
/// at rest (a client's e-mail address is, and is not shown).
pub const REQUESTS_PER_HOUR: &str = "\
WITH busiest AS (
    SELECT principal_kind, principal_id, sum(requests) AS total
    FROM activity_hourly
    WHERE hour >= $1 AND hour < $2
    GROUP BY principal_kind, principal_id
    ORDER BY total DESC, principal_kind, principal_id
    LIMIT $3
)
SELECT b.principal_kind, b.principal_id,
       CASE b.principal_kind WHEN 'user' THEN u.email ELSE c.name END AS name,
       h.hour, h.requests
FROM busiest b
JOIN activity_hourly h
  ON h.principal_kind = b.principal_kind AND h.principal_id = b.principal_id
 AND h.hour >= $1 AND h.hour < $2
LEFT JOIN users u ON b.principal_kind = 'user' AND u.id = b.principal_id
LEFT JOIN api_clients c ON b.principal_kind = 'client' AND c.id = b.principal_id
ORDER BY b.total DESC, b.principal_kind, b.principal_id, h.hour";

#[derive(QueryableByName)]
struct CustomerSalesRow {
    #[diesel(sql_type = SqlUuid)]
    customer_id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    city: String,
    #[diesel(sql_type = BigInt)]
    orders: i64,
    #[diesel(sql_type = BigInt)]
    spend_minor: i64,
}

#[derive(QueryableByName)]
struct CitySalesRow {
    #[diesel(sql_type = Text)]
    city: String,
    #[diesel(sql_type = SqlUuid)]
    product_id: Uuid,
    #[diesel(sql_type = Text)]
    sku: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    quantity: i64,
    #[diesel(sql_type = BigInt)]
    revenue_minor: i64,
}

#[derive(QueryableByName)]
struct StockRow {
    #[diesel(sql_type = SqlUuid)]
    product_id: Uuid,
    #[diesel(sql_type = Text)]
    sku: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    stock: i64,
    #[diesel(sql_type = BigInt)]
    reserved: i64,
    #[diesel(sql_type = BigInt)]
    sold_30d: i64,
    #[diesel(sql_type = Bool)]
    low_stock: bool,
}

#[derive(QueryableByName)]
struct MonthlyRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<Integer>)]
    year: Option<i32>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    month: Option<i16>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    product_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    sku: Option<String>,
    #[diesel(sql_type = BigInt)]
    units: i64,
    #[diesel(sql_type = BigInt)]
    revenue_minor: i64,
}

#[derive(QueryableByName)]
struct PrincipalHourRow {
    #[diesel(sql_type = Text)]
    principal_kind: String,
    #[diesel(sql_type = SqlUuid)]
    principal_id: Uuid,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    hour: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    requests: i64,
}

impl MonthlyRow {
    fn add_to(self, sales: &mut MonthlySales) -> anyhow::Result<()> {
        match (
            self.kind.as_str(),
            self.year,
            self.month,
            self.product_id,
            self.sku,
        ) {
            ("m", Some(year), Some(month), None, None) => {
                let month = u32::try_from(month).unwrap_or(0);
                sales.months.push(MonthSales {
                    month: YearMonth::new(year, month).map_err(|e| anyhow::anyhow!("{e:?}"))?,
                    units: self.units,
                    revenue_minor: self.revenue_minor,
                });
            }
            ("p", None, None, Some(product_id), Some(sku)) => sales.products.push(ProductUnits {
                product_id: ProductId::from_uuid(product_id),
                sku,
                units: self.units,
            }),
            (kind, ..) => anyhow::bail!("the monthly sales query returned a malformed {kind} row"),
        }
        Ok(())
    }
}

#[async_trait]
impl ReportQueries for PgReportQueries {
    async fn top_customers(
        &self,
        period: ReportPeriod,
        currency: Currency,
        ranking: CustomerRanking,
        limit: ReportLimit,
    ) -> anyhow::Result<Vec<CustomerSales>> {
        let mut conn = checkout(&self.pool).await?;
        let rows: Vec<CustomerSalesRow> = diesel::sql_query(TOP_CUSTOMERS)
            .bind::<Timestamptz, _>(period.from())
            .bind::<Timestamptz, _>(period.to())
            .bind::<Text, _>(currency.as_str())
            .bind::<BigInt, _>(i64::from(limit.get()))
            .bind::<Bool, _>(ranking == CustomerRanking::Orders)
            .load(&mut conn)
            .await
            .doing("reporting the top customers")?;
        Ok(rows
            .into_iter()
            .map(|r| CustomerSales {
                customer_id: CustomerId::from_uuid(r.customer_id),
                name: r.name,
                city: r.city,
                orders: r.orders,
                spend_minor: r.spend_minor,
            })
            .collect())
    }

    async fn sales_by_city(
        &self,
        period: ReportPeriod,
        currency: Currency,
    ) -> anyhow::Result<Vec<CitySales>> {
        let mut conn = checkout(&self.pool).await?;
        let rows: Vec<CitySalesRow> = diesel::sql_query(SALES_BY_CITY)
            .bind::<Timestamptz, _>(period.from())
            .bind::<Timestamptz, _>(period.to())
            .bind::<Text, _>(currency.as_str())
            .load(&mut conn)
            .await
            .doing("reporting sales per city")?;
        Ok(rows
            .into_iter()
            .map(|r| CitySales {
                city: r.city,
                product_id: ProductId::from_uuid(r.product_id),
                sku: r.sku,
                name: r.name,
                quantity: r.quantity,
                revenue_minor: r.revenue_minor,
            })
            .collect())
    }

    async fn stock(
        &self,
        sold_since: DateTime<Utc>,
        as_of: DateTime<Utc>,
    ) -> anyhow::Result<Vec<StockLine>> {
        let mut conn = checkout(&self.pool).await?;
        let rows: Vec<StockRow> = diesel::sql_query(STOCK)
            .bind::<Timestamptz, _>(sold_since)
            .bind::<Timestamptz, _>(as_of)
            .load(&mut conn)
            .await
            .doing("reporting stock")?;
        Ok(rows
            .into_iter()
            .map(|r| StockLine {
                product_id: ProductId::from_uuid(r.product_id),
                sku: r.sku,
                name: r.name,
                stock: r.stock,
                reserved: r.reserved,
                sold_30d: r.sold_30d,
                low_stock: r.low_stock,
            })
            .collect())
    }

    async fn monthly_sales(
        &self,
        period: ReportPeriod,
        currency: Currency,
    ) -> anyhow::Result<MonthlySales> {
        let mut conn = checkout(&self.pool).await?;
        let rows: Vec<MonthlyRow> = diesel::sql_query(MONTHLY_SALES)
            .bind::<Timestamptz, _>(period.from())
            .bind::<Timestamptz, _>(period.to())
            .bind::<Text, _>(currency.as_str())
            .load(&mut conn)
            .await
            .doing("reporting sales per month")?;
        let mut sales = MonthlySales::default();
        for row in rows {
            row.add_to(&mut sales)?;
        }
        Ok(sales)
    }

    async fn requests_per_hour(
        &self,
        period: ReportPeriod,
        limit: ReportLimit,
    ) -> anyhow::Result<Vec<PrincipalHour>> {
        let mut conn = checkout(&self.pool).await?;
        let rows: Vec<PrincipalHourRow> = diesel::sql_query(REQUESTS_PER_HOUR)
            .bind::<Timestamptz, _>(period.from())
            .bind::<Timestamptz, _>(period.to())
            .bind::<BigInt, _>(i64::from(limit.get()))
            .load(&mut conn)
            .await
            .doing("reporting requests per hour")?;
        rows.into_iter()
            .map(|r| {
                Ok(PrincipalHour {
                    principal: HitPrincipal::new(
                        PrincipalKind::parse(&r.principal_kind)?,
                        r.principal_id,
                    ),
                    name: r.name,
                    hour: r.hour,
                    requests: r.requests,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use ordo_domain::orders::OrderStatus;

    use super::*;

    /// The statuses of a sale as the statements name them.
    const SALE_STATUSES: [&str; 2] = ["placed", "paid"];

    /// The statuses whose lines the stock report counts as reserved.
    const RESERVING_STATUSES: [&str; 1] = ["pending_payment"];

    #[test]
    fn the_statuses_in_the_statements_are_the_domains() {
        let named = |filter: fn(OrderStatus) -> bool| -> Vec<&str> {
            let mut names: Vec<&str> = OrderStatus::ALL
                .into_iter()
                .filter(|s| filter(*s))
                .map(OrderStatus::as_str)
                .collect();
            names.sort_unstable();
            names
        };
        let mut sales = SALE_STATUSES.to_vec();
        sales.sort_unstable();
        assert_eq!(named(OrderStatus::counts_as_sale), sales);
        assert_eq!(
            named(OrderStatus::reserves_unsold_stock),
            RESERVING_STATUSES.to_vec()
        );
        let sale = format!("status IN ('{}', '{}')", SALE_STATUSES[0], SALE_STATUSES[1]);
        for statement in [TOP_CUSTOMERS, SALES_BY_CITY, STOCK, MONTHLY_SALES] {
            assert!(statement.contains(&sale), "{statement}");
        }
        assert!(STOCK.contains(&format!("status = '{}'", RESERVING_STATUSES[0])));
    }
}
