//! Every failure class against a scripted upstream (wiremock): what is retried,
//! how often, with which key, and what the caller is told in the end.

use std::time::{Duration, Instant};

use ordo_domain::orders::OrderId;
use ordo_domain::upstream::{
    CatalogSource, ChargeError, CircuitState, CreateUpstreamOrderError, IdempotencyKey, NewPayment,
    NewUpstreamOrder, PaymentGateway, PaymentToken, UpstreamCallError, UpstreamMonitor,
    UpstreamOrderId, UpstreamOrders, UpstreamPaymentId,
};
use ordo_domain::{Currency, Money};
use ordo_upstream::{BreakerConfig, UpstreamClient, UpstreamConfig};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("a currency"))
}

fn config(url: &str) -> UpstreamConfig {
    UpstreamConfig {
        base_url: Some(url.to_owned()),
        auth_user: "ordo-test".to_owned(),
        attempt_timeout: Duration::from_millis(300),
        deadline: Duration::from_secs(3),
        max_attempts: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..UpstreamConfig::default()
    }
}

fn client(server: &MockServer) -> UpstreamClient {
    UpstreamClient::new(config(&server.uri())).expect("a client")
}

fn payment(key: &str) -> NewPayment {
    NewPayment {
        order_id: UpstreamOrderId::parse("order-1").expect("an id"),
        amount: eur(1999),
        token: PaymentToken::parse("tok_ok").expect("a token"),
        idempotency_key: IdempotencyKey::parse(key).expect("a key"),
    }
}

const PAYMENT: &str = r#"{"id":"pay-1","amount":19.99,"status":"completed","order_id":"order-1","type":"card","user_id":"ordo-test","created_at":"x"}"#;
const PRODUCTS: &str = r#"[{"id":"p1","name":"Coffee","vat_rate":0.25,"price_unit":25}]"#;

fn json(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.as_bytes().to_vec(), "application/json")
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.expect("recording is on")
}

