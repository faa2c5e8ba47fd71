//! Customers' e-mail addresses and phone numbers at rest, against a real cluster: what
//! the table holds after writes, the upgrade of rows written in plaintext by the
//! previous version, and re-sealing under a new key.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use diesel::sql_types::{Bytea, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ordo_crypto::DataKeyring;
use ordo_domain::customers::{
    City, CreateCustomerError, Customer, CustomerChanges, CustomerId, CustomerName,
    CustomerRepository, Email, NewCustomer, Phone, UpdateCustomerError,
};
use ordo_domain::sealing::FieldCipher;
use ordo_domain::{PageLimit, PageRequest};
use ordo_postgres::sealing::{Pass, SealingReport, seal_rows};
use ordo_postgres::testing::{TestDatabase, fresh_database};
use ordo_postgres::{PgCustomerRepository, PgPool};
use uuid::Uuid;

const OLD_KEY: &str = "the-old-data-key-0123456789abcdefABCDEF";
const NEW_KEY: &str = "the-new-data-key-0123456789abcdefABCDEF";

fn keyring(current: &str, previous: Option<&str>) -> Arc<DataKeyring> {
    Arc::new(
        DataKeyring::new(
            &current.to_owned().into(),
            previous.map(|p| p.to_owned().into()).as_ref(),
        )
        .expect("keyring"),
    )
}

fn repository(pool: &PgPool, keys: &Arc<DataKeyring>) -> PgCustomerRepository {
    PgCustomerRepository::new(pool.clone(), keys.clone())
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
        .single()
        .expect("time")
}

fn new_customer(email: &str, phone: Option<&str>) -> NewCustomer {
    NewCustomer {
        name: CustomerName::parse("Ada Lovelace").expect("name"),
        email: Email::parse(email).expect("email"),
        city: City::parse("Oslo").expect("city"),
        phone: phone.map(|p| Phone::parse(p).expect("phone")),
    }
}

async fn create(
    repo: &PgCustomerRepository,
    email: &str,
    phone: Option<&str>,
) -> Result<Customer, CreateCustomerError> {
    repo.insert(
        CustomerId::from_uuid(Uuid::now_v7()),
        new_customer(email, phone),
        at(),
    )
    .await
}

async fn connect(db: &TestDatabase) -> AsyncPgConnection {
    AsyncPgConnection::establish(&db.url)
        .await
        .expect("connection")
}

#[derive(diesel::QueryableByName)]
struct RowText {
    #[diesel(sql_type = Text)]
    row: String,
}

#[derive(diesel::QueryableByName)]
struct SealedColumns {
    #[diesel(sql_type = Nullable<Bytea>)]
    email_sealed: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Bytea>)]
    email_index: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Bytea>)]
    phone_sealed: Option<Vec<u8>>,
}

