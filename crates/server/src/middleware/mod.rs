//! Cross-cutting request handling, one concern per file. Applied in this order,
//! outermost first: request id and span, metrics, HEAD as GET, the client's
//! address, the caller's credentials, the activity record, the body deadline,
//! rate limits, then problem documents for bare errors.

pub mod activity;
pub mod body_deadline;
pub mod client_ip;
pub mod head;
pub mod metrics;
pub mod principal;
pub mod problem_body;
pub mod rate_limit;
pub mod request_id;
