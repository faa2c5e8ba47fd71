//! Baskets: what a customer at the till is about to buy, kept between requests.
//!
//! A basket holds up to 100 lines, one per product, each priced from the local
//! catalog by the same rules as an order's lines (`price_lines`) at the moment the
//! line is set. The price of a line is then kept: the basket shows what the customer
//! was told, and checkout turns the lines into the order's lines as they are
//! ([`Basket::lines`] are [`OrderLine`](crate::orders::OrderLine)s). Setting a line
//! again re-prices it.
//!
//! Every change extends the basket's life by its time-to-live; once `expires_at`
//! has passed, an open basket is `expired` and refuses changes, whether or not the
//! job that marks expired baskets has run yet. Changes to one basket are applied
//! one after another, none lost, and each one raises its `version` by one.

mod error;
mod model;
mod ports;
mod service;
mod status;

pub use error::{ChangeBasketError, CreateBasketError, DeleteBasketError};
pub use model::{Basket, BasketEdit, BasketId, BasketTtl, LineChange, parse_basket_quantity};
pub use ports::BasketRepository;
#[cfg(any(test, feature = "mocks"))]
pub use ports::MockBasketRepository;
pub use service::{BasketPolicy, BasketService};
pub use status::BasketStatus;
