//! Synthetic sales and activity, generated inside PostgreSQL: a million orders
//! take under a minute, where creating them through Ordo's services would take
//! an hour. For the benchmark of the reports and for tests of their query plans;
//! never for a database that serves anyone.
//!
//! The rows obey the schema, not every rule of the domain: customers are stored
//! with plaintext contacts (Ordo seals them on its next start), orders of one
//! customer may lie closer than the spacing window, and stock is not moved.

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::pool::PgPool;

/// How much to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSales {
    /// Customers, spread over 40 cities (a few cities hold most of them), a few
    /// of them with the city's name in capitals or padded with spaces.
    pub customers: u32,
    /// Products: two in three are goods with tracked stock, the rest services.
    /// A few are far more popular than the rest.
    pub products: u32,
    /// Orders: 70 % paid, 15 % placed, 8 % cancelled, 4 % payment failed, 3 %
    /// pending payment; one to four lines each (mostly one); a few customers
    /// place many of them.
    pub orders: u32,
    /// The months the orders are scheduled in, up to now; more in recent months
    /// (growth) than in early ones.
    pub months: u32,
}

/// Adds the synthetic customers, products and orders (with lines, numbers and
/// totals) to the database, rolls their days up, then vacuums and analyses the tables so that the
/// planner sees them and index-only scans need no table visits. The same scale
/// generates the same data (the random generator is seeded).
///
/// # Errors
/// When a statement fails.
pub async fn generate(pool: &PgPool, scale: SyntheticSales) -> anyhow::Result<()> {
    let mut conn = pool
        .get()
        .await
        .context("a connection for synthetic data")?;
    let conn: &mut AsyncPgConnection = &mut conn;
    let SyntheticSales {
        customers,
        products,
        orders,
        months,
    } = scale;
    anyhow::ensure!(
        customers > 0 && products > 0 && months > 0,
        "synthetic sales need customers, products and months"
    );
    // Integers only are formatted into the statements.
    let generate = format!(
        "
{NO_STATEMENT_TIMEOUT}
SELECT setseed(0.20261124);

CREATE TEMP TABLE syn_customers ON COMMIT DROP AS
SELECT n, {v7_now} AS id,
       'Customer ' || n AS name,
       CASE WHEN variant < 0.02 THEN upper(city)
            WHEN variant < 0.04 THEN '  ' || city || ' '
            ELSE city END AS city
FROM (
    SELECT n, random() AS variant,
           (ARRAY['Copenhagen','Aarhus','Odense','Aalborg','Oslo','Bergen','Trondheim',
                  'Stavanger','Stockholm','Gothenburg','Malmö','Uppsala','Helsinki','Espoo',
                  'Tampere','Reykjavík','Jakarta','Bandung','Surabaya','Medan','Semarang',
                  'Makassar','Yogyakarta','Denpasar','Berlin','Hamburg','Munich','Cologne',
                  'Amsterdam','Rotterdam','Utrecht','Brussels','Antwerp','Ghent','London',
                  'Manchester','Dublin','Cork','Paris','Lyon'])[1 + floor(40 * power(random(), 2.5))::int] AS city
    FROM generate_series(1, {customers}) n
) picked;
INSERT INTO customers (id, name, email, email_key, city, version, created_at, updated_at)
SELECT id, name, 'synthetic-' || id || '@example.com', 'synthetic-' || id || '@example.com',
       city, 1, now(), now()
FROM syn_customers;

CREATE TEMP TABLE syn_products ON COMMIT DROP AS
SELECT n, {v7_now} AS id, 'SYN-' || substr(md5('product' || n || now()), 1, 8) || '-' || n AS sku,
       'Synthetic ' || (ARRAY['inspection','calibration','filter','valve','sensor','gasket',
                               'analysis','pump','cable','testing'])[1 + n % 10] || ' ' || n AS name,
       CASE WHEN n % 3 = 0 THEN 'service' ELSE 'good' END AS kind,
       100 * (5 + (n * 7919) % 500) AS price_minor
FROM generate_series(1, {products}) n;
INSERT INTO products (id, sku, name, kind, price_minor, currency, stock, low_stock_threshold,
                      active, version, created_at, updated_at)
SELECT id, sku, name, kind, price_minor, 'EUR',
       CASE WHEN kind = 'good' THEN (n * 104729) % 2000 END,
       CASE WHEN kind = 'good' THEN 100 END,
       true, 1, now(), now()
FROM syn_products;

CREATE TEMP TABLE syn_orders ON COMMIT DROP AS
SELECT i, scheduled_at, customer, line_count,
       CASE WHEN s < 0.70 THEN 'paid' WHEN s < 0.85 THEN 'placed' WHEN s < 0.93 THEN 'cancelled'
            WHEN s < 0.97 THEN 'payment_failed' ELSE 'pending_payment' END AS status
FROM (
    SELECT i,
           date_trunc('minute', now()) - interval '1 minute' * floor(
               {months} * 43830 * power(random(), 1.3)) AS scheduled_at,
           1 + floor({customers} * power(random(), 2))::int AS customer,
           1 + floor(4 * power(random(), 3))::int AS line_count,
           random() AS s
    FROM generate_series(1, {orders}) i
) drawn;
ALTER TABLE syn_orders ADD COLUMN id uuid;
UPDATE syn_orders SET id = {v7_scheduled};

CREATE TEMP TABLE syn_lines ON COMMIT DROP AS
SELECT o.id AS order_id, l.line_no, l.product, l.quantity
FROM syn_orders o
CROSS JOIN LATERAL (
    SELECT g AS line_no,
           1 + floor({products} * power(random(), 2))::int AS product,
           1 + floor(5 * power(random(), 3))::int AS quantity
    FROM generate_series(1, o.line_count) g
    OFFSET 0
) l;

CREATE TEMP TABLE syn_totals ON COMMIT DROP AS
SELECT l.order_id, sum(l.quantity * p.price_minor) AS total
FROM syn_lines l JOIN syn_products p ON p.n = l.product
GROUP BY l.order_id;

CREATE TEMP TABLE syn_numbered ON COMMIT DROP AS
SELECT o.*, (o.scheduled_at AT TIME ZONE 'UTC')::date AS day,
       coalesce(c.last_value, 0)
           + row_number() OVER (PARTITION BY (o.scheduled_at AT TIME ZONE 'UTC')::date ORDER BY o.i) AS seq
FROM syn_orders o
LEFT JOIN order_number_counters c ON c.day = (o.scheduled_at AT TIME ZONE 'UTC')::date;

INSERT INTO orders (id, number, customer_id, status, scheduled_at, total_minor, currency,
                    fulfillment_attempts, version, created_at, updated_at)
SELECT o.id, 'ORD-' || to_char(o.day, 'YYYYMMDD') || '-' || lpad(o.seq::text, 6, '0'),
       c.id, o.status, o.scheduled_at, t.total, 'EUR', 0, 1, o.scheduled_at, o.scheduled_at
FROM syn_numbered o
JOIN syn_customers c ON c.n = o.customer
JOIN syn_totals t ON t.order_id = o.id;

INSERT INTO order_number_counters (day, last_value)
SELECT day, max(seq) FROM syn_numbered GROUP BY day
ON CONFLICT (day) DO UPDATE SET last_value = excluded.last_value;

INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity, unit_price_minor,
                         reserves_stock)
SELECT l.order_id, l.line_no, p.id, p.sku, p.name, l.quantity, p.price_minor,
       p.kind = 'good' AND o.status NOT IN ('cancelled', 'payment_failed')
FROM syn_lines l
JOIN syn_products p ON p.n = l.product
JOIN syn_orders o ON o.id = l.order_id;
",
        v7_now = uuid_v7("clock_timestamp()", "n::text"),
        v7_scheduled = uuid_v7("scheduled_at", "i::text"),
    );
    conn.transaction(async |conn| -> diesel::QueryResult<()> {
        conn.batch_execute(&generate).await
    })
    .await
    .context("generating synthetic sales")?;
    // As the `rollup-sales` job would within a minute; the reports are exact
    // without it, only slower.
    crate::sales_rollup::roll_up_changed_days(conn)
        .await
        .context("rolling up the synthetic sales")?;
    vacuum_analyze(
        conn,
        "customers, products, orders, order_lines, sales_dirty_days, sales_daily, sales_daily_city",
    )
    .await
}

