//! An in-memory simulator of Ordo's upstream order and payment API (the
//! contract of `kanpla-mock-api.openapi.json`), slow and flaky on purpose, with
//! an audit of every charge so that tests can prove nobody was charged twice.
//!
//! The contract: `GET /products/`, `GET /products/{id}`, `GET /orders/`,
//! `POST /orders/` `{total, order_id?, basket_id?}`, `GET|PATCH /orders/{id}`
//! `{status}`, `POST /payments/` `{order_id, amount, token?}` (`402` when
//! declined), `GET /payments/{id}`, `DELETE /payments/{id}` (refund). Every
//! call needs `x-auth-user` (`401`); another user's order or payment is `403`,
//! an unknown one `404`, a malformed body `422`. `Idempotency-Key` on a POST
//! replays the first success or decline (same user and path); reused with a
//! different request it is `422`. Replays carry `Idempotent-Replayed: true`.
//! Sending `order_id` makes `POST /orders/` idempotent by itself: the same id
//! returns the same order (`409` if the total or basket differ).
//!
//! Payment tokens (body `token` or header `x-payment-token`, default `tok_ok`):
//! `tok_ok` pays, `tok_declined` is `402`, `tok_flaky` is `503` for the first
//! two attempts per order and then pays; any other token is `402`. An amount
//! ending in `.13` is declined.
//!
//! Not subject to chaos and without authentication: `GET /_audit`,
//! `GET /_audit/orders/{order_id}`, `GET|POST /_admin/config` and
//! `POST /_admin/preset/{sandbox|healthy|slow|flaky|down}`.
#![warn(missing_docs)]

mod config;
mod http;
mod money;
mod state;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

pub use config::{Endpoint, Failure, FailureRates, SimConfig};
pub use money::{Money, MoneyError};
pub use state::{
    ChargeRecord, DeclineRecord, OrderAudit, OrderStatus, PaymentStatus, RefundRecord,
};

use http::Shared;

/// Entry point: starts simulators.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamSim;

impl UpstreamSim {
    /// Binds `127.0.0.1:0` and serves on the current tokio (or actix) runtime.
    pub fn start(config: SimConfig) -> anyhow::Result<RunningSim> {
        UpstreamSim::start_at("127.0.0.1:0".parse()?, config)
    }

    /// Binds `listen` and serves on the current tokio (or actix) runtime; an
    /// error when called outside of one, or when the configuration is invalid.
    pub fn start_at(listen: SocketAddr, config: SimConfig) -> anyhow::Result<RunningSim> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("UpstreamSim::start needs a tokio runtime (or use start_on_own_thread)")?;
        let (shared, server, addr) = build(listen, config)?;
        let handle = server.handle();
        runtime.spawn(server);
        Ok(RunningSim {
            addr,
            shared,
            handle,
            thread: None,
        })
    }

    /// Binds `127.0.0.1:0` and serves on a thread of its own, with its own
    /// actix system: usable from any test, async or not.
    pub fn start_on_own_thread(config: SimConfig) -> anyhow::Result<RunningSim> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("upstream-sim".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    match build("127.0.0.1:0".parse().expect("valid address"), config) {
                        Ok((shared, server, addr)) => {
                            let _ = tx.send(Ok((shared, server.handle(), addr)));
                            if let Err(e) = server.await {
                                tracing::warn!(error = %e, "upstream simulator stopped with an error");
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                })
            })
            .context("spawning the simulator thread")?;
        let (shared, handle, addr) = rx
            .recv()
            .context("the simulator thread ended before starting")??;
        Ok(RunningSim {
            addr,
            shared,
            handle,
            thread: Some(thread),
        })
    }
}

fn build(
    listen: SocketAddr,
    config: SimConfig,
) -> anyhow::Result<(Arc<Shared>, actix_web::dev::Server, SocketAddr)> {
    config.validate().map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let shared = Shared::new(config);
    let data = web::Data::from(shared.clone());
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(http::routes))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .on_connect(http::on_connect)
        .listen(listener)?
        .run();
    Ok((shared, server, addr))
}

/// A running simulator. Dropping it stops the server (without waiting).
pub struct RunningSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningSim {
    /// The base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current configuration.
    pub fn config(&self) -> SimConfig {
        self.shared.lock().config().clone()
    }

    /// Replaces the configuration (and re-seeds the generator) at once.
    pub fn set_config(&self, config: SimConfig) -> anyhow::Result<()> {
        config.validate().map_err(anyhow::Error::msg)?;
        self.shared.lock().set_config(config);
        Ok(())
    }

    /// Every order's charges, refunds and declines, in creation order.
    pub fn audit(&self) -> Vec<OrderAudit> {
        self.shared.lock().audit()
    }

    /// The audit of one upstream order, if it exists.
    pub fn audit_order(&self, order_id: &str) -> Option<OrderAudit> {
        self.shared.lock().audit_order(order_id)
    }

    /// Stops the server, cutting in-flight calls, and waits for it.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        // The stop command is sent at once; nobody waits for its completion.
        drop(self.handle.stop(false));
    }
}
