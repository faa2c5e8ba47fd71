//! The actix-web routes: chaos around the contract, plus the audit and admin
//! routes (never subject to chaos, no authentication).

use std::any::Any;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::Extensions;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::de::DeserializeOwned;

use crate::config::{Endpoint, Failure, SimConfig};
use crate::state::{CreateOrder, CreatePayment, PatchOrder, Reply, State};

/// Request bodies larger than this answer `413`.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The state shared by every worker.
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub fn new(config: SimConfig) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State::new(config)),
        })
    }

    /// The lock; a panic while holding it leaves consistent data (every
    /// mutation is a single insert/push), so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A duplicate of the connection's socket, kept so that a handler can close
/// the connection without answering.
struct ConnSocket(OwnedFd);

/// `HttpServer::on_connect` hook storing [`ConnSocket`].
pub(crate) fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Ok(fd) = tcp.as_fd().try_clone_to_owned()
    {
        ext.insert(ConnSocket(fd));
    }
}

/// Registers every route.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route("/products/", web::get().to(list_products))
        .route("/products/{id}", web::get().to(get_product))
        .route("/orders/", web::get().to(list_orders))
        .route("/orders/", web::post().to(create_order))
        .route("/orders/{id}", web::get().to(get_order))
        .route("/orders/{id}", web::patch().to(patch_order))
        .route("/payments/", web::post().to(create_payment))
        .route("/payments/{id}", web::get().to(get_payment))
        .route("/payments/{id}", web::delete().to(refund_payment))
        .route("/_audit", web::get().to(audit_all))
        .route("/_audit/orders/{order_id}", web::get().to(audit_order))
        .route("/_admin/config", web::get().to(get_config))
        .route("/_admin/config", web::post().to(set_config))
        .route("/_admin/preset/{name}", web::post().to(set_preset));
}

type Sim = web::Data<Shared>;
type Out = Result<HttpResponse, actix_web::Error>;

fn respond(reply: Reply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    builder.content_type("application/json");
    if reply.replayed {
        builder.insert_header(("Idempotent-Replayed", "true"));
    }
    builder.body(reply.body)
}

async fn inject(req: &HttpRequest, failure: Failure, hang_ms: u64) -> Out {
    let reply = |status: u16, msg: &str| Ok(respond(Reply::error(status, msg)));
    match failure {
        Failure::Error500 => reply(500, "internal server error (injected)"),
        Failure::Error503 => reply(503, "service unavailable (injected)"),
        Failure::Error429 => {
            let mut r = respond(Reply::error(429, "too many requests (injected)"));
            r.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("1"),
            );
            Ok(r)
        }
        Failure::Hang => {
            tokio::time::sleep(Duration::from_millis(hang_ms)).await;
            reply(504, "gateway timeout (injected hang)")
        }
        Failure::DropConnection => {
            if let Some(ConnSocket(fd)) = req.conn_data::<ConnSocket>() {
                let sock = socket2::SockRef::from(fd);
                // Reset instead of a graceful close when the socket is finally
                // closed, and stop both directions now: the client gets no byte.
                let _ = sock.set_linger(Some(Duration::ZERO));
                let _ = sock.shutdown(std::net::Shutdown::Both);
            }
            // Actix cannot write this response on the shut socket and closes it.
            Err(actix_web::error::ErrorInternalServerError(
                "connection dropped (injected)",
            ))
        }
    }
}

fn user_of(req: &HttpRequest) -> Option<String> {
    match req.headers().get("x-auth-user").map(|v| v.to_str()) {
        Some(Ok(u)) if !u.trim().is_empty() && u.len() <= 128 => Some(u.trim().to_owned()),
        _ => None,
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| Reply::error(422, &format!("invalid body: {e}")))
}

