//! Ordo's business rules, free of any web framework, database driver or HTTP client.
//!
//! Each area (`catalog`, `customers`, `orders`, `baskets`, `checkout`, `reports`, ...) has the same shape: models that parse
//! raw input into values that stay valid, the ports (traits) it needs from the
//! outside world, a service with the use cases, and one error enum per use case.
//! Adapters in other crates implement the ports; mocks of every port are available
//! with the `mocks` feature.

#![warn(missing_docs)]

pub mod activity;
pub mod auth;
pub mod baskets;
pub mod catalog;
pub mod checkout;
pub mod clients;
pub mod clock;
pub mod customers;
pub mod idempotency;
pub mod ids;
pub mod money;
pub mod orders;
pub mod page;
pub mod ratelimit;
pub mod reports;
pub mod scheduling;
pub mod sealing;
pub mod unavailable;
pub mod upstream;
pub mod value;

pub use clock::{Clock, SystemClock, to_micros};
pub use ids::{IdSource, UuidV7Ids};
pub use money::{Currency, Money, MoneyOverflow};
pub use page::{Page, PageLimit, PageRequest};
pub use unavailable::{Dependency, Unavailable};
pub use value::{InvalidValue, Version, VersionMatch};
