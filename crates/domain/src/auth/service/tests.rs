use std::sync::Arc;

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::auth::{
    MockAccessTokens, MockPasswordHasher, MockRefreshTokenStore, MockTokenSecrets,
    MockUserRepository, RefreshTokenHash,
};
use crate::clock::MockClock;
use crate::ids::MockIdSource;
use crate::page::PageLimit;

const NEW_ID: Uuid = Uuid::from_u128(0x42);
const PASSWORD: &str = "correct horse battery";

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn user_id() -> UserId {
    UserId::from_uuid(Uuid::from_u128(7))
}

fn family() -> RefreshFamilyId {
    RefreshFamilyId::from_uuid(Uuid::from_u128(9))
}

fn email() -> Email {
    Email::parse("ada@example.com").expect("email")
}

fn stored_hash() -> PasswordHash {
    PasswordHash::from_phc("$argon2id$stored".to_owned())
}

fn user(role: Role) -> StoredUser {
    StoredUser {
        id: user_id(),
        email: email(),
        role,
        password_hash: stored_hash(),
        created_at: noon(),
    }
}

/// The token the client presents in refresh and logout tests.
const PRESENTED: &str = "presented-token-presented-token-presented";
/// The token every new session hands out.
const ISSUED: &str = "issued-token-issued-token-issued-token-issued";

fn digest_of(token: &str) -> RefreshTokenHash {
    RefreshTokenHash::from_hex(format!("digest:{token}"))
}

fn fresh_token() -> StoredRefreshToken {
    StoredRefreshToken {
        user: user_id(),
        family: family(),
        expires_at: noon() + TimeDelta::days(1),
        used_at: None,
        revoked_at: None,
    }
}

struct Ports {
    users: MockUserRepository,
    refresh_tokens: MockRefreshTokenStore,
    hasher: MockPasswordHasher,
    access_tokens: MockAccessTokens,
}

impl Ports {
    fn new() -> Self {
        Self {
            users: MockUserRepository::new(),
            refresh_tokens: MockRefreshTokenStore::new(),
            hasher: MockPasswordHasher::new(),
            access_tokens: MockAccessTokens::new(),
        }
    }

    /// Expects the refresh token and access token of one new session in `family`,
    /// for the user with `role`.
    fn expect_session(&mut self, family: RefreshFamilyId, role: Role) {
        self.refresh_tokens
            .expect_insert()
            .times(1)
            .withf(move |hash, token| {
                *hash == digest_of(ISSUED)
                    && *token
                        == StoredRefreshToken {
                            user: user_id(),
                            family,
                            expires_at: noon() + TimeDelta::days(30),
                            used_at: None,
                            revoked_at: None,
                        }
            })
            .returning(|_, _| Ok(()));
        self.access_tokens
            .expect_issue()
            .times(1)
            .withf(move |claims| {
                *claims
                    == AccessClaims {
                        principal: Principal::User {
                            id: user_id(),
                            role,
                        },
                        issued_at: noon(),
                        expires_at: noon() + TimeDelta::minutes(15),
                    }
            })
            .returning(|_| Ok("signed.access.token".to_owned()));
    }

    fn with_presented_token(mut self, stored: Option<StoredRefreshToken>) -> Self {
        self.refresh_tokens
            .expect_find()
            .withf(|hash| *hash == digest_of(PRESENTED))
            .returning(move |_| Ok(stored.clone()));
        self
    }

    fn service(self) -> AuthService {
        let mut clock = MockClock::new();
        clock.expect_now().returning(noon);
        let mut ids = MockIdSource::new();
        ids.expect_new_id().returning(|| NEW_ID);
        let mut secrets = MockTokenSecrets::new();
        secrets
            .expect_new_refresh_token()
            .returning(|| RefreshToken::new(ISSUED.to_owned()).expect("token"));
        secrets
            .expect_digest()
            .returning(|token| digest_of(token.expose()));
        AuthService::new(
            Arc::new(self.users),
            Arc::new(self.refresh_tokens),
            Arc::new(self.hasher),
            Arc::new(self.access_tokens),
            Arc::new(secrets),
            Arc::new(clock),
            Arc::new(ids),
            AuthPolicy::default(),
        )
    }
}

fn issued_session() -> Session {
    Session {
        access_token: "signed.access.token".to_owned(),
        expires_in: Duration::from_secs(15 * 60),
        refresh_token: RefreshToken::new(ISSUED.to_owned()).expect("token"),
    }
}

// --- login ---

