//! `/v1/orders`.

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use ordo_domain::catalog::ProductId;
use ordo_domain::customers::CustomerId;
use ordo_domain::orders::{
    InvalidItems, Order, OrderFilter, OrderId, OrderItem, OrderItems, OrderLine, OrderNote,
    OrderRef, OrderStatus, PlaceOrder, Quantity, ReviseOrder, ScheduledAt,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::ListResponse;
use crate::extract::{
    CheckAll, Checked, IfMatch, JsonBody, PageQuery, Staff, check_each, etag, field, optional,
    parse_instant, parse_uuid,
};
use crate::idempotency::{IdempotentJson, respond_once};
use crate::problem::{ApiError, FieldError, order_not_found};
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config
        .service(place_order)
        .service(list_orders)
        .service(get_order)
        .service(revise_order)
        .service(delete_order)
        .service(cancel_order);
}

/// One requested line.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// The product.
    pub product_id: Uuid,
    /// How many units, 1 to 1 000 000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: i64,
}

/// An order to place.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    /// Whom the order is for.
    pub customer_id: Uuid,
    /// When it is due (RFC 3339); now when omitted.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// 1 to 100 lines, each product at most once.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<ItemInput>,
    /// Free text, up to 2000 characters.
    #[schema(schema_with = crate::openapi::note_or_null)]
    pub note: Option<String>,
}

/// The new schedule, lines and note of a placed order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderUpdate {
    /// When it is due (RFC 3339).
    pub scheduled_at: DateTime<Utc>,
    /// The new lines, replacing the old ones: 1 to 100, each product at most once.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<ItemInput>,
    /// The new note; omitted or `null` clears it.
    #[schema(schema_with = crate::openapi::note_or_null)]
    pub note: Option<String>,
}

/// A priced line.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineView {
    product_id: Uuid,
    sku: String,
    name: String,
    quantity: u32,
    unit_price_minor: i64,
    line_total_minor: i64,
}

impl From<&OrderLine> for LineView {
    fn from(l: &OrderLine) -> Self {
        Self {
            product_id: l.product_id().as_uuid(),
            sku: l.sku().to_string(),
            name: l.name().to_string(),
            quantity: l.quantity().get(),
            unit_price_minor: l.unit_price().minor(),
            line_total_minor: l.line_total().minor(),
        }
    }
}

/// The payment of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    status: String,
    #[schema(required = true)]
    reference: Option<String>,
}

/// The upstream fulfilment of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct FulfillmentView {
    status: String,
    #[schema(required = true)]
    reference: Option<String>,
    attempts: i32,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    id: Uuid,
    /// `ORD-YYYYMMDD-NNNNNN`.
    #[schema(pattern = "^ORD-[0-9]{8}-[0-9]{6}$")]
    number: String,
    customer_id: Uuid,
    /// `placed`, `pending_payment`, `paid`, `payment_failed` or `cancelled`.
    #[schema(value_type = crate::openapi::OrderStatusName)]
    status: &'static str,
    scheduled_at: DateTime<Utc>,
    items: Vec<LineView>,
    total_minor: i64,
    #[schema(schema_with = crate::openapi::currency)]
    currency: String,
    #[schema(required = true)]
    note: Option<String>,
    #[schema(required = true)]
    payment: Option<PaymentView>,
    #[schema(required = true)]
    fulfillment: Option<FulfillmentView>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i32,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        Self {
            id: o.id().as_uuid(),
            number: o.number().to_string(),
            customer_id: o.customer_id().as_uuid(),
            status: o.status().as_str(),
            scheduled_at: o.scheduled_at(),
            items: o.lines().iter().map(LineView::from).collect(),
            total_minor: o.total().minor(),
            currency: o.total().currency().to_string(),
            note: o.note().map(ToString::to_string),
            payment: o.payment().map(|p| PaymentView {
                status: p.status.clone(),
                reference: p.reference.clone(),
            }),
            fulfillment: o.fulfillment().map(|f| FulfillmentView {
                status: f.status.clone(),
                reference: f.reference.clone(),
                attempts: f.attempts,
            }),
            created_at: o.created_at(),
            updated_at: o.updated_at(),
            version: o.version().get(),
        }
    }
}

