//! The reports' queries against a real cluster: every figure of a small, fixed
//! data set computed by hand (the comments of `fixture` and `activity_fixture`
//! show the sums), and the plan of every report on synthetic sales and activity.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use ordo_domain::reports::{
    CustomerRanking, ReportLimit, ReportPeriod, ReportQueries, ReportRequest, ReportService,
    SalesRollup,
};
use ordo_domain::{Clock, Currency};
use ordo_postgres::synthetic::{self, SyntheticActivity, SyntheticSales};
use ordo_postgres::testing::fresh_database;
use ordo_postgres::{PgPool, PgReportQueries, PgSalesRollup};

fn at(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw)
        .expect("an instant")
        .with_timezone(&Utc)
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("a currency")
}

/// Customer `n`'s id; ids order as their numbers do.
fn customer(n: u32) -> String {
    format!("00000000-0000-7000-8000-0000000000c{n}")
}

fn product(n: u32) -> String {
    format!("00000000-0000-7000-8000-0000000000a{n}")
}

/// The first quarter of 2026: January, February (no sales) and March.
fn quarter() -> ReportPeriod {
    ReportPeriod::new(at("2026-01-01T00:00:00Z"), at("2026-04-01T00:00:00Z")).expect("a period")
}

/// Products, customers and orders whose reports are worked out by hand:
///
/// | order | customer (city) | scheduled | status | currency | lines (units × price) |
/// | --- | --- | --- | --- | --- | --- |
/// | 1 | 1 (`Oslo`) | 2026-01-10 | paid | EUR | A-1 2 × 1000, C-3 1 × 5000 → 7000 |
/// | 2 | 1 | 2026-03-05 | placed | EUR | B-2 4 × 250 → 1000 |
/// | 3 | 2 (`  oslo `) | 2026-01-20 | paid | EUR | A-1 1 × 1000 → 1000 |
/// | 4 | 2 | 2026-03-15 | cancelled | EUR | A-1 10 × 1000 |
/// | 5 | 3 (`OSLO`) | 2026-03-20 | paid | EUR | C-3 1 × 5000, B-2 12 × 250 → 8000 |
/// | 6 | 4 (`Bergen`) | 2026-01-05 | payment_failed | EUR | B-2 3 × 250 |
/// | 7 | 4 | 2026-03-01 | pending_payment | EUR | A-1 5, B-2 2 (reserved) |
/// | 8 | 5 (`Århus`) | 2026-03-31 23:59:59 | paid | EUR | B-2 4 × 250 → 1000 |
/// | 9 | 6 (`århus`) | 2026-04-01 00:00:00 | paid | EUR | B-2 100 × 250 (after the quarter) |
/// | 10 | 6 | 2025-12-31 23:59:59 | paid | EUR | A-1 100 × 1000 (before it) |
/// | 11 | 4 | 2026-01-15 | paid | USD | B-2 7 × 250 |
///
/// Customer 7 is in `Oslo` too and has no orders (so `Oslo` is the spelling most
/// Oslo customers use). Products: A-1 (`Filter, "large"`, stock 50, low below
/// 60), B-2 (stock 500, low below 10), C-3 (a service), D-4 (stock 0, no
/// threshold).
async fn fixture(pool: &PgPool) {
    /// A line: product id, units, unit price, whether it took units from stock.
    type Line<'a> = (&'a str, i32, i64, bool);
    /// An order: number, customer, scheduled_at, status, currency, lines.
    type Order<'a> = (u32, u32, &'a str, &'a str, &'a str, &'a [Line<'a>]);
    let mut conn = pool.get().await.expect("a connection");
    let conn: &mut AsyncPgConnection = &mut conn;
    let (a, b, c, d) = (product(1), product(2), product(3), product(4));
    let order = |n: u32| format!("00000000-0000-7000-8000-0000000000{n:02}");
    let mut sql = format!(
        "
INSERT INTO products (id, sku, name, kind, price_minor, currency, stock, low_stock_threshold, created_at, updated_at) VALUES
 ('{a}', 'A-1', 'Filter, \"large\"', 'good', 1000, 'EUR', 50, 60, now(), now()),
 ('{b}', 'B-2', 'Valve', 'good', 250, 'EUR', 500, 10, now(), now()),
 ('{c}', 'C-3', 'Inspection', 'service', 5000, 'EUR', NULL, NULL, now(), now()),
 ('{d}', 'D-4', 'Gasket', 'good', 80, 'EUR', 0, NULL, now(), now());
INSERT INTO customers (id, name, email, email_key, city, created_at, updated_at) VALUES
 ('{c1}', 'Ada', 'c1@example.com', 'c1@example.com', 'Oslo', now(), now()),
 ('{c2}', 'Bo', 'c2@example.com', 'c2@example.com', '  oslo ', now(), now()),
 ('{c3}', 'Cy', 'c3@example.com', 'c3@example.com', 'OSLO', now(), now()),
 ('{c4}', 'Di', 'c4@example.com', 'c4@example.com', 'Bergen', now(), now()),
 ('{c5}', 'Ed, \"the\" buyer', 'c5@example.com', 'c5@example.com', 'Århus', now(), now()),
 ('{c6}', 'Fi', 'c6@example.com', 'c6@example.com', 'århus', now(), now()),
 ('{c7}', 'Gus', 'c7@example.com', 'c7@example.com', 'Oslo', now(), now());
",
        c1 = customer(1),
        c2 = customer(2),
        c3 = customer(3),
        c4 = customer(4),
        c5 = customer(5),
        c6 = customer(6),
        c7 = customer(7),
    );
    let orders: [Order; 11] = [
        (
            1,
            1,
            "2026-01-10T10:00:00Z",
            "paid",
            "EUR",
            &[(&a, 2, 1000, true), (&c, 1, 5000, false)],
        ),
        (
            2,
            1,
            "2026-03-05T10:00:00Z",
            "placed",
            "EUR",
            &[(&b, 4, 250, true)],
        ),
        (
            3,
            2,
            "2026-01-20T10:00:00Z",
            "paid",
            "EUR",
            &[(&a, 1, 1000, true)],
        ),
        (
            4,
            2,
            "2026-03-15T10:00:00Z",
            "cancelled",
            "EUR",
            &[(&a, 10, 1000, false)],
        ),
        (
            5,
            3,
            "2026-03-20T10:00:00Z",
            "paid",
            "EUR",
            &[(&c, 1, 5000, false), (&b, 12, 250, true)],
        ),
        (
            6,
            4,
            "2026-01-05T10:00:00Z",
            "payment_failed",
            "EUR",
            &[(&b, 3, 250, false)],
        ),
        (
            7,
            4,
            "2026-03-01T10:00:00Z",
            "pending_payment",
            "EUR",
            &[(&a, 5, 1000, true), (&b, 2, 250, true)],
        ),
        (
            8,
            5,
            "2026-03-31T23:59:59Z",
            "paid",
            "EUR",
            &[(&b, 4, 250, true)],
        ),
        (
            9,
            6,
            "2026-04-01T00:00:00Z",
            "paid",
            "EUR",
            &[(&b, 100, 250, true)],
        ),
        (
            10,
            6,
            "2025-12-31T23:59:59Z",
            "paid",
            "EUR",
            &[(&a, 100, 1000, true)],
        ),
        (
            11,
            4,
            "2026-01-15T10:00:00Z",
            "paid",
            "USD",
            &[(&b, 7, 250, true)],
        ),
    ];
    for (n, who, scheduled, status, currency, lines) in orders {
        let id = order(n);
        let total: i64 = lines.iter().map(|(_, q, p, _)| i64::from(*q) * p).sum();
        sql.push_str(&format!(
            "INSERT INTO orders (id, number, customer_id, status, scheduled_at, total_minor, currency, created_at, updated_at) \
             VALUES ('{id}', 'ORD-20260101-{n:06}', '{}', '{status}', '{scheduled}', {total}, '{currency}', now(), now());\n",
            customer(who)
        ));
        for (line_no, (product, quantity, price, reserves)) in lines.iter().enumerate() {
            sql.push_str(&format!(
                "INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity, unit_price_minor, reserves_stock) \
                 SELECT '{id}', {}, id, sku, name, {quantity}, {price}, {reserves} FROM products WHERE id = '{product}';\n",
                line_no + 1
            ));
        }
    }
    conn.batch_execute(&sql)
        .await
        .expect("the fixture is stored");
}