/// How much activity to generate: hourly counts of users and API clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticActivity {
    /// Users (staff), each with a name (its e-mail address) the report shows.
    pub users: u32,
    /// API clients.
    pub clients: u32,
    /// The months of hours up to now the counts cover. Each principal is active
    /// in a share of the hours of its own (20 % to 90 %), a few far busier than
    /// the rest.
    pub months: u32,
}

/// Adds synthetic users and API clients and their hourly request counts (as the
/// activity writer keeps them; no raw hits), then vacuums and analyses
/// `activity_hourly`. The users cannot log in (their password hash is no hash)
/// and the clients' keys are unknown; their contacts are stored in plaintext,
/// sealed by Ordo on its next start.
///
/// # Errors
/// When a statement fails.
pub async fn generate_activity(pool: &PgPool, scale: SyntheticActivity) -> anyhow::Result<()> {
    let mut conn = pool
        .get()
        .await
        .context("a connection for synthetic activity")?;
    let conn: &mut AsyncPgConnection = &mut conn;
    let SyntheticActivity {
        users,
        clients,
        months,
    } = scale;
    anyhow::ensure!(months > 0, "synthetic activity needs months");
    // Integers only are formatted into the statements.
    let generate = format!(
        "
{NO_STATEMENT_TIMEOUT}
SELECT setseed(0.20261125);

CREATE TEMP TABLE syn_principals ON COMMIT DROP AS
SELECT kind, n, {v7_now} AS id,
       power(random(), 3) AS weight, 0.2 + 0.7 * random() AS activity
FROM (
    SELECT 'user' AS kind, n FROM generate_series(1, {users}) n
    UNION ALL
    SELECT 'client', n FROM generate_series(1, {clients}) n
) p;

INSERT INTO users (id, email, email_key, role, password_hash, created_at)
SELECT id, 'synthetic-user-' || n || '@example.com', 'synthetic-user-' || n || '@example.com',
       'staff', 'synthetic: no password', now()
FROM syn_principals WHERE kind = 'user';

INSERT INTO api_clients (id, name, email_plaintext, rate_limit_per_minute, rate_limit_burst,
                         key_digest, key_prefix, key_issued_at, created_at, updated_at)
SELECT id, 'Synthetic client ' || n, 'synthetic-client-' || n || '@example.com', 600, 100,
       md5('synthetic key ' || id), substr(md5('synthetic prefix ' || id), 1, 8), now(), now(), now()
FROM syn_principals WHERE kind = 'client';

INSERT INTO activity_hourly (principal_kind, principal_id, hour, requests)
SELECT p.kind, p.id, h.hour, 1 + floor(2000 * p.weight * random())::bigint
FROM syn_principals p
CROSS JOIN generate_series(
    date_trunc('hour', now()) - interval '1 hour' * ({months} * 730 - 1),
    date_trunc('hour', now()),
    interval '1 hour') AS h(hour)
WHERE random() < p.activity;
",
        v7_now = uuid_v7("clock_timestamp()", "kind || n"),
    );
    conn.transaction(async |conn| -> diesel::QueryResult<()> {
        conn.batch_execute(&generate).await
    })
    .await
    .context("generating synthetic activity")?;
    vacuum_analyze(conn, "users, api_clients, activity_hourly").await
}

