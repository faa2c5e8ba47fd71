//! The identity adapters against a real cluster, a fresh database per test.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use ordo_crypto::{Argon2Hasher, JwtConfig, JwtTokens, RandomTokens};
use ordo_domain::auth::{
    AuthPolicy, AuthService, CreateUserError, LoginError, NewUser, PasswordHash, Principal,
    RefreshError, RefreshFamilyId, RefreshTokenHash, RefreshTokenStore, Role, StoredRefreshToken,
    UserId, UserRepository,
};
use ordo_domain::customers::Email;
use ordo_domain::{Clock, PageLimit, PageRequest, SystemClock, UuidV7Ids};
use ordo_postgres::testing::fresh_database;
use ordo_postgres::{PgPool, PgRefreshTokenStore, PgUserRepository};
use uuid::Uuid;

async fn pool() -> PgPool {
    fresh_database()
        .await
        .expect("test database")
        .pool(25)
        .expect("pool")
}

fn now() -> DateTime<Utc> {
    SystemClock.now()
}

fn new_user(email: &str, role: Role) -> NewUser {
    NewUser {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse(email).expect("email"),
        role,
        password_hash: PasswordHash::from_phc(format!("$argon2id$v=19$hash-of-{email}")),
        created_at: now(),
    }
}

fn token_of(user: UserId, family: RefreshFamilyId) -> StoredRefreshToken {
    StoredRefreshToken {
        user,
        family,
        expires_at: now() + TimeDelta::days(30),
        used_at: None,
        revoked_at: None,
    }
}

fn hash(name: &str) -> RefreshTokenHash {
    RefreshTokenHash::from_hex(format!("{name:0>64}"))
}

#[tokio::test]
async fn a_user_is_stored_and_found_by_id_and_by_email_in_any_case() {
    let users = PgUserRepository::new(pool().await);
    let new = new_user("Ada@Example.com", Role::Admin);

    let stored = users.insert(new.clone()).await.expect("inserted");
    let by_email = users
        .find_by_email(&Email::parse("ADA@example.COM").expect("email"))
        .await
        .expect("looked up");
    let by_id = users.find(new.id).await.expect("looked up");
    let unknown = users
        .find(UserId::from_uuid(Uuid::now_v7()))
        .await
        .expect("looked up");

    assert_eq!(stored.id, new.id);
    assert_eq!(stored.email.as_str(), "Ada@Example.com");
    assert_eq!(stored.role, Role::Admin);
    assert_eq!(stored.password_hash, new.password_hash);
    assert_eq!(stored.created_at, new.created_at);
    assert_eq!(by_email, Some(stored.clone()));
    assert_eq!(by_id, Some(stored));
    assert_eq!(unknown, None);
}

#[tokio::test]
async fn an_email_taken_in_another_case_is_refused_and_stores_nothing() {
    let users = PgUserRepository::new(pool().await);
    users
        .insert(new_user("ada@example.com", Role::Staff))
        .await
        .expect("first");

    let second = users.insert(new_user("ADA@Example.COM", Role::Admin)).await;

    assert!(
        matches!(second, Err(CreateUserError::EmailTaken)),
        "{second:?}"
    );
    assert_eq!(users.count().await.expect("count"), 1);
}

#[tokio::test]
async fn users_are_listed_newest_first_page_by_page() {
    let users = PgUserRepository::new(pool().await);
    let mut ids = Vec::new();
    for n in 0..5 {
        let user = new_user(&format!("user{n}@example.com"), Role::Staff);
        ids.push(user.id);
        users.insert(user).await.expect("inserted");
    }
    ids.reverse();

    let limit = PageLimit::parse(2).expect("limit");
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = users
            .list(PageRequest { limit, after })
            .await
            .expect("listed");
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|u| u.id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }

    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    assert_eq!(users.count().await.expect("count"), 5);
}

#[tokio::test]
async fn a_stored_refresh_token_is_found_by_its_digest_only() {
    let pool = pool().await;
    let users = PgUserRepository::new(pool.clone());
    let tokens = PgRefreshTokenStore::new(pool);
    let user = users
        .insert(new_user("ada@example.com", Role::Staff))
        .await
        .expect("user");
    let token = token_of(user.id, RefreshFamilyId::from_uuid(Uuid::now_v7()));

    tokens
        .insert(hash("a"), token.clone())
        .await
        .expect("stored");

    assert_eq!(tokens.find(&hash("a")).await.expect("found"), Some(token));
    assert_eq!(tokens.find(&hash("b")).await.expect("looked up"), None);
}

