//! Each scenario: an HTTP operation against Ordo, and a reference operation that
//! does the same database work without Ordo — the statements Ordo's repositories
//! issue, sent straight through diesel-async over a pool of the same size.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{
    Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ordo_postgres::PgPool;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

use crate::load::{LoadShape, Measurement, drive};
use crate::seed::{Dataset, epoch, pick_items};

/// A load scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `GET /healthz`: the HTTP ceiling of the machine; no reference.
    Health,
    /// `GET /v1/orders/{id}` over random seeded orders.
    GetOrder,
    /// `GET /v1/orders?customer_id=…&limit=50`.
    ListOrders,
    /// `POST /v1/orders` for random customers and products.
    CreateOrder,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 4] = [
        Self::Health,
        Self::GetOrder,
        Self::ListOrders,
        Self::CreateOrder,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::GetOrder => "get-order",
            Self::ListOrders => "list-orders",
            Self::CreateOrder => "create-order",
        }
    }

    /// The ratio Ordo ÷ reference the scenario aims for.
    pub fn goal(self) -> Option<f64> {
        match self {
            Self::Health => None,
            Self::GetOrder | Self::ListOrders => Some(0.5),
            Self::CreateOrder => Some(0.6),
        }
    }
}

/// What a scenario needs.
#[derive(Clone)]
pub struct Target {
    /// Ordo's base URL.
    pub base_url: String,
    /// A keep-alive HTTP client.
    pub client: reqwest::Client,
    /// The reference's pool.
    pub pool: PgPool,
    /// The seeded data.
    pub data: Arc<Dataset>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Gives every created order its own 4-hour slot, so no two collide under the
/// spacing rule; Ordo's run and the reference's start far apart.
static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

fn next_slot(base_years: i64) -> DateTime<Utc> {
    let slot = i64::try_from(NEXT_SLOT.fetch_add(1, Ordering::Relaxed)).unwrap_or(i64::MAX / 8);
    epoch() + Duration::days(365 * base_years) + Duration::hours(4 * slot)
}

/// Drives Ordo over HTTP.
pub async fn run_ordo(scenario: Scenario, target: &Target, shape: LoadShape) -> Measurement {
    let t = target.clone();
    match scenario {
        Scenario::Health => {
            drive(shape, move |_, _| {
                let t = t.clone();
                async move { get_ok(&t.client, &format!("{}/healthz", t.base_url)).await }
            })
            .await
        }
        Scenario::GetOrder => {
            drive(shape, move |worker, n| {
                let t = t.clone();
                async move {
                    let id = pick(&t.data.orders, worker, n);
                    get_ok(&t.client, &format!("{}/v1/orders/{id}", t.base_url)).await
                }
            })
            .await
        }
        Scenario::ListOrders => {
            drive(shape, move |worker, n| {
                let t = t.clone();
                async move {
                    let customer = pick(&t.data.customers, worker, n);
                    get_ok(&t.client, &format!("{}/v1/orders?customer_id={customer}&limit=50", t.base_url)).await
                }
            })
            .await
        }
        Scenario::CreateOrder => {
            drive(shape, move |worker, n| {
                let t = t.clone();
                async move {
                    let mut rng = rng_for(worker, n);
                    let customer = t.data.customers[rng.random_range(0..t.data.customers.len())];
                    let items: Vec<_> = pick_items(&mut rng, &t.data.products)
                        .as_slice()
                        .iter()
                        .map(|i| json!({"product_id": i.product_id.as_uuid(), "quantity": i.quantity.get()}))
                        .collect();
                    let body = json!({"customer_id": customer, "scheduled_at": next_slot(1), "items": items});
                    match t.client.post(format!("{}/v1/orders", t.base_url)).json(&body).send().await {
                        Ok(response) => {
                            let created = response.status() == reqwest::StatusCode::CREATED;
                            response.bytes().await.is_ok() && created
                        }
                        Err(_) => false,
                    }
                }
            })
            .await
        }
    }
}

/// Does the same database work directly; `None` for scenarios without a reference.
pub async fn run_reference(
    scenario: Scenario,
    target: &Target,
    shape: LoadShape,
) -> Option<Measurement> {
    let t = target.clone();
    let measurement = match scenario {
        Scenario::Health => return None,
        Scenario::GetOrder => {
            drive(shape, move |worker, n| {
                let t = t.clone();
                async move {
                    let id = pick(&t.data.orders, worker, n);
                    reference_get_order(&t.pool, id).await.unwrap_or(false)
                }
            })
            .await
        }
        Scenario::ListOrders => {
            drive(shape, move |worker, n| {
                let t = t.clone();
                async move {
                    let customer = pick(&t.data.customers, worker, n);
                    reference_list_orders(&t.pool, customer).await.is_ok()
                }
            })
            .await
        }
        Scenario::CreateOrder => {
            drive(shape, move |worker, n| {
                let t = t.clone();
                async move { reference_create_order(&t, worker, n).await.is_ok() }
            })
            .await
        }
    };
    Some(measurement)
}

fn rng_for(worker: usize, n: u64) -> StdRng {
    StdRng::seed_from_u64((worker as u64) << 40 ^ n)
}

fn pick(from: &[Uuid], worker: usize, n: u64) -> Uuid {
    from[rng_for(worker, n).random_range(0..from.len())]
}

async fn get_ok(client: &reqwest::Client, url: &str) -> bool {
    match client.get(url).send().await {
        Ok(response) => {
            let ok = response.status().is_success();
            response.bytes().await.is_ok() && ok
        }
        Err(_) => false,
    }
}

const ORDER_COLUMNS: &str = "id, number, customer_id, status, scheduled_at, total_minor, currency, note, \
    payment_status, payment_reference, fulfillment_status, fulfillment_reference, fulfillment_attempts, \
    version, created_at, updated_at";
const LINE_COLUMNS: &str =
    "order_id, line_no, product_id, sku, name, quantity, unit_price_minor, reserves_stock";

#[derive(Debug, QueryableByName)]
#[allow(dead_code)]
struct OrderRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    number: String,
    #[diesel(sql_type = SqlUuid)]
    customer_id: Uuid,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Timestamptz)]
    scheduled_at: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    total_minor: i64,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Nullable<Text>)]
    note: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    payment_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    payment_reference: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    fulfillment_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    fulfillment_reference: Option<String>,
    #[diesel(sql_type = Integer)]
    fulfillment_attempts: i32,
    #[diesel(sql_type = Integer)]
    version: i32,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

