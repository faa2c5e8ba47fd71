//! `/v1/products`: the catalog.

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use ordo_domain::catalog::{
    NewProduct, PriceMinor, Product, ProductChanges, ProductId, ProductKind, ProductName, Sku,
    StockLevel,
};
use ordo_domain::{Currency, Money};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::ListResponse;
use crate::extract::{
    CheckAll, IfMatch, JsonBody, PageQuery, Staff, clearable, etag, field, optional,
};
use crate::problem::{ApiError, product_not_found};
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config
        .service(create_product)
        .service(list_products)
        .service(get_product)
        .service(update_product)
        .service(delete_product)
        .service(adjust_stock);
}

/// A product to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Unique stock-keeping unit: 1 to 64 letters, digits, `-`, `_`, `.`.
    #[schema(schema_with = crate::openapi::sku)]
    pub sku: String,
    /// Display name, 1 to 200 characters.
    #[schema(schema_with = crate::openapi::name)]
    pub name: String,
    /// `service` or `good`.
    #[schema(value_type = crate::openapi::ProductKindName)]
    pub kind: String,
    /// Unit price in minor units.
    #[schema(minimum = 0)]
    pub price_minor: i64,
    /// ISO 4217 code; the server's default currency when omitted.
    #[schema(schema_with = crate::openapi::currency_or_null)]
    pub currency: Option<String>,
    /// Units on hand; `null` or omitted: stock is not tracked (always so for services).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub stock: Option<i64>,
    /// At or below this stock the product counts as low.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub low_stock_threshold: Option<i64>,
}

/// Changes to a product; omitted fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    /// New SKU.
    #[schema(schema_with = crate::openapi::sku_or_null)]
    pub sku: Option<String>,
    /// New name.
    #[schema(schema_with = crate::openapi::name_or_null)]
    pub name: Option<String>,
    /// New unit price in minor units.
    #[schema(minimum = 0)]
    pub price_minor: Option<i64>,
    /// New currency (with or without a new price).
    #[schema(schema_with = crate::openapi::currency_or_null)]
    pub currency: Option<String>,
    /// New threshold; `null` clears it.
    #[serde(default, deserialize_with = "crate::serde_ext::present")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub low_stock_threshold: Option<Option<i64>>,
    /// Reactivate or deactivate.
    pub active: Option<bool>,
}

/// A change of stock.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockAdjustmentInput {
    /// Units added (positive) or removed (negative); never zero, at most 10¹² either way.
    #[schema(schema_with = crate::openapi::stock_delta)]
    pub delta: i64,
    /// Why, kept for audit; 1 to 500 characters.
    #[schema(schema_with = crate::openapi::reason)]
    pub reason: String,
}

/// A product.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    id: Uuid,
    sku: String,
    name: String,
    /// `service` or `good`.
    #[schema(value_type = crate::openapi::ProductKindName)]
    kind: &'static str,
    price_minor: i64,
    #[schema(schema_with = crate::openapi::currency)]
    currency: String,
    /// Units on hand; `null` when not tracked.
    #[schema(required = true)]
    stock: Option<i64>,
    #[schema(required = true)]
    low_stock_threshold: Option<i64>,
    /// Whether stock is at or below the threshold.
    low_stock: bool,
    /// Inactive products cannot be ordered.
    active: bool,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&Product> for ProductView {
    fn from(p: &Product) -> Self {
        Self {
            id: p.id().as_uuid(),
            sku: p.sku().to_string(),
            name: p.name().to_string(),
            kind: p.kind().as_str(),
            price_minor: p.price().minor(),
            currency: p.price().currency().to_string(),
            stock: p.stock().map(StockLevel::get),
            low_stock_threshold: p.low_stock_threshold().map(StockLevel::get),
            low_stock: p.is_low_on_stock(),
            active: p.is_active(),
            version: p.version().get(),
            created_at: p.created_at(),
            updated_at: p.updated_at(),
        }
    }
}

fn product_response(
    mut builder: actix_web::HttpResponseBuilder,
    product: &Product,
) -> HttpResponse {
    etag(&mut builder, product.version()).json(ProductView::from(product))
}

