//! Users looked up by id, remembered for a few seconds: `GET /v1/auth/me` is asked on
//! every page load of a staff tool, and answering it from memory keeps it near the
//! cost of an empty request. An entry is at most [`RecentUsers::new`]'s `ttl` old,
//! so a change made through another instance shows within that bound; nothing here
//! changes who may do what (the access token's own claims decide that).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ordo_domain::auth::{CreateUserError, NewUser, StoredUser, UserId, UserRepository};
use ordo_domain::customers::Email;
use ordo_domain::{Page, PageRequest};
use quick_cache::sync::Cache;

/// How many users are remembered at most.
const CAPACITY: usize = 4_096;

/// A [`UserRepository`] that remembers `find` answers for a short while.
pub struct RecentUsers {
    inner: Arc<dyn UserRepository>,
    found: Cache<UserId, (Instant, StoredUser)>,
    ttl: Duration,
}

impl std::fmt::Debug for RecentUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentUsers")
            .field("remembered", &self.found.len())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RecentUsers {
    /// `inner`'s users, each remembered for at most `ttl` after it was read.
    pub fn new(inner: Arc<dyn UserRepository>, ttl: Duration) -> Self {
        Self {
            inner,
            found: Cache::new(CAPACITY),
            ttl,
        }
    }
}

#[async_trait]
impl UserRepository for RecentUsers {
    async fn insert(&self, user: NewUser) -> Result<StoredUser, CreateUserError> {
        self.inner.insert(user).await
    }

    async fn find_by_email(&self, email: &Email) -> anyhow::Result<Option<StoredUser>> {
        self.inner.find_by_email(email).await
    }

    async fn find(&self, id: UserId) -> anyhow::Result<Option<StoredUser>> {
        if let Some((read_at, user)) = self.found.get(&id)
            && read_at.elapsed() < self.ttl
        {
            return Ok(Some(user));
        }
        let user = self.inner.find(id).await?;
        match &user {
            Some(user) => self.found.insert(id, (Instant::now(), user.clone())),
            None => {
                self.found.remove(&id);
            }
        }
        Ok(user)
    }

    async fn list(&self, page: PageRequest) -> anyhow::Result<Page<StoredUser>> {
        self.inner.list(page).await
    }

    async fn count(&self) -> anyhow::Result<u64> {
        self.inner.count().await
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use ordo_domain::auth::{MockUserRepository, PasswordHash, Role};

    use super::*;

    fn stored(id: UserId) -> StoredUser {
        StoredUser {
            id,
            email: Email::parse("ada@example.com").unwrap(),
            role: Role::Staff,
            password_hash: PasswordHash::from_phc("$argon2id$stored".to_owned()),
            created_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_user_is_read_once_within_the_ttl_and_again_after_it() {
        let id = UserId::from_uuid(uuid::Uuid::from_u128(1));
        let mut inner = MockUserRepository::new();
        inner
            .expect_find()
            .times(2)
            .returning(move |id| Ok(Some(stored(id))));
        let users = RecentUsers::new(Arc::new(inner), Duration::from_millis(200));

        for _ in 0..5 {
            assert_eq!(users.find(id).await.unwrap().unwrap().id, id);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(users.find(id).await.unwrap().unwrap().id, id);
    }

    #[tokio::test]
    async fn an_unknown_user_is_not_remembered() {
        let id = UserId::from_uuid(uuid::Uuid::from_u128(2));
        let mut inner = MockUserRepository::new();
        let mut calls = 0;
        inner.expect_find().times(2).returning(move |id| {
            calls += 1;
            Ok((calls > 1).then(|| stored(id)))
        });
        let users = RecentUsers::new(Arc::new(inner), Duration::from_secs(60));

        assert!(users.find(id).await.unwrap().is_none());
        assert!(users.find(id).await.unwrap().is_some());
    }
}
