//! Each domain error variant mapped once to a problem code, its detail and its
//! extension members. `Unexpected` always goes through [`ApiError::internal`], which
//! tells an unavailable dependency (503) from a bug (500).

use ordo_domain::baskets::{
    BasketId, BasketStatus, ChangeBasketError, CreateBasketError, DeleteBasketError,
};
use ordo_domain::catalog::{
    AdjustStockError, CreateProductError, DeleteProductError, ProductId, UpdateProductError,
};
use ordo_domain::checkout::StartCheckoutError;
use ordo_domain::customers::{
    CreateCustomerError, CustomerId, DeleteCustomerError, UpdateCustomerError,
};
use ordo_domain::orders::{
    CancelOrderError, DeleteOrderError, OrderId, PlaceOrderError, PricingError, SpacingConflict,
    StockShortage, UpdateOrderError,
};

use super::{ApiError, FieldError, ProblemCode};

/// 404 `product_not_found`.
pub fn product_not_found(id: ProductId) -> ApiError {
    ApiError::new(
        ProblemCode::ProductNotFound,
        format!("product {id} does not exist"),
    )
}

/// 404 `customer_not_found`.
pub fn customer_not_found(id: CustomerId) -> ApiError {
    ApiError::new(
        ProblemCode::CustomerNotFound,
        format!("customer {id} does not exist"),
    )
}

/// 404 `order_not_found`; `id` may be an id or a number.
pub fn order_not_found(id: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ProblemCode::OrderNotFound,
        format!("order {id} does not exist"),
    )
}

/// 404 `basket_not_found`.
pub fn basket_not_found(id: BasketId) -> ApiError {
    ApiError::new(
        ProblemCode::BasketNotFound,
        format!("basket {id} does not exist"),
    )
}

fn basket_not_open(id: BasketId, status: BasketStatus, detail: &str) -> ApiError {
    ApiError::new(
        ProblemCode::BasketNotOpen,
        format!("basket {id} is {status}; {detail}"),
    )
    .with("basket_status", status.as_str())
}

fn sku_taken(sku: String) -> ApiError {
    ApiError::new(
        ProblemCode::SkuTaken,
        format!("a product with SKU {sku} already exists"),
    )
    .with("sku", sku)
}

fn email_taken() -> ApiError {
    ApiError::new(
        ProblemCode::EmailTaken,
        "a customer with this e-mail address already exists",
    )
}

fn changed(what: &str, id: impl std::fmt::Display) -> ApiError {
    ApiError::precondition_failed(format!("{what} {id} has changed since that version"))
}

fn order_contended(id: OrderId) -> ApiError {
    ApiError::new(
        ProblemCode::OrderContended,
        format!("order {id} is being changed concurrently; try again"),
    )
}

