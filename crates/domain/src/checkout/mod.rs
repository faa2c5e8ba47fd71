//! Checkout: a basket becomes a paid order, through an upstream order and
//! payment API that is slow, sometimes fails, and sometimes does not answer.
//!
//! One transaction writes everything local at once — the order (`pending_payment`,
//! numbered, stock reserved, the spacing rule checked, exactly as `/v1/orders`
//! does), the basket marked checked out, the checkout's own record, the link from
//! the request's idempotency key to the order, and an outbox row that will carry
//! the upstream order's final status — or, on any refusal, nothing. Only then is
//! the upstream called: its order (idempotent on our order id), then the payment
//! (idempotent on a key derived from our order id, the same on every attempt, in
//! every process, after any restart), and the result of both is recorded in
//! one write. The checkout's state machine is [`CheckoutState`]; a checkout
//! interrupted anywhere (the upstream timed out, the process died) is resumed
//! from its recorded state by [`CheckoutService::reconcile_due`] with the same
//! keys: never a second order, never a second charge.
//! A checkout that never reached the payment is given up after a while, its
//! stock released; one whose payment may have happened is asked about until the
//! upstream says.
//!
//! The upstream order's completion (`PATCH /orders/{id}`) is delivered off the
//! request path by [`CheckoutService::dispatch_outbox_once`], at least once, with
//! growing pauses between attempts.
//!
//! Reconciliation and the dispatchers take rows up by per-row claims
//! ([`ClaimToken`]): a small batch at a time, each row leased for the policy's
//! `lease` (longer than the upstream calls of one row take), skipped by every
//! other worker meanwhile, and written back only under the same claim. Any
//! number of workers — the dispatcher task, the `dispatch-outbox` job, other
//! instances — may run at once without delivering or charging one row twice
//! at once; a row whose worker died is taken up again once its lease ran out.

mod error;
mod model;
mod ports;
mod service;
mod state;

pub use error::StartCheckoutError;
pub use model::{
    Checkout, CheckoutOutcome, CheckoutPlan, CheckoutUpdate, ClaimToken, DispatchReport,
    NewCheckout, OutboxBacklog, OutboxDelivery, ReconcileReport, StartCheckout,
};
pub use ports::{CheckoutStore, Outbox};
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockCheckoutStore, MockOutbox};
pub use service::{CheckoutPolicy, CheckoutPorts, CheckoutService};
pub use state::CheckoutState;
