//! Rate limits: how many requests a caller may make, decided by the generic cell
//! rate algorithm (GCRA), a pure function over one stored instant per key.
//!
//! A [`RatePolicy`] allows `limit` requests per `period` on average and up to
//! `burst` at once. Its state is the *theoretical arrival time* (TAT): the instant
//! at which the caller's allowance would be fully used if every request arrived
//! exactly on schedule. A request at `now` is allowed when, after adding one
//! emission interval to `max(TAT, now)`, the TAT lies no more than `burst`
//! intervals ahead of `now`. The store keeps only that instant per key, so memory
//! is constant per caller and a key whose TAT has passed can be forgotten.
//!
//! Which allowances a request draws on is [`RatePolicies`]' rule (a user's, a
//! client's or its address's; a login attempt also its address's and its e-mail
//! address's, all decided at once); [`RateLimiter`] applies it through the
//! [`RateLimitStore`] port and decides what a failing store means.

mod error;
mod gcra;
mod key;
mod policy;
mod ports;
mod service;

pub use error::AdmitError;
pub use gcra::{Decision, RatePolicy, decide};
pub use key::RateKey;
pub use policy::{LimitedCaller, LimitedRequest, LoginAttempt, RatePolicies};
#[cfg(any(test, feature = "mocks"))]
pub use ports::MockRateLimitStore;
pub use ports::{LimitCheck, RateLimitError, RateLimitOutcome, RateLimitStore};
pub use service::{Admission, Quota, RateLimiter};
