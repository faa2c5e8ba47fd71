//! The reference: the statements Ordo's repositories send for a scenario, straight
//! through tokio-postgres with prepared statements over a fixed set of connections
//! the size of Ordo's pool. Every column is decoded, as Ordo does; nothing else is.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::sync::LazyLock;

use ordo_postgres::{INSERT_NUMBERED_ORDER, OrderReadSql};
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls, Row, Statement};
use uuid::Uuid;

/// Connections for the reference; worker `w` uses connection `w % size`, so with
/// more workers than connections, workers queue for a connection as with a pool.
pub struct ReferencePool {
    connections: Vec<Mutex<Connection>>,
}

impl std::fmt::Debug for ReferencePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferencePool")
            .field("size", &self.connections.len())
            .finish()
    }
}

/// One connection with the statements it has prepared.
pub struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl ReferencePool {
    /// Opens `size` connections to `url`.
    ///
    /// # Errors
    /// When a connection fails.
    pub async fn connect(url: &str, size: usize) -> anyhow::Result<Self> {
        let mut connections = Vec::with_capacity(size);
        for _ in 0..size.max(1) {
            let (client, driver) = tokio_postgres::connect(url, NoTls).await?;
            tokio::spawn(driver);
            connections.push(Mutex::new(Connection {
                client,
                statements: HashMap::new(),
            }));
        }
        Ok(Self { connections })
    }

    /// The connection of `worker`.
    pub async fn get(&self, worker: usize) -> MutexGuard<'_, Connection> {
        self.connections[worker % self.connections.len()]
            .lock()
            .await
    }
}

