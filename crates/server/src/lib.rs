//! The `ordo` server: configuration, HTTP routes and the wiring of Ordo's adapters
//! to its domain services. Handlers stay thin: extract, call one service method,
//! map the result.

pub mod config;
pub mod extract;
pub mod openapi;
pub mod problem;
pub mod request_context;
pub mod routes;
pub mod seed;
mod serde_ext;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use config::{LogFormat, Settings};
pub use startup::{Application, openapi};