/// Filters of `GET /v1/orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListQuery {
    /// Page size, 1–200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(schema_with = crate::openapi::cursor)]
    pub cursor: Option<String>,
    /// Only this customer's orders.
    #[param(value_type = Option<Uuid>)]
    pub customer_id: Option<String>,
    /// Only orders in this status.
    #[param(value_type = Option<crate::openapi::OrderStatusName>)]
    pub status: Option<String>,
    /// Only orders scheduled at or after this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub from: Option<String>,
    /// Only orders scheduled before this instant (RFC 3339).
    #[param(value_type = Option<DateTime<Utc>>)]
    pub to: Option<String>,
}

pub(super) fn order_response(
    mut builder: actix_web::HttpResponseBuilder,
    order: &Order,
) -> HttpResponse {
    etag(&mut builder, order.version()).json(OrderView::from(order))
}

fn check_items(items: &[ItemInput]) -> Checked<OrderItems> {
    let parsed = check_each(items.iter().enumerate().map(|(i, item)| {
        field(
            format!("items[{i}].quantity"),
            Quantity::parse(item.quantity),
        )
        .map(|quantity| OrderItem {
            product_id: ProductId::from_uuid(item.product_id),
            quantity,
        })
    }))?;
    OrderItems::new(parsed).map_err(|InvalidItems { index, problem }| {
        let name = match index {
            Some(i) => format!("items[{i}].product_id"),
            None => "items".to_owned(),
        };
        vec![FieldError::new(name, problem.message())]
    })
}

fn check_schedule(name: &str, at: DateTime<Utc>) -> Checked<ScheduledAt> {
    field(name, ScheduledAt::parse(at))
}

