use std::sync::Arc;

use chrono::TimeZone;
use mockall::predicate::eq;
use uuid::Uuid;

use super::*;
use crate::auth::MockAccessTokens;
use crate::clients::{
    ApiKeyDigest, ClientName, ClientParts, ClientRateLimit, IpAllowList, MockApiKeys,
    MockClientDirectory, MockClientRepository,
};
use crate::clock::MockClock;
use crate::customers::Email;
use crate::ids::MockIdSource;
use crate::value::Version;

const CLIENT: Uuid = Uuid::from_u128(0xc1);
const ISSUED_KEY: &str = "ordo_Newkey01_0123456789abcdefghijABCDEFGHIJklmnopq";
const PRESENTED_KEY: &str = "ordo_Oldkey01_0123456789abcdefghijABCDEFGHIJklmnopq";

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn client_id() -> ClientId {
    ClientId::from_uuid(CLIENT)
}

fn client(allow: &[&str], key_issued_at: DateTime<Utc>) -> Client {
    Client::restore(ClientParts {
        id: client_id(),
        name: ClientName::parse("Billing robot").expect("name"),
        email: Email::parse("robot@example.com").expect("email"),
        ip_allowlist: IpAllowList::parse(allow).expect("allow-list"),
        rate_limit: ClientRateLimit::default(),
        key_prefix: "Newkey01".into(),
        key_issued_at,
        version: Version::FIRST,
        created_at: noon(),
        updated_at: noon(),
    })
}

fn digest_of(key: &str) -> ApiKeyDigest {
    ApiKeyDigest::from_hex(format!("sha:{key}"))
}

fn keys() -> MockApiKeys {
    let mut keys = MockApiKeys::new();
    keys.expect_new_key()
        .returning(|| ApiKey::parse(ISSUED_KEY).expect("a valid key"));
    keys.expect_digest()
        .returning(|key| digest_of(&key.expose()));
    keys
}

struct Ports {
    clients: MockClientRepository,
    directory: MockClientDirectory,
    tokens: MockAccessTokens,
}

impl Ports {
    fn new() -> Self {
        Self {
            clients: MockClientRepository::new(),
            directory: MockClientDirectory::new(),
            tokens: MockAccessTokens::new(),
        }
    }

    fn service(self) -> ClientService {
        let mut clock = MockClock::new();
        clock.expect_now().returning(noon);
        let mut ids = MockIdSource::new();
        ids.expect_new_id().returning(|| CLIENT);
        ClientService::new(
            Arc::new(self.clients),
            Arc::new(self.directory),
            Arc::new(keys()),
            Arc::new(self.tokens),
            Arc::new(clock),
            Arc::new(ids),
            Duration::from_secs(300),
        )
    }
}

fn localhost() -> IpAddr {
    "127.0.0.1".parse().expect("an address")
}

#[tokio::test]
async fn registering_stores_only_the_digest_and_returns_the_key_once() {
    let mut ports = Ports::new();
    ports
        .clients
        .expect_insert()
        .withf(|record| {
            record.key_digest == digest_of(ISSUED_KEY)
                && record.key_prefix == "Newkey01"
                && record.id == client_id()
                && record.at == noon()
        })
        .times(1)
        .returning(|_| Ok(client(&[], noon())));
    let issued = ports
        .service()
        .register(NewClient {
            name: ClientName::parse("Billing robot").expect("name"),
            email: Email::parse("robot@example.com").expect("email"),
            ip_allowlist: IpAllowList::default(),
            rate_limit: ClientRateLimit::default(),
        })
        .await
        .expect("registered");
    assert_eq!(issued.api_key.expose(), ISSUED_KEY);
    assert_eq!(issued.client.id(), client_id());
}

/// `PRESENTED_KEY` from localhost, when the directory has `found` under its digest.
async fn authenticating(found: Option<Client>) -> Result<Client, AuthenticateClientError> {
    let mut ports = Ports::new();
    ports
        .directory
        .expect_by_key()
        .with(eq(digest_of(PRESENTED_KEY)))
        .returning(move |_| Ok(found.clone()));
    ports
        .service()
        .authenticate_key(PRESENTED_KEY, localhost())
        .await
}

#[tokio::test]
async fn a_malformed_key_is_refused_without_a_look_up() {
    let mut ports = Ports::new();
    ports.directory.expect_by_key().never();
    let refused = ports
        .service()
        .authenticate_key("ordo_x_' OR 1=1 --", localhost())
        .await;
    assert!(matches!(refused, Err(AuthenticateClientError::InvalidKey)));
}

#[tokio::test]
async fn an_unknown_key_is_invalid() {
    let refused = authenticating(None).await;
    assert!(matches!(refused, Err(AuthenticateClientError::InvalidKey)));
}

#[tokio::test]
async fn a_known_key_from_an_allowed_address_admits_its_client() {
    let admitted = authenticating(Some(client(&["127.0.0.0/8", "::1"], noon())))
        .await
        .expect("admitted");
    assert_eq!(admitted.id(), client_id());
}

#[tokio::test]
async fn a_known_key_from_outside_the_allow_list_is_refused_as_such() {
    let refused = authenticating(Some(client(&["203.0.113.0/24"], noon()))).await;
    assert!(matches!(
        refused,
        Err(AuthenticateClientError::IpNotAllowed)
    ));
}

