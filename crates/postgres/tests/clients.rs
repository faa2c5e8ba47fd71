//! The API-client repository against a real cluster, a fresh database per test.

use chrono::{DateTime, Utc};
use ordo_crypto::RandomApiKeys;
use ordo_domain::clients::{
    ApiKeys, ClientChanges, ClientDirectory, ClientId, ClientName, ClientRateLimit, ClientRecord,
    ClientRepository, DeleteClientError, IpAllowList, NewClient, RotateKeyError, UpdateClientError,
};
use ordo_domain::customers::Email;
use ordo_domain::{Clock, PageLimit, PageRequest, SystemClock, Version};
use ordo_postgres::PgClientRepository;
use ordo_postgres::testing::fresh_database;
use uuid::Uuid;

async fn repository() -> PgClientRepository {
    let pool = fresh_database()
        .await
        .expect("test database")
        .pool(8)
        .expect("pool");
    PgClientRepository::new(pool)
}

fn now() -> DateTime<Utc> {
    SystemClock.now()
}

fn record(name: &str, email: &str, allow: &[&str]) -> (ClientRecord, String) {
    let key = RandomApiKeys.new_key();
    let record = ClientRecord {
        id: ClientId::from_uuid(Uuid::now_v7()),
        client: NewClient {
            name: ClientName::parse(name).expect("name"),
            email: Email::parse(email).expect("email"),
            ip_allowlist: IpAllowList::parse(allow).expect("allow-list"),
            rate_limit: ClientRateLimit::new(120, 20).expect("limit"),
        },
        key_digest: RandomApiKeys.digest(&key),
        key_prefix: key.prefix().to_owned(),
        at: now(),
    };
    (record, key.expose())
}

#[tokio::test]
async fn a_client_is_stored_whole_and_found_by_id_and_by_the_digest_of_its_key() {
    let clients = repository().await;
    let (record, key) = record(
        "Billing robot",
        "robot@example.com",
        &["203.0.113.0/24", "::1"],
    );
    let stored = clients.insert(record.clone()).await.expect("inserted");

    assert_eq!(stored.id(), record.id);
    assert_eq!(stored.name().as_str(), "Billing robot");
    assert_eq!(stored.email().as_str(), "robot@example.com");
    assert_eq!(
        stored.ip_allowlist().entries(),
        ["203.0.113.0/24", "::1/128"]
    );
    assert_eq!(
        stored.rate_limit(),
        ClientRateLimit::new(120, 20).expect("limit")
    );
    assert_eq!(stored.key_prefix(), record.key_prefix);
    assert_eq!(stored.key_issued_at(), record.at);
    assert_eq!(stored.version(), Version::FIRST);

    assert_eq!(
        clients.find(record.id).await.expect("found"),
        Some(stored.clone())
    );
    let digest = RandomApiKeys.digest(&ordo_domain::clients::ApiKey::parse(&key).expect("key"));
    assert_eq!(clients.by_key(&digest).await.expect("found"), Some(stored));
    let unknown = RandomApiKeys.digest(&RandomApiKeys.new_key());
    assert_eq!(clients.by_key(&unknown).await.expect("looked up"), None);
}

#[tokio::test]
async fn injection_strings_are_stored_verbatim() {
    let clients = repository().await;
    let name = "Robert'); DROP TABLE api_clients; --";
    let email = "x'||(SELECT/**/1)||'--@example.com";
    let (record, _) = record(name, email, &[]);
    clients.insert(record.clone()).await.expect("inserted");
    let found = clients
        .find(record.id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(found.name().as_str(), name);
    assert_eq!(found.email().as_str(), email);
}

#[tokio::test]
async fn rotating_replaces_the_digest_in_one_step() {
    let clients = repository().await;
    let (record, _) = record("Robot", "robot@example.com", &[]);
    clients.insert(record.clone()).await.expect("inserted");

    let new_key = RandomApiKeys.new_key();
    let later = now();
    let rotated = clients
        .replace_key(
            record.id,
            RandomApiKeys.digest(&new_key),
            new_key.prefix().to_owned(),
            later,
        )
        .await
        .expect("rotated");
    assert_eq!(rotated.key_prefix(), new_key.prefix());
    assert_eq!(rotated.key_issued_at(), later);
    assert_eq!(rotated.version().get(), 2);
    assert_eq!(
        clients.by_key(&record.key_digest).await.expect("read"),
        None
    );
    assert_eq!(
        clients
            .by_key(&RandomApiKeys.digest(&new_key))
            .await
            .expect("read")
            .map(|c| c.id()),
        Some(record.id)
    );

    let missing = ClientId::from_uuid(Uuid::now_v7());
    let error = clients
        .replace_key(missing, RandomApiKeys.digest(&new_key), "x".into(), later)
        .await
        .expect_err("no such client");
    assert!(matches!(error, RotateKeyError::NotFound(id) if id == missing));
}

#[tokio::test]
async fn an_update_changes_only_what_it_names_and_compares_versions() {
    let clients = repository().await;
    let (record, _) = record("Robot", "robot@example.com", &["10.0.0.0/8"]);
    clients.insert(record.clone()).await.expect("inserted");

    let changes = ClientChanges {
        rate_limit: Some(ClientRateLimit::new(60, 5).expect("limit")),
        ..ClientChanges::default()
    };
    let updated = clients
        .update(record.id, changes.clone(), Some(Version::FIRST), now())
        .await
        .expect("updated");
    assert_eq!(
        updated.rate_limit(),
        ClientRateLimit::new(60, 5).expect("limit")
    );
    assert_eq!(updated.name().as_str(), "Robot");
    assert_eq!(updated.ip_allowlist().entries(), ["10.0.0.0/8"]);
    assert_eq!(updated.version().get(), 2);

    let stale = clients
        .update(record.id, changes.clone(), Some(Version::FIRST), now())
        .await
        .expect_err("version 1 is gone");
    assert!(matches!(stale, UpdateClientError::VersionMismatch(_)));
    let missing = clients
        .update(ClientId::from_uuid(Uuid::now_v7()), changes, None, now())
        .await
        .expect_err("no such client");
    assert!(matches!(missing, UpdateClientError::NotFound(_)));
}

#[tokio::test]
async fn a_deleted_client_and_its_key_are_gone() {
    let clients = repository().await;
    let (record, _) = record("Robot", "robot@example.com", &[]);
    clients.insert(record.clone()).await.expect("inserted");
    clients.delete(record.id).await.expect("deleted");
    assert_eq!(
        clients.by_key(&record.key_digest).await.expect("read"),
        None
    );
    assert_eq!(clients.by_id(record.id).await.expect("read"), None);
    let again = clients.delete(record.id).await.expect_err("already gone");
    assert!(matches!(again, DeleteClientError::NotFound(_)));
}

#[tokio::test]
async fn clients_are_listed_newest_first_in_pages() {
    let clients = repository().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (record, _) = record(&format!("Robot {i}"), "robot@example.com", &[]);
        ids.push(clients.insert(record).await.expect("inserted").id());
    }
    ids.reverse();
    let limit = PageLimit::parse(3).expect("limit");
    let first = clients
        .list(PageRequest { limit, after: None })
        .await
        .expect("first page");
    let second = clients
        .list(PageRequest {
            limit,
            after: first.next_after,
        })
        .await
        .expect("second page");
    let listed: Vec<ClientId> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|c| c.id())
        .collect();
    assert_eq!(listed, ids);
    assert_eq!(second.next_after, None);
}