impl From<CreateProductError> for ApiError {
    fn from(e: CreateProductError) -> Self {
        match e {
            CreateProductError::SkuTaken { sku } => sku_taken(sku),
            CreateProductError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<UpdateProductError> for ApiError {
    fn from(e: UpdateProductError) -> Self {
        match e {
            UpdateProductError::NotFound(id) => product_not_found(id),
            UpdateProductError::SkuTaken { sku } => sku_taken(sku),
            UpdateProductError::VersionMismatch(id) => changed("product", id),
            UpdateProductError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<AdjustStockError> for ApiError {
    fn from(e: AdjustStockError) -> Self {
        match e {
            AdjustStockError::NotFound(id) => product_not_found(id),
            AdjustStockError::NotTracked(id) => ApiError::new(
                ProblemCode::StockNotTracked,
                format!("product {id} does not track stock"),
            ),
            AdjustStockError::InsufficientStock(shortage) => shortage.into(),
            AdjustStockError::Invalid { field, message } => {
                ApiError::validation(vec![FieldError::new(field, message)])
            }
            AdjustStockError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<DeleteProductError> for ApiError {
    fn from(e: DeleteProductError) -> Self {
        match e {
            DeleteProductError::NotFound(id) => product_not_found(id),
            DeleteProductError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<CreateCustomerError> for ApiError {
    fn from(e: CreateCustomerError) -> Self {
        match e {
            CreateCustomerError::EmailTaken => email_taken(),
            CreateCustomerError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<UpdateCustomerError> for ApiError {
    fn from(e: UpdateCustomerError) -> Self {
        match e {
            UpdateCustomerError::NotFound(id) => customer_not_found(id),
            UpdateCustomerError::EmailTaken => email_taken(),
            UpdateCustomerError::VersionMismatch(id) => changed("customer", id),
            UpdateCustomerError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<DeleteCustomerError> for ApiError {
    fn from(e: DeleteCustomerError) -> Self {
        match e {
            DeleteCustomerError::NotFound(id) => customer_not_found(id),
            DeleteCustomerError::HasOrders(id) => ApiError::new(
                ProblemCode::CustomerHasOrders,
                format!("customer {id} has orders; delete or keep them first"),
            ),
            DeleteCustomerError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<PricingError> for ApiError {
    fn from(e: PricingError) -> Self {
        let detail = e.to_string();
        match e {
            PricingError::UnknownProduct(id) => ApiError::new(ProblemCode::UnknownProduct, detail)
                .with("product_id", id.to_string()),
            PricingError::InactiveProduct(id) => {
                ApiError::new(ProblemCode::InactiveProduct, detail)
                    .with("product_id", id.to_string())
            }
            PricingError::MixedCurrencies => ApiError::new(ProblemCode::MixedCurrencies, detail),
            PricingError::AmountTooLarge => ApiError::new(ProblemCode::AmountTooLarge, detail),
        }
    }
}

impl From<SpacingConflict> for ApiError {
    fn from(c: SpacingConflict) -> Self {
        ApiError::new(ProblemCode::OrderTooClose, c.to_string())
            .with("conflicting_order_id", c.conflicting.to_string())
            .with("window_minutes", c.window.minutes())
    }
}

impl From<StockShortage> for ApiError {
    fn from(s: StockShortage) -> Self {
        ApiError::new(ProblemCode::InsufficientStock, s.to_string())
            .with("product_id", s.product_id.to_string())
            .with("available", s.available)
    }
}

impl From<PlaceOrderError> for ApiError {
    fn from(e: PlaceOrderError) -> Self {
        match e {
            PlaceOrderError::CustomerNotFound(id) => customer_not_found(id),
            PlaceOrderError::Pricing(e) => e.into(),
            PlaceOrderError::TooClose(c) => c.into(),
            PlaceOrderError::InsufficientStock(s) => s.into(),
            // Only when the key names no order: the order service answers
            // with the order it names.
            PlaceOrderError::KeyHeldElsewhere(held) => ApiError::new(
                ProblemCode::IdempotencyKeyInUse,
                format!("{held}; repeat the request once it has finished"),
            ),
            PlaceOrderError::NumbersExhausted(day) => ApiError::new(
                ProblemCode::OrderNumbersExhausted,
                format!(
                    "all 999999 order numbers of {day} are used; orders can be placed again tomorrow (UTC)"
                ),
            ),
            PlaceOrderError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<UpdateOrderError> for ApiError {
    fn from(e: UpdateOrderError) -> Self {
        match e {
            UpdateOrderError::NotFound(id) => order_not_found(id),
            UpdateOrderError::NotEditable { id, status } => ApiError::new(
                ProblemCode::OrderNotEditable,
                format!("order {id} is {status}; only placed orders can be changed"),
            )
            .with("order_status", status.as_str()),
            UpdateOrderError::VersionMismatch(id) => changed("order", id),
            UpdateOrderError::Contended(id) => order_contended(id),
            UpdateOrderError::Pricing(e) => e.into(),
            UpdateOrderError::TooClose(c) => c.into(),
            UpdateOrderError::InsufficientStock(s) => s.into(),
            UpdateOrderError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<CancelOrderError> for ApiError {
    fn from(e: CancelOrderError) -> Self {
        match e {
            CancelOrderError::NotFound(id) => order_not_found(id),
            CancelOrderError::NotCancellable { id, status } => ApiError::new(
                ProblemCode::OrderNotCancellable,
                format!("order {id} is {status} and cannot be cancelled"),
            )
            .with("order_status", status.as_str()),
            CancelOrderError::Contended(id) => order_contended(id),
            CancelOrderError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<DeleteOrderError> for ApiError {
    fn from(e: DeleteOrderError) -> Self {
        match e {
            DeleteOrderError::NotFound(id) => order_not_found(id),
            DeleteOrderError::NotDeletable { id, status } => ApiError::new(
                ProblemCode::OrderNotDeletable,
                format!("order {id} is {status} and cannot be deleted"),
            )
            .with("order_status", status.as_str()),
            DeleteOrderError::Contended(id) => order_contended(id),
            DeleteOrderError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<CreateBasketError> for ApiError {
    fn from(e: CreateBasketError) -> Self {
        match e {
            CreateBasketError::CustomerNotFound(id) => customer_not_found(id),
            CreateBasketError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<ChangeBasketError> for ApiError {
    fn from(e: ChangeBasketError) -> Self {
        match e {
            ChangeBasketError::NotFound(id) => basket_not_found(id),
            ChangeBasketError::VersionMismatch(id) => changed("basket", id),
            ChangeBasketError::NotOpen { id, status } => {
                basket_not_open(id, status, "only open baskets can be changed")
            }
            ChangeBasketError::Full { id, max } => ApiError::new(
                ProblemCode::BasketFull,
                format!("basket {id} already holds {max} lines, the most one order takes"),
            )
            .with("max_lines", max),
            ChangeBasketError::Pricing(e) => e.into(),
            ChangeBasketError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<DeleteBasketError> for ApiError {
    fn from(e: DeleteBasketError) -> Self {
        match e {
            DeleteBasketError::NotFound(id) => basket_not_found(id),
            DeleteBasketError::NotDeletable { id, status } => {
                basket_not_open(id, status, "an order was made of it, so it is kept")
            }
            DeleteBasketError::Unexpected(e) => ApiError::internal(e),
        }
    }
}

impl From<StartCheckoutError> for ApiError {
    fn from(e: StartCheckoutError) -> Self {
        match e {
            StartCheckoutError::BasketNotFound(id) => basket_not_found(id),
            StartCheckoutError::BasketNotOpen { id, status } => {
                basket_not_open(id, status, "only an open basket can be checked out")
            }
            StartCheckoutError::BasketEmpty(id) => ApiError::new(
                ProblemCode::BasketEmpty,
                format!("basket {id} has no lines to check out"),
            ),
            StartCheckoutError::CustomerRequired => ApiError::validation(vec![FieldError::new(
                "customer_id",
                "the basket has no customer: name the order's customer",
            )]),
            StartCheckoutError::CustomerMismatch { owner, .. } => {
                ApiError::validation(vec![FieldError::new(
                    "customer_id",
                    format!("the basket belongs to customer {owner}"),
                )])
            }
            StartCheckoutError::Order(e) => e.into(),
            StartCheckoutError::UpstreamUnavailable(unavailable) => ApiError::new(
                ProblemCode::UpstreamUnavailable,
                "The upstream order and payment service is failing; nothing was written. Try again shortly.",
            )
            .retry_after(unavailable.retry_after()),
            StartCheckoutError::Unexpected(e) => ApiError::internal(e),
        }
    }
}