async fn queries_with_fixture() -> PgReportQueries {
    queries_and_pool().await.0
}

async fn queries_and_pool() -> (PgReportQueries, PgPool) {
    let db = fresh_database().await.expect("a test database");
    let pool = db.pool(4).expect("a pool");
    fixture(&pool).await;
    (PgReportQueries::new(pool.clone()), pool)
}

#[tokio::test]
async fn top_customers_count_only_sales_of_the_period_in_its_currency_and_break_ties() {
    let queries = queries_with_fixture().await;

    let by_spend = queries
        .top_customers(
            quarter(),
            eur(),
            CustomerRanking::Spend,
            ReportLimit::default(),
        )
        .await
        .expect("a report");
    let by_orders = queries
        .top_customers(
            quarter(),
            eur(),
            CustomerRanking::Orders,
            ReportLimit::default(),
        )
        .await
        .expect("a report");
    let top_two = queries
        .top_customers(
            quarter(),
            eur(),
            CustomerRanking::Spend,
            ReportLimit::parse(2).expect("2"),
        )
        .await
        .expect("a report");

    let rows = |report: &[ordo_domain::reports::CustomerSales]| -> Vec<(String, String, String, i64, i64)> {
        report
            .iter()
            .map(|r| (r.customer_id.to_string(), r.name.clone(), r.city.clone(), r.orders, r.spend_minor))
            .collect()
    };
    let row = |n, name: &str, city: &str, orders, spend| {
        (customer(n), name.to_owned(), city.to_owned(), orders, spend)
    };
    // 1: orders 1 and 2 (7000 + 1000); 3: order 5; 2: order 3 (its order 4 was
    // cancelled); 5: order 8, the last second of the quarter. 4 has no sale in
    // EUR (failed, pending, USD); 6 bought only outside the quarter.
    // Equal spend: more orders first; equal both: the lower id first.
    assert_eq!(
        rows(&by_spend),
        [
            row(1, "Ada", "Oslo", 2, 8000),
            row(3, "Cy", "OSLO", 1, 8000),
            row(2, "Bo", "oslo", 1, 1000),
            row(5, "Ed, \"the\" buyer", "Århus", 1, 1000),
        ]
    );
    assert_eq!(
        rows(&by_orders),
        [
            row(1, "Ada", "Oslo", 2, 8000),
            row(3, "Cy", "OSLO", 1, 8000),
            row(2, "Bo", "oslo", 1, 1000),
            row(5, "Ed, \"the\" buyer", "Århus", 1, 1000),
        ]
    );
    assert_eq!(rows(&top_two), rows(&by_spend)[..2]);
}

