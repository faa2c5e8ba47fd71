//! Black-box tests of the whole service over HTTP, one module per API area.

mod auth;
mod baskets;
mod concurrency;
mod customers;
mod hardening;
mod lifecycle;
mod malformed_input;
mod operations;
mod orders;
mod products;
mod sample_data;