/// Tokio's timer counts whole milliseconds and wakes a sleeper up to about that
/// late (1.2 ms on average was measured here), which would add as much to every
/// call of a "fixed" latency. So only all but this much is slept on the timer.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// Waits `latency`, to within tens of microseconds and never less: the last
/// [`TIMER_SLACK`] is slept on a blocking thread, whose sleep is precise.
async fn wait_precisely(latency: Duration) {
    let deadline = std::time::Instant::now() + latency;
    if let Some(coarse) = latency.checked_sub(TIMER_SLACK) {
        tokio::time::sleep(coarse).await;
    }
    let rest = deadline.saturating_duration_since(std::time::Instant::now());
    if !rest.is_zero()
        && tokio::task::spawn_blocking(move || std::thread::sleep(rest))
            .await
            .is_err()
    {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// Chaos around one contract call: latency, a failure before the effect, the
/// authenticated effect itself (`effect`, run under the lock), then maybe a
/// failure after it.
async fn serve(
    req: &HttpRequest,
    sim: &Sim,
    endpoint: Endpoint,
    effect: impl FnOnce(&mut State, &str) -> Reply,
) -> Out {
    let plan = sim.lock().plan(endpoint);
    if plan.latency_ms > 0 {
        wait_precisely(Duration::from_millis(plan.latency_ms)).await;
    }
    if let Some(failure) = plan.failure
        && !plan.after_effect
    {
        return inject(req, failure, plan.hang_ms).await;
    }
    let Some(user) = user_of(req) else {
        return Ok(respond(Reply::error(401, "missing or invalid x-auth-user")));
    };
    let reply = effect(&mut sim.lock(), &user);
    if let Some(failure) = plan.failure {
        return inject(req, failure, plan.hang_ms).await;
    }
    Ok(respond(reply))
}

async fn list_products(req: HttpRequest, sim: Sim) -> Out {
    serve(&req, &sim, Endpoint::ListProducts, |s, _| s.list_products()).await
}

async fn get_product(req: HttpRequest, sim: Sim, id: web::Path<String>) -> Out {
    serve(&req, &sim, Endpoint::GetProduct, |s, _| s.get_product(&id)).await
}

async fn list_orders(req: HttpRequest, sim: Sim) -> Out {
    serve(&req, &sim, Endpoint::ListOrders, |s, u| s.list_orders(u)).await
}

async fn create_order(req: HttpRequest, sim: Sim, body: web::Bytes) -> Out {
    let key = header(&req, "idempotency-key").map(str::to_owned);
    serve(&req, &sim, Endpoint::CreateOrder, |s, u| {
        match parse::<CreateOrder>(&body) {
            Ok(input) => s.create_order(u, input, key.as_deref()),
            Err(r) => r,
        }
    })
    .await
}

async fn get_order(req: HttpRequest, sim: Sim, id: web::Path<String>) -> Out {
    serve(&req, &sim, Endpoint::GetOrder, |s, u| s.get_order(u, &id)).await
}

async fn patch_order(req: HttpRequest, sim: Sim, id: web::Path<String>, body: web::Bytes) -> Out {
    serve(&req, &sim, Endpoint::PatchOrder, |s, u| {
        match parse::<PatchOrder>(&body) {
            Ok(input) => s.patch_order(u, &id, input),
            Err(r) => r,
        }
    })
    .await
}

async fn create_payment(req: HttpRequest, sim: Sim, body: web::Bytes) -> Out {
    let key = header(&req, "idempotency-key").map(str::to_owned);
    let header_token = header(&req, "x-payment-token").map(str::to_owned);
    serve(&req, &sim, Endpoint::CreatePayment, |s, u| {
        match parse::<CreatePayment>(&body) {
            Ok(input) => {
                let token = input
                    .token
                    .clone()
                    .or(header_token)
                    .unwrap_or_else(|| "tok_ok".to_owned());
                s.create_payment(u, input, &token, key.as_deref())
            }
            Err(r) => r,
        }
    })
    .await
}

async fn get_payment(req: HttpRequest, sim: Sim, id: web::Path<String>) -> Out {
    serve(&req, &sim, Endpoint::GetPayment, |s, u| {
        s.get_payment(u, &id)
    })
    .await
}

async fn refund_payment(req: HttpRequest, sim: Sim, id: web::Path<String>) -> Out {
    serve(&req, &sim, Endpoint::RefundPayment, |s, u| {
        s.refund_payment(u, &id)
    })
    .await
}

async fn audit_all(sim: Sim) -> HttpResponse {
    respond(Reply::json(200, &sim.lock().audit()))
}

async fn audit_order(sim: Sim, order_id: web::Path<String>) -> HttpResponse {
    match sim.lock().audit_order(&order_id) {
        Some(a) => respond(Reply::json(200, &a)),
        None => respond(Reply::error(404, "order not found")),
    }
}

async fn get_config(sim: Sim) -> HttpResponse {
    respond(Reply::json(200, sim.lock().config()))
}

async fn set_config(sim: Sim, body: web::Bytes) -> HttpResponse {
    let config = match parse::<SimConfig>(&body) {
        Ok(c) => c,
        Err(r) => return respond(r),
    };
    if let Err(e) = config.validate() {
        return respond(Reply::error(422, &e));
    }
    let mut state = sim.lock();
    state.set_config(config);
    respond(Reply::json(200, state.config()))
}

async fn set_preset(sim: Sim, name: web::Path<String>) -> HttpResponse {
    match SimConfig::preset(&name) {
        Some(config) => {
            let mut state = sim.lock();
            state.set_config(config);
            respond(Reply::json(200, state.config()))
        }
        None => respond(Reply::error(404, "unknown preset")),
    }
}
