//! Each scenario: an HTTP operation against Ordo, and a reference operation that
//! does the same database work without Ordo (see `reference`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

use crate::http1::LeanClient;
use crate::load::{LoadShape, Measurement, drive};
use crate::reference::{self, ReferencePool};
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
    /// `GET /v1/auth/me` with the bearer token: the cost of checking a JWT (and
    /// reading its user); reported ÷ `health`, not against a reference.
    MeJwt,
    /// `GET /v1/auth/me` with an API key: the cost of resolving a client's key
    /// (from the key cache) and checking its allow-list; reported ÷ `health`.
    MeKey,
    /// `POST /v1/logs` with one hit, by API key; reported ÷ `health`.
    LogOne,
    /// `POST /v1/logs` with arrays of 1 000 hits; its figure is the hits
    /// persisted per second, counted in the database after the run.
    LogBatch,
    /// `GET /v1/usage/top` (administrator), the server's cache off: its p99 with
    /// few and with many raw hits (`--seed-hits`) is the figure.
    UsageTop,
    /// `GET /v1/usage/daily` of every client (administrator), the cache off.
    UsageDaily,
    /// `POST /v1/auth/login` with the staff user's password: deliberately slow
    /// (one Argon2id hash per login); its p50 is the figure, with no ratio. Driven
    /// by one worker per core, as more only queue for the cores that hash.
    Login,
    /// `POST /v1/baskets/{id}/checkout` against the bench's simulator at a fixed
    /// 20 ms per call, no failures: its p50 beside `2·L + 15 ms`; no reference.
    Checkout,
    /// As `checkout` with 30 % of the upstream's calls failing: its p99 beside
    /// the upstream deadline.
    CheckoutFlaky,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 13] = [
        Self::Health,
        Self::MeJwt,
        Self::MeKey,
        Self::GetOrder,
        Self::ListOrders,
        Self::CreateOrder,
        Self::LogOne,
        Self::LogBatch,
        Self::UsageTop,
        Self::UsageDaily,
        Self::Login,
        Self::Checkout,
        Self::CheckoutFlaky,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::GetOrder => "get-order",
            Self::ListOrders => "list-orders",
            Self::CreateOrder => "create-order",
            Self::MeJwt => "me-jwt",
            Self::MeKey => "me-key",
            Self::LogOne => "log-one",
            Self::LogBatch => "log-batch",
            Self::UsageTop => "usage-top",
            Self::UsageDaily => "usage-daily",
            Self::Login => "login",
            Self::Checkout => "checkout",
            Self::CheckoutFlaky => "checkout-flaky",
        }
    }

    /// The ratio Ordo ÷ reference the scenario aims for.
    pub fn goal(self) -> Option<f64> {
        match self {
            Self::Health
            | Self::MeJwt
            | Self::MeKey
            | Self::LogBatch
            | Self::UsageTop
            | Self::UsageDaily
            | Self::Login
            | Self::Checkout
            | Self::CheckoutFlaky => None,
            Self::GetOrder | Self::ListOrders => Some(0.5),
            Self::CreateOrder | Self::LogOne => Some(0.6),
        }
    }
}