#[derive(Debug, QueryableByName)]
#[allow(dead_code)]
struct LineRow {
    #[diesel(sql_type = SqlUuid)]
    order_id: Uuid,
    #[diesel(sql_type = Integer)]
    line_no: i32,
    #[diesel(sql_type = SqlUuid)]
    product_id: Uuid,
    #[diesel(sql_type = Text)]
    sku: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Integer)]
    quantity: i32,
    #[diesel(sql_type = BigInt)]
    unit_price_minor: i64,
    #[diesel(sql_type = Bool)]
    reserves_stock: bool,
}

#[derive(Debug, QueryableByName)]
#[allow(dead_code)]
struct CustomerRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    city: String,
    #[diesel(sql_type = Nullable<Text>)]
    phone: Option<String>,
    #[diesel(sql_type = Integer)]
    version: i32,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

#[derive(Debug, QueryableByName)]
#[allow(dead_code)]
struct ProductRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    sku: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    price_minor: i64,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    stock: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    low_stock_threshold: Option<i64>,
    #[diesel(sql_type = Bool)]
    active: bool,
    #[diesel(sql_type = Integer)]
    version: i32,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

#[derive(Debug, QueryableByName)]
#[allow(dead_code)]
struct StockRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Nullable<BigInt>)]
    stock: Option<i64>,
}

#[derive(Debug, QueryableByName)]
#[allow(dead_code)]
struct NearbyRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    scheduled_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    status: String,
}

#[derive(Debug, QueryableByName)]
struct CounterRow {
    #[diesel(sql_type = Integer)]
    last_value: i32,
}

async fn lines_of(
    conn: &mut AsyncPgConnection,
    ids: Vec<Uuid>,
) -> diesel::QueryResult<Vec<LineRow>> {
    diesel::sql_query(format!(
        "SELECT {LINE_COLUMNS} FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, line_no"
    ))
    .bind::<Array<SqlUuid>, _>(ids)
    .load(conn)
    .await
}

async fn reference_get_order(pool: &PgPool, id: Uuid) -> anyhow::Result<bool> {
    let mut conn = pool.get().await?;
    let orders: Vec<OrderRow> = diesel::sql_query(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 LIMIT 1"
    ))
    .bind::<SqlUuid, _>(id)
    .load(&mut conn)
    .await?;
    let lines = lines_of(&mut conn, orders.iter().map(|o| o.id).collect()).await?;
    Ok(!orders.is_empty() && !lines.is_empty())
}

async fn reference_list_orders(pool: &PgPool, customer: Uuid) -> anyhow::Result<usize> {
    let mut conn = pool.get().await?;
    let orders: Vec<OrderRow> = diesel::sql_query(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE customer_id = $1 ORDER BY id DESC LIMIT 51"
    ))
    .bind::<SqlUuid, _>(customer)
    .load(&mut conn)
    .await?;
    let lines = lines_of(&mut conn, orders.iter().map(|o| o.id).collect()).await?;
    Ok(orders.len() + lines.len())
}

