//! The upstream's data and rules, in memory and synchronous: the HTTP layer
//! takes the lock, calls one of these methods, and never awaits while holding it.

use std::collections::{HashMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::{Endpoint, Failure, SimConfig};
use crate::money::{Money, raw_number};

/// Status of an upstream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created, not yet fulfilled.
    Pending,
    /// Fulfilled.
    Completed,
    /// Failed.
    Failed,
}

/// Status of an upstream payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Charged.
    Completed,
    /// Charged, then refunded.
    Refunded,
}

/// One charge (a successful `POST /payments/`) in the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRecord {
    /// The upstream payment id.
    pub payment_id: String,
    /// The amount charged.
    pub amount: Money,
    /// When (RFC 3339).
    pub at: String,
}

/// One refund (a first `DELETE /payments/{id}`) in the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRecord {
    /// The refunded upstream payment id.
    pub payment_id: String,
    /// The amount refunded.
    pub amount: Money,
    /// When (RFC 3339).
    pub at: String,
}

/// One declined payment attempt (`402`) in the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclineRecord {
    /// The amount that was declined.
    pub amount: Money,
    /// Why (`tok_declined`, `amount ends in .13`, …).
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Everything that happened to the money of one upstream order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAudit {
    /// The upstream order id (our order id when the client sent `order_id`).
    pub order_id: String,
    /// Every charge, in order.
    pub charges: Vec<ChargeRecord>,
    /// Every refund, in order.
    pub refunds: Vec<RefundRecord>,
    /// Declined attempts (at most the last 100).
    pub declines: Vec<DeclineRecord>,
    /// The upstream order's current status.
    pub upstream_order_status: OrderStatus,
}

impl OrderAudit {
    /// Charged minus refunded.
    pub fn net_charged(&self) -> Money {
        let charged: i64 = self.charges.iter().map(|c| c.amount.0).sum();
        let refunded: i64 = self.refunds.iter().map(|r| r.amount.0).sum();
        Money(charged - refunded)
    }
}

/// A response computed under the lock: status, JSON body, extra headers.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: String,
    pub replayed: bool,
}

impl Reply {
    pub fn json<T: Serialize>(status: u16, value: &T) -> Reply {
        match serde_json::to_string(value) {
            Ok(body) => Reply {
                status,
                body,
                replayed: false,
            },
            Err(e) => Reply::error(500, &format!("serialisation failed: {e}")),
        }
    }

    /// Errors are JSON strings, as in the contract.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply {
            status,
            body: serde_json::Value::String(message.to_owned()).to_string(),
            replayed: false,
        }
    }
}

struct Product {
    id: &'static str,
    name: &'static str,
    vat_rate: &'static str,
    price_unit: Money,
}

/// The fixed sample catalog.
const CATALOG: [(&str, &str, &str, i64); 10] = [
    ("prod_coffee", "Coffee", "0.25", 2500),
    ("prod_tea", "Tea", "0.25", 1800),
    ("prod_croissant", "Croissant", "0.25", 2250),
    ("prod_sandwich", "Sandwich", "0.25", 5495),
    ("prod_salad", "Salad bowl", "0.25", 6900),
    ("prod_soup", "Soup of the day", "0.25", 4500),
    ("prod_water", "Sparkling water", "0.25", 1500),
    ("prod_apple", "Apple", "0.25", 500),
    ("prod_lunch", "Lunch buffet", "0.25", 8995),
    ("prod_book", "Cookbook", "0.12", 19999),
];

fn catalog() -> impl Iterator<Item = Product> {
    CATALOG.iter().map(|&(id, name, vat_rate, minor)| Product {
        id,
        name,
        vat_rate,
        price_unit: Money(minor),
    })
}

#[derive(Serialize)]
struct ProductView {
    id: &'static str,
    name: &'static str,
    vat_rate: Box<RawValue>,
    price_unit: Money,
}

fn product_view(p: &Product) -> ProductView {
    ProductView {
        id: p.id,
        name: p.name,
        // The catalog's constants are valid JSON numbers.
        vat_rate: raw_number(p.vat_rate).unwrap_or_else(|_| zero()),
        price_unit: p.price_unit,
    }
}

fn zero() -> Box<RawValue> {
    RawValue::from_string("0".to_owned()).unwrap_or_default()
}

struct Order {
    id: String,
    amount_total: Money,
    basket_id: Option<String>,
    user_id: String,
    created_at: String,
    status: OrderStatus,
    charges: Vec<ChargeRecord>,
    refunds: Vec<RefundRecord>,
    declines: VecDeque<DeclineRecord>,
    flaky_attempts: u32,
}

