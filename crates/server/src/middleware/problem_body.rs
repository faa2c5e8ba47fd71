//! Error responses that did not come from an [`ApiError`] (unmatched routes,
//! methods, oversized bodies, framework extractors) get a problem document too.

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpResponse, ResponseError};

use crate::problem::{ApiError, PROBLEM_JSON};

/// The middleware: every 4xx/5xx without a problem body is given one, keeping its
/// status and headers.
pub fn middleware<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(problem_for_bare_errors)
}

fn problem_for_bare_errors<B>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (req, old) = res.into_parts();
    let mut problem: HttpResponse<BoxBody> = ApiError::for_status(status).error_response();
    for (name, value) in old.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res: ServiceResponse<EitherBody<B, BoxBody>> =
        ServiceResponse::new(req, problem).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
