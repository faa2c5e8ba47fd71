//! HTTP routes: extract, call one service method, map the result.

pub mod customers;
pub mod health;
pub mod orders;
pub mod products;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::extract::encode_cursor;

/// Registers the versioned API.
pub fn v1(config: &mut ServiceConfig) {
    config.service(
        scope("/v1")
            .configure(products::routes)
            .configure(customers::routes)
            .configure(orders::routes),
    );
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T: ToSchema> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    #[schema(required = true)]
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

/// An RFC 9457 problem document, as every error is answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The request path.
    pub instance: String,
    /// A stable code to branch on.
    pub code: String,
    /// The request's `X-Request-Id`.
    pub request_id: String,
    /// For `validation_failed`: one entry per invalid field.
    #[schema(nullable = false)]
    pub errors: Option<Vec<crate::problem::FieldError>>,
}

/// Registers every route: operations at the root, the API under `/v1`.
pub fn register(config: &mut ServiceConfig) {
    config
        .service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .configure(v1);
}