// Several worker threads, so the racers really run in parallel, not only interleaved.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_racing_exchanges_of_one_token_exactly_one_marks_it_used() {
    let pool = pool().await;
    let users = PgUserRepository::new(pool.clone());
    let tokens = Arc::new(PgRefreshTokenStore::new(pool));
    let user = users
        .insert(new_user("ada@example.com", Role::Staff))
        .await
        .expect("user");
    tokens
        .insert(
            hash("raced"),
            token_of(user.id, RefreshFamilyId::from_uuid(Uuid::now_v7())),
        )
        .await
        .expect("stored");

    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let racers = (0..20).map(|n| {
        let tokens = Arc::clone(&tokens);
        let barrier = Arc::clone(&barrier);
        tokio::spawn(async move {
            let at = now() + TimeDelta::seconds(n);
            barrier.wait().await;
            tokens
                .mark_used(&hash("raced"), at)
                .await
                .map(|won| won.then_some(at))
        })
    });
    let results = futures::future::join_all(racers).await;

    let winners: Vec<DateTime<Utc>> = results
        .into_iter()
        .filter_map(|r| r.expect("task").expect("marked"))
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = tokens
        .find(&hash("raced"))
        .await
        .expect("found")
        .expect("stored");
    assert_eq!(stored.used_at, Some(winners[0]));
    assert!(
        !tokens
            .mark_used(&hash("unknown"), now())
            .await
            .expect("marked")
    );
}

#[tokio::test]
async fn revoking_a_family_revokes_every_token_of_it_and_no_other() {
    let pool = pool().await;
    let users = PgUserRepository::new(pool.clone());
    let tokens = PgRefreshTokenStore::new(pool);
    let user = users
        .insert(new_user("ada@example.com", Role::Staff))
        .await
        .expect("user");
    let (revoked, kept) = (
        RefreshFamilyId::from_uuid(Uuid::now_v7()),
        RefreshFamilyId::from_uuid(Uuid::now_v7()),
    );
    let earlier = now() - TimeDelta::hours(1);
    for (name, family) in [
        ("r1", revoked),
        ("r2", revoked),
        ("r3", revoked),
        ("k1", kept),
    ] {
        tokens
            .insert(hash(name), token_of(user.id, family))
            .await
            .expect("stored");
    }
    tokens
        .mark_used(&hash("r1"), earlier)
        .await
        .expect("marked");
    // Revoked once before: keeps its first revocation time.
    tokens
        .insert(
            hash("r4"),
            StoredRefreshToken {
                revoked_at: Some(earlier),
                ..token_of(user.id, revoked)
            },
        )
        .await
        .expect("stored");

    let at = now();
    tokens.revoke_family(revoked, at).await.expect("revoked");

    let revoked_at = |name: &'static str| {
        let tokens = tokens.clone();
        async move {
            tokens
                .find(&hash(name))
                .await
                .expect("found")
                .expect("stored")
                .revoked_at
        }
    };
    for name in ["r1", "r2", "r3"] {
        assert_eq!(revoked_at(name).await, Some(at), "{name}");
    }
    assert_eq!(revoked_at("r4").await, Some(earlier));
    assert_eq!(revoked_at("k1").await, None);
}

#[tokio::test]
async fn a_token_joining_a_revoked_family_is_stored_revoked() {
    let pool = pool().await;
    let users = PgUserRepository::new(pool.clone());
    let tokens = PgRefreshTokenStore::new(pool);
    let user = users
        .insert(new_user("ada@example.com", Role::Staff))
        .await
        .expect("user");
    let family = RefreshFamilyId::from_uuid(Uuid::now_v7());
    tokens
        .insert(hash("old"), token_of(user.id, family))
        .await
        .expect("stored");
    let at = now();
    tokens.revoke_family(family, at).await.expect("revoked");

    tokens
        .insert(hash("late"), token_of(user.id, family))
        .await
        .expect("stored");

    let late = tokens.find(&hash("late")).await.expect("found");
    assert_eq!(late.and_then(|t| t.revoked_at), Some(at));
}

#[tokio::test]
async fn deleting_a_user_deletes_their_refresh_tokens() {
    use diesel_async::RunQueryDsl;

    let pool = pool().await;
    let users = PgUserRepository::new(pool.clone());
    let tokens = PgRefreshTokenStore::new(pool.clone());
    let user = users
        .insert(new_user("ada@example.com", Role::Staff))
        .await
        .expect("user");
    tokens
        .insert(
            hash("t"),
            token_of(user.id, RefreshFamilyId::from_uuid(Uuid::now_v7())),
        )
        .await
        .expect("stored");

    let mut conn = pool.get().await.expect("connection");
    diesel::sql_query(format!("DELETE FROM users WHERE id = '{}'", user.id))
        .execute(&mut conn)
        .await
        .expect("deleted");

    assert_eq!(tokens.find(&hash("t")).await.expect("looked up"), None);
}

