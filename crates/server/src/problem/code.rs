//! Every problem code Ordo answers with, in one place: its status and title.

use actix_web::http::StatusCode;

macro_rules! problem_codes {
    ($($variant:ident => ($code:literal, $status:ident, $title:literal),)+) => {
        /// A stable, machine-readable problem code: the `code` member of a problem
        /// document and the last segment of its `type`. Clients branch on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemCode {
            $(
                #[doc = $title]
                $variant,
            )+
        }

        impl ProblemCode {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant,)+];

            /// The code as clients see it, e.g. `order_too_close`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status,)+
                }
            }

            /// A short summary of the kind of problem, the document's `title`.
            pub fn title(self) -> &'static str {
                match self {
                    $(Self::$variant => $title,)+
                }
            }
        }
    };
}

problem_codes! {
    BadRequest => ("bad_request", BAD_REQUEST, "Bad request"),
    InvalidJson => ("invalid_json", BAD_REQUEST, "Malformed JSON"),
    IdempotencyKeyRequired => ("idempotency_key_required", BAD_REQUEST, "Idempotency key required"),
    PaymentDeclined => ("payment_declined", PAYMENT_REQUIRED, "Payment declined"),
    Unauthenticated => ("unauthenticated", UNAUTHORIZED, "Unauthenticated"),
    InvalidCredentials => ("invalid_credentials", UNAUTHORIZED, "Invalid credentials"),
    TokenReused => ("token_reused", UNAUTHORIZED, "Refresh token reused"),
    Forbidden => ("forbidden", FORBIDDEN, "Forbidden"),
    IpNotAllowed => ("ip_not_allowed", FORBIDDEN, "Address not allowed"),
    NotFound => ("not_found", NOT_FOUND, "Not found"),
    ProductNotFound => ("product_not_found", NOT_FOUND, "Product not found"),
    CustomerNotFound => ("customer_not_found", NOT_FOUND, "Customer not found"),
    OrderNotFound => ("order_not_found", NOT_FOUND, "Order not found"),
    ClientNotFound => ("client_not_found", NOT_FOUND, "API client not found"),
    BasketNotFound => ("basket_not_found", NOT_FOUND, "Basket not found"),
    JobNotFound => ("job_not_found", NOT_FOUND, "Job not found"),
    MethodNotAllowed => ("method_not_allowed", METHOD_NOT_ALLOWED, "Method not allowed"),
    RequestTimeout => ("request_timeout", REQUEST_TIMEOUT, "Request timeout"),
    SkuTaken => ("sku_taken", CONFLICT, "SKU taken"),
    EmailTaken => ("email_taken", CONFLICT, "E-mail address taken"),
    InsufficientStock => ("insufficient_stock", CONFLICT, "Insufficient stock"),
    StockNotTracked => ("stock_not_tracked", CONFLICT, "Stock not tracked"),
    OrderTooClose => ("order_too_close", CONFLICT, "Order too close to another"),
    OrderNotEditable => ("order_not_editable", CONFLICT, "Order not editable"),
    OrderNotCancellable => ("order_not_cancellable", CONFLICT, "Order not cancellable"),
    OrderNotDeletable => ("order_not_deletable", CONFLICT, "Order not deletable"),
    CustomerHasOrders => ("customer_has_orders", CONFLICT, "Customer has orders"),
    OrderContended => ("order_contended", CONFLICT, "Order changed concurrently"),
    BasketNotOpen => ("basket_not_open", CONFLICT, "Basket not open"),
    BasketFull => ("basket_full", CONFLICT, "Basket full"),
    BasketEmpty => ("basket_empty", CONFLICT, "Basket empty"),
    IdempotencyKeyInUse => ("idempotency_key_in_use", CONFLICT, "Idempotency key in use"),
    PreconditionFailed => ("precondition_failed", PRECONDITION_FAILED, "The resource has changed"),
    PayloadTooLarge => ("payload_too_large", PAYLOAD_TOO_LARGE, "Payload too large"),
    UriTooLong => ("uri_too_long", URI_TOO_LONG, "URI too long"),
    UnsupportedMediaType => ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
    ValidationFailed => ("validation_failed", UNPROCESSABLE_ENTITY, "The request is invalid"),
    UnknownProduct => ("unknown_product", UNPROCESSABLE_ENTITY, "Unknown product"),
    InactiveProduct => ("inactive_product", UNPROCESSABLE_ENTITY, "Inactive product"),
    MixedCurrencies => ("mixed_currencies", UNPROCESSABLE_ENTITY, "Mixed currencies"),
    AmountTooLarge => ("amount_too_large", UNPROCESSABLE_ENTITY, "Amount too large"),
    IdempotencyKeyReused => ("idempotency_key_reused", UNPROCESSABLE_ENTITY, "Idempotency key reused"),
    RateLimited => ("rate_limited", TOO_MANY_REQUESTS, "Too many requests"),
    HeadersTooLarge => ("headers_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE, "Request headers too large"),
    InternalError => ("internal_error", INTERNAL_SERVER_ERROR, "Internal server error"),
    UpstreamRejected => ("upstream_rejected", BAD_GATEWAY, "Refused by the upstream"),
    DatabaseUnavailable => ("database_unavailable", SERVICE_UNAVAILABLE, "Service unavailable"),
    UpstreamUnavailable => ("upstream_unavailable", SERVICE_UNAVAILABLE, "Upstream unavailable"),
    OrderNumbersExhausted => ("order_numbers_exhausted", SERVICE_UNAVAILABLE, "Order numbers exhausted"),
    NotReady => ("not_ready", SERVICE_UNAVAILABLE, "Not ready"),
    RateLimitsUnavailable => ("rate_limits_unavailable", SERVICE_UNAVAILABLE, "Rate limits unavailable"),
    IngestionBackpressure => ("ingestion_backpressure", SERVICE_UNAVAILABLE, "Ingestion backpressure"),
}

impl ProblemCode {
    /// The code a bare status is answered with when nothing more specific is known
    /// (routing, payload and parser failures that happen before a handler runs).
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => Self::RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::URI_TOO_LONG => Self::UriTooLong,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Self::HeadersTooLarge,
            StatusCode::SERVICE_UNAVAILABLE => Self::NotReady,
            s if s.is_server_error() => Self::InternalError,
            _ => Self::BadRequest,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_is_distinct_snake_case_and_an_error_status() {
        let mut seen = HashSet::new();
        for code in ProblemCode::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                code.as_str()
            );
            assert!(
                code.status().is_client_error() || code.status().is_server_error(),
                "{}",
                code.as_str()
            );
        }
    }

    #[test]
    fn a_bare_status_maps_to_a_code_with_that_status_or_a_generic_one() {
        for status in [404, 405, 408, 413, 414, 415, 429, 431, 500, 503] {
            let status = StatusCode::from_u16(status).expect("a status");
            assert_eq!(ProblemCode::for_status(status).status(), status);
        }
        assert_eq!(
            ProblemCode::for_status(StatusCode::IM_A_TEAPOT),
            ProblemCode::BadRequest
        );
    }
}