#[tokio::test]
async fn rotating_stores_the_new_digest_and_forgets_the_client_at_once() {
    let mut ports = Ports::new();
    let mut sequence = mockall::Sequence::new();
    ports
        .clients
        .expect_replace_key()
        .with(
            eq(client_id()),
            eq(digest_of(ISSUED_KEY)),
            eq("Newkey01".to_owned()),
            eq(noon()),
        )
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_, _, _, at| Ok(client(&[], at)));
    ports
        .directory
        .expect_forget()
        .with(eq(client_id()))
        .times(1)
        .in_sequence(&mut sequence)
        .return_const(());
    let issued = ports
        .service()
        .rotate_key(client_id())
        .await
        .expect("rotated");
    assert_eq!(issued.api_key.expose(), ISSUED_KEY);
}

#[tokio::test]
async fn rotating_an_unknown_client_is_not_found() {
    let mut ports = Ports::new();
    ports
        .clients
        .expect_replace_key()
        .returning(|id, _, _, _| Err(RotateKeyError::NotFound(id)));
    ports.directory.expect_forget().return_const(());
    let result = ports.service().rotate_key(client_id()).await;
    assert!(matches!(result, Err(RotateKeyError::NotFound(id)) if id == client_id()));
}

#[tokio::test]
async fn deleting_forgets_the_client_at_once() {
    let mut ports = Ports::new();
    ports
        .clients
        .expect_delete()
        .with(eq(client_id()))
        .times(1)
        .returning(|_| Ok(()));
    ports
        .directory
        .expect_forget()
        .with(eq(client_id()))
        .times(1)
        .return_const(());
    ports.service().delete(client_id()).await.expect("deleted");
}

#[tokio::test]
async fn an_update_forgets_the_client_so_a_new_allow_list_applies_at_once() {
    let mut ports = Ports::new();
    ports
        .clients
        .expect_update()
        .withf(|id, changes, expected, _| {
            *id == client_id() && changes.ip_allowlist.is_some() && expected.is_none()
        })
        .times(1)
        .returning(|_, _, _, _| Ok(client(&["10.0.0.0/8"], noon())));
    ports.directory.expect_forget().times(1).return_const(());
    let changes = ClientChanges {
        ip_allowlist: Some(IpAllowList::parse(&["10.0.0.0/8"]).expect("list")),
        ..ClientChanges::default()
    };
    ports
        .service()
        .update(client_id(), changes, None)
        .await
        .expect("updated");
}

#[tokio::test]
async fn an_update_expecting_another_version_is_refused_without_writing() {
    let mut ports = Ports::new();
    ports
        .clients
        .expect_find()
        .returning(|_| Ok(Some(client(&[], noon()))));
    ports.clients.expect_update().never();
    let expected = VersionMatch::any_of(vec![
        Version::new(2).expect("v2"),
        Version::new(3).expect("v3"),
    ])
    .expect("versions");
    let changes = ClientChanges {
        name: Some(ClientName::parse("Renamed").expect("name")),
        ..ClientChanges::default()
    };
    let result = ports
        .service()
        .update(client_id(), changes, Some(expected))
        .await;
    assert!(matches!(result, Err(UpdateClientError::VersionMismatch(_))));
}

#[tokio::test]
async fn an_empty_update_returns_the_client_unchanged() {
    let mut ports = Ports::new();
    ports
        .clients
        .expect_find()
        .returning(|_| Ok(Some(client(&[], noon()))));
    ports.clients.expect_update().never();
    let unchanged = ports
        .service()
        .update(client_id(), ClientChanges::default(), None)
        .await
        .expect("unchanged");
    assert_eq!(unchanged.version(), Version::FIRST);
}

#[tokio::test]
async fn a_token_issued_before_the_current_key_is_refused() {
    let mut ports = Ports::new();
    let rotated_at = noon() + TimeDelta::seconds(10);
    ports
        .directory
        .expect_by_id()
        .returning(move |_| Ok(Some(client(&[], rotated_at))));
    let service = ports.service();
    let old = service
        .authenticate_token(client_id(), noon(), localhost())
        .await;
    assert!(matches!(old, Err(AuthenticateClientError::InvalidKey)));
    let new = service
        .authenticate_token(client_id(), rotated_at, localhost())
        .await;
    assert!(new.is_ok());
}

#[tokio::test]
async fn a_token_of_a_deleted_client_is_refused() {
    let mut ports = Ports::new();
    ports.directory.expect_by_id().returning(|_| Ok(None));
    let refused = ports
        .service()
        .authenticate_token(client_id(), noon(), localhost())
        .await;
    assert!(matches!(refused, Err(AuthenticateClientError::InvalidKey)));
}

#[tokio::test]
async fn exchanging_a_key_issues_a_client_token_for_the_configured_lifetime() {
    let mut ports = Ports::new();
    ports
        .directory
        .expect_by_key()
        .returning(|_| Ok(Some(client(&[], noon()))));
    ports
        .tokens
        .expect_issue()
        .withf(|claims| {
            claims.principal == Principal::Client { id: CLIENT }
                && claims.issued_at == noon()
                && claims.expires_at == noon() + TimeDelta::seconds(300)
        })
        .times(1)
        .returning(|_| Ok("signed".into()));
    let session = ports
        .service()
        .exchange_key(PRESENTED_KEY, localhost())
        .await
        .expect("a session");
    assert_eq!(session.access_token, "signed");
    assert_eq!(session.expires_in, Duration::from_secs(300));
}

#[tokio::test]
async fn a_key_from_outside_the_allow_list_gets_no_token() {
    let mut ports = Ports::new();
    ports
        .directory
        .expect_by_key()
        .returning(|_| Ok(Some(client(&["::1"], noon()))));
    ports.tokens.expect_issue().never();
    let refused = ports
        .service()
        .exchange_key(PRESENTED_KEY, localhost())
        .await;
    assert!(matches!(
        refused,
        Err(AuthenticateClientError::IpNotAllowed)
    ));
}
