//! HTTP routes: extract, call one service method, map the result.

pub mod auth;
pub mod baskets;
pub mod checkout;
pub mod clients;
pub mod customers;
pub mod health;
pub mod integrations;
pub mod jobs;
pub mod logs;
pub mod orders;
pub mod products;
pub mod reports;
pub mod usage;
pub mod users;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::encode_cursor;
pub use crate::problem::Problem;

/// Registers the versioned API.
pub fn v1(config: &mut ServiceConfig) {
    config.service(
        scope("/v1")
            .configure(auth::routes)
            .configure(users::routes)
            .configure(clients::routes)
            .configure(products::routes)
            .configure(customers::routes)
            .configure(orders::routes)
            .configure(baskets::routes)
            .configure(jobs::routes)
            .configure(logs::routes)
            .configure(usage::routes)
            .configure(checkout::routes)
            .configure(reports::routes)
            .configure(integrations::routes),
    );
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T: ToSchema> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> ListResponse<T> {
    /// A response from a domain page, converting each item.
    pub fn from_page<D>(page: ordo_domain::Page<D>, convert: impl FnMut(D) -> T) -> Self {
        let next_cursor = page.next_after.map(encode_cursor);
        Self {
            items: page.items.into_iter().map(convert).collect(),
            next_cursor,
        }
    }
}

/// Registers every route: operations at the root, the API under `/v1`.
pub fn register(config: &mut ServiceConfig) {
    config
        .service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .configure(clients::aliases)
        .configure(logs::aliases)
        .configure(usage::aliases)
        .configure(v1);
}
