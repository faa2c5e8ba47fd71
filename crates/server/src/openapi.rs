//! The OpenAPI document, collected from the same route registration the server
//! uses, so the two cannot drift apart.

use actix_web::App;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ordo",
        description = "Order management: catalog, customers, orders with a spacing rule, gapless numbers and stock that never goes negative. Errors are RFC 9457 problem documents."
    ),
    tags(
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "catalog", description = "Products and stock"),
        (name = "customers", description = "Customers"),
        (name = "orders", description = "Orders"),
    )
)]
struct ApiDoc;

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes::register)
        .split_for_parts()
        .1
}
