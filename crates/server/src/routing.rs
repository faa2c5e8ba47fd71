//! Requests no route took: 405 with `Allow` when the path exists with other
//! methods, 404 otherwise. The table comes from the OpenAPI document, so it lists
//! exactly the routes the server registers.

use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::problem::ApiError;

/// The methods each documented path template takes, so that a request for a known
/// path with another method is answered 405 with `Allow` rather than 404.
#[derive(Debug, Clone, Default)]
pub struct AllowedMethods(Vec<(Vec<String>, Vec<&'static str>)>);

impl AllowedMethods {
    /// The table of `spec`'s paths; `HEAD` goes wherever `GET` does.
    pub fn from_spec(spec: &utoipa::openapi::OpenApi) -> Self {
        let entries = spec
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("HEAD", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, present)| present.then_some(method))
                .collect();
                (template.split('/').map(str::to_owned).collect(), methods)
            })
            .collect();
        Self(entries)
    }

    /// The `Allow` header value for `path`: the methods of every template it
    /// matches, or `None` when no route has this path.
    pub fn for_path(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        let mut methods: Vec<&str> = self
            .0
            .iter()
            .filter(|(template, _)| {
                template.len() == segments.len()
                    && template.iter().zip(&segments).all(|(t, s)| {
                        t == s || (t.starts_with('{') && t.ends_with('}') && !s.is_empty())
                    })
            })
            .flat_map(|(_, methods)| methods.iter().copied())
            .collect();
        methods.sort_unstable();
        methods.dedup();
        (!methods.is_empty()).then(|| methods.join(", "))
    }
}

/// Requests no route took: 405 with `Allow` when the path exists, 404 otherwise.
pub async fn unrouted(
    req: actix_web::HttpRequest,
    allowed: web::Data<AllowedMethods>,
) -> Result<HttpResponse, ApiError> {
    let Some(allow) = allowed.for_path(req.path()) else {
        return Err(ApiError::for_status(StatusCode::NOT_FOUND));
    };
    let allow = HeaderValue::from_str(&allow).map_err(|e| ApiError::internal(e.into()))?;
    Err(ApiError::for_status(StatusCode::METHOD_NOT_ALLOWED).with_header(ALLOW, allow))
}
