use std::time::Duration;

use uuid::Uuid;

use crate::Money;
use crate::orders::OrderId;
use crate::value::{InvalidValue, text_newtype};

text_newtype!(
    /// The upstream's id of an order (ours, when we sent our order id).
    UpstreamOrderId,
    "an upstream order id",
    128
);

text_newtype!(
    /// The upstream's id of a payment.
    UpstreamPaymentId,
    "an upstream payment id",
    128
);

text_newtype!(
    /// The upstream catalog's id of a product (a product's `external_id` here).
    UpstreamProductId,
    "an upstream product id",
    128
);

text_newtype!(
    /// The payment method the customer presented, as a token of the payment
    /// provider (`tok_ok`, `tok_declined`, `tok_flaky` in the sandbox).
    PaymentToken,
    "a payment token",
    255
);

impl UpstreamOrderId {
    /// The upstream order id of our order: we send our id, so that creating the
    /// upstream order again returns the same one.
    pub fn of(order: OrderId) -> Self {
        Self(order.to_string())
    }
}

/// The key that makes a creating call safe to repeat: the upstream performs the
/// first request with a key once and answers every repetition with that first
/// outcome. Printable ASCII, 1 to 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a key.
    ///
    /// # Errors
    /// When `raw` is empty, longer than 255 characters, or not printable ASCII.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidValue::new(
                "an idempotency key is 1 to 255 printable ASCII characters without spaces",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A key derived from an id (e.g. our order's, or a checkout attempt's): the
    /// same id gives the same key, so a retry after a restart repeats the request
    /// instead of making a new one.
    pub fn for_id(purpose: &str, id: Uuid) -> Self {
        Self(format!("{purpose}-{id}"))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A value-added-tax rate, exactly, in hundredths of a percent: `0.25` is 2 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VatRate(u32);

impl VatRate {
    /// The largest rate accepted: 100 %.
    pub const MAX_BASIS_POINTS: u32 = 10_000;

    /// A rate of `basis_points` hundredths of a percent.
    ///
    /// # Errors
    /// When the rate exceeds 100 %.
    pub fn from_basis_points(basis_points: u32) -> Result<Self, InvalidValue> {
        if basis_points > Self::MAX_BASIS_POINTS {
            return Err(InvalidValue::new("a VAT rate is at most 100 %"));
        }
        Ok(Self(basis_points))
    }

    /// The rate in hundredths of a percent.
    pub fn basis_points(self) -> u32 {
        self.0
    }
}

/// Status of an upstream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamOrderStatus {
    /// Created, not yet fulfilled.
    Pending,
    /// Fulfilled.
    Completed,
    /// Given up.
    Failed,
}

/// Status of an upstream payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamPaymentStatus {
    /// Charged.
    Completed,
    /// Charged, then refunded.
    Refunded,
}

/// An order to create upstream for one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpstreamOrder {
    /// Our order: its id becomes the upstream order's id, which makes creating it
    /// idempotent by itself.
    pub order_id: OrderId,
    /// What the order costs.
    pub total: Money,
    /// The basket it was checked out from, if any.
    pub basket_id: Option<Uuid>,
    /// Sent as `Idempotency-Key`.
    pub idempotency_key: IdempotencyKey,
}

/// An order as the upstream has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamOrder {
    /// Its upstream id.
    pub id: UpstreamOrderId,
    /// Its total.
    pub total: Money,
    /// The basket it came from, as the upstream stores it.
    pub basket_id: Option<String>,
    /// Its status.
    pub status: UpstreamOrderStatus,
}

/// A charge to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    /// The upstream order it pays for.
    pub order_id: UpstreamOrderId,
    /// How much; positive.
    pub amount: Money,
    /// The customer's payment method.
    pub token: PaymentToken,
    /// Sent as `Idempotency-Key`: the same key on every attempt, and again when
    /// an unknown outcome is settled.
    pub idempotency_key: IdempotencyKey,
}

/// A payment as the upstream has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamPayment {
    /// Its upstream id.
    pub id: UpstreamPaymentId,
    /// The upstream order it paid for.
    pub order_id: UpstreamOrderId,
    /// The amount charged.
    pub amount: Money,
    /// Charged or refunded.
    pub status: UpstreamPaymentStatus,
}

/// A product of the upstream catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamProduct {
    /// Its upstream id.
    pub id: UpstreamProductId,
    /// Its name, as the upstream spells it.
    pub name: String,
    /// Its VAT rate.
    pub vat_rate: VatRate,
    /// Its unit price.
    pub price: Money,
}

/// The circuit breaker's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls fail at once, without reaching the upstream.
    Open,
    /// A few probe calls go through to learn whether the upstream is back.
    HalfOpen,
}

impl CircuitState {
    /// A stable lower-case name (`closed`, `open`, `half_open`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// How the upstream has been doing lately, as the adapter saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamHealth {
    /// The circuit breaker's position.
    pub circuit: CircuitState,
    /// Attempts in the recent window.
    pub recent_calls: u64,
    /// The share of those that failed (timeouts, connection errors, 5xx, 429), `0..=1`.
    pub recent_error_rate: f64,
    /// The median latency of those attempts, `None` without any.
    pub latency_p50: Option<Duration>,
    /// Their 99th-percentile latency, `None` without any.
    pub latency_p99: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_printable_ascii_up_to_255_characters() {
        assert!(IdempotencyKey::parse("checkout-0193-abc").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "has space", "tab\there", "é", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_key_derived_from_an_id_is_the_same_every_time() {
        let id = Uuid::now_v7();
        assert_eq!(
            IdempotencyKey::for_id("payment", id),
            IdempotencyKey::for_id("payment", id)
        );
        assert_ne!(
            IdempotencyKey::for_id("payment", id),
            IdempotencyKey::for_id("order", id)
        );
        assert!(IdempotencyKey::parse(IdempotencyKey::for_id("payment", id).as_str()).is_ok());
    }

    #[test]
    fn vat_rates_are_at_most_one_hundred_percent() {
        assert_eq!(
            VatRate::from_basis_points(2500).map(VatRate::basis_points),
            Ok(2500)
        );
        assert!(VatRate::from_basis_points(10_001).is_err());
    }

    #[test]
    fn the_upstream_order_id_of_our_order_is_our_id() {
        let ours = OrderId::from_uuid(Uuid::now_v7());
        assert_eq!(UpstreamOrderId::of(ours).as_str(), ours.to_string());
    }
}