/// The statements of `OrderService::place` and `PgOrderRepository::insert`, in order.
async fn reference_create_order(target: &Target, worker: usize, n: u64) -> anyhow::Result<()> {
    let mut rng = rng_for(worker, n ^ 0x5eed);
    let customer = target.data.customers[rng.random_range(0..target.data.customers.len())];
    let items = pick_items(&mut rng, &target.data.products);
    let product_ids: Vec<Uuid> = items
        .as_slice()
        .iter()
        .map(|i| i.product_id.as_uuid())
        .collect();
    let scheduled_at = next_slot(60);
    let now = Utc::now();
    let mut conn = target.pool.get().await?;

    let customers: Vec<CustomerRow> = diesel::sql_query(
        "SELECT id, name, email, city, phone, version, created_at, updated_at FROM customers WHERE id = $1 LIMIT 1",
    )
    .bind::<SqlUuid, _>(customer)
    .load(&mut conn)
    .await?;
    anyhow::ensure!(!customers.is_empty(), "customer vanished");
    let products: Vec<ProductRow> = diesel::sql_query(
        "SELECT id, sku, name, kind, price_minor, currency, stock, low_stock_threshold, active, version, \
         created_at, updated_at FROM products WHERE id = ANY($1)",
    )
    .bind::<Array<SqlUuid>, _>(product_ids.clone())
    .load(&mut conn)
    .await?;
    let mut lines = Vec::new();
    let mut total = 0_i64;
    for item in items.as_slice() {
        let product = products
            .iter()
            .find(|p| p.id == item.product_id.as_uuid())
            .ok_or_else(|| anyhow::anyhow!("product vanished"))?;
        let quantity = i64::from(item.quantity.get());
        total += product.price_minor * quantity;
        lines.push((product, quantity));
    }

    conn.transaction(async |conn| -> Result<(), diesel::result::Error> {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended('ordo.order-spacing:' || $1, 0))")
            .bind::<Text, _>(customer.to_string())
            .execute(conn)
            .await?;
        let _nearby: Vec<NearbyRow> = diesel::sql_query(
            "SELECT id, scheduled_at, status FROM orders WHERE customer_id = $1 AND status <> $2 \
             AND scheduled_at > $3 AND scheduled_at < $4",
        )
        .bind::<SqlUuid, _>(customer)
        .bind::<Text, _>("cancelled")
        .bind::<Timestamptz, _>(scheduled_at - Duration::hours(3))
        .bind::<Timestamptz, _>(scheduled_at + Duration::hours(3))
        .load(conn)
        .await?;
        let mut tracked: Vec<(Uuid, i64)> = lines
            .iter()
            .filter(|(p, _)| p.stock.is_some())
            .map(|(p, q)| (p.id, *q))
            .collect();
        tracked.sort();
        if !tracked.is_empty() {
            let ids: Vec<Uuid> = tracked.iter().map(|(id, _)| *id).collect();
            let takes: Vec<i64> = tracked.iter().map(|(_, q)| *q).collect();
            let _locked: Vec<StockRow> = diesel::sql_query(
                "SELECT id, stock FROM products WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            )
            .bind::<Array<SqlUuid>, _>(ids.clone())
            .load(conn)
            .await?;
            diesel::sql_query(
                "UPDATE products AS p SET stock = p.stock - d.take, version = p.version + 1, updated_at = $3 \
                 FROM unnest($1::uuid[], $2::bigint[]) AS d(id, take) WHERE p.id = d.id AND p.stock IS NOT NULL",
            )
            .bind::<Array<SqlUuid>, _>(ids)
            .bind::<Array<BigInt>, _>(takes)
            .bind::<Timestamptz, _>(now)
            .execute(conn)
            .await?;
        }
        let counter: CounterRow = diesel::sql_query(
            "INSERT INTO order_number_counters (day, last_value) VALUES ($1, 1) ON CONFLICT (day) \
             DO UPDATE SET last_value = order_number_counters.last_value + 1 RETURNING last_value",
        )
        .bind::<diesel::sql_types::Date, _>(now.date_naive())
        .get_result(conn)
        .await?;
        let order_id = Uuid::now_v7();
        let number = format!("ORD-{}-{:06}", now.format("%Y%m%d"), counter.last_value);
        diesel::sql_query(format!(
            "INSERT INTO orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, 'placed', $4, $5, $6, NULL, NULL, NULL, NULL, NULL, 0, 1, $7, $7)"
        ))
        .bind::<SqlUuid, _>(order_id)
        .bind::<Text, _>(number)
        .bind::<SqlUuid, _>(customer)
        .bind::<Timestamptz, _>(scheduled_at)
        .bind::<BigInt, _>(total)
        .bind::<Text, _>("EUR")
        .bind::<Timestamptz, _>(now)
        .execute(conn)
        .await?;
        let placeholders: Vec<String> = (0..lines.len())
            .map(|i| {
                let b = i * 8;
                format!("(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8)
            })
            .collect();
        let mut insert = diesel::sql_query(format!(
            "INSERT INTO order_lines ({LINE_COLUMNS}) VALUES {}",
            placeholders.join(", ")
        ))
        .into_boxed::<diesel::pg::Pg>();
        for (line_no, (product, quantity)) in (1..).zip(&lines) {
            insert = insert
                .bind::<SqlUuid, _>(order_id)
                .bind::<Integer, _>(line_no)
                .bind::<SqlUuid, _>(product.id)
                .bind::<Text, _>(product.sku.clone())
                .bind::<Text, _>(product.name.clone())
                .bind::<Integer, _>(i32::try_from(*quantity).unwrap_or(i32::MAX))
                .bind::<BigInt, _>(product.price_minor)
                .bind::<Bool, _>(product.stock.is_some());
        }
        insert.execute(conn).await?;
        Ok(())
    })
    .await?;
    Ok(())
}
