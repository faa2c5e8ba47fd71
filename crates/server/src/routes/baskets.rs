//! `/v1/baskets`.

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use ordo_domain::baskets::{Basket, BasketId, parse_basket_quantity};
use ordo_domain::catalog::ProductId;
use ordo_domain::customers::CustomerId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::orders::LineView;
use crate::extract::{CheckAll, IfMatch, JsonBody, Staff, etag, field};
use crate::problem::{ApiError, basket_not_found};
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config
        .service(create_basket)
        .service(get_basket)
        .service(set_basket_item)
        .service(remove_basket_item)
        .service(delete_basket);
}

/// A basket to open.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BasketInput {
    /// Whom the basket is for; checkout can name the customer later.
    pub customer_id: Option<Uuid>,
}

/// The new quantity of a product in a basket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BasketItemInput {
    /// How many units, 1 to 1 000 000; 0 removes the line.
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub quantity: i64,
}

/// A basket: its lines priced from the catalog when they were set.
#[derive(Debug, Serialize, ToSchema)]
pub struct BasketView {
    id: Uuid,
    #[schema(required = true)]
    customer_id: Option<Uuid>,
    /// `open`, `checked_out` or `expired` (an open basket whose `expires_at` has
    /// passed is `expired`).
    #[schema(value_type = crate::openapi::BasketStatusName)]
    status: &'static str,
    /// The lines, in the order they were first added.
    items: Vec<LineView>,
    total_minor: i64,
    #[schema(schema_with = crate::openapi::currency)]
    currency: String,
    /// When an open basket expires unless changed before; every change extends it.
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i32,
}

impl From<&Basket> for BasketView {
    fn from(b: &Basket) -> Self {
        Self {
            id: b.id().as_uuid(),
            customer_id: b.customer_id().map(|c| c.as_uuid()),
            status: b.status().as_str(),
            items: b.lines().iter().map(LineView::from).collect(),
            total_minor: b.total().minor(),
            currency: b.total().currency().to_string(),
            expires_at: b.expires_at(),
            created_at: b.created_at(),
            updated_at: b.updated_at(),
            version: b.version().get(),
        }
    }
}

fn basket_response(mut builder: actix_web::HttpResponseBuilder, basket: &Basket) -> HttpResponse {
    etag(&mut builder, basket.version()).json(BasketView::from(basket))
}

/// Opens an empty basket.
#[utoipa::path(tag = "baskets", request_body = BasketInput, responses(
    (status = 201, body = BasketView, headers(("Location" = String, description = "The new basket's URL"), ("ETag" = String, description = "The basket's version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`customer_not_found`"),
))]
#[post("/baskets")]
async fn create_basket(
    _: Staff,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<BasketInput>,
) -> Result<HttpResponse, ApiError> {
    let basket = state
        .baskets
        .create(body.customer_id.map(CustomerId::from_uuid))
        .await?;
    let mut builder = HttpResponse::Created();
    builder.insert_header((LOCATION, format!("/v1/baskets/{}", basket.id())));
    Ok(basket_response(builder, &basket))
}

/// One basket with its priced lines.
#[utoipa::path(tag = "baskets", params(("id" = Uuid, Path, description = "The basket's id")), responses(
    (status = 200, body = BasketView, headers(("ETag" = String, description = "The basket's version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`basket_not_found`"),
))]
#[get("/baskets/{id}")]
async fn get_basket(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = BasketId::from_uuid(id.into_inner());
    let basket = state
        .baskets
        .get(id)
        .await?
        .ok_or_else(|| basket_not_found(id))?;
    Ok(basket_response(HttpResponse::Ok(), &basket))
}

/// Sets how many units of a product the basket holds, priced from the catalog
/// now; 0 removes the line. Honours `If-Match`; without it, concurrent changes
/// are applied one after another.
#[utoipa::path(tag = "baskets", params(
    ("id" = Uuid, Path, description = "The basket's id"),
    ("product_id" = Uuid, Path, description = "The product's id"),
), request_body = BasketItemInput, responses(
    (status = 200, body = BasketView, headers(("ETag" = String, description = "The basket's new version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`basket_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`basket_not_open` (with `basket_status`) or `basket_full` (with `max_lines`)"),
    (status = 412, body = super::Problem, content_type = "application/problem+json", description = "`precondition_failed`"),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`, `unknown_product`, `inactive_product` (with `product_id`), `mixed_currencies`, `amount_too_large`"),
))]
#[put("/baskets/{id}/items/{product_id}")]
async fn set_basket_item(
    _: Staff,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    if_match: IfMatch,
    JsonBody(body): JsonBody<BasketItemInput>,
) -> Result<HttpResponse, ApiError> {
    let (id, product_id) = path.into_inner();
    let (quantity,) = (field("quantity", parse_basket_quantity(body.quantity)),).check_all()?;
    let basket = state
        .baskets
        .set_item(
            BasketId::from_uuid(id),
            ProductId::from_uuid(product_id),
            quantity,
            if_match.0,
        )
        .await?;
    Ok(basket_response(HttpResponse::Ok(), &basket))
}

/// Removes a product's line; a basket without one is returned unchanged.
#[utoipa::path(tag = "baskets", params(
    ("id" = Uuid, Path, description = "The basket's id"),
    ("product_id" = Uuid, Path, description = "The product's id"),
), responses(
    (status = 200, body = BasketView, headers(("ETag" = String, description = "The basket's version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`basket_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`basket_not_open` (with `basket_status`)"),
))]
#[delete("/baskets/{id}/items/{product_id}")]
async fn remove_basket_item(
    _: Staff,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, product_id) = path.into_inner();
    let basket = state
        .baskets
        .remove_item(BasketId::from_uuid(id), ProductId::from_uuid(product_id))
        .await?;
    Ok(basket_response(HttpResponse::Ok(), &basket))
}

/// Deletes a basket, unless an order was made of it.
#[utoipa::path(tag = "baskets", params(("id" = Uuid, Path, description = "The basket's id")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`basket_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`basket_not_open` (with `basket_status`): it is checked out"),
))]
#[delete("/baskets/{id}")]
async fn delete_basket(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .baskets
        .delete(BasketId::from_uuid(id.into_inner()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