/// What a scenario needs.
#[derive(Clone)]
pub struct Target {
    /// Ordo's base URL.
    pub base_url: String,
    /// A keep-alive HTTP client that sends a staff user's bearer token.
    pub client: reqwest::Client,
    /// Keep-alive HTTP clients, each sending another API client's key.
    pub key_clients: Vec<reqwest::Client>,
    /// With `--lean-client`: the lean keep-alive client of the read scenarios,
    /// sending the staff user's bearer token (see [`LeanClient`]).
    pub lean: Option<Arc<LeanClient>>,
    /// With `--lean-client`: lean clients, each sending another API client's key.
    pub lean_keys: Vec<Arc<LeanClient>>,
    /// A keep-alive HTTP client that sends an administrator's bearer token.
    pub admin: reqwest::Client,
    /// A keep-alive HTTP client that sends no credentials.
    pub anonymous: reqwest::Client,
    /// The body of a successful `POST /v1/auth/login`.
    pub login: serde_json::Value,
    /// The reference's connections.
    pub reference: Arc<ReferencePool>,
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

/// Who sends a read: the staff user (bearer token) or one of the API clients
/// (its key, by worker).
#[derive(Debug, Clone, Copy)]
enum Caller {
    User,
    Client,
}

impl Target {
    /// Whether `GET path` by `caller` answered a success whose body arrived
    /// whole, through the lean client when the run has one.
    async fn read(&self, caller: Caller, worker: usize, path: &str) -> bool {
        match (caller, &self.lean) {
            (Caller::User, Some(lean)) => lean.get_ok(worker, path).await,
            (Caller::Client, Some(_)) => {
                self.lean_keys[worker % self.lean_keys.len()]
                    .get_ok(worker, path)
                    .await
            }
            (Caller::User, None) => get_ok(&self.client, &format!("{}{path}", self.base_url)).await,
            (Caller::Client, None) => {
                let client = &self.key_clients[worker % self.key_clients.len()];
                get_ok(client, &format!("{}{path}", self.base_url)).await
            }
        }
    }
}

/// Gives every created order its own 4-hour slot, so no two collide under the
/// spacing rule; Ordo's run and the reference's start far apart.
static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

pub(crate) fn next_slot(base_years: i64) -> DateTime<Utc> {
    let slot = i64::try_from(NEXT_SLOT.fetch_add(1, Ordering::Relaxed)).unwrap_or(i64::MAX / 8);
    epoch() + Duration::days(365 * base_years) + Duration::hours(4 * slot)
}

/// Drives Ordo over HTTP.
pub async fn run_ordo(scenario: Scenario, target: &Target, shape: LoadShape) -> Measurement {
    let t = target.clone();
    match scenario {
        Scenario::Checkout | Scenario::CheckoutFlaky => {
            unreachable!("the checkout scenarios need the bench's simulator: `CheckoutBench::run`")
        }
        Scenario::Health => {
            drive(shape, move |worker, _| {
                let t = t.clone();
                async move { t.read(Caller::User, worker, "/healthz").await }
            })
            .await
        }
        Scenario::MeJwt | Scenario::MeKey => {
            drive(shape, move |worker, _| {
                let t = t.clone();
                let caller = if scenario == Scenario::MeKey {
                    Caller::Client
                } else {
                    Caller::User
                };
                async move { t.read(caller, worker, "/v1/auth/me").await }
            })
            .await
        }
        Scenario::Login => {
            let shape = LoadShape {
                concurrency: login_concurrency(),
                ..shape
            };
            drive(shape, move |_, _| {
                let t = t.clone();
                async move {
                    let sent = t
                        .anonymous
                        .post(format!("{}/v1/auth/login", t.base_url))
                        .json(&t.login)
                        .send()
                        .await;
                    match sent {
                        Ok(response) => {
                            let ok = response.status() == reqwest::StatusCode::OK;
                            response.bytes().await.is_ok() && ok
                        }
                        Err(_) => false,
                    }
                }
            })
            .await
        }
        Scenario::GetOrder => {
            drive(shape, move |worker, n| {
                let t = t.clone();
                async move {
                    let id = pick(&t.data.orders, worker, n);
                    t.read(Caller::User, worker, &format!("/v1/orders/{id}")).await
                }
            })
            .await
        }
        Scenario::LogOne | Scenario::LogBatch => {
            let body = if scenario == Scenario::LogOne {
                json!({"endpoint": "/bench/one"}).to_string()
            } else {
                serde_json::Value::Array(vec![json!({"endpoint": crate::hits::BATCH_ENDPOINT}); 1000])
                    .to_string()
            };
            drive(shape, move |worker, _| {
                let t = t.clone();
                let body = body.clone();
                async move {
                    let client = &t.key_clients[worker % t.key_clients.len()];
                    let sent = client
                        .post(format!("{}/v1/logs", t.base_url))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    match sent {
                        Ok(response) => {
                            let accepted = response.status() == reqwest::StatusCode::ACCEPTED;
                            response.bytes().await.is_ok() && accepted
                        }
                        Err(_) => false,
                    }
                }
            })
            .await
        }
        Scenario::UsageTop | Scenario::UsageDaily => {
            let path = if scenario == Scenario::UsageTop {
                "/v1/usage/top?hours=24&limit=3"
            } else {
                "/v1/usage/daily?days=7"
            };
            drive(shape, move |_, _| {
                let t = t.clone();
                async move { get_ok(&t.admin, &format!("{}{path}", t.base_url)).await }
            })
            .await
        }
        Scenario::ListOrders => {
            drive(shape, move |worker, n| {
                let t = t.clone();
                async move {
                    let customer = pick(&t.data.customers, worker, n);
                    t.read(Caller::User, worker, &format!("/v1/orders?customer_id={customer}&limit=50")).await
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
        Scenario::Health
        | Scenario::MeJwt
        | Scenario::MeKey
        | Scenario::LogOne
        | Scenario::LogBatch
        | Scenario::UsageTop
        | Scenario::UsageDaily
        | Scenario::Login
        | Scenario::Checkout
        | Scenario::CheckoutFlaky => return None,
        Scenario::GetOrder => {
            drive(shape, move |worker, n| {
                let t = t.clone();
                async move {
                    let id = pick(&t.data.orders, worker, n);
                    let mut conn = t.reference.get(worker).await;
                    reference::get_order(&mut conn, id).await.unwrap_or(false)
                }
            })
            .await
        }
        Scenario::ListOrders => {
            drive(shape, move |worker, n| {
                let t = t.clone();
                async move {
                    let customer = pick(&t.data.customers, worker, n);
                    let mut conn = t.reference.get(worker).await;
                    reference::list_orders(&mut conn, customer).await.is_ok()
                }
            })
            .await
        }
        Scenario::CreateOrder => {
            drive(shape, move |worker, n| {
                let t = t.clone();
                async move {
                    let mut rng = rng_for(worker, n ^ 0x5eed);
                    let customer = t.data.customers[rng.random_range(0..t.data.customers.len())];
                    let items: Vec<reference::Item> = pick_items(&mut rng, &t.data.products)
                        .as_slice()
                        .iter()
                        .map(|i| (i.product_id.as_uuid(), i64::from(i.quantity.get())))
                        .collect();
                    let mut conn = t.reference.get(worker).await;
                    reference::create_order(&mut conn, customer, &items, next_slot(60))
                        .await
                        .is_ok()
                }
            })
            .await
        }
    };
    Some(measurement)
}

/// Logins in flight at once: one per core, each hashing on its own blocking
/// thread.
pub fn login_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
}

fn rng_for(worker: usize, n: u64) -> StdRng {
    StdRng::seed_from_u64((worker as u64) << 40 ^ n)
}

/// One of `from`, drawn by a generator seeded from the worker and its running number.
pub fn pick(from: &[Uuid], worker: usize, n: u64) -> Uuid {
    from[rng_for(worker, n).random_range(0..from.len())]
}

/// Whether `GET url` answered a success whose body arrived whole.
pub async fn get_ok(client: &reqwest::Client, url: &str) -> bool {
    match client.get(url).send().await {
        Ok(response) => {
            let ok = response.status().is_success();
            response.bytes().await.is_ok() && ok
        }
        Err(_) => false,
    }
}