fn auth_service(pool: &PgPool) -> AuthService {
    let tokens = JwtTokens::new(JwtConfig {
        secret: b"an end-to-end test secret of 32+ bytes".to_vec(),
        issuer: "ordo".to_owned(),
        audience: "ordo-api".to_owned(),
        leeway: TimeDelta::seconds(30),
    })
    .expect("tokens");
    AuthService::new(
        Arc::new(PgUserRepository::new(pool.clone())),
        Arc::new(PgRefreshTokenStore::new(pool.clone())),
        Arc::new(Argon2Hasher::insecure_fast_for_tests()),
        Arc::new(tokens),
        Arc::new(RandomTokens),
        Arc::new(SystemClock),
        Arc::new(UuidV7Ids),
        AuthPolicy::default(),
    )
}

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn a_refresh_token_presented_twice_ends_the_whole_login() {
    let auth = auth_service(&pool().await);
    let user = auth
        .create_user("ada@example.com", PASSWORD, Role::Staff)
        .await
        .expect("created");

    let first = auth
        .login("ADA@example.com", PASSWORD)
        .await
        .expect("logged in");
    assert_eq!(
        auth.authenticate(&first.access_token),
        Ok(Principal::User {
            id: user.id,
            role: Role::Staff
        })
    );
    let second = auth
        .refresh(first.refresh_token.expose())
        .await
        .expect("refreshed");
    assert_ne!(second.refresh_token, first.refresh_token);
    assert!(auth.authenticate(&second.access_token).is_ok());

    let replayed = auth.refresh(first.refresh_token.expose()).await;
    let after_reuse = auth.refresh(second.refresh_token.expose()).await;

    assert!(
        matches!(replayed, Err(RefreshError::TokenReused)),
        "{replayed:?}"
    );
    assert!(
        matches!(after_reuse, Err(RefreshError::InvalidToken)),
        "{after_reuse:?}"
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_are_refused_alike() {
    let auth = auth_service(&pool().await);
    auth.create_user("ada@example.com", PASSWORD, Role::Staff)
        .await
        .expect("created");

    let wrong = auth.login("ada@example.com", "not the password").await;
    let unknown = auth.login("bob@example.com", PASSWORD).await;

    assert!(
        matches!(wrong, Err(LoginError::InvalidCredentials)),
        "{wrong:?}"
    );
    assert!(
        matches!(unknown, Err(LoginError::InvalidCredentials)),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn after_logout_the_refresh_token_is_refused_but_another_login_is_unaffected() {
    let auth = auth_service(&pool().await);
    auth.create_user("ada@example.com", PASSWORD, Role::Staff)
        .await
        .expect("created");
    let phone = auth
        .login("ada@example.com", PASSWORD)
        .await
        .expect("login");
    let laptop = auth
        .login("ada@example.com", PASSWORD)
        .await
        .expect("login");

    auth.logout(phone.refresh_token.expose())
        .await
        .expect("logged out");

    let phone_refresh = auth.refresh(phone.refresh_token.expose()).await;
    assert!(
        matches!(phone_refresh, Err(RefreshError::InvalidToken)),
        "{phone_refresh:?}"
    );
    auth.refresh(laptop.refresh_token.expose())
        .await
        .expect("the other login still refreshes");
}

#[tokio::test]
async fn the_first_admin_is_created_once() {
    let auth = auth_service(&pool().await);

    let first = auth
        .bootstrap_admin("admin@example.com", PASSWORD)
        .await
        .expect("bootstrapped");
    let again = auth
        .bootstrap_admin("other@example.com", PASSWORD)
        .await
        .expect("checked");
    let session = auth
        .login("admin@example.com", PASSWORD)
        .await
        .expect("admin logs in");

    assert!(first);
    assert!(!again);
    assert!(
        auth.authenticate(&session.access_token)
            .expect("valid")
            .has_role(Role::Admin)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_ten_racing_refreshes_of_one_token_one_wins_and_the_rest_revoke_the_login() {
    let auth = Arc::new(auth_service(&pool().await));
    auth.create_user("ada@example.com", PASSWORD, Role::Staff)
        .await
        .expect("created");
    let session = auth
        .login("ada@example.com", PASSWORD)
        .await
        .expect("login");
    let token = session.refresh_token.expose().to_owned();

    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let racers = (0..10).map(|_| {
        let (auth, barrier, token) = (Arc::clone(&auth), Arc::clone(&barrier), token.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            auth.refresh(&token).await
        })
    });
    let results: Vec<_> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();

    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(RefreshError::TokenReused))),
        "{results:?}"
    );
    // Someone else presented the same token: the winner's successor is revoked too.
    let successor = auth.refresh(winners[0].refresh_token.expose()).await;
    assert!(
        matches!(successor, Err(RefreshError::InvalidToken)),
        "{successor:?}"
    );
}
