//! Black-box tests of the whole service over HTTP, one module per API area.

mod activity;
mod auth;
mod baskets;
mod chaos;
mod checkout;
mod clients;
mod concurrency;
mod customers;
mod hardening;
mod jobs;
mod lifecycle;
mod malformed_input;
mod operations;
mod orders;
mod products;
mod rate_limits;
mod reports;
mod sample_data;
mod scheduler;
mod shared_rate_limits;
mod shared_usage_cache;
mod upstream;
