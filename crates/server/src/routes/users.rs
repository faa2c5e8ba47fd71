//! `/v1/users`: administrators manage users.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use ordo_domain::auth::{Role, StoredUser};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::ListResponse;
use crate::extract::{Admin, CheckAll, JsonBody, PageQuery};
use crate::problem::ApiError;
use crate::state::AppState;

pub(super) fn routes(config: &mut ServiceConfig) {
    config.service(create_user).service(list_users);
}

/// What a user may do.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    /// Manages users, and everything staff do.
    Admin,
    /// Manages the catalog, customers and orders.
    Staff,
}

impl From<RoleName> for Role {
    fn from(role: RoleName) -> Self {
        match role {
            RoleName::Admin => Role::Admin,
            RoleName::Staff => Role::Staff,
        }
    }
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => RoleName::Admin,
            Role::Staff => RoleName::Staff,
        }
    }
}

/// A user to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Their login, unique regardless of case.
    #[schema(schema_with = crate::openapi::email)]
    pub email: String,
    /// 12 to 128 characters, not only white space.
    #[schema(schema_with = crate::openapi::password)]
    pub password: String,
    /// `admin` or `staff`.
    pub role: RoleName,
}

/// A user (never with a password or its hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    id: Uuid,
    email: String,
    role: RoleName,
    created_at: DateTime<Utc>,
}

impl From<&StoredUser> for UserView {
    fn from(user: &StoredUser) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.to_string(),
            role: user.role.into(),
            created_at: user.created_at,
        }
    }
}

/// Creates a user (administrators only).
#[utoipa::path(tag = "users", request_body = UserInput, responses(
    (status = 201, body = UserView),
    (status = 409, body = super::Problem, content_type = "application/problem+json", description = "`email_taken`"),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`"),
))]
#[post("/users")]
async fn create_user(
    _: Admin,
    state: web::Data<AppState>,
    JsonBody(body): JsonBody<UserInput>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .auth
        .create_user(&body.email, &body.password, body.role.into())
        .await?;
    Ok(HttpResponse::Created().json(UserView::from(&user)))
}

/// Lists users, newest first (administrators only).
#[utoipa::path(tag = "users", params(PageQuery), responses(
    (status = 200, body = ListResponse<UserView>),
    (status = 422, body = super::Problem, content_type = "application/problem+json", description = "`validation_failed`: a bad `limit` or `cursor`"),
))]
#[get("/users")]
async fn list_users(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (page,) = (query.parse(),).check_all()?;
    let page = state.auth.list_users(page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(page, |u| UserView::from(&u))))
}