#[tokio::test]
async fn a_login_with_the_right_password_starts_a_new_refresh_family() {
    let mut ports = Ports::new();
    ports
        .users
        .expect_find_by_email()
        .withf(|e| *e == email())
        .returning(|_| Ok(Some(user(Role::Staff))));
    ports
        .hasher
        .expect_verify()
        .times(1)
        .withf(|password, hash| password.expose() == PASSWORD && *hash == stored_hash())
        .returning(|_, _| Ok(true));
    ports.expect_session(RefreshFamilyId::from_uuid(NEW_ID), Role::Staff);

    let session = ports
        .service()
        .login("ada@example.com", PASSWORD)
        .await
        .expect("logged in");

    assert_eq!(session, issued_session());
}

#[tokio::test]
async fn a_wrong_password_is_refused_after_one_check_and_issues_nothing() {
    let mut ports = Ports::new();
    ports
        .users
        .expect_find_by_email()
        .returning(|_| Ok(Some(user(Role::Staff))));
    ports
        .hasher
        .expect_verify()
        .times(1)
        .returning(|_, _| Ok(false));
    ports.refresh_tokens.expect_insert().never();
    ports.access_tokens.expect_issue().never();

    let result = ports
        .service()
        .login("ada@example.com", "wrong password")
        .await;

    assert!(matches!(result, Err(LoginError::InvalidCredentials)));
}

#[tokio::test]
async fn an_unknown_email_is_refused_like_a_wrong_password_after_one_check_of_the_dummy_hash() {
    let mut ports = Ports::new();
    ports.users.expect_find_by_email().returning(|_| Ok(None));
    ports
        .hasher
        .expect_verify()
        .times(1)
        .withf(|password, hash| {
            password.expose() == PASSWORD && hash.as_str() == DUMMY_PASSWORD_HASH
        })
        .returning(|_, _| Ok(false));
    ports.refresh_tokens.expect_insert().never();
    ports.access_tokens.expect_issue().never();

    let result = ports.service().login("nobody@example.com", PASSWORD).await;

    assert!(matches!(result, Err(LoginError::InvalidCredentials)));
}

#[tokio::test]
async fn a_malformed_email_or_overlong_password_is_refused_as_invalid_credentials() {
    let mut ports = Ports::new();
    ports.users.expect_find_by_email().never();
    let service = ports.service();

    let bad_email = service.login("not an address", PASSWORD).await;
    let long_password = service.login("ada@example.com", &"x".repeat(129)).await;

    assert!(matches!(bad_email, Err(LoginError::InvalidCredentials)));
    assert!(matches!(long_password, Err(LoginError::InvalidCredentials)));
}

#[tokio::test]
async fn a_storage_failure_during_login_is_unexpected() {
    let mut ports = Ports::new();
    ports
        .users
        .expect_find_by_email()
        .returning(|_| Err(anyhow::anyhow!("connection lost")));

    let result = ports.service().login("ada@example.com", PASSWORD).await;

    assert!(matches!(result, Err(LoginError::Unexpected(_))));
}

// --- refresh ---

#[tokio::test]
async fn a_fresh_refresh_token_is_used_up_and_replaced_in_its_family_with_the_current_role() {
    let mut ports = Ports::new().with_presented_token(Some(fresh_token()));
    // Promoted since the token was issued: the new access token says so.
    ports
        .users
        .expect_find()
        .withf(|id| *id == user_id())
        .returning(|_| Ok(Some(user(Role::Admin))));
    ports
        .refresh_tokens
        .expect_mark_used()
        .times(1)
        .withf(|hash, at| *hash == digest_of(PRESENTED) && *at == noon())
        .returning(|_, _| Ok(true));
    ports.refresh_tokens.expect_revoke_family().never();
    ports.expect_session(family(), Role::Admin);

    let session = ports.service().refresh(PRESENTED).await.expect("refreshed");

    assert_eq!(session, issued_session());
}

#[tokio::test]
async fn a_used_refresh_token_revokes_its_family_and_is_reported_as_reused() {
    let used = StoredRefreshToken {
        used_at: Some(noon() - TimeDelta::minutes(1)),
        ..fresh_token()
    };
    let mut ports = Ports::new().with_presented_token(Some(used));
    ports
        .refresh_tokens
        .expect_revoke_family()
        .times(1)
        .withf(|f, at| *f == family() && *at == noon())
        .returning(|_, _| Ok(()));
    ports.refresh_tokens.expect_mark_used().never();
    ports.refresh_tokens.expect_insert().never();
    ports.access_tokens.expect_issue().never();

    let result = ports.service().refresh(PRESENTED).await;

    assert!(matches!(result, Err(RefreshError::TokenReused)));
}