/// Places an order: prices it, reserves stock, assigns its number. With an
/// `Idempotency-Key`, a repetition answers with the first response
/// (`Idempotent-Replayed: true`) instead of placing a second order.
#[utoipa::path(tag = "orders", params(
    ("Idempotency-Key" = Option<String>, Header, description = "Optional: 1 to 255 printable ASCII characters, e.g. a UUID; the same key with the same body within 24 h replays the first response", pattern = "^[!-~]{1,255}$"),
), request_body = OrderInput, responses(
    (status = 201, body = OrderView, headers(("Location" = String, description = "The new order's URL"), ("ETag" = String, description = "The order's version"), ("Idempotent-Replayed" = String, description = "`true` on a replayed response"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`customer_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`order_too_close` (with `conflicting_order_id`, `window_minutes`), `insufficient_stock` (with `product_id`, `available`) or `idempotency_key_in_use`"),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`, `unknown_product`, `inactive_product`, `mixed_currencies`, `amount_too_large`, `idempotency_key_reused`"),
    (status = 503, body = super::Problem, content_type = "application/problem+json", description = "`database_unavailable` (with `Retry-After`) or `order_numbers_exhausted`"),
))]
#[post("/orders")]
async fn place_order(
    Staff(principal): Staff,
    state: web::Data<AppState>,
    input: IdempotentJson<OrderInput>,
) -> Result<HttpResponse, ApiError> {
    let body = input.body;
    let (scheduled_at, items, note) = (
        body.scheduled_at
            .map(|at| check_schedule("scheduled_at", at))
            .transpose(),
        check_items(&body.items),
        optional("note", body.note.as_deref(), OrderNote::parse),
    )
        .check_all()?;
    let place = PlaceOrder {
        customer_id: CustomerId::from_uuid(body.customer_id),
        scheduled_at,
        items,
        note,
    };
    respond_once(
        &state,
        &principal,
        input.key,
        input.fingerprint,
        // The key is linked to the order in the order's own transaction: a
        // first request that died before answering left either nothing (placed
        // now) or its order linked to the key (answered with, never placed
        // again); of two requests running at once with the key, only the first
        // to link places its order, and the service answers the other with it.
        async |idempotency, placed_before| {
            let before = match placed_before {
                Some(id) => state.orders.get(OrderRef::Id(id)).await?,
                None => None,
            };
            let order = match before {
                Some(order) => order,
                None => state.orders.place_with_key(place, idempotency).await?,
            };
            let mut builder = HttpResponse::Created();
            builder.insert_header((LOCATION, format!("/v1/orders/{}", order.id())));
            Ok(order_response(builder, &order))
        },
    )
    .await
}

/// Lists orders, newest first.
#[utoipa::path(tag = "orders", params(OrderListQuery), responses(
    (status = 200, body = ListResponse<OrderView>),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`: a bad filter, `limit` or `cursor`"),
))]
#[get("/orders")]
async fn list_orders(
    _: Staff,
    state: web::Data<AppState>,
    query: web::Query<OrderListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageQuery {
        limit: query.limit.clone(),
        cursor: query.cursor.clone(),
    };
    let (page, customer_id, status, from, to) = (
        page.parse(),
        optional("customer_id", query.customer_id.as_deref(), parse_uuid),
        optional("status", query.status.as_deref(), OrderStatus::parse),
        optional("from", query.from.as_deref(), parse_instant),
        optional("to", query.to.as_deref(), parse_instant),
    )
        .check_all()?;
    let filter = OrderFilter {
        customer_id: customer_id.map(CustomerId::from_uuid),
        status,
        from,
        to,
    };
    let page = state.orders.list(filter, page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(page, |o| OrderView::from(&o))))
}

/// One order, by id or by number.
#[utoipa::path(tag = "orders", params(("id" = String, Path, description = "The order's id (a UUID) or its number (`ORD-YYYYMMDD-NNNNNN`); only this operation accepts a number")), responses(
    (status = 200, body = OrderView, headers(("ETag" = String, description = "The order's version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`order_not_found`"),
))]
#[get("/orders/{id}")]
async fn get_order(
    _: Staff,
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let reference = OrderRef::parse(&key).map_err(|_| order_not_found(&*key))?;
    let order = state
        .orders
        .get(reference)
        .await?
        .ok_or_else(|| order_not_found(&*key))?;
    Ok(order_response(HttpResponse::Ok(), &order))
}

/// Replaces a placed order's schedule, lines and note; honours `If-Match`.
#[utoipa::path(tag = "orders", params(("id" = Uuid, Path, description = "The order's id (a UUID; numbers are accepted by GET only)")), request_body = OrderUpdate, responses(
    (status = 200, body = OrderView, headers(("ETag" = String, description = "The order's new version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`order_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`order_not_editable`, `order_too_close`, `insufficient_stock`, `order_contended`"),
    (status = 412, body = super::Problem, content_type = "application/problem+json", description = "`precondition_failed`"),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`, `unknown_product`, `inactive_product`, `mixed_currencies`, `amount_too_large`"),
))]
#[put("/orders/{id}")]
async fn revise_order(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    if_match: IfMatch,
    JsonBody(body): JsonBody<OrderUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (scheduled_at, items, note) = (
        check_schedule("scheduled_at", body.scheduled_at),
        check_items(&body.items),
        optional("note", body.note.as_deref(), OrderNote::parse),
    )
        .check_all()?;
    let order = state
        .orders
        .revise(
            OrderId::from_uuid(id.into_inner()),
            ReviseOrder {
                scheduled_at,
                items,
                note,
            },
            if_match.0,
        )
        .await?;
    Ok(order_response(HttpResponse::Ok(), &order))
}

/// Deletes an order that involves no money; its stock returns.
#[utoipa::path(tag = "orders", params(("id" = Uuid, Path, description = "The order's id (a UUID; numbers are accepted by GET only)")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`order_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`order_not_deletable`, `order_contended`"),
))]
#[delete("/orders/{id}")]
async fn delete_order(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .orders
        .delete(OrderId::from_uuid(id.into_inner()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Cancels an order; its stock returns.
#[utoipa::path(tag = "orders", params(("id" = Uuid, Path, description = "The order's id (a UUID; numbers are accepted by GET only)")), responses(
    (status = 200, body = OrderView, headers(("ETag" = String, description = "The order's new version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`order_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`order_not_cancellable`, `order_contended`"),
))]
#[post("/orders/{id}/cancel")]
async fn cancel_order(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let order = state
        .orders
        .cancel(OrderId::from_uuid(id.into_inner()))
        .await?;
    Ok(order_response(HttpResponse::Ok(), &order))
}
