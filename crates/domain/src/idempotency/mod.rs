//! Idempotency keys: a client that sends `Idempotency-Key` with a creating
//! request may send it again — after a timeout, a dropped connection, a crash of
//! its own — and gets the first request's response instead of a second effect.
//!
//! A key belongs to one principal (a user or an API client) and lives 24 hours.
//! The first request with a key claims it (`running`); a repetition with the same
//! request (the same method, path and body, compared by their
//! [`RequestFingerprint`]) is answered with the stored response once the first
//! has finished, or refused as in use while it runs; the same key with another
//! request is refused as reused. A first request that failed without any effect
//! (the database or the upstream was unavailable) releases its key, so that the
//! client's retry is performed rather than answered with the failure.

mod model;
mod ports;
mod service;

pub use model::{
    IdempotencyClaim, IdempotencyRecord, IdempotentRequest, KeyOwner, RequestFingerprint,
    StoredResponse,
};
pub use ports::IdempotencyStore;
#[cfg(any(test, feature = "mocks"))]
pub use ports::MockIdempotencyStore;
pub use service::IdempotencyService;
