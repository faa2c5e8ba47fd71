//! The API-client repository against a real cluster, a fresh database per test:
//! what it stores (contact addresses sealed at rest), the upgrade of rows written
//! in plaintext by the previous version, and re-sealing under a new key.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ordo_crypto::{DataKeyring, RandomApiKeys};
use ordo_domain::clients::{
    ApiKeys, ClientChanges, ClientDirectory, ClientId, ClientName, ClientRateLimit, ClientRecord,
    ClientRepository, DeleteClientError, IpAllowList, NewClient, RotateKeyError, UpdateClientError,
};
use ordo_domain::customers::Email;
use ordo_domain::sealing::FieldCipher;
use ordo_domain::{Clock, PageLimit, PageRequest, SystemClock, Version};
use ordo_postgres::sealing::{Pass, seal_rows};
use ordo_postgres::testing::{TestDatabase, count, fresh_database};
use ordo_postgres::{PgClientRepository, PgPool};
use uuid::Uuid;

const OLD_KEY: &str = "the-old-data-key-for-client-tests-0123456789";
const NEW_KEY: &str = "the-new-data-key-for-client-tests-0123456789";

fn keyring(current: &str, previous: Option<&str>) -> Arc<DataKeyring> {
    Arc::new(
        DataKeyring::new(
            &current.to_owned().into(),
            previous.map(|p| p.to_owned().into()).as_ref(),
        )
        .expect("keyring"),
    )
}

async fn repository() -> PgClientRepository {
    repository_on(&fresh_database().await.expect("test database"), NEW_KEY).0
}

/// A repository over `db` sealing under `key`, and its pool.
fn repository_on(db: &TestDatabase, key: &str) -> (PgClientRepository, PgPool) {
    let pool = db.pool(8).expect("pool");
    (
        PgClientRepository::new(pool.clone(), keyring(key, None)),
        pool,
    )
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

/// `pg_dump --data-only` of `api_clients`, as an operator would take a backup.
fn dump(db: &TestDatabase) -> String {
    db.dump("api_clients").expect("a dump")
}

#[tokio::test]
async fn a_client_address_is_stored_sealed_and_read_back_whole() {
    let db = fresh_database().await.expect("test database");
    let (clients, pool) = repository_on(&db, NEW_KEY);
    let (record, _) = record("Billing robot", "Billing.Robot@Secret-Corp.example", &[]);
    let stored = clients.insert(record.clone()).await.expect("inserted");

    let dumped = dump(&db);
    assert!(dumped.contains("Billing robot"), "the dump holds the row");
    assert!(!dumped.to_lowercase().contains("secret-corp"), "{dumped}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) AS n FROM api_clients c WHERE lower(c::text) LIKE '%secret-corp%' \
             OR position('Secret-Corp'::bytea IN email_sealed) > 0 OR email_plaintext IS NOT NULL"
        )
        .await
        .expect("count"),
        0
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) AS n FROM api_clients WHERE email_sealed IS NOT NULL"
        )
        .await
        .expect("count"),
        1
    );
    assert_eq!(clients.find(record.id).await.expect("read"), Some(stored));
}

/// Inserts clients the way the version before sealing did: the address in
/// `email_plaintext`, no key. Returns their ids and addresses.
async fn insert_plaintext_clients(pool: &PgPool, count: usize) -> Vec<(ClientId, String)> {
    let mut written = Vec::new();
    for i in 0..count {
        let id = Uuid::now_v7();
        let email = format!("Legacy.Robot{i}@Example.COM");
        let mut conn = pool.get().await.expect("connection");
        diesel_async::RunQueryDsl::execute(
            diesel::sql_query(
                "INSERT INTO api_clients (id, name, email_plaintext, rate_limit_per_minute, \
                 rate_limit_burst, key_digest, key_prefix, key_issued_at, version, created_at, updated_at) \
                 VALUES ($1, 'Legacy robot', $2, 600, 100, $1::text, 'legacy', now(), 3, now(), now())",
            )
            .bind::<diesel::sql_types::Uuid, _>(id)
            .bind::<diesel::sql_types::Text, _>(&email),
            &mut conn,
        )
        .await
        .expect("a plaintext row");
        written.push((ClientId::from_uuid(id), email));
    }
    written
}

const PLAINTEXT_CLIENTS: &str =
    "SELECT count(*) AS n FROM api_clients WHERE email_plaintext IS NOT NULL";

#[tokio::test]
async fn client_rows_written_in_plaintext_by_the_previous_version_are_sealed_with_nothing_lost() {
    let db = fresh_database().await.expect("test database");
    let (clients, pool) = repository_on(&db, NEW_KEY);
    let legacy = insert_plaintext_clients(&pool, 7).await;
    // Before the upgrade pass, plaintext rows read like sealed ones.
    let before = clients
        .find(legacy[0].0)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(before.email().as_str(), legacy[0].1);

    let keys = keyring(NEW_KEY, None);
    let reports = seal_rows(&pool, &*keys, Pass::Plaintext)
        .await
        .expect("sealed");

    let report = reports
        .iter()
        .find(|r| r.table == "api_clients")
        .expect("a report of api_clients");
    assert_eq!(report.sealed, 7);
    assert_eq!(
        report.rows_by_key,
        vec![(Some(keys.current_key().as_str().to_owned()), 7)]
    );
    assert_eq!(count(&pool, PLAINTEXT_CLIENTS).await.expect("count"), 0);
    assert!(!dump(&db).to_lowercase().contains("legacy.robot"));
    for (id, email) in &legacy {
        let client = clients.find(*id).await.expect("read").expect("found");
        assert_eq!(client.email().as_str(), email);
        assert_eq!(client.version().get(), 3, "sealing is not a change");
    }
    assert_eq!(
        clients
            .find(legacy[0].0)
            .await
            .expect("read")
            .expect("found")
            .updated_at(),
        before.updated_at(),
        "sealing is not a change"
    );

    let again = seal_rows(&pool, &*keys, Pass::Plaintext)
        .await
        .expect("sealed");
    assert!(again.iter().all(|r| r.sealed == 0), "{again:?}");
}

#[tokio::test]
async fn rekey_seals_every_client_under_the_new_key_so_the_old_one_can_go() {
    let db = fresh_database().await.expect("test database");
    let (before_rotation, pool) = repository_on(&db, OLD_KEY);
    let mut expected = insert_plaintext_clients(&pool, 2).await;
    for i in 0..5 {
        let (record, _) = record("Robot", &format!("Old.Robot{i}@Example.com"), &[]);
        let client = before_rotation.insert(record).await.expect("inserted");
        expected.push((client.id(), client.email().to_string()));
    }

    let rotated = keyring(NEW_KEY, Some(OLD_KEY));
    let reports = seal_rows(&pool, &*rotated, Pass::Rekey)
        .await
        .expect("rekeyed");

    let report = reports
        .iter()
        .find(|r| r.table == "api_clients")
        .expect("a report of api_clients");
    assert_eq!(report.sealed, 7, "2 plaintext and 5 old-key rows");
    assert_eq!(
        report.rows_by_key,
        vec![(Some(rotated.current_key().as_str().to_owned()), 7)]
    );
    // The old key is gone from the configuration; every client still reads.
    let (after_rotation, _) = repository_on(&db, NEW_KEY);
    for (id, email) in &expected {
        let client = after_rotation
            .find(*id)
            .await
            .expect("read")
            .expect("found");
        assert_eq!(client.email().as_str(), email);
    }
}
