//! `ordo rekey` against a real database: after rotating `ORDO_DATA_KEY`, every
//! stored personal value (customers' contacts, API clients' addresses) is sealed
//! under the new key, and the old key is no longer needed to read any of them.

use std::sync::Arc;

use chrono::Utc;
use ordo_crypto::DataKeyring;
use ordo_crypto::RandomApiKeys;
use ordo_domain::clients::{
    ApiKeys, ClientId, ClientName, ClientRateLimit, ClientRecord, ClientRepository, IpAllowList,
    NewClient,
};
use ordo_domain::customers::{
    City, CustomerId, CustomerName, CustomerRepository, Email, NewCustomer, Phone,
};
use ordo_domain::sealing::FieldCipher;
use ordo_domain::{PageLimit, PageRequest};
use ordo_postgres::testing::{TestDatabase, fresh_database};
use ordo_postgres::{PgClientRepository, PgCustomerRepository};
use uuid::Uuid;

const OLD_KEY: &str = "old-key-for-the-rekey-test-0123456789abcdef";
const NEW_KEY: &str = "new-key-for-the-rekey-test-0123456789abcdef";

fn keyring(current: &str, previous: Option<&str>) -> Arc<DataKeyring> {
    Arc::new(
        DataKeyring::new(
            &current.to_owned().into(),
            previous.map(|p| p.to_owned().into()).as_ref(),
        )
        .expect("keyring"),
    )
}

/// Runs `ordo rekey` on `db` with `NEW_KEY` current and `OLD_KEY` previous; its
/// standard output.
async fn rekey(db: &TestDatabase) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ordo"))
        .arg("rekey")
        .env("DATABASE_URL", &db.url)
        .env(
            "ORDO_JWT_SECRET",
            "a-jwt-secret-of-at-least-32-bytes-for-this-test",
        )
        .env("ORDO_DATA_KEY", NEW_KEY)
        .env("ORDO_DATA_KEY_PREVIOUS", OLD_KEY)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("ordo runs");
    assert!(
        output.status.success(),
        "ordo rekey failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("text")
}

#[tokio::test]
async fn ordo_rekey_seals_every_customer_and_client_under_the_new_key_and_the_old_key_can_go() {
    let db = fresh_database().await.expect("database");
    let pool = db.pool(4).expect("pool");
    let before = PgCustomerRepository::new(pool.clone(), keyring(OLD_KEY, None));
    let mut created = Vec::new();
    for i in 0..12 {
        let phone = (i % 2 == 0).then(|| Phone::parse(&format!("+47 2200 {i:04}")).expect("phone"));
        let customer = before
            .insert(
                CustomerId::from_uuid(Uuid::now_v7()),
                NewCustomer {
                    name: CustomerName::parse("Ada").expect("name"),
                    email: Email::parse(&format!("Customer{i}@Example.com")).expect("email"),
                    city: City::parse("Oslo").expect("city"),
                    phone,
                },
                ordo_domain::to_micros(Utc::now()),
            )
            .await
            .expect("created under the old key");
        created.push(customer);
    }
    let old_clients = PgClientRepository::new(pool.clone(), keyring(OLD_KEY, None));
    let mut clients = Vec::new();
    for i in 0..3 {
        let key = RandomApiKeys.new_key();
        let client = old_clients
            .insert(ClientRecord {
                id: ClientId::from_uuid(Uuid::now_v7()),
                client: NewClient {
                    name: ClientName::parse("Robot").expect("name"),
                    email: Email::parse(&format!("Robot{i}@Example.com")).expect("email"),
                    ip_allowlist: IpAllowList::default(),
                    rate_limit: ClientRateLimit::default(),
                },
                key_digest: RandomApiKeys.digest(&key),
                key_prefix: key.prefix().to_owned(),
                at: ordo_domain::to_micros(Utc::now()),
            })
            .await
            .expect("client created under the old key");
        clients.push(client);
    }
    let new_key_id = keyring(NEW_KEY, None).current_key();

    let first = rekey(&db).await;
    let second = rekey(&db).await;

    assert!(
        first.contains(&format!(
            "customers: sealed 12 rows under key {new_key_id} (0 changed meanwhile"
        )),
        "{first}"
    );
    assert!(
        first.contains(&format!("rows by key now: {new_key_id}: 12")),
        "{first}"
    );
    assert!(
        first.contains(&format!(
            "api_clients: sealed 3 rows under key {new_key_id} (0 changed meanwhile, already under it); rows by key now: {new_key_id}: 3"
        )),
        "{first}"
    );
    assert!(
        second.contains(&format!("customers: sealed 0 rows under key {new_key_id}")),
        "{second}"
    );
    assert!(
        second.contains(&format!(
            "api_clients: sealed 0 rows under key {new_key_id}"
        )),
        "{second}"
    );
    // Only the new key is configured now, and every customer reads back as created.
    let after = PgCustomerRepository::new(pool.clone(), keyring(NEW_KEY, None));
    let page = after
        .list(PageRequest {
            limit: PageLimit::parse(50).expect("limit"),
            after: None,
        })
        .await
        .expect("every row opens under the new key alone");
    let mut read = page.items;
    read.sort_by_key(|c| c.id().as_uuid());
    assert_eq!(read, created);
    let new_clients = PgClientRepository::new(pool.clone(), keyring(NEW_KEY, None));
    for client in clients {
        assert_eq!(
            new_clients
                .find(client.id())
                .await
                .expect("opens under the new key alone"),
            Some(client)
        );
    }
}