#[tokio::test]
async fn losing_a_race_to_exchange_the_same_token_counts_as_reuse() {
    let mut ports = Ports::new().with_presented_token(Some(fresh_token()));
    ports
        .users
        .expect_find()
        .returning(|_| Ok(Some(user(Role::Staff))));
    ports
        .refresh_tokens
        .expect_mark_used()
        .returning(|_, _| Ok(false));
    ports
        .refresh_tokens
        .expect_revoke_family()
        .times(1)
        .withf(|f, _| *f == family())
        .returning(|_, _| Ok(()));
    ports.refresh_tokens.expect_insert().never();
    ports.access_tokens.expect_issue().never();

    let result = ports.service().refresh(PRESENTED).await;

    assert!(matches!(result, Err(RefreshError::TokenReused)));
}

#[tokio::test]
async fn an_expired_revoked_or_unknown_refresh_token_is_refused_and_changes_nothing() {
    let expired = StoredRefreshToken {
        expires_at: noon(),
        ..fresh_token()
    };
    let revoked = StoredRefreshToken {
        revoked_at: Some(noon() - TimeDelta::hours(1)),
        ..fresh_token()
    };
    for stored in [Some(expired), Some(revoked), None] {
        let mut ports = Ports::new().with_presented_token(stored);
        ports.refresh_tokens.expect_mark_used().never();
        ports.refresh_tokens.expect_revoke_family().never();
        ports.refresh_tokens.expect_insert().never();

        let result = ports.service().refresh(PRESENTED).await;

        assert!(matches!(result, Err(RefreshError::InvalidToken)));
    }
}

#[tokio::test]
async fn a_refresh_token_of_a_deleted_user_is_refused_and_not_used_up() {
    let mut ports = Ports::new().with_presented_token(Some(fresh_token()));
    ports.users.expect_find().returning(|_| Ok(None));
    ports.refresh_tokens.expect_mark_used().never();
    ports.refresh_tokens.expect_insert().never();

    let result = ports.service().refresh(PRESENTED).await;

    assert!(matches!(result, Err(RefreshError::InvalidToken)));
}

#[tokio::test]
async fn an_empty_refresh_token_is_refused_without_a_look_up() {
    let mut ports = Ports::new();
    ports.refresh_tokens.expect_find().never();

    let result = ports.service().refresh("").await;

    assert!(matches!(result, Err(RefreshError::InvalidToken)));
}

#[tokio::test]
async fn a_storage_failure_during_refresh_is_unexpected() {
    let mut ports = Ports::new();
    ports
        .refresh_tokens
        .expect_find()
        .returning(|_| Err(anyhow::anyhow!("connection lost")));

    let result = ports.service().refresh(PRESENTED).await;

    assert!(matches!(result, Err(RefreshError::Unexpected(_))));
}

// --- logout ---

#[tokio::test]
async fn logging_out_revokes_the_family_of_the_token() {
    let mut ports = Ports::new().with_presented_token(Some(fresh_token()));
    ports
        .refresh_tokens
        .expect_revoke_family()
        .times(1)
        .withf(|f, at| *f == family() && *at == noon())
        .returning(|_, _| Ok(()));

    ports.service().logout(PRESENTED).await.expect("logged out");
}

#[tokio::test]
async fn logging_out_with_an_unknown_or_empty_token_succeeds_and_revokes_nothing() {
    let mut ports = Ports::new().with_presented_token(None);
    ports.refresh_tokens.expect_revoke_family().never();
    let service = ports.service();

    service.logout(PRESENTED).await.expect("unknown token");
    service.logout("").await.expect("empty token");
}

// --- authenticate ---

#[test]
fn an_access_token_is_checked_at_the_service_clock_and_yields_its_principal() {
    let principal = Principal::User {
        id: user_id(),
        role: Role::Staff,
    };
    let mut ports = Ports::new();
    ports
        .access_tokens
        .expect_verify()
        .withf(|token, now| token == "good" && *now == noon())
        .returning(move |_, _| {
            Ok(AccessClaims {
                principal,
                issued_at: noon(),
                expires_at: noon() + TimeDelta::minutes(15),
            })
        });
    ports
        .access_tokens
        .expect_verify()
        .withf(|token, _| token == "stale")
        .returning(|_, _| Err(InvalidToken::Expired));
    let service = ports.service();

    assert_eq!(service.authenticate("good"), Ok(principal));
    assert_eq!(service.authenticate("stale"), Err(InvalidToken::Expired));
}

// --- users ---

fn expect_insert_of(ports: &mut Ports, role: Role) {
    ports
        .hasher
        .expect_hash()
        .times(1)
        .withf(|password| password.expose() == PASSWORD)
        .returning(|_| Ok(stored_hash()));
    ports
        .users
        .expect_insert()
        .times(1)
        .withf(move |new| {
            *new == NewUser {
                id: UserId::from_uuid(NEW_ID),
                email: email(),
                role,
                password_hash: stored_hash(),
                created_at: noon(),
            }
        })
        .returning(|new| {
            Ok(StoredUser {
                id: new.id,
                email: new.email,
                role: new.role,
                password_hash: new.password_hash,
                created_at: new.created_at,
            })
        });
}

