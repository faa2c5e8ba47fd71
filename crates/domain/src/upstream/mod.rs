//! The upstream: the external order, payment and catalog API that checkout talks
//! to (`kanpla-mock-api.openapi.json`), as the domain needs it.
//!
//! The upstream is slow and sometimes fails. Its adapter retries what is safe to
//! retry and tells the caller precisely what it knows when it gives up:
//!
//! - a payment was **declined** (nothing was charged);
//! - the upstream **rejected** the request (a 4xx other than 402, with its reason:
//!   retrying the same request cannot help);
//! - the **outcome is unknown**: a creating call (`POST`) reached the upstream but
//!   no answer came back (a timeout, a dropped connection, a 5xx after which the
//!   retries ran out). The order or charge may exist. Every creating call carries
//!   an [`IdempotencyKey`], so the caller settles it by sending the *same* request
//!   with the *same* key again later — never a new key, which could charge twice;
//! - the upstream is [`Unavailable`](crate::Unavailable) (dependency
//!   [`Upstream`](crate::Dependency::Upstream)): nothing was sent, or only calls
//!   that are safe to repeat were, and `retry_after` says when to try again. The
//!   circuit breaker answers this at once while the upstream is failing.
//!
//! Amounts are [`Money`](crate::Money) in minor units; the adapter converts them to
//! and from the upstream's decimal numbers exactly.

mod error;
mod model;
mod ports;

pub use error::{ChargeError, CreateUpstreamOrderError, UpstreamCallError, UpstreamRejection};
pub use model::{
    CircuitState, IdempotencyKey, NewPayment, NewUpstreamOrder, PaymentToken, UpstreamHealth,
    UpstreamOrder, UpstreamOrderId, UpstreamOrderStatus, UpstreamPayment, UpstreamPaymentId,
    UpstreamPaymentStatus, UpstreamProduct, UpstreamProductId, VatRate,
};
pub use ports::{CatalogSource, PaymentGateway, UpstreamMonitor, UpstreamOrders};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockCatalogSource, MockPaymentGateway, MockUpstreamMonitor, MockUpstreamOrders};
