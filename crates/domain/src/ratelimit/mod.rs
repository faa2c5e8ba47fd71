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

mod gcra;
mod ports;

pub use gcra::{Decision, RatePolicy, decide};
pub use ports::{LimitCheck, RateLimitError, RateLimitOutcome, RateLimitStore};