#[derive(Serialize)]
struct OrderView<'a> {
    id: &'a str,
    amount_total: Money,
    basket_id: Option<&'a str>,
    user_id: &'a str,
    created_at: &'a str,
    status: OrderStatus,
}

impl Order {
    fn view(&self) -> OrderView<'_> {
        OrderView {
            id: &self.id,
            amount_total: self.amount_total,
            basket_id: self.basket_id.as_deref(),
            user_id: &self.user_id,
            created_at: &self.created_at,
            status: self.status,
        }
    }

    fn audit(&self) -> OrderAudit {
        OrderAudit {
            order_id: self.id.clone(),
            charges: self.charges.clone(),
            refunds: self.refunds.clone(),
            declines: self.declines.iter().cloned().collect(),
            upstream_order_status: self.status,
        }
    }
}

struct Payment {
    id: String,
    amount: Money,
    user_id: String,
    created_at: String,
    status: PaymentStatus,
    order_id: String,
}

#[derive(Serialize)]
struct PaymentView<'a> {
    id: &'a str,
    amount: Money,
    user_id: &'a str,
    created_at: &'a str,
    status: PaymentStatus,
    #[serde(rename = "type")]
    kind: &'static str,
    order_id: &'a str,
}

impl Payment {
    fn view(&self) -> PaymentView<'_> {
        PaymentView {
            id: &self.id,
            amount: self.amount,
            user_id: &self.user_id,
            created_at: &self.created_at,
            status: self.status,
            kind: "card",
            order_id: &self.order_id,
        }
    }
}

/// Body of `POST /orders/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOrder {
    pub total: Money,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub basket_id: Option<String>,
}

/// Body of `PATCH /orders/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchOrder {
    pub status: OrderStatus,
}

/// Body of `POST /payments/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePayment {
    pub order_id: String,
    pub amount: Money,
    #[serde(default)]
    pub token: Option<String>,
}

struct IdemEntry {
    fingerprint: String,
    status: u16,
    body: String,
}

type IdemKey = (String, &'static str, String);

const MAX_DECLINES_PER_ORDER: usize = 100;
/// How many attempts per order `tok_flaky` fails with `503`.
pub(crate) const FLAKY_FAILURES: u32 = 2;

/// The whole simulated upstream.
pub(crate) struct State {
    config: SimConfig,
    rng: StdRng,
    orders: HashMap<String, Order>,
    order_ids: Vec<String>,
    order_seq: u64,
    payments: HashMap<String, Payment>,
    payment_seq: u64,
    idem: HashMap<IdemKey, IdemEntry>,
    idem_fifo: VecDeque<IdemKey>,
}

/// What chaos decided for one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub latency_ms: u64,
    pub failure: Option<Failure>,
    pub after_effect: bool,
    pub hang_ms: u64,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control)
}