#[tokio::test]
async fn ranking_by_orders_puts_the_most_frequent_buyer_first_even_when_others_spent_more() {
    let (queries, pool) = queries_and_pool().await;
    // Up to March 10: customer 1 has orders 1 and 2 (8000), customer 2 order 3
    // (1000), customer 3 none yet; a paid order of customer 5 in February makes
    // them the biggest spender, with one order.
    let period = ReportPeriod::new(at("2026-01-01T00:00:00Z"), at("2026-03-10T00:00:00Z"))
        .expect("a period");
    let mut conn = pool.get().await.expect("a connection");
    let conn: &mut AsyncPgConnection = &mut conn;
    conn.batch_execute(&format!(
        "INSERT INTO orders (id, number, customer_id, status, scheduled_at, total_minor, currency, created_at, updated_at) \
         VALUES ('00000000-0000-7000-8000-0000000000f1', 'ORD-20260101-000099', '{}', 'paid', '2026-02-01T00:00:00Z', 50000, 'EUR', now(), now());",
        customer(5)
    ))
    .await
    .expect("stored");

    let by_orders = queries
        .top_customers(
            period,
            eur(),
            CustomerRanking::Orders,
            ReportLimit::default(),
        )
        .await
        .expect("a report");
    let by_spend = queries
        .top_customers(
            period,
            eur(),
            CustomerRanking::Spend,
            ReportLimit::default(),
        )
        .await
        .expect("a report");

    let ids = |rows: &[ordo_domain::reports::CustomerSales]| -> Vec<(String, i64, i64)> {
        rows.iter()
            .map(|r| (r.customer_id.to_string(), r.orders, r.spend_minor))
            .collect()
    };
    assert_eq!(
        ids(&by_orders),
        [
            (customer(1), 2, 8000),
            (customer(5), 1, 50000),
            (customer(2), 1, 1000),
        ]
    );
    assert_eq!(
        ids(&by_spend),
        [
            (customer(5), 1, 50000),
            (customer(1), 2, 8000),
            (customer(2), 1, 1000),
        ]
    );
}

#[tokio::test]
async fn sales_per_city_join_spellings_of_a_city_and_count_each_line_once() {
    let queries = queries_with_fixture().await;

    let report = queries
        .sales_by_city(quarter(), eur())
        .await
        .expect("a report");

    let rows: Vec<(&str, &str, &str, i64, i64)> = report
        .iter()
        .map(|r| {
            (
                r.city.as_str(),
                r.sku.as_str(),
                r.name.as_str(),
                r.quantity,
                r.revenue_minor,
            )
        })
        .collect();
    // Oslo (customers 1, 2, 3 in three spellings): A-1 2 + 1 = 3 units (3000);
    // B-2 4 + 12 = 16 (4000); C-3 1 + 1 = 2 (10000). Århus (customers 5, 6): B-2 4
    // (order 9 is after the quarter). Bergen bought nothing in EUR. Spelled as
    // most customers spell it (Oslo: two of four); a tie goes to the first
    // spelling in byte order (Århus before århus). Cities in the ICU root order.
    assert_eq!(
        rows,
        [
            ("Århus", "B-2", "Valve", 4, 1000),
            ("Oslo", "B-2", "Valve", 16, 4000),
            ("Oslo", "A-1", "Filter, \"large\"", 3, 3000),
            ("Oslo", "C-3", "Inspection", 2, 10000),
        ]
    );
    assert_eq!(report[1].product_id.to_string(), product(2));
}

