//! Users in PostgreSQL.

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use ordo_domain::auth::{
    CreateUserError, NewUser, PasswordHash, Role, StoredUser, UserId, UserRepository,
};
use ordo_domain::customers::Email;
use ordo_domain::{Page, PageRequest, Version};
use uuid::Uuid;

use crate::errors::{unexpected, unique_violation};
use crate::pool::{PgPool, checkout};
use crate::schema::users;

/// [`UserRepository`] over PostgreSQL.
#[derive(Clone)]
pub struct PgUserRepository {
    pool: PgPool,
}

impl std::fmt::Debug for PgUserRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgUserRepository").finish_non_exhaustive()
    }
}

impl PgUserRepository {
    /// A repository using connections from `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// The unique constraint on the lower-cased address.
const EMAIL_KEY: &str = "users_email_key";

/// The key an address is unique and looked up under. Case is folded here, never in
/// SQL, so that writes and look-ups agree on every character.
fn email_key(email: &Email) -> String {
    email.as_str().to_lowercase()
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct UserRow {
    id: Uuid,
    email: String,
    role: String,
    password_hash: String,
    created_at: DateTime<Utc>,
}

impl UserRow {
    fn into_domain(self) -> anyhow::Result<StoredUser> {
        let id = self.id;
        Ok::<_, anyhow::Error>(StoredUser {
            id: UserId::from_uuid(self.id),
            email: Email::parse(&self.email)?,
            role: Role::parse(&self.role)?,
            password_hash: PasswordHash::from_phc(self.password_hash),
            created_at: self.created_at,
        })
        .with_context(|| format!("user {id} holds values Ordo never writes"))
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUserRow {
    id: Uuid,
    email: String,
    email_key: String,
    role: &'static str,
    password_hash: String,
    created_at: DateTime<Utc>,
    version: i32,
}

#[async_trait]
impl UserRepository for PgUserRepository {
    async fn insert(&self, user: NewUser) -> Result<StoredUser, CreateUserError> {
        let row = NewUserRow {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            email_key: email_key(&user.email),
            role: user.role.as_str(),
            password_hash: user.password_hash.as_str().to_owned(),
            created_at: user.created_at,
            version: Version::FIRST.get(),
        };
        let mut conn = checkout(&self.pool).await?;
        // The unique constraint, not a prior look-up, decides between racing calls.
        let stored = diesel::insert_into(users::table)
            .values(row)
            .returning(UserRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(|e| match unique_violation(&e) {
                Some(EMAIL_KEY) => CreateUserError::EmailTaken,
                _ => unexpected(e, "inserting a user").into(),
            })?;
        Ok(stored.into_domain()?)
    }

    async fn find_by_email(&self, email: &Email) -> anyhow::Result<Option<StoredUser>> {
        let mut conn = checkout(&self.pool).await?;
        users::table
            .filter(users::email_key.eq(email_key(email)))
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(|e| unexpected(e, "loading a user by e-mail address"))?
            .map(UserRow::into_domain)
            .transpose()
    }

    async fn find(&self, id: UserId) -> anyhow::Result<Option<StoredUser>> {
        let mut conn = checkout(&self.pool).await?;
        users::table
            .find(id.as_uuid())
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(|e| unexpected(e, "loading a user"))?
            .map(UserRow::into_domain)
            .transpose()
    }

    async fn list(&self, page: PageRequest) -> anyhow::Result<Page<StoredUser>> {
        let mut conn = checkout(&self.pool).await?;
        let mut query = users::table
            .select(UserRow::as_select())
            .order(users::id.desc())
            .limit(i64::from(page.limit.get()) + 1)
            .into_boxed();
        if let Some(after) = page.after {
            query = query.filter(users::id.lt(after));
        }
        let rows = query
            .load(&mut conn)
            .await
            .map_err(|e| unexpected(e, "listing users"))?;
        let users = rows
            .into_iter()
            .map(UserRow::into_domain)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Page::from_overfetched(users, page.limit, |u| {
            u.id.as_uuid()
        }))
    }

    async fn count(&self) -> anyhow::Result<u64> {
        let mut conn = checkout(&self.pool).await?;
        let count: i64 = users::table
            .count()
            .get_result(&mut conn)
            .await
            .map_err(|e| unexpected(e, "counting users"))?;
        Ok(u64::try_from(count)?)
    }
}