/// Lifts the pool's `statement_timeout` for the generating transaction: a
/// million orders take longer than any request may.
const NO_STATEMENT_TIMEOUT: &str = "SET LOCAL statement_timeout = 0;";

/// `VACUUM ANALYZE` of `tables` without the pool's `statement_timeout` (VACUUM
/// cannot run in a transaction, where `SET LOCAL` would end with it), which is
/// restored after.
async fn vacuum_analyze(conn: &mut AsyncPgConnection, tables: &str) -> anyhow::Result<()> {
    conn.batch_execute("SET statement_timeout = 0")
        .await
        .context("lifting the statement timeout")?;
    let vacuumed = conn
        .batch_execute(&format!("VACUUM ANALYZE {tables}"))
        .await
        .with_context(|| format!("vacuuming and analysing {tables}"));
    conn.batch_execute("RESET statement_timeout")
        .await
        .context("restoring the statement timeout")?;
    vacuumed
}

/// A SQL expression of a UUID v7 for the instant `at`, its random bits drawn from
/// `salt` (unique per row) and the generator.
fn uuid_v7(at: &str, salt: &str) -> String {
    format!(
        "(lpad(to_hex(floor(extract(epoch FROM {at}) * 1000)::bigint), 12, '0') || '7' \
         || substr(md5({salt} || random()), 1, 3) || '8' || substr(md5({salt} || random()), 1, 15))::uuid"
    )
}