impl State {
    pub fn new(config: SimConfig) -> State {
        State {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            orders: HashMap::new(),
            order_ids: Vec::new(),
            order_seq: 0,
            payments: HashMap::new(),
            payment_seq: 0,
            idem: HashMap::new(),
            idem_fifo: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Replaces the configuration and re-seeds the generator.
    pub fn set_config(&mut self, config: SimConfig) {
        self.rng = StdRng::seed_from_u64(config.seed);
        self.config = config;
    }

    /// Draws latency and failure for one call of `endpoint`.
    pub fn plan(&mut self, endpoint: Endpoint) -> Plan {
        let c = &self.config;
        let mut latency_ms = c.latency_ms;
        if c.jitter_ms > 0 {
            latency_ms += self.rng.random_range(0..=c.jitter_ms);
        }
        if c.tail_probability > 0.0 && self.rng.random_bool(c.tail_probability) {
            latency_ms += self.rng.random_range(0..=c.tail_ms);
        }
        let failure = if c.down {
            Some(Failure::Error503)
        } else {
            let rates = c.failures_for(endpoint);
            let r: f64 = self.rng.random();
            let mut acc = 0.0;
            let mut chosen = None;
            for (p, f) in [
                (rates.error_500, Failure::Error500),
                (rates.error_503, Failure::Error503),
                (rates.error_429, Failure::Error429),
                (rates.drop_connection, Failure::DropConnection),
                (rates.hang, Failure::Hang),
            ] {
                acc += p;
                if r < acc {
                    chosen = Some(f);
                    break;
                }
            }
            chosen
        };
        let after_effect = !c.down
            && failure.is_some()
            && endpoint.is_mutating()
            && c.fail_after_effect_ratio > 0.0
            && self.rng.random_bool(c.fail_after_effect_ratio);
        Plan {
            latency_ms,
            failure,
            after_effect,
            hang_ms: c.hang_ms,
        }
    }

    pub fn list_products(&self) -> Reply {
        let items: Vec<ProductView> = catalog().map(|p| product_view(&p)).collect();
        Reply::json(200, &items)
    }

    pub fn get_product(&self, id: &str) -> Reply {
        match catalog().find(|p| p.id == id) {
            Some(p) => Reply::json(200, &product_view(&p)),
            None => Reply::error(404, "product not found"),
        }
    }

    /// Runs `effect` at most once per (user, path, key): a second call with the
    /// same request replays the stored reply; with another request, `422`.
    /// Only successes and declines are stored (a `503` may be retried).
    fn idempotent(
        &mut self,
        user: &str,
        path: &'static str,
        key: Option<&str>,
        fingerprint: String,
        effect: impl FnOnce(&mut State) -> Reply,
    ) -> Reply {
        let Some(key) = key else {
            return effect(self);
        };
        if key.is_empty() || key.len() > 255 {
            return Reply::error(422, "Idempotency-Key must be 1 to 255 characters");
        }
        let id: IdemKey = (user.to_owned(), path, key.to_owned());
        if let Some(entry) = self.idem.get(&id) {
            if entry.fingerprint != fingerprint {
                return Reply::error(
                    422,
                    "Idempotency-Key was already used with a different request",
                );
            }
            return Reply {
                status: entry.status,
                body: entry.body.clone(),
                replayed: true,
            };
        }
        let reply = effect(self);
        if (200..300).contains(&reply.status) || reply.status == 402 {
            while self.idem_fifo.len() >= self.config.max_records {
                if let Some(old) = self.idem_fifo.pop_front() {
                    self.idem.remove(&old);
                }
            }
            self.idem_fifo.push_back(id.clone());
            self.idem.insert(
                id,
                IdemEntry {
                    fingerprint,
                    status: reply.status,
                    body: reply.body.clone(),
                },
            );
        }
        reply
    }

    pub fn create_order(&mut self, user: &str, input: CreateOrder, key: Option<&str>) -> Reply {
        let fingerprint = format!(
            "{}|{:?}|{:?}",
            input.total.0, input.order_id, input.basket_id
        );
        self.idempotent(user, "/orders/", key, fingerprint, |s| {
            s.create_order_effect(user, input)
        })
    }

    fn create_order_effect(&mut self, user: &str, input: CreateOrder) -> Reply {
        if input.total.0 < 0 {
            return Reply::error(422, "total must not be negative");
        }
        if let Some(b) = &input.basket_id
            && !valid_id(b)
        {
            return Reply::error(422, "basket_id must be 1 to 128 characters");
        }
        let id = match input.order_id {
            Some(id) => {
                if !valid_id(&id) {
                    return Reply::error(422, "order_id must be 1 to 128 characters");
                }
                if let Some(existing) = self.orders.get(&id) {
                    // A retry of the same order: the same upstream order.
                    if existing.user_id != user {
                        return Reply::error(403, "order belongs to another user");
                    }
                    if existing.amount_total != input.total || existing.basket_id != input.basket_id
                    {
                        return Reply::error(409, "order_id already used for another order");
                    }
                    return Reply::json(201, &existing.view());
                }
                id
            }
            None => loop {
                self.order_seq += 1;
                let id = format!("ord_{:08}", self.order_seq);
                if !self.orders.contains_key(&id) {
                    break id;
                }
            },
        };
        if self.orders.len() >= self.config.max_records {
            return Reply::error(507, "simulator storage is full");
        }
        let order = Order {
            id: id.clone(),
            amount_total: input.total,
            basket_id: input.basket_id,
            user_id: user.to_owned(),
            created_at: now(),
            status: OrderStatus::Pending,
            charges: Vec::new(),
            refunds: Vec::new(),
            declines: VecDeque::new(),
            flaky_attempts: 0,
        };
        let reply = Reply::json(201, &order.view());
        self.order_ids.push(id.clone());
        self.orders.insert(id, order);
        reply
    }

    pub fn list_orders(&self, user: &str) -> Reply {
        let views: Vec<OrderView> = self
            .order_ids
            .iter()
            .filter_map(|id| self.orders.get(id))
            .filter(|o| o.user_id == user)
            .map(Order::view)
            .collect();
        Reply::json(200, &views)
    }

    fn owned_order(&self, user: &str, id: &str) -> Result<&Order, Reply> {
        match self.orders.get(id) {
            None => Err(Reply::error(404, "order not found")),
            Some(o) if o.user_id != user => Err(Reply::error(403, "order belongs to another user")),
            Some(o) => Ok(o),
        }
    }

    pub fn get_order(&self, user: &str, id: &str) -> Reply {
        match self.owned_order(user, id) {
            Ok(o) => Reply::json(200, &o.view()),
            Err(r) => r,
        }
    }

    pub fn patch_order(&mut self, user: &str, id: &str, input: PatchOrder) -> Reply {
        if let Err(r) = self.owned_order(user, id) {
            return r;
        }
        match self.orders.get_mut(id) {
            Some(o) => {
                o.status = input.status;
                Reply::json(200, &o.view())
            }
            None => Reply::error(404, "order not found"),
        }
    }

    pub fn create_payment(
        &mut self,
        user: &str,
        input: CreatePayment,
        token: &str,
        key: Option<&str>,
    ) -> Reply {
        let fingerprint = format!("{}|{}|{}", input.order_id, input.amount.0, token);
        self.idempotent(user, "/payments/", key, fingerprint, |s| {
            s.create_payment_effect(user, input, token)
        })
    }

    fn create_payment_effect(&mut self, user: &str, input: CreatePayment, token: &str) -> Reply {
        if input.amount.0 <= 0 {
            return Reply::error(422, "amount must be positive");
        }
        if let Err(r) = self.owned_order(user, &input.order_id) {
            return r;
        }
        let full = self.payments.len() >= self.config.max_records;
        let Some(order) = self.orders.get_mut(&input.order_id) else {
            return Reply::error(404, "order not found");
        };
        let decline = match token {
            "tok_ok" => None,
            "tok_declined" => Some("card declined (tok_declined)".to_owned()),
            "tok_flaky" => {
                if order.flaky_attempts < FLAKY_FAILURES {
                    order.flaky_attempts += 1;
                    return Reply::error(503, "payment processor unavailable (tok_flaky)");
                }
                None
            }
            other => Some(format!("unknown payment token {other:?}")),
        }
        .or_else(|| {
            input
                .amount
                .ends_in_13()
                .then(|| "amount ends in .13".to_owned())
        });
        if let Some(reason) = decline {
            if order.declines.len() >= MAX_DECLINES_PER_ORDER {
                order.declines.pop_front();
            }
            order.declines.push_back(DeclineRecord {
                amount: input.amount,
                reason: reason.clone(),
                at: now(),
            });
            return Reply::error(402, &format!("payment declined: {reason}"));
        }
        if full {
            return Reply::error(507, "simulator storage is full");
        }
        self.payment_seq += 1;
        let payment = Payment {
            id: format!("pay_{:08}", self.payment_seq),
            amount: input.amount,
            user_id: user.to_owned(),
            created_at: now(),
            status: PaymentStatus::Completed,
            order_id: input.order_id,
        };
        order.charges.push(ChargeRecord {
            payment_id: payment.id.clone(),
            amount: payment.amount,
            at: payment.created_at.clone(),
        });
        let reply = Reply::json(201, &payment.view());
        self.payments.insert(payment.id.clone(), payment);
        reply
    }

    fn owned_payment(&self, user: &str, id: &str) -> Result<&Payment, Reply> {
        match self.payments.get(id) {
            None => Err(Reply::error(404, "payment not found")),
            Some(p) if p.user_id != user => {
                Err(Reply::error(403, "payment belongs to another user"))
            }
            Some(p) => Ok(p),
        }
    }

    pub fn get_payment(&self, user: &str, id: &str) -> Reply {
        match self.owned_payment(user, id) {
            Ok(p) => Reply::json(200, &p.view()),
            Err(r) => r,
        }
    }

    /// Refunds a payment; refunding a refunded payment changes nothing.
    pub fn refund_payment(&mut self, user: &str, id: &str) -> Reply {
        if let Err(r) = self.owned_payment(user, id) {
            return r;
        }
        let Some(payment) = self.payments.get_mut(id) else {
            return Reply::error(404, "payment not found");
        };
        if payment.status == PaymentStatus::Completed {
            payment.status = PaymentStatus::Refunded;
            if let Some(order) = self.orders.get_mut(&payment.order_id) {
                order.refunds.push(RefundRecord {
                    payment_id: payment.id.clone(),
                    amount: payment.amount,
                    at: now(),
                });
            }
        }
        Reply::json(200, &payment.view())
    }

    pub fn audit_order(&self, order_id: &str) -> Option<OrderAudit> {
        self.orders.get(order_id).map(Order::audit)
    }

    pub fn audit(&self) -> Vec<OrderAudit> {
        self.order_ids
            .iter()
            .filter_map(|id| self.orders.get(id))
            .map(Order::audit)
            .collect()
    }
}