impl Connection {
    async fn prepared(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// Decodes an order row column by column, as Ordo's row mapping does.
fn decode_order(row: &Row) -> Result<Uuid, tokio_postgres::Error> {
    let id: Uuid = row.try_get(0)?;
    row.try_get::<_, String>(1)?;
    row.try_get::<_, Uuid>(2)?;
    row.try_get::<_, String>(3)?;
    row.try_get::<_, DateTime<Utc>>(4)?;
    row.try_get::<_, i64>(5)?;
    row.try_get::<_, String>(6)?;
    for column in 7..=11 {
        row.try_get::<_, Option<String>>(column)?;
    }
    row.try_get::<_, i32>(12)?;
    row.try_get::<_, i32>(13)?;
    row.try_get::<_, DateTime<Utc>>(14)?;
    row.try_get::<_, DateTime<Utc>>(15)?;
    Ok(id)
}

fn decode_line(row: &Row) -> Result<(), tokio_postgres::Error> {
    let _: (Uuid, i32, Uuid, String, String, i32, i64, bool) = (
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
    );
    Ok(())
}

/// The text of each statement Ordo's order reads send, taken from Ordo itself.
static READS: LazyLock<OrderReadSql> = LazyLock::new(OrderReadSql::get);

async fn lines_of(conn: &mut Connection, ids: &[Uuid]) -> Result<usize, tokio_postgres::Error> {
    let statement = conn.prepared(&READS.lines_of_orders).await?;
    let rows = conn.client.query(&statement, &[&ids]).await?;
    for row in &rows {
        decode_line(row)?;
    }
    Ok(rows.len())
}

/// `OrderRepository::find` by id: the order and its lines, asked for at once
/// (pipelined on the one connection), as Ordo does.
pub async fn get_order(conn: &mut Connection, id: Uuid) -> Result<bool, tokio_postgres::Error> {
    let order_statement = conn.prepared(&READS.order_by_id).await?;
    let lines_statement = conn.prepared(&READS.lines_of_order).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
    let (rows, lines) = tokio::join!(
        conn.client.query(&order_statement, &params),
        conn.client.query(&lines_statement, &params),
    );
    let (rows, lines) = (rows?, lines?);
    if rows.first().map(decode_order).transpose()?.is_none() {
        return Ok(false);
    }
    for line in &lines {
        decode_line(line)?;
    }
    Ok(!lines.is_empty())
}

/// `OrderRepository::list` for one customer: the first page of 50 (plus one, and
/// below the largest id, as Ordo's first page is), then the lines.
pub async fn list_orders(
    conn: &mut Connection,
    customer: Uuid,
) -> Result<usize, tokio_postgres::Error> {
    let statement = conn.prepared(&READS.customer_page).await?;
    let rows = conn
        .client
        .query(&statement, &[&customer, &Uuid::max(), &51_i64])
        .await?;
    let ids = rows
        .iter()
        .map(decode_order)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids.len() + lines_of(conn, &ids).await?)
}

/// One requested line: a product and a quantity.
pub type Item = (Uuid, i64);

/// `OrderService::place` and `PgOrderRepository::insert`: customer and products
/// read, then in one transaction the schedule lock, the spacing read, one
/// conditional stock update per tracked product in id order, and the statement
/// that takes the day's number and writes the order with its lines.
pub async fn create_order(
    conn: &mut Connection,
    customer: Uuid,
    items: &[Item],
    scheduled_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let find_customer = conn
        .prepared("SELECT id, name, city, email, phone, email_sealed, phone_sealed, data_key_id, version, created_at, updated_at FROM customers WHERE id = $1 LIMIT 1")
        .await?;
    let find_products = conn
        .prepared(
            "SELECT id, sku, name, kind, price_minor, currency, stock, low_stock_threshold, active, version, \
             created_at, updated_at FROM products WHERE id = ANY($1)",
        )
        .await?;
    let lock_schedule = conn
        .prepared("SELECT pg_advisory_xact_lock(hashtextextended($1, $2)) IS NULL")
        .await?;
    let nearby = conn
        .prepared(
            "SELECT id, scheduled_at, status FROM orders WHERE customer_id = $1 AND status <> $2 \
             AND scheduled_at > $3 AND scheduled_at < $4",
        )
        .await?;
    let take_stock = conn
        .prepared(
            "UPDATE products SET stock = stock - $1, version = version + 1, updated_at = $2 \
             WHERE id = $3 AND stock >= $1 AND stock <= $4 RETURNING stock",
        )
        .await?;
    let insert_numbered = conn.prepared(INSERT_NUMBERED_ORDER).await?;

    let customer_rows = conn.client.query(&find_customer, &[&customer]).await?;
    anyhow::ensure!(!customer_rows.is_empty(), "customer {customer} vanished");
    let product_ids: Vec<Uuid> = items.iter().map(|(id, _)| *id).collect();
    let products = conn.client.query(&find_products, &[&product_ids]).await?;
    struct Priced {
        id: Uuid,
        sku: String,
        name: String,
        price: i64,
        tracked: bool,
        quantity: i64,
    }
    let mut lines = Vec::with_capacity(items.len());
    for (id, quantity) in items {
        let row = products
            .iter()
            .find(|r| r.get::<_, Uuid>(0) == *id)
            .ok_or_else(|| anyhow::anyhow!("product {id} vanished"))?;
        lines.push(Priced {
            id: *id,
            sku: row.try_get(1)?,
            name: row.try_get(2)?,
            price: row.try_get(4)?,
            tracked: row.try_get::<_, Option<i64>>(6)?.is_some(),
            quantity: *quantity,
        });
    }
    let total: i64 = lines.iter().map(|l| l.price * l.quantity).sum();

    let tx = conn.client.transaction().await?;
    tx.query_one(
        &lock_schedule,
        &[&format!("ordo.order-spacing:{customer}"), &0_i64],
    )
    .await?;
    let _nearby = tx
        .query(
            &nearby,
            &[
                &customer,
                &"cancelled",
                &(scheduled_at - Duration::hours(3)),
                &(scheduled_at + Duration::hours(3)),
            ],
        )
        .await?;
    let mut tracked: Vec<(Uuid, i64)> = lines
        .iter()
        .filter(|l| l.tracked)
        .map(|l| (l.id, l.quantity))
        .collect();
    tracked.sort();
    for (id, take) in &tracked {
        // The same upper bound Ordo's stock module checks: stock - take <= 10^12.
        let ceiling = 1_000_000_000_000_i64.saturating_add(*take);
        let updated = tx
            .query_opt(&take_stock, &[take, &now, id, &ceiling])
            .await?;
        anyhow::ensure!(updated.is_some(), "stock of {id} ran out");
    }
    let day: NaiveDate = now.date_naive();
    let order_id = Uuid::now_v7();
    let note: Option<&str> = None;
    let line_numbers: Vec<i32> = (1..).take(lines.len()).collect();
    let product_ids: Vec<Uuid> = lines.iter().map(|l| l.id).collect();
    let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
    let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    let quantities: Vec<i32> = lines
        .iter()
        .map(|l| i32::try_from(l.quantity).unwrap_or(i32::MAX))
        .collect();
    let prices: Vec<i64> = lines.iter().map(|l| l.price).collect();
    let tracked_flags: Vec<bool> = lines.iter().map(|l| l.tracked).collect();
    let _number: String = tx
        .query_one(
            &insert_numbered,
            &[
                &day,
                &order_id,
                &customer,
                &scheduled_at,
                &total,
                &"EUR",
                &note,
                &now,
                &line_numbers,
                &product_ids,
                &skus,
                &names,
                &quantities,
                &prices,
                &tracked_flags,
                &"placed",
            ],
        )
        .await?
        .try_get(0)?;
    tx.commit().await?;
    Ok(())
}
