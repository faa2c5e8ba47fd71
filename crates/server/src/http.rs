//! The HTTP server: limits, middleware order, routes, docs and the fallback.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::HttpSettings;
use crate::extract::MAX_BODY_BYTES;
use crate::middleware::client_ip::{self, TrustedProxies};
use crate::middleware::{
    activity, body_deadline, head, metrics, principal, problem_body, rate_limit, request_id,
};
use crate::problem::{ApiError, FieldError};
use crate::routing::{AllowedMethods, unrouted};
use crate::state::AppState;
use crate::{openapi, routes};

/// Builds the server on `listener`; it serves once awaited. Signals are left to the
/// caller (see `main.rs`), so a first Ctrl-C can shut down as gently as SIGTERM.
///
/// # Errors
/// When the listener cannot be used.
pub fn serve(
    listener: TcpListener,
    state: AppState,
    settings: &HttpSettings,
) -> anyhow::Result<Server> {
    widen_backlog(&listener);
    let state = web::Data::new(state);
    let spec = openapi::openapi();
    let allowed = web::Data::new(AllowedMethods::from_spec(&spec));
    let deadline = web::Data::new(body_deadline::BodyDeadline(settings.request_timeout()));
    let trusted_proxies = web::Data::new(TrustedProxies::parse(&settings.trusted_proxies)?);
    // The pool's connections are shared out between exactly these workers (see
    // `PgPool`). Unset: a worker per core, 2 when that is unknown (actix-web's own
    // default).
    let workers = settings.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    let shares = state.pool.share_out(workers);
    let server = HttpServer::new(move || {
        if let Some(Err(e)) = shares.as_ref().map(|shares| shares.adopt()) {
            tracing::warn!(
                error = format!("{e:#}"),
                "this worker takes shared database connections"
            );
        }
        if let Some(redis) = &state.redis
            && let Err(e) = redis.adopt_thread()
        {
            tracing::warn!(
                error = format!("{e:#}"),
                "this worker sends its Redis commands over the shared connection"
            );
        }
        App::new()
            .wrap(problem_body::middleware())
            .wrap(from_fn(rate_limit::middleware))
            .wrap(from_fn(body_deadline::middleware))
            .wrap(from_fn(activity::middleware))
            .wrap(from_fn(principal::middleware))
            .wrap(from_fn(client_ip::middleware))
            .wrap(from_fn(head::middleware))
            .wrap(from_fn(metrics::middleware))
            .wrap(from_fn(request_id::middleware))
            .app_data(state.clone())
            .app_data(allowed.clone())
            .app_data(deadline.clone())
            .app_data(trusted_proxies.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(
                web::PathConfig::default()
                    .error_handler(|_, _| ApiError::for_status(StatusCode::NOT_FOUND).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::validation(vec![FieldError::new("query", e.to_string())]).into()
            }))
            .into_utoipa_app()
            .configure(routes::register)
            .into_app()
            .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", spec.clone()))
            .service(web::redirect("/docs", "/docs/"))
            .default_service(web::to(unrouted))
    })
    .disable_signals()
    .shutdown_timeout(settings.shutdown_timeout_secs)
    .client_request_timeout(settings.request_timeout())
    .client_disconnect_timeout(settings.request_timeout())
    .max_connections(settings.max_connections)
    .workers(workers)
    .listen(listener)?;
    Ok(server.run())
}

/// Connections the kernel queues for the server before it accepts them. A
/// listener bound by the standard library queues 128 only; a burst of new
/// connections beyond that is dropped by the kernel and retried by the client with
/// exponential back-off (seconds), although the server could take thousands.
const LISTEN_BACKLOG: i32 = 4096;

/// Listens again on `listener` with [`LISTEN_BACKLOG`] (Linux allows changing the
/// backlog of a listening socket; the kernel caps it at `net.core.somaxconn`).
fn widen_backlog(listener: &TcpListener) {
    use nix::sys::socket::{Backlog, listen};
    let widened = Backlog::new(LISTEN_BACKLOG).and_then(|backlog| listen(listener, backlog));
    if let Err(e) = widened {
        tracing::warn!(error = %e, "could not widen the listen backlog; 128 connections queue at most");
    }
}

/// Raises this process's open-file limit to its hard maximum: every connection is
/// a file descriptor, and the usual soft limit of 1 024 is far below what a
/// server meets. Returns the limit in force.
pub fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            tracing::warn!(error = %e, soft, hard, "could not raise the open-file limit");
            return Some(soft);
        }
        tracing::debug!(from = soft, to = hard, "raised the open-file limit");
    }
    Some(hard)
}
