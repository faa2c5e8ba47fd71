//! `/v1/customers`.

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use ordo_domain::customers::{
    City, Customer, CustomerChanges, CustomerId, CustomerName, Email, NewCustomer, Phone,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::ListResponse;
use crate::extract::{
    CheckAll, IfMatch, JsonBody, PageQuery, Staff, clearable, etag, field, optional,
};
use crate::problem::{ApiError, customer_not_found};
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config
        .service(create_customer)
        .service(list_customers)
        .service(get_customer)
        .service(update_customer)
        .service(delete_customer);
}

/// A customer to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// Name, 1 to 200 characters.
    #[schema(schema_with = crate::openapi::name)]
    pub name: String,
    /// E-mail address, unique regardless of case.
    #[schema(schema_with = crate::openapi::email)]
    pub email: String,
    /// City, 1 to 100 characters; sales reports group by it.
    #[schema(schema_with = crate::openapi::city)]
    pub city: String,
    /// Phone number.
    #[schema(schema_with = crate::openapi::phone_or_null)]
    pub phone: Option<String>,
}

/// Changes to a customer; omitted fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    /// New name.
    #[schema(schema_with = crate::openapi::name_or_null)]
    pub name: Option<String>,
    /// New e-mail address.
    #[schema(schema_with = crate::openapi::email_or_null)]
    pub email: Option<String>,
    /// New city.
    #[schema(schema_with = crate::openapi::city_or_null)]
    pub city: Option<String>,
    /// New phone number; `null` clears it.
    #[serde(default, deserialize_with = "crate::serde_ext::present")]
    #[schema(schema_with = crate::openapi::phone_or_null)]
    pub phone: Option<Option<String>>,
}

/// A customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerView {
    id: Uuid,
    name: String,
    email: String,
    city: String,
    #[schema(required = true)]
    phone: Option<String>,
    version: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&Customer> for CustomerView {
    fn from(c: &Customer) -> Self {
        Self {
            id: c.id().as_uuid(),
            name: c.name().to_string(),
            email: c.email().to_string(),
            city: c.city().to_string(),
            phone: c.phone().map(|p| p.as_str().to_owned()),
            version: c.version().get(),
            created_at: c.created_at(),
            updated_at: c.updated_at(),
        }
    }
}

fn customer_response(
    mut builder: actix_web::HttpResponseBuilder,
    customer: &Customer,
) -> HttpResponse {
    etag(&mut builder, customer.version()).json(CustomerView::from(customer))
}

/// Creates a customer.
#[utoipa::path(tag = "customers", request_body = CustomerInput, responses(
    (status = 201, body = CustomerView, headers(("Location" = String, description = "The new customer's URL"), ("ETag" = String, description = "The customer's version"))),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`email_taken`"),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`"),
))]
#[post("/customers")]
async fn create_customer(
    _: Staff,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<CustomerInput>,
) -> Result<HttpResponse, ApiError> {
    let (name, email, city, phone) = (
        field("name", CustomerName::parse(&body.name)),
        field("email", Email::parse(&body.email)),
        field("city", City::parse(&body.city)),
        optional("phone", body.phone.as_deref(), Phone::parse),
    )
        .check_all()?;
    let customer = state
        .customers
        .create(NewCustomer {
            name,
            email,
            city,
            phone,
        })
        .await?;
    let mut builder = HttpResponse::Created();
    builder.insert_header((LOCATION, format!("/v1/customers/{}", customer.id())));
    Ok(customer_response(builder, &customer))
}

/// Lists customers, newest first.
#[utoipa::path(tag = "customers", params(PageQuery), responses(
    (status = 200, body = ListResponse<CustomerView>),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`: a bad `limit` or `cursor`"),
))]
#[get("/customers")]
async fn list_customers(
    _: Staff,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (page,) = (query.parse(),).check_all()?;
    let page = state.customers.list(page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(page, |c| CustomerView::from(&c))))
}

/// One customer.
#[utoipa::path(tag = "customers", params(("id" = Uuid, Path, description = "The customer's id")), responses(
    (status = 200, body = CustomerView, headers(("ETag" = String, description = "The customer's version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`customer_not_found`"),
))]
#[get("/customers/{id}")]
async fn get_customer(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = CustomerId::from_uuid(id.into_inner());
    let customer = state
        .customers
        .get(id)
        .await?
        .ok_or_else(|| customer_not_found(id))?;
    Ok(customer_response(HttpResponse::Ok(), &customer))
}

/// Changes a customer; honours `If-Match`.
#[utoipa::path(tag = "customers", params(("id" = Uuid, Path, description = "The customer's id")), request_body = CustomerPatch, responses(
    (status = 200, body = CustomerView, headers(("ETag" = String, description = "The customer's new version"))),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`customer_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`email_taken`"),
    (status = 412, body = super::Problem, content_type = "application/problem+json", description = "`precondition_failed`"),
))]
#[patch("/customers/{id}")]
async fn update_customer(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    if_match: IfMatch,
    JsonBody(body): JsonBody<CustomerPatch>,
) -> Result<HttpResponse, ApiError> {
    let (name, email, city, phone) = (
        optional("name", body.name.as_deref(), CustomerName::parse),
        optional("email", body.email.as_deref(), Email::parse),
        optional("city", body.city.as_deref(), City::parse),
        clearable(
            "phone",
            body.phone.as_ref().map(Option::as_deref),
            Phone::parse,
        ),
    )
        .check_all()?;
    let changes = CustomerChanges {
        name,
        email,
        city,
        phone,
    };
    let customer = state
        .customers
        .update(CustomerId::from_uuid(id.into_inner()), changes, if_match.0)
        .await?;
    Ok(customer_response(HttpResponse::Ok(), &customer))
}

/// Deletes a customer without orders.
#[utoipa::path(tag = "customers", params(("id" = Uuid, Path, description = "The customer's id")), responses(
    (status = 204, description = "Deleted"),
    (status = 404, body = super::Problem, content_type = "application/problem+json", description = "`customer_not_found`"),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`customer_has_orders`"),
))]
#[delete("/customers/{id}")]
async fn delete_customer(
    _: Staff,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .customers
        .delete(CustomerId::from_uuid(id.into_inner()))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