#[tokio::test]
async fn a_new_user_is_stored_with_a_hash_of_the_password_and_a_new_id() {
    let mut ports = Ports::new();
    expect_insert_of(&mut ports, Role::Staff);

    let created = ports
        .service()
        .create_user(" ada@example.com ", PASSWORD, Role::Staff)
        .await
        .expect("created");

    assert_eq!(created.id, UserId::from_uuid(NEW_ID));
    assert_eq!(created.password_hash, stored_hash());
}

#[tokio::test]
async fn a_user_with_an_invalid_email_or_short_password_is_refused_before_hashing() {
    let mut ports = Ports::new();
    ports.hasher.expect_hash().never();
    ports.users.expect_insert().never();
    let service = ports.service();

    let bad_email = service
        .create_user("ada-at-example", PASSWORD, Role::Staff)
        .await;
    let short = service
        .create_user("ada@example.com", "short", Role::Staff)
        .await;

    assert!(matches!(
        bad_email,
        Err(CreateUserError::Invalid { field: "email", .. })
    ));
    assert!(matches!(
        short,
        Err(CreateUserError::Invalid {
            field: "password",
            ..
        })
    ));
}

#[tokio::test]
async fn a_taken_email_reaches_the_caller() {
    let mut ports = Ports::new();
    ports.hasher.expect_hash().returning(|_| Ok(stored_hash()));
    ports
        .users
        .expect_insert()
        .returning(|_| Err(CreateUserError::EmailTaken));

    let result = ports
        .service()
        .create_user("ada@example.com", PASSWORD, Role::Staff)
        .await;

    assert!(matches!(result, Err(CreateUserError::EmailTaken)));
}

#[tokio::test]
async fn a_hashing_failure_is_unexpected_and_stores_nothing() {
    let mut ports = Ports::new();
    ports
        .hasher
        .expect_hash()
        .returning(|_| Err(anyhow::anyhow!("out of memory")));
    ports.users.expect_insert().never();

    let result = ports
        .service()
        .create_user("ada@example.com", PASSWORD, Role::Staff)
        .await;

    assert!(matches!(result, Err(CreateUserError::Unexpected(_))));
}

#[tokio::test]
async fn users_are_listed_page_by_page() {
    let page = PageRequest {
        limit: PageLimit::parse(2).expect("limit"),
        after: Some(Uuid::from_u128(3)),
    };
    let mut ports = Ports::new();
    ports
        .users
        .expect_list()
        .withf(move |p| *p == page)
        .returning(|_| {
            Ok(Page {
                items: vec![user(Role::Staff)],
                next_after: None,
            })
        });

    let listed = ports.service().list_users(page).await.expect("listed");

    assert_eq!(listed.items, vec![user(Role::Staff)]);
}

#[tokio::test]
async fn the_first_admin_is_created_when_there_is_no_user() {
    let mut ports = Ports::new();
    ports.users.expect_count().returning(|| Ok(0));
    expect_insert_of(&mut ports, Role::Admin);

    let created = ports
        .service()
        .bootstrap_admin("ada@example.com", PASSWORD)
        .await
        .expect("bootstrapped");

    assert!(created);
}

#[tokio::test]
async fn no_admin_is_created_once_any_user_exists() {
    let mut ports = Ports::new();
    ports.users.expect_count().returning(|| Ok(1));
    ports.hasher.expect_hash().never();
    ports.users.expect_insert().never();

    let created = ports
        .service()
        .bootstrap_admin("ada@example.com", PASSWORD)
        .await
        .expect("checked");

    assert!(!created);
}

#[tokio::test]
async fn an_admin_created_by_a_concurrent_start_is_not_an_error() {
    let mut ports = Ports::new();
    ports.users.expect_count().returning(|| Ok(0));
    ports.hasher.expect_hash().returning(|_| Ok(stored_hash()));
    ports
        .users
        .expect_insert()
        .returning(|_| Err(CreateUserError::EmailTaken));

    let created = ports
        .service()
        .bootstrap_admin("ada@example.com", PASSWORD)
        .await
        .expect("checked");

    assert!(!created);
}

#[tokio::test]
async fn a_bootstrap_admin_with_a_weak_password_is_refused() {
    let mut ports = Ports::new();
    ports.users.expect_count().returning(|| Ok(0));
    ports.users.expect_insert().never();

    let result = ports
        .service()
        .bootstrap_admin("ada@example.com", "short")
        .await;

    assert!(matches!(
        result,
        Err(CreateUserError::Invalid {
            field: "password",
            ..
        })
    ));
}