/// Adds a product to the catalog.
#[utoipa::path(tag = "catalog", request_body = ProductInput, responses(
    (status = 201, body = ProductView, description = "Created", headers(("Location" = String, description = "The new product's URL"), ("ETag" = String, description = "The product's version"))),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`sku_taken`"),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`"),
))]
#[post("/products")]
async fn create_product(
    _: Staff,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<ProductInput>,
) -> Result<HttpResponse, ApiError> {
    let currency = match &body.currency {
        Some(code) => field("currency", Currency::parse(code)),
        None => Ok(state.default_currency),
    };
    let (sku, name, kind, currency, stock, threshold) = (
        field("sku", Sku::parse(&body.sku)),
        field("name", ProductName::parse(&body.name)),
        field("kind", ProductKind::parse(&body.kind)),
        currency,
        optional("stock", body.stock, StockLevel::parse),
        optional(
            "low_stock_threshold",
            body.low_stock_threshold,
            StockLevel::parse,
        ),
    )
        .check_all()?;
    let (price,) = (field(
        "price_minor",
        Money::price(body.price_minor, currency),
    ),)
        .check_all()?;
    let (product,) = (field(
        "stock",
        NewProduct::new(sku, name, kind, price, stock, threshold),
    ),)
        .check_all()?;
    let product = state.catalog.create(product).await?;
    let mut builder = HttpResponse::Created();
    builder.insert_header((LOCATION, format!("/v1/products/{}", product.id())));
    Ok(product_response(builder, &product))
}

/// Lists products, newest first.
#[utoipa::path(tag = "catalog", params(PageQuery), responses(
    (status = 200, body = ListResponse<ProductView>),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`: a bad `limit` or `cursor`"),
))]
#[get("/products")]
async fn list_products(
    _: Staff,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (page,) = (query.parse(),).check_all()?;
    let page = state.catalog.list(page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(page, |p| ProductView::from(&p))))
}

/// One product.
#[utoipa::path(tag = "catalog", params(("id" = Uuid, Path, description = "The product's id")), responses(
    (status = 200, body = ProductView, headers(("ETag" = String, description = "The product's version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`product_not_found`"),
))]
#[get("/products/{id}")]
async fn get_product(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId::from_uuid(id.into_inner());
    let product = state
        .catalog
        .get(id)
        .await?
        .ok_or_else(|| product_not_found(id))?;
    Ok(product_response(HttpResponse::Ok(), &product))
}

/// Changes a product; honours `If-Match`.
#[utoipa::path(tag = "catalog", params(("id" = Uuid, Path, description = "The product's id")), request_body = ProductPatch, responses(
    (status = 200, body = ProductView, headers(("ETag" = String, description = "The product's new version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`product_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`sku_taken`"),
    (status = 412, body = super::Problem, content_type = "application/problem+json", description = "`precondition_failed`"),
))]
#[patch("/products/{id}")]
async fn update_product(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    if_match: IfMatch,
    JsonBody(body): JsonBody<ProductPatch>,
) -> Result<HttpResponse, ApiError> {
    let id = ProductId::from_uuid(id.into_inner());
    let (sku, name, price_minor, currency, threshold) = (
        optional("sku", body.sku.as_deref(), Sku::parse),
        optional("name", body.name.as_deref(), ProductName::parse),
        optional("price_minor", body.price_minor, PriceMinor::parse),
        optional("currency", body.currency.as_deref(), Currency::parse),
        clearable(
            "low_stock_threshold",
            body.low_stock_threshold,
            StockLevel::parse,
        ),
    )
        .check_all()?;
    let changes = ProductChanges {
        sku,
        name,
        price_minor,
        currency,
        low_stock_threshold: threshold,
        active: body.active,
    };
    let product = state.catalog.update(id, changes, if_match.0).await?;
    Ok(product_response(HttpResponse::Ok(), &product))
}

/// Deletes a product, or deactivates it when orders use it.
#[utoipa::path(tag = "catalog", params(("id" = Uuid, Path, description = "The product's id")), responses(
    (status = 204, description = "Deleted or deactivated"),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`product_not_found`"),
))]
#[delete("/products/{id}")]
async fn delete_product(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .catalog
        .delete(ProductId::from_uuid(id.into_inner()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds or removes stock with a reason; stock never goes below zero.
#[utoipa::path(tag = "catalog", params(("id" = Uuid, Path, description = "The product's id")), request_body = StockAdjustmentInput, responses(
    (status = 200, body = ProductView, headers(("ETag" = String, description = "The product's new version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`product_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`insufficient_stock` (with `product_id`, `available`) or `stock_not_tracked`"),
))]
#[post("/products/{id}/stock-adjustments")]
async fn adjust_stock(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    JsonBody(body): JsonBody<StockAdjustmentInput>,
) -> Result<HttpResponse, ApiError> {
    let product = state
        .catalog
        .adjust_stock(
            ProductId::from_uuid(id.into_inner()),
            body.delta,
            &body.reason,
        )
        .await?;
    Ok(product_response(HttpResponse::Ok(), &product))
}