#[tokio::test]
async fn a_500_is_retried_and_the_second_answer_is_used() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/products/"))
        .respond_with(json(500, r#""boom""#))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/products/"))
        .and(header("x-auth-user", "ordo-test"))
        .respond_with(json(200, PRODUCTS))
        .mount(&server)
        .await;

    let products = client(&server).list_products().await.expect("products");

    assert_eq!(products.len(), 1);
    assert_eq!(products[0].price.minor(), 2500);
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_503_that_persists_is_unavailable_after_the_last_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json(503, r#""down""#))
        .mount(&server)
        .await;

    let error = client(&server)
        .get_payment(&UpstreamPaymentId::parse("pay-1").expect("an id"))
        .await
        .expect_err("unavailable");

    let UpstreamCallError::Unavailable(unavailable) = error else {
        panic!("not unavailable: {error:?}");
    };
    assert_eq!(unavailable.dependency(), ordo_domain::Dependency::Upstream);
    assert!(unavailable.reason().contains("503"), "{unavailable}");
    assert_eq!(requests(&server).await.len(), 3, "max_attempts");
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json(429, r#""slow down""#).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(json(200, PRODUCTS))
        .mount(&server)
        .await;

    let started = Instant::now();
    client(&server).list_products().await.expect("products");

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited Retry-After"
    );
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_gives_up_at_once_and_passes_it_on() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json(429, r#""come back later""#).insert_header("retry-after", "60"))
        .mount(&server)
        .await;

    let started = Instant::now();
    let error = client(&server).list_products().await.expect_err("gave up");

    let UpstreamCallError::Unavailable(unavailable) = error else {
        panic!("not unavailable: {error:?}");
    };
    assert_eq!(unavailable.retry_after(), Duration::from_secs(60));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn retries_of_a_payment_carry_the_same_idempotency_key_and_user() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/payments/"))
        .respond_with(json(500, r#""oops""#))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/payments/"))
        .respond_with(json(201, PAYMENT))
        .mount(&server)
        .await;

    let paid = client(&server)
        .create_payment(payment("pay-key-1"))
        .await
        .expect("paid");

    assert_eq!(paid.amount, eur(1999));
    let seen = requests(&server).await;
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(
            request.headers.get("idempotency-key").map(|v| v.as_bytes()),
            Some(&b"pay-key-1"[..])
        );
        assert_eq!(
            request.headers.get("x-auth-user").map(|v| v.as_bytes()),
            Some(&b"ordo-test"[..])
        );
        assert_eq!(
            request.headers.get("x-payment-token").map(|v| v.as_bytes()),
            Some(&b"tok_ok"[..])
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({"order_id": "order-1", "amount": 19.99})
        );
        assert_eq!(
            String::from_utf8_lossy(&request.body),
            r#"{"order_id":"order-1","amount":19.99}"#
        );
    }
}

#[tokio::test]
async fn a_payment_that_times_out_on_every_attempt_has_an_unknown_outcome() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json(201, PAYMENT).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;

    let error = client(&server)
        .create_payment(payment("slow-key"))
        .await
        .expect_err("no answer in time");

    assert!(
        matches!(error, ChargeError::OutcomeUnknown(ref why) if why.contains("timed out")),
        "{error:?}"
    );
    let seen = requests(&server).await;
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|r| r.headers.get("idempotency-key").map(|v| v.as_bytes())
                == Some(&b"slow-key"[..]))
    );
}

#[tokio::test]
async fn a_payment_that_never_reached_the_upstream_is_unavailable_not_unknown() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}", unused.local_addr().expect("an address"));
    drop(unused);
    let client = UpstreamClient::new(config(&url)).expect("a client");

    let error = client
        .create_payment(payment("refused-key"))
        .await
        .expect_err("refused");

    assert!(matches!(error, ChargeError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn a_decline_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json(402, r#""payment declined: card declined""#))
        .mount(&server)
        .await;

    let error = client(&server)
        .create_payment(payment("declined-key"))
        .await
        .expect_err("declined");

    assert!(
        matches!(error, ChargeError::Declined { ref reason } if reason == "payment declined: card declined"),
        "{error:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_404_is_not_found_and_other_client_errors_are_rejections_with_the_reason() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json(404, r#""payment not found""#))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/orders/"))
        .respond_with(json(409, r#""order_id already used for another order""#))
        .mount(&server)
        .await;
    let client = client(&server);

    let missing = client
        .get_payment(&UpstreamPaymentId::parse("nope").expect("an id"))
        .await
        .expect_err("missing");
    let rejected = client
        .create_order(NewUpstreamOrder {
            order_id: OrderId::generate(),
            total: eur(500),
            basket_id: None,
            idempotency_key: IdempotencyKey::parse("order-key").expect("a key"),
        })
        .await
        .expect_err("rejected");

    assert!(matches!(missing, UpstreamCallError::NotFound(ref why) if why == "payment not found"));
    let CreateUpstreamOrderError::Rejected(rejection) = rejected else {
        panic!("not rejected: {rejected:?}");
    };
    assert_eq!(rejection.status, 409);
    assert_eq!(rejection.reason, "order_id already used for another order");
    assert_eq!(requests(&server).await.len(), 2, "neither was retried");
}

#[tokio::test]
async fn malformed_json_and_inexact_amounts_are_unexpected_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/products/"))
        .respond_with(json(200, "[{\"id\": \"p1\", "))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payments/pay-1"))
        .respond_with(json(
            200,
            r#"{"id":"pay-1","amount":19.999,"status":"completed","order_id":"order-1"}"#,
        ))
        .mount(&server)
        .await;
    let client = client(&server);

    let malformed = client.list_products().await.expect_err("malformed");
    let inexact = client
        .get_payment(&UpstreamPaymentId::parse("pay-1").expect("an id"))
        .await
        .expect_err("inexact");

    assert!(
        matches!(malformed, UpstreamCallError::Unexpected(_)),
        "{malformed:?}"
    );
    let UpstreamCallError::Unexpected(inexact) = inexact else {
        panic!("not unexpected: {inexact:?}");
    };
    assert!(format!("{inexact:#}").contains("19.999"), "{inexact:#}");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn a_charge_of_another_amount_than_asked_is_never_taken_as_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json(
            201,
            r#"{"id":"pay-1","amount":199.90,"status":"completed","order_id":"order-1"}"#,
        ))
        .mount(&server)
        .await;

    let error = client(&server)
        .create_payment(payment("k"))
        .await
        .expect_err("wrong amount");

    assert!(matches!(error, ChargeError::Unexpected(_)), "{error:?}");
}

#[tokio::test]
async fn the_breaker_opens_on_failures_fails_fast_then_half_opens_and_closes_on_a_good_probe() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json(503, r#""down""#))
        .mount(&server)
        .await;
    let client = UpstreamClient::new(UpstreamConfig {
        max_attempts: 1,
        breaker: BreakerConfig {
            window: Duration::from_secs(10),
            min_calls: 4,
            failure_ratio: 0.5,
            open_for: Duration::from_millis(300),
            half_open_probes: 1,
        },
        ..config(&server.uri())
    })
    .expect("a client");

    for _ in 0..4 {
        client.list_products().await.expect_err("503");
    }
    assert_eq!(client.health().circuit, CircuitState::Open);
    let fast = client.list_products().await.expect_err("open");
    let UpstreamCallError::Unavailable(open) = fast else {
        panic!("not unavailable: {fast:?}");
    };
    assert!(open.reason().contains("circuit is open"), "{open}");
    assert!(open.retry_after() <= Duration::from_millis(300));
    assert_eq!(
        requests(&server).await.len(),
        4,
        "an open circuit sends nothing"
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(client.health().circuit, CircuitState::HalfOpen);
    client.list_products().await.expect_err("the probe fails");
    assert_eq!(
        client.health().circuit,
        CircuitState::Open,
        "a failed probe reopens"
    );
    assert_eq!(requests(&server).await.len(), 5);

    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(json(200, PRODUCTS))
        .mount(&server)
        .await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    client.list_products().await.expect("the probe succeeds");
    assert_eq!(client.health().circuit, CircuitState::Closed);
    client.list_products().await.expect("closed again");
    let health = client.health();
    assert!(health.recent_calls >= 2);
    assert!(health.latency_p50.is_some() && health.latency_p99 >= health.latency_p50);
}

#[tokio::test]
async fn without_a_base_url_every_call_is_unavailable_at_once() {
    let client = UpstreamClient::new(UpstreamConfig::default()).expect("a client");

    let error = client.list_products().await.expect_err("no upstream");

    assert!(
        matches!(error, UpstreamCallError::Unavailable(ref u) if u.reason().contains("no upstream URL"))
    );
}
