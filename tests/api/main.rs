//! Black-box tests of the whole service over HTTP, one module per API area.

mod concurrency;
mod customers;
mod malformed_input;
mod operations;
mod orders;
mod products;
