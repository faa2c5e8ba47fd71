//! `POST /v1/baskets/{id}/checkout`.

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, Utc};
use ordo_domain::baskets::BasketId;
use ordo_domain::checkout::{CheckoutOutcome, StartCheckout};
use ordo_domain::customers::CustomerId;
use ordo_domain::orders::{Order, ScheduledAt};
use ordo_domain::upstream::PaymentToken;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::orders::order_response;
use crate::extract::{CheckAll, Staff, field, optional};
use crate::idempotency::{IdempotentJson, respond_once};
use crate::problem::{ApiError, ProblemCode};
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config.service(checkout_basket);
}

/// How the customer pays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    /// The payment provider's token of the customer's payment method. The
    /// sandbox knows `tok_ok` (pays), `tok_declined` (declined) and `tok_flaky`
    /// (fails twice, then pays).
    #[schema(min_length = 1, max_length = 255)]
    pub token: String,
}

/// A basket to check out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutInput {
    /// Whom the order is for; required when the basket has no customer, and
    /// must be the basket's when it has one.
    pub customer_id: Option<Uuid>,
    /// When the order is due (RFC 3339); now when omitted.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The payment.
    pub payment: PaymentInput,
}

fn order_created(mut builder: actix_web::HttpResponseBuilder, order: &Order) -> HttpResponse {
    builder.insert_header((LOCATION, format!("/v1/orders/{}", order.id())));
    order_response(builder, order)
}

/// Checks a basket out: in one transaction the order (`pending_payment`,
/// numbered, stock reserved, the 3-hour rule applied), the basket checked out,
/// and the upstream completion queued; then the upstream order and the payment.
/// Needs an `Idempotency-Key`: a repetition answers with the first response
/// (`Idempotent-Replayed: true`), never a second charge.
#[utoipa::path(tag = "baskets", params(
    ("id" = Uuid, Path, description = "The basket's id"),
    ("Idempotency-Key" = String, Header, description = "1 to 255 printable ASCII characters, e.g. a UUID; the same key with the same body within 24 h replays the first response", pattern = "^[!-~]{1,255}$"),
), request_body = CheckoutInput, responses(
    (status = 201, body = super::orders::OrderView, description = "Paid: the order is `paid`", headers(("Location" = String, description = "The order's URL"), ("ETag" = String, description = "The order's version"), ("Idempotent-Replayed" = String, description = "`true` on a replayed response"))),
    (status = 202, body = super::orders::OrderView, description = "The payment's outcome is not known yet: the order is `pending_payment` and is settled by reconciliation", headers(("Location" = String, description = "The order's URL"), ("ETag" = String, description = "The order's version"))),
    (status = 400, body = super::Problem, content_type = "application/problem+json", description = "`idempotency_key_required`, `invalid_json`"),
    (status = 402, body = super::Problem, content_type = "application/problem+json", description = "`payment_declined` (with `order_id`): the order is `payment_failed`, its stock released, the basket open again"),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`basket_not_found`, `customer_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`basket_not_open` (with `basket_status`), `basket_empty`, `order_too_close`, `insufficient_stock`, `idempotency_key_in_use`"),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`, `idempotency_key_reused`"),
    (status = 502, body = super::Problem, content_type = "application/problem+json", description = "`upstream_rejected` (with `order_id`): the upstream refused the order or payment for good; the order is `payment_failed`, nothing was charged"),
    (status = 503, body = super::Problem, content_type = "application/problem+json", description = "`upstream_unavailable` (with `Retry-After`): the upstream is failing, nothing was written; `database_unavailable`, `order_numbers_exhausted`"),
))]
#[post("/baskets/{id}/checkout")]
async fn checkout_basket(
    Staff(principal): Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    input: IdempotentJson<CheckoutInput>,
) -> Result<HttpResponse, ApiError> {
    let key = input.required_key()?;
    let body = input.body;
    let (payment_token, scheduled_at) = (
        field("payment.token", PaymentToken::parse(&body.payment.token)),
        optional("scheduled_at", body.scheduled_at, ScheduledAt::parse),
    )
        .check_all()?;
    let basket_id = BasketId::from_uuid(id.into_inner());
    let customer_id = body.customer_id.map(CustomerId::from_uuid);
    respond_once(&state, &principal, Some(key), input.fingerprint, async |idempotency, resumes| {
        // A first request that died after writing its order is carried on
        // from the stored checkout, with the same upstream keys.
        let resumed = match resumes {
            Some(order_id) => state.checkout.resume(order_id).await?,
            None => None,
        };
        let outcome = match resumed {
            Some(outcome) => outcome,
            None => {
                state
                    .checkout
                    .checkout(StartCheckout {
                        basket_id,
                        customer_id,
                        scheduled_at,
                        payment_token,
                        idempotency,
                    })
                    .await?
            }
        };
        Ok(match outcome {
            CheckoutOutcome::Paid(order) => order_created(HttpResponse::Created(), &order),
            CheckoutOutcome::Pending(order) => order_created(HttpResponse::Accepted(), &order),
            CheckoutOutcome::Declined { order, reason } => {
                return Err(ApiError::new(
                    ProblemCode::PaymentDeclined,
                    format!("The payment was declined ({reason}); the basket is open again"),
                )
                .with("order_id", order.id().to_string()));
            }
            CheckoutOutcome::Refused { order, reason } => {
                return Err(ApiError::new(
                    ProblemCode::UpstreamRejected,
                    format!("The upstream refused the order ({reason}); nothing was charged and the basket is open again"),
                )
                .with("order_id", order.id().to_string()));
            }
        })
    })
    .await
}