#[tokio::test]
async fn stock_adds_sales_and_reservations_up_apart_so_neither_is_multiplied() {
    let queries = queries_with_fixture().await;

    let report = queries
        .stock(at("2026-03-02T00:00:00Z"), at("2026-04-01T00:00:00Z"))
        .await
        .expect("a report");

    let rows: Vec<(&str, i64, i64, i64, bool)> = report
        .iter()
        .map(|r| (r.sku.as_str(), r.stock, r.reserved, r.sold_30d, r.low_stock))
        .collect();
    // 5 reserved by the pending order 7; its sales in the window: none
    // (order 4 was cancelled). B-2: 4 + 12 + 4 sold (orders 2, 5, 8; order 9 is
    // at the window's end), 2 reserved by order 7. C-3 is a service: no stock.
    assert_eq!(
        rows,
        [
            ("A-1", 50, 5, 0, true),
            ("B-2", 500, 2, 20, false),
            ("D-4", 0, 0, 0, false),
        ]
    );
}

struct Fixed(DateTime<Utc>);

impl Clock for Fixed {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

#[tokio::test]
async fn monthly_sales_include_months_without_sales_in_the_average() {
    let queries = queries_with_fixture().await;
    let service = ReportService::new(
        Arc::new(queries),
        Arc::new(Fixed(at("2026-06-01T00:00:00Z"))),
        eur(),
    );

    let report = service
        .monthly_sales(ReportRequest {
            from: Some(quarter().from()),
            to: Some(quarter().to()),
            currency: None,
        })
        .await
        .expect("a report")
        .rows;

    let months: Vec<(String, i64, i64)> = report
        .months
        .iter()
        .map(|m| (m.month.to_string(), m.units, m.revenue_minor))
        .collect();
    // January: orders 1 and 3, 2 + 1 + 1 units (8000). February: nothing.
    // March: orders 2, 5 and 8, 4 + 13 + 4 units (10000). 25 units ÷ 3 months.
    assert_eq!(
        months,
        [
            ("2026-01".to_owned(), 4, 8000),
            ("2026-02".to_owned(), 0, 0),
            ("2026-03".to_owned(), 21, 10000),
        ]
    );
    assert_eq!(report.average_units_per_month, 8.33);
    let by_product: Vec<(&str, f64)> = report
        .by_product
        .iter()
        .map(|p| (p.sku.as_str(), p.avg_units_per_month))
        .collect();
    // B-2: 20 units; A-1: 3; C-3: 2.
    assert_eq!(by_product, [("B-2", 6.67), ("A-1", 1.0), ("C-3", 0.67)]);
}

#[tokio::test]
async fn an_empty_period_has_no_months_and_a_partial_month_counts_whole() {
    let queries = queries_with_fixture().await;
    let instant = at("2026-03-20T10:00:00Z");

    let empty = queries
        .monthly_sales(
            ReportPeriod::new(instant, instant).expect("a period"),
            eur(),
        )
        .await
        .expect("a report");
    let partial = queries
        .monthly_sales(
            ReportPeriod::new(at("2026-03-15T00:00:00Z"), at("2026-03-21T00:00:00Z"))
                .expect("a period"),
            eur(),
        )
        .await
        .expect("a report");

    assert!(empty.months.is_empty() && empty.products.is_empty());
    let months: Vec<(String, i64)> = partial
        .months
        .iter()
        .map(|m| (m.month.to_string(), m.units))
        .collect();
    // Order 5 only (order 4 of the 15th was cancelled).
    assert_eq!(months, [("2026-03".to_owned(), 13)]);
}

/// `sql` with its parameters `$1`, `$2`, … replaced by `values` (SQL literals), as
/// a custom plan sees them.
fn with_values(sql: &str, values: &[&str]) -> String {
    // From the last, so that `$1` never matches the start of `$10`.
    values
        .iter()
        .enumerate()
        .rev()
        .fold(sql.to_owned(), |sql, (i, value)| {
            sql.replace(&format!("${}", i + 1), value)
        })
}

#[tokio::test]
async fn every_report_reads_its_period_through_an_index() {
    #[derive(diesel::QueryableByName)]
    struct PlanLine {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let db = fresh_database().await.expect("a test database");
    let pool = db.pool(2).expect("a pool");
    synthetic::generate(
        &pool,
        SyntheticSales {
            customers: 2_000,
            products: 100,
            orders: 50_000,
            months: 24,
        },
    )
    .await
    .expect("synthetic sales");
    synthetic::generate_activity(
        &pool,
        SyntheticActivity {
            users: 10,
            clients: 40,
            months: 6,
        },
    )
    .await
    .expect("synthetic activity");
    let mut conn = pool.get().await.expect("a connection");
    let conn: &mut AsyncPgConnection = &mut conn;
    let now = Utc::now();
    let instant = |at: DateTime<Utc>| format!("'{}'::timestamptz", at.to_rfc3339());
    let (from, to) = (instant(now - chrono::TimeDelta::days(30)), instant(now));

    let sales_period = [from.as_str(), to.as_str(), "'EUR'"];
    const ROLLUP: Option<&str> = Some("sales_daily");
    for (name, sql, values, indexes, table, rollup) in [
        (
            "sales per city",
            ordo_postgres::SALES_BY_CITY,
            &sales_period[..],
            &["orders_sales_idx", "orders_scheduled_at_idx"][..],
            "orders",
            ROLLUP,
        ),
        (
            "monthly sales",
            ordo_postgres::MONTHLY_SALES,
            &sales_period[..],
            &["orders_sales_idx", "orders_scheduled_at_idx"][..],
            "orders",
            ROLLUP,
        ),
        (
            "top customers",
            ordo_postgres::TOP_CUSTOMERS,
            &[from.as_str(), to.as_str(), "'EUR'", "10", "false"][..],
            &["orders_sales_idx", "orders_scheduled_at_idx"][..],
            "orders",
            None,
        ),
        (
            "stock",
            ordo_postgres::STOCK,
            &[from.as_str(), to.as_str()][..],
            &["orders_sales_idx", "orders_scheduled_at_idx"][..],
            "orders",
            ROLLUP,
        ),
        (
            "requests per hour",
            ordo_postgres::REQUESTS_PER_HOUR,
            &[from.as_str(), to.as_str(), "10"][..],
            &["activity_hourly_hour"][..],
            "activity_hourly",
            None,
        ),
    ] {
        let plan: Vec<PlanLine> =
            diesel::sql_query(format!("EXPLAIN {}", with_values(sql, values)))
                .load(conn)
                .await
                .expect("a plan");
        let plan: Vec<String> = plan.into_iter().map(|l| l.line).collect();
        let plan = plan.join("\n");
        println!("{name}:\n{plan}");
        // A month of two years (of six months of hours) is read through an index
        // on the period's column (the planner picks the partial covering one or
        // the plain one by their sizes and the heap's order), never by reading
        // every row.
        assert!(
            indexes.iter().any(|index| plan.contains(index)),
            "{name}:\n{plan}"
        );
        assert!(
            !plan.contains(&format!("Seq Scan on {table}")),
            "{name}:\n{plan}"
        );
        // The whole days between come from the daily rollup (synthetic sales
        // are rolled up as they are generated), by its primary key.
        if let Some(rollup) = rollup {
            assert!(plan.contains(rollup), "{name}:\n{plan}");
        }
    }
}

/// A user's, a client's and a principal's id; ids order as their numbers do.
fn principal(n: u32) -> String {
    format!("00000000-0000-7000-8000-0000000000e{n}")
}

/// Hourly counts whose report is worked out by hand, on 2026-03-10 (the period
/// below is that day):
///
/// | principal | kind | name | hours (requests) |
/// | --- | --- | --- | --- |
/// | 1 | user | `ada@example.com` | 03-09 23:00 (100, the day before), 09:00 (5), 10:00 (7) |
/// | 2 | user | `bo@example.com` | 10:00 (20) |
/// | 3 | client | `Shop, "front"` | 09:00 (3), 11:00 (9) |
/// | 4 | client | (deleted) | 12:00 (1) |
/// | 5 | client | `Idle` | 03-11 00:00 (50, the day after) |
async fn activity_fixture(pool: &PgPool) {
    let mut conn = pool.get().await.expect("a connection");
    let conn: &mut AsyncPgConnection = &mut conn;
    let (p1, p2, p3, p4, p5) = (
        principal(1),
        principal(2),
        principal(3),
        principal(4),
        principal(5),
    );
    conn.batch_execute(&format!(
        "
INSERT INTO users (id, email, email_key, role, password_hash, created_at) VALUES
 ('{p1}', 'ada@example.com', 'ada@example.com', 'staff', 'no hash', now()),
 ('{p2}', 'bo@example.com', 'bo@example.com', 'admin', 'no hash', now());
INSERT INTO api_clients (id, name, email_plaintext, rate_limit_per_minute, rate_limit_burst,
                         key_digest, key_prefix, key_issued_at, created_at, updated_at) VALUES
 ('{p3}', 'Shop, \"front\"', 'shop@example.com', 600, 100, 'digest-3', 'prefix3', now(), now(), now()),
 ('{p5}', 'Idle', 'idle@example.com', 600, 100, 'digest-5', 'prefix5', now(), now(), now());
INSERT INTO activity_hourly (principal_kind, principal_id, hour, requests) VALUES
 ('user', '{p1}', '2026-03-09T23:00:00Z', 100),
 ('user', '{p1}', '2026-03-10T09:00:00Z', 5),
 ('user', '{p1}', '2026-03-10T10:00:00Z', 7),
 ('user', '{p2}', '2026-03-10T10:00:00Z', 20),
 ('client', '{p3}', '2026-03-10T09:00:00Z', 3),
 ('client', '{p3}', '2026-03-10T11:00:00Z', 9),
 ('client', '{p4}', '2026-03-10T12:00:00Z', 1),
 ('client', '{p5}', '2026-03-11T00:00:00Z', 50);
"
    ))
    .await
    .expect("the activity fixture is stored");
}

type HourRow = (String, &'static str, Option<String>, String, i64);

fn hour_rows(rows: &[ordo_domain::reports::PrincipalHour]) -> Vec<HourRow> {
    rows.iter()
        .map(|r| {
            (
                r.principal.id().to_string(),
                r.principal.kind().as_str(),
                r.name.clone(),
                r.hour.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.requests,
            )
        })
        .collect()
}

fn hour_row(n: u32, kind: &'static str, name: Option<&str>, hour: &str, requests: i64) -> HourRow {
    (
        principal(n),
        kind,
        name.map(str::to_owned),
        format!("2026-03-10T{hour}:00Z"),
        requests,
    )
}

#[tokio::test]
async fn requests_per_hour_list_the_busiest_principals_of_the_period_each_with_its_hours() {
    let db = fresh_database().await.expect("a test database");
    let pool = db.pool(2).expect("a pool");
    activity_fixture(&pool).await;
    let queries = PgReportQueries::new(pool);
    let day = ReportPeriod::new(at("2026-03-10T00:00:00Z"), at("2026-03-11T00:00:00Z"))
        .expect("a period");

    let all = queries
        .requests_per_hour(day, ReportLimit::default())
        .await
        .expect("a report");
    let top_two = queries
        .requests_per_hour(day, ReportLimit::parse(2).expect("2"))
        .await
        .expect("a report");
    let from_half_past_nine = queries
        .requests_per_hour(
            ReportPeriod::new(at("2026-03-10T09:30:00Z"), at("2026-03-10T12:00:00Z"))
                .expect("a period"),
            ReportLimit::default(),
        )
        .await
        .expect("a report");

    // In the day: 2 made 20; 1 made 5 + 7 = 12 (its 100 of the day before do not
    // count); 3 made 3 + 9 = 12, and comes before 1 (equal totals: clients
    // before users); 4, deleted since, made 1 and has no name; 5 made none in it.
    let ada = Some("ada@example.com");
    let shop = Some("Shop, \"front\"");
    assert_eq!(
        hour_rows(&all),
        [
            hour_row(2, "user", Some("bo@example.com"), "10:00", 20),
            hour_row(3, "client", shop, "09:00", 3),
            hour_row(3, "client", shop, "11:00", 9),
            hour_row(1, "user", ada, "09:00", 5),
            hour_row(1, "user", ada, "10:00", 7),
            hour_row(4, "client", None, "12:00", 1),
        ]
    );
    assert_eq!(hour_rows(&top_two), hour_rows(&all)[..3]);
    // The hours that start within 09:30–12:00 are 10:00 and 11:00: 2 made 20 in
    // them, 3 made 9, 1 made 7; 4's hour (12:00) starts at the period's end.
    assert_eq!(
        hour_rows(&from_half_past_nine),
        [
            hour_row(2, "user", Some("bo@example.com"), "10:00", 20),
            hour_row(3, "client", shop, "11:00", 9),
            hour_row(1, "user", ada, "10:00", 7),
        ]
    );
}

/// Every sales report of the fixture over periods that start and end at
/// midnight, within a day and across days' edges (each as its debug text, to
/// compare whole answers).
async fn sales_reports(queries: &PgReportQueries) -> Vec<String> {
    let periods = [
        quarter(),
        ReportPeriod::new(at("2026-01-10T05:00:00Z"), at("2026-03-20T12:00:00Z"))
            .expect("a period"),
        ReportPeriod::new(at("2026-03-20T09:00:00Z"), at("2026-03-20T11:00:00Z"))
            .expect("a period"),
        ReportPeriod::new(at("2025-12-01T00:00:00Z"), at("2026-05-01T00:00:00Z"))
            .expect("a period"),
    ];
    let mut answers = Vec::new();
    for period in periods {
        let by_city = queries
            .sales_by_city(period, eur())
            .await
            .expect("a report");
        let stock = queries
            .stock(period.from(), period.to())
            .await
            .expect("a report");
        let monthly = queries
            .monthly_sales(period, eur())
            .await
            .expect("a report");
        answers.push(format!("{by_city:?}\n{stock:?}\n{monthly:?}"));
    }
    answers
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .expect("a count")
        .n
}

#[tokio::test]
async fn the_sales_reports_are_the_same_from_the_rollup_as_from_the_orders_and_see_every_change_at_once()
 {
    let (queries, pool) = queries_and_pool().await;
    let rollup = PgSalesRollup::new(pool.clone());
    let mut conn = pool.get().await.expect("a connection");
    let conn: &mut AsyncPgConnection = &mut conn;
    // Nothing is rolled up yet: every day with a sale is dirty, read from the orders.
    assert_eq!(
        count(conn, "SELECT count(*) AS n FROM sales_daily_city").await,
        0
    );
    let from_orders = sales_reports(&queries).await;

    let days = rollup.roll_up_changed_days().await.expect("a rollup");
    let from_rollup = sales_reports(&queries).await;

    // The fixture's sales lie on 8 days (orders 1–3, 5, 8–11).
    assert_eq!(days, 8);
    assert_eq!(
        count(conn, "SELECT count(*) AS n FROM sales_dirty_days").await,
        0
    );
    assert!(count(conn, "SELECT count(*) AS n FROM sales_daily_city").await > 0);
    assert_eq!(from_rollup, from_orders);

    // Order 5 (2026-03-20, 13 units) is cancelled and order 3 (2026-01-20, 1
    // unit) moves to February: the next report sees both, rollup or not.
    conn.batch_execute(
        "UPDATE orders SET status = 'cancelled' WHERE number = 'ORD-20260101-000005';
         UPDATE orders SET scheduled_at = '2026-02-10T10:00:00Z' WHERE number = 'ORD-20260101-000003';",
    )
    .await
    .expect("the orders change");
    let monthly = queries
        .monthly_sales(quarter(), eur())
        .await
        .expect("a report");
    let months: Vec<(String, i64)> = monthly
        .months
        .iter()
        .map(|m| (m.month.to_string(), m.units))
        .collect();
    assert_eq!(
        months,
        [
            ("2026-01".to_owned(), 3),
            ("2026-02".to_owned(), 1),
            ("2026-03".to_owned(), 8),
        ]
    );
    assert_eq!(
        count(conn, "SELECT count(*) AS n FROM sales_dirty_days").await,
        3
    );
    let changed = sales_reports(&queries).await;
    assert_ne!(changed, from_rollup);
    rollup.roll_up_changed_days().await.expect("a rollup");
    assert_eq!(sales_reports(&queries).await, changed);
}

/// The rolled-up rows of clean days that differ from the same figures computed
/// from the orders, in either table.
const ROLLUP_MISMATCHES: &str = "
WITH raw_city AS (
    SELECT (o.scheduled_at AT TIME ZONE 'UTC')::date AS day, o.currency,
           lower(btrim(c.city) COLLATE \"und-x-icu\") AS city_key, l.product_id,
           sum(l.quantity)::bigint AS units, sum(l.quantity::bigint * l.unit_price_minor)::bigint AS revenue_minor
    FROM orders o JOIN customers c ON c.id = o.customer_id JOIN order_lines l ON l.order_id = o.id
    WHERE o.status IN ('placed', 'paid')
      AND (o.scheduled_at AT TIME ZONE 'UTC')::date NOT IN (SELECT day FROM sales_dirty_days)
    GROUP BY 1, 2, 3, 4
), rolled_city AS (
    SELECT day, currency, city_key, product_id, units, revenue_minor FROM sales_daily_city
    WHERE day NOT IN (SELECT day FROM sales_dirty_days)
), raw AS (
    SELECT day, currency, product_id, sum(units)::bigint AS units, sum(revenue_minor)::bigint AS revenue_minor
    FROM raw_city GROUP BY 1, 2, 3
), rolled AS (
    SELECT day, currency, product_id, units, revenue_minor FROM sales_daily
    WHERE day NOT IN (SELECT day FROM sales_dirty_days)
)
SELECT count(*) AS n FROM (
    (SELECT * FROM raw_city EXCEPT ALL SELECT * FROM rolled_city)
    UNION ALL (SELECT * FROM rolled_city EXCEPT ALL SELECT * FROM raw_city)
    UNION ALL (SELECT day, currency, '', product_id, units, revenue_minor FROM
        (SELECT * FROM raw EXCEPT ALL SELECT * FROM rolled) a)
    UNION ALL (SELECT day, currency, '', product_id, units, revenue_minor FROM
        (SELECT * FROM rolled EXCEPT ALL SELECT * FROM raw) b)
) mismatches";

/// The `i`th change of writer `w`: a new paid order of one or two lines on one of
/// three days (each statement a moment apart, so a rollup can fall between them),
/// a cancelled, moved or revised order, or a customer who moves.
fn change(w: u32, i: u32) -> String {
    let id = |w: u32, i: u32| format!("00000000-0000-7000-8000-{:04}{i:08}", w + 1);
    let day = 10 + (w + i) % 3;
    let order = id(w, i);
    let customer = customer(1 + (w + i) % 6);
    let (a, b) = (product(1), product(2));
    let earlier = id(w, i.saturating_sub(3));
    match i % 6 {
        0..=2 => format!(
            "BEGIN;
             INSERT INTO orders (id, number, customer_id, status, scheduled_at, total_minor, currency, created_at, updated_at)
             VALUES ('{order}', 'T-{order}', '{customer}', 'paid', '2026-01-{day}T{h:02}:00:00Z', 0, 'EUR', now(), now());
             SELECT pg_sleep(0.002);
             INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity, unit_price_minor, reserves_stock)
             SELECT '{order}', n, p.id, p.sku, p.name, {q}, p.price_minor, false
             FROM products p JOIN generate_series(1, 2) n ON p.id = CASE n WHEN 1 THEN '{a}'::uuid ELSE '{b}'::uuid END
             WHERE n <= {lines};
             COMMIT;",
            h = (w * 7 + i) % 24,
            q = 1 + i % 5,
            lines = 1 + i % 2,
        ),
        3 => format!("UPDATE orders SET status = 'cancelled' WHERE id = '{earlier}';"),
        4 => format!(
            "BEGIN;
             UPDATE orders SET scheduled_at = scheduled_at + interval '1 day' WHERE id = '{earlier}';
             SELECT pg_sleep(0.002);
             UPDATE order_lines SET quantity = quantity + 1 WHERE order_id = '{earlier}';
             COMMIT;"
        ),
        _ => format!(
            "UPDATE customers SET city = CASE WHEN city = 'Bergen' THEN 'Oslo' ELSE 'Bergen' END
             WHERE id = '{customer}';"
        ),
    }
}

#[tokio::test]
async fn a_rollup_rebuilt_while_orders_change_equals_the_orders() {
    const WRITERS: u32 = 6;
    const CHANGES: u32 = 60;
    let db = fresh_database().await.expect("a test database");
    let pool = db.pool(WRITERS as usize + 3).expect("a pool");
    fixture(&pool).await;
    let rollup = PgSalesRollup::new(pool.clone());
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));

    let rolling = {
        let (rollup, writing) = (rollup.clone(), writing.clone());
        tokio::spawn(async move {
            let mut rebuilt = 0;
            while std::sync::atomic::AtomicBool::load(&writing, std::sync::atomic::Ordering::SeqCst)
            {
                rebuilt += rollup.roll_up_changed_days().await.expect("a rollup");
            }
            rebuilt
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await.expect("a connection");
                for i in 0..CHANGES {
                    conn.batch_execute(&change(w, i)).await.expect("a change");
                }
            })
        })
        .collect();
    for writer in futures::future::join_all(writers).await {
        writer.expect("a writer");
    }
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    let rebuilt_meanwhile = rolling.await.expect("the rollup task");

    let mut conn = pool.get().await.expect("a connection");
    let conn: &mut AsyncPgConnection = &mut conn;
    // What the rollup holds for the days it calls clean is what the orders say,
    // however the rebuilds and the writers interleaved.
    assert!(rebuilt_meanwhile > 0, "the rollup ran while orders changed");
    assert_eq!(count(conn, ROLLUP_MISMATCHES).await, 0);
    rollup.roll_up_changed_days().await.expect("a rollup");
    assert_eq!(
        count(conn, "SELECT count(*) AS n FROM sales_dirty_days").await,
        0
    );
    assert_eq!(count(conn, ROLLUP_MISMATCHES).await, 0);
    assert!(
        count(
            conn,
            "SELECT count(*) AS n FROM sales_daily_city WHERE day BETWEEN '2026-01-10' AND '2026-01-13'"
        )
        .await
            > 0
    );
}
