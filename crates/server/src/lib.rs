//! The `ordo` server: configuration, HTTP routes and the wiring of Ordo's adapters
//! to its domain services. Handlers stay thin: extract, call one service method,
//! map the result.

pub mod activity_writer;
pub mod app;
pub mod client_directory;
pub mod config;
pub mod database;
pub mod dispatcher;
pub mod draining;
pub mod extract;
pub mod http;
pub mod idempotency;
pub mod jobs;
pub mod middleware;
pub mod openapi;
pub mod problem;
pub mod rate_limits;
pub mod recent_users;
pub mod routes;
pub mod routing;
pub mod scheduler;
pub mod seed;
mod serde_ext;
pub mod state;
pub mod tasks;
pub mod telemetry;
pub mod usage_cache;

pub use app::{Adapters, Application, ApplicationBuilder, Services, StopHandle, UpstreamPorts};
pub use config::{AuthSettings, LogFormat, Settings, UpstreamSettings};
pub use openapi::openapi;