/// Every value of every column of `customers`: text columns as PostgreSQL prints
/// the row, and the raw bytes of the bytea columns.
async fn everything_stored(db: &TestDatabase) -> (String, Vec<Vec<u8>>) {
    let mut conn = connect(db).await;
    let text = diesel::sql_query("SELECT c::text AS row FROM customers c")
        .load::<RowText>(&mut conn)
        .await
        .expect("rows")
        .into_iter()
        .map(|r| r.row)
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = diesel::sql_query("SELECT email_sealed, email_index, phone_sealed FROM customers")
        .load::<SealedColumns>(&mut conn)
        .await
        .expect("rows")
        .into_iter()
        .flat_map(|r| [r.email_sealed, r.email_index, r.phone_sealed])
        .flatten()
        .collect();
    (text, bytes)
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `pg_dump --data-only` of `customers`, as an operator would take a backup.
fn dump(db: &TestDatabase) -> String {
    db.dump("customers").expect("a dump")
}

#[tokio::test]
async fn no_address_or_phone_number_is_stored_in_plaintext_after_creates_and_updates() {
    let db = fresh_database().await.expect("database");
    let pool = db.pool(4).expect("pool");
    let keys = keyring(NEW_KEY, None);
    let repo = repository(&pool, &keys);
    let hidden = create(&repo, "Hidden.Person@Example.com", Some("+47 99 88 77 66"))
        .await
        .expect("created");
    create(&repo, "other.person@example.org", None)
        .await
        .expect("created");
    let changed = repo
        .update(
            hidden.id(),
            CustomerChanges {
                email: Some(Email::parse("Renamed.Person@Example.com").expect("email")),
                phone: Some(Some(Phone::parse("+47 11 22 33 44").expect("phone"))),
                ..CustomerChanges::default()
            },
            None,
            at(),
        )
        .await
        .expect("updated");

    let secrets = [
        "hidden.person",
        "renamed.person",
        "other.person",
        "example.com",
        "example.org",
        "99 88 77 66",
        "11 22 33 44",
    ];
    let (text, bytes) = everything_stored(&db).await;
    assert!(text.contains("Ada Lovelace"), "the rows were read: {text}");
    let dumped = dump(&db);
    assert!(dumped.contains("Ada Lovelace"), "the dump holds the rows");
    for secret in secrets {
        assert!(
            !text.to_lowercase().contains(secret),
            "{secret} in a row: {text}"
        );
        assert!(
            !dumped.to_lowercase().contains(secret),
            "{secret} in the dump"
        );
        for column in &bytes {
            assert!(
                !contains_bytes(column, secret.as_bytes()),
                "{secret} in a bytea column"
            );
        }
    }

    let found = repo.find(hidden.id()).await.expect("find").expect("found");
    assert_eq!(found, changed);
    assert_eq!(found.email().as_str(), "Renamed.Person@Example.com");
    assert_eq!(found.phone().map(Phone::as_str), Some("+47 11 22 33 44"));
}

#[tokio::test]
async fn a_sealed_value_copied_into_another_row_is_refused_not_read_as_that_row() {
    let db = fresh_database().await.expect("database");
    let pool = db.pool(4).expect("pool");
    let keys = keyring(NEW_KEY, None);
    let repo = repository(&pool, &keys);
    let ada = create(&repo, "ada@example.com", None).await.expect("ada");
    let bob = create(&repo, "bob@example.com", None).await.expect("bob");

    diesel::sql_query(
        "UPDATE customers SET email_sealed = (SELECT email_sealed FROM customers WHERE id = $1) \
         WHERE id = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(ada.id().as_uuid())
    .bind::<diesel::sql_types::Uuid, _>(bob.id().as_uuid())
    .execute(&mut connect(&db).await)
    .await
    .expect("copied");

    let error = repo.find(bob.id()).await.expect_err("bob's row is refused");
    assert!(format!("{error:#}").contains("altered"), "{error:#}");
    assert_eq!(repo.find(ada.id()).await.expect("ada").expect("ada"), ada);
}

/// Inserts customers the way the version before sealing did: plaintext `email`,
/// its Unicode lower case in `email_key`, plaintext `phone`. Returns what each
/// customer must read back as.
async fn insert_plaintext_customers(
    db: &TestDatabase,
    count: usize,
) -> BTreeMap<Uuid, (String, Option<String>)> {
    let mut conn = connect(db).await;
    let mut expected = BTreeMap::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let mut ids = Vec::new();
        let mut emails = Vec::new();
        let mut phones = Vec::new();
        for &i in chunk {
            let id = Uuid::now_v7();
            let email = format!("Legacy.Customer{i}@Example.COM");
            let phone = (i % 3 == 0).then(|| format!("+47 {i:08}"));
            ids.push(id);
            emails.push(email.clone());
            phones.push(phone.clone());
            expected.insert(id, (email, phone));
        }
        diesel::sql_query(
            "INSERT INTO customers (id, name, email, email_key, city, phone, version, created_at, updated_at) \
             SELECT id, 'Legacy Customer', email, lower(email), 'Bergen', phone, 3, $4, $4 \
             FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(id, email, phone)",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
        .bind::<diesel::sql_types::Array<Text>, _>(emails)
        .bind::<diesel::sql_types::Array<Nullable<Text>>, _>(phones)
        .bind::<diesel::sql_types::Timestamptz, _>(at())
        .execute(&mut conn)
        .await
        .expect("plaintext rows");
    }
    expected
}

/// Every customer, read through the repository page by page.
async fn read_all(repo: &PgCustomerRepository) -> BTreeMap<Uuid, Customer> {
    let mut all = BTreeMap::new();
    let mut after = None;
    loop {
        let page = repo
            .list(PageRequest {
                limit: PageLimit::parse(i64::from(PageLimit::MAX)).expect("limit"),
                after,
            })
            .await
            .expect("page");
        for customer in page.items {
            all.insert(customer.id().as_uuid(), customer);
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return all,
        }
    }
}

fn assert_reads_back(
    read: &BTreeMap<Uuid, Customer>,
    expected: &BTreeMap<Uuid, (String, Option<String>)>,
) {
    for (id, (email, phone)) in expected {
        let customer = read
            .get(id)
            .unwrap_or_else(|| panic!("customer {id} is lost"));
        assert_eq!(customer.email().as_str(), email);
        assert_eq!(customer.phone().map(Phone::as_str), phone.as_deref());
        assert_eq!(customer.version().get(), 3, "sealing is not a change");
        assert_eq!(customer.updated_at(), at(), "sealing is not a change");
    }
}

async fn count(db: &TestDatabase, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<Count>(&mut connect(db).await)
        .await
        .expect("count")
        .n
}

const PLAINTEXT_ROWS: &str = "SELECT count(*) AS n FROM customers \
     WHERE email IS NOT NULL OR email_key IS NOT NULL OR phone IS NOT NULL";

#[tokio::test]
async fn rows_written_in_plaintext_by_the_previous_version_are_sealed_with_nothing_lost() {
    let db = fresh_database().await.expect("database");
    let pool = db.pool(4).expect("pool");
    let keys = keyring(NEW_KEY, None);
    let repo = repository(&pool, &keys);
    // More than one batch.
    let expected = insert_plaintext_customers(&db, 1_203).await;
    // Before the upgrade pass, plaintext rows read like sealed ones.
    assert_reads_back(&read_all(&repo).await, &expected);

    let reports = seal_rows(&pool, &*keys, Pass::Plaintext)
        .await
        .expect("sealed");

    let current = keys.current_key().as_str().to_owned();
    assert_eq!(
        reports,
        vec![
            SealingReport {
                table: "customers",
                sealed: 1_203,
                changed_meanwhile: 0,
                rows_by_key: vec![(Some(current.clone()), 1_203)],
            },
            SealingReport {
                table: "api_clients",
                sealed: 0,
                changed_meanwhile: 0,
                rows_by_key: vec![],
            }
        ]
    );
    assert_eq!(count(&db, PLAINTEXT_ROWS).await, 0);
    let dumped = dump(&db);
    assert!(
        dumped.contains("Legacy Customer"),
        "the dump holds the rows"
    );
    assert!(!dumped.to_lowercase().contains("legacy.customer"));
    assert_reads_back(&read_all(&repo).await, &expected);

    // Addresses stay unique regardless of case, now through the blind index.
    assert!(matches!(
        create(&repo, "LEGACY.customer7@example.com", None).await,
        Err(CreateCustomerError::EmailTaken)
    ));
    let some_legacy = *expected.keys().next().expect("a row");
    assert!(matches!(
        repo.update(
            CustomerId::from_uuid(some_legacy),
            CustomerChanges {
                email: Some(Email::parse("legacy.CUSTOMER8@example.com").expect("email")),
                ..CustomerChanges::default()
            },
            None,
            at(),
        )
        .await,
        Err(UpdateCustomerError::EmailTaken)
    ));

    // Nothing left to do the second time.
    let again = seal_rows(&pool, &*keys, Pass::Plaintext)
        .await
        .expect("sealed");
    assert_eq!(again[0].sealed, 0);
}

#[tokio::test]
async fn two_instances_upgrading_at_once_seal_every_row_exactly_once() {
    let db = fresh_database().await.expect("database");
    let pool = db.pool(8).expect("pool");
    let keys = keyring(NEW_KEY, None);
    let expected = insert_plaintext_customers(&db, 2_000).await;

    let (first, second) = tokio::join!(
        seal_rows(&pool, &*keys, Pass::Plaintext),
        seal_rows(&pool, &*keys, Pass::Plaintext),
    );
    let (first, second) = (first.expect("first"), second.expect("second"));

    assert_eq!(first[0].sealed + second[0].sealed, 2_000);
    assert_eq!(count(&db, PLAINTEXT_ROWS).await, 0);
    assert_reads_back(&read_all(&repository(&pool, &keys)).await, &expected);
}

#[tokio::test]
async fn rekey_seals_every_row_under_the_new_key_so_the_old_one_can_go() {
    let db = fresh_database().await.expect("database");
    let pool = db.pool(4).expect("pool");
    let old = keyring(OLD_KEY, None);
    let before_rotation = repository(&pool, &old);
    let mut expected = insert_plaintext_customers(&db, 3).await;
    for i in 0..30 {
        let phone = (i % 2 == 0).then(|| format!("+47 5555 {i:04}"));
        let customer = create(
            &before_rotation,
            &format!("Sealed.Old{i}@Example.com"),
            phone.as_deref(),
        )
        .await
        .expect("created under the old key");
        expected.insert(
            customer.id().as_uuid(),
            (customer.email().to_string(), phone),
        );
    }

    // The operator rotates: the new key is current, the old one previous.
    let rotated = keyring(NEW_KEY, Some(OLD_KEY));
    let during_rotation = repository(&pool, &rotated);
    let read = read_all(&during_rotation).await;
    for (id, (email, _)) in &expected {
        assert_eq!(
            read[id].email().as_str(),
            email,
            "readable during the rotation"
        );
    }
    // Uniqueness holds across keys while rows are under the old one.
    assert!(matches!(
        create(&during_rotation, "SEALED.old4@example.com", None).await,
        Err(CreateCustomerError::EmailTaken)
    ));
    let moved = create(&during_rotation, "new.one@example.com", None)
        .await
        .expect("a new address is free");
    assert!(matches!(
        during_rotation
            .update(
                moved.id(),
                CustomerChanges {
                    email: Some(Email::parse("sealed.OLD5@example.com").expect("email")),
                    ..CustomerChanges::default()
                },
                None,
                at(),
            )
            .await,
        Err(UpdateCustomerError::EmailTaken)
    ));
    expected.insert(moved.id().as_uuid(), (moved.email().to_string(), None));

    let reports = seal_rows(&pool, &*rotated, Pass::Rekey)
        .await
        .expect("rekeyed");
    let new_key = rotated.current_key().as_str().to_owned();
    assert_eq!(reports[0].sealed, 33, "3 plaintext and 30 old-key rows");
    assert_eq!(reports[0].rows_by_key, vec![(Some(new_key), 34)]);

    // The old key is gone from the configuration; everything still reads.
    let after_rotation = repository(&pool, &keyring(NEW_KEY, None));
    let read = read_all(&after_rotation).await;
    assert_eq!(read.len(), expected.len());
    for (id, (email, phone)) in &expected {
        assert_eq!(read[id].email().as_str(), email);
        assert_eq!(read[id].phone().map(Phone::as_str), phone.as_deref());
    }
    assert!(matches!(
        create(&after_rotation, "sealed.old9@EXAMPLE.com", None).await,
        Err(CreateCustomerError::EmailTaken)
    ));
    // Rows under the old key alone would not open any more: nothing is left there.
    let again = seal_rows(&pool, &*rotated, Pass::Rekey)
        .await
        .expect("rekeyed");
    assert_eq!(again[0].sealed, 0);
}

#[tokio::test]
async fn rekey_stops_at_a_row_whose_key_is_not_configured_and_names_the_setting() {
    let db = fresh_database().await.expect("database");
    let pool = db.pool(4).expect("pool");
    create(
        &repository(&pool, &keyring(OLD_KEY, None)),
        "ada@example.com",
        None,
    )
    .await
    .expect("created");

    let error = seal_rows(&pool, &*keyring(NEW_KEY, None), Pass::Rekey)
        .await
        .expect_err("the old key is missing");

    let message = format!("{error:#}");
    assert!(message.contains("ORDO_DATA_KEY_PREVIOUS"), "{message}");
    assert!(
        message.contains(keyring(OLD_KEY, None).current_key().as_str()),
        "{message}"
    );
}
