//! The adapter against the in-process simulator of the upstream: every operation's
//! happy path, the sandbox's reliability through the adapter's retries, dropped
//! connections, and no double charge under chaos (checked by the simulator's audit).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ordo_domain::orders::OrderId;
use ordo_domain::upstream::{
    CatalogSource, ChargeError, CreateUpstreamOrderError, IdempotencyKey, NewPayment,
    NewUpstreamOrder, PaymentGateway, PaymentToken, UpstreamOrder, UpstreamOrderStatus,
    UpstreamOrders, UpstreamPayment, UpstreamPaymentStatus, UpstreamProductId,
};
use ordo_domain::{Currency, Money};
use ordo_upstream::{BreakerConfig, UpstreamClient, UpstreamConfig};
use ordo_upstream_sim::{Endpoint, FailureRates, RunningSim, SimConfig, UpstreamSim};

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("a currency"))
}

fn adapter(sim: &RunningSim, change: impl FnOnce(&mut UpstreamConfig)) -> UpstreamClient {
    let mut config = UpstreamConfig {
        base_url: Some(sim.url()),
        auth_user: "ordo-sim-test".to_owned(),
        ..UpstreamConfig::default()
    };
    change(&mut config);
    UpstreamClient::new(config).expect("a client")
}

fn new_order(total: i64) -> NewUpstreamOrder {
    let order_id = OrderId::generate();
    NewUpstreamOrder {
        order_id,
        total: eur(total),
        basket_id: Some(uuid::Uuid::now_v7()),
        idempotency_key: IdempotencyKey::for_id("order", order_id.as_uuid()),
    }
}

fn new_payment(order: &UpstreamOrder, token: &str) -> NewPayment {
    NewPayment {
        order_id: order.id.clone(),
        amount: order.total,
        token: PaymentToken::parse(token).expect("a token"),
        idempotency_key: IdempotencyKey::parse(&format!("payment-{}", order.id)).expect("a key"),
    }
}

#[tokio::test]
async fn every_operation_works_against_a_healthy_upstream() {
    let sim = UpstreamSim::start(SimConfig::healthy()).expect("a simulator");
    let upstream = adapter(&sim, |_| {});

    let products = upstream.list_products().await.expect("products");
    let coffee = upstream
        .get_product(&UpstreamProductId::parse("prod_coffee").expect("an id"))
        .await
        .expect("coffee");
    let wanted = new_order(5495);
    let order = upstream
        .create_order(wanted.clone())
        .await
        .expect("an order");
    let again = upstream
        .create_order(wanted.clone())
        .await
        .expect("the same order");
    let fetched = upstream.get_order(&order.id).await.expect("the order");
    let payment = upstream
        .create_payment(new_payment(&order, "tok_ok"))
        .await
        .expect("paid");
    let replayed = upstream
        .create_payment(new_payment(&order, "tok_ok"))
        .await
        .expect("the same payment");
    let completed = upstream
        .update_order_status(&order.id, UpstreamOrderStatus::Completed)
        .await
        .expect("completed");
    let read = upstream
        .get_payment(&payment.id)
        .await
        .expect("the payment");
    let refunded = upstream
        .refund_payment(&payment.id)
        .await
        .expect("refunded");

    assert_eq!(products.len(), 10);
    assert!(products.contains(&coffee));
    assert_eq!(coffee.price, eur(2500));
    assert_eq!(coffee.vat_rate.basis_points(), 2500);
    assert_eq!(
        order.id.as_str(),
        wanted.order_id.to_string(),
        "our id is theirs"
    );
    assert_eq!(order.total, eur(5495));
    assert_eq!(order.status, UpstreamOrderStatus::Pending);
    assert_eq!(again, order);
    assert_eq!(fetched, order);
    assert_eq!(payment.amount, eur(5495));
    assert_eq!(replayed.id, payment.id);
    assert_eq!(completed.status, UpstreamOrderStatus::Completed);
    assert_eq!(read, payment);
    assert_eq!(refunded.status, UpstreamPaymentStatus::Refunded);
    let audit = sim.audit_order(order.id.as_str()).expect("audited");
    assert_eq!(audit.charges.len(), 1, "the replay charged nothing");
    assert_eq!(audit.refunds.len(), 1);
}

#[tokio::test]
async fn declines_and_flaky_cards_are_told_apart() {
    let sim = UpstreamSim::start(SimConfig::healthy()).expect("a simulator");
    let upstream = adapter(&sim, |c| c.backoff_base = Duration::from_millis(5));
    let declined_order = upstream
        .create_order(new_order(1000))
        .await
        .expect("an order");
    let flaky_order = upstream
        .create_order(new_order(2000))
        .await
        .expect("an order");

    let declined = upstream
        .create_payment(new_payment(&declined_order, "tok_declined"))
        .await;
    let flaky = upstream
        .create_payment(new_payment(&flaky_order, "tok_flaky"))
        .await;

    assert!(
        matches!(declined, Err(ChargeError::Declined { .. })),
        "{declined:?}"
    );
    assert_eq!(flaky.expect("paid on the third attempt").amount, eur(2000));
    let audit = sim.audit_order(flaky_order.id.as_str()).expect("audited");
    assert_eq!(audit.charges.len(), 1);
}

#[tokio::test]
async fn a_connection_dropped_after_the_charge_is_an_unknown_outcome_settled_by_the_same_key() {
    let sim = UpstreamSim::start(SimConfig::healthy()).expect("a simulator");
    let upstream = adapter(&sim, |c| {
        c.max_attempts = 2;
        c.backoff_base = Duration::from_millis(5);
    });
    let order = upstream
        .create_order(new_order(4200))
        .await
        .expect("an order");
    sim.set_config(SimConfig {
        endpoint_failures: BTreeMap::from([(
            Endpoint::CreatePayment,
            FailureRates {
                drop_connection: 1.0,
                ..FailureRates::default()
            },
        )]),
        fail_after_effect_ratio: 1.0,
        ..SimConfig::healthy()
    })
    .expect("a valid configuration");

    let unknown = upstream.create_payment(new_payment(&order, "tok_ok")).await;
    sim.set_config(SimConfig::healthy()).expect("healthy again");
    let settled = upstream
        .create_payment(new_payment(&order, "tok_ok"))
        .await
        .expect("settled");

    assert!(
        matches!(unknown, Err(ChargeError::OutcomeUnknown(_))),
        "{unknown:?}"
    );
    let audit = sim.audit_order(order.id.as_str()).expect("audited");
    assert_eq!(
        audit.charges.len(),
        1,
        "charged once, though sent three times"
    );
    assert_eq!(audit.charges[0].payment_id, settled.id.as_str());
}

#[tokio::test]
async fn an_upstream_that_is_down_opens_the_circuit() {
    let sim = UpstreamSim::start(SimConfig::down()).expect("a simulator");
    let upstream = adapter(&sim, |c| {
        c.max_attempts = 2;
        c.backoff_base = Duration::from_millis(1);
        c.breaker = BreakerConfig {
            min_calls: 4,
            ..BreakerConfig::default()
        };
    });

    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(upstream.create_order(new_order(100)).await);
    }

    assert!(matches!(
        outcomes[0],
        Err(CreateUpstreamOrderError::OutcomeUnknown(_))
    ));
    let Err(CreateUpstreamOrderError::Unavailable(open)) = &outcomes[2] else {
        panic!("not unavailable: {:?}", outcomes[2]);
    };
    assert!(open.retry_after() > Duration::ZERO);
    assert!(sim.audit().is_empty());
}

/// Creates the upstream order and pays it, as checkout will. (The simulator
/// declines amounts ending in .13, so tests pay whole euros.)
async fn order_and_pay(
    upstream: &UpstreamClient,
    wanted: &NewUpstreamOrder,
) -> Result<UpstreamPayment, String> {
    match upstream.create_order(wanted.clone()).await {
        Ok(order) => upstream
            .create_payment(new_payment(&order, "tok_ok"))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_sandbox_at_least_999_of_1000_payments_succeed() {
    let sim = UpstreamSim::start(SimConfig::sandbox()).expect("a simulator");
    let upstream = Arc::new(adapter(&sim, |_| {}));

    let outcomes: Vec<_> = futures::stream::iter(0..1000)
        .map(|i| {
            let upstream = upstream.clone();
            async move { order_and_pay(&upstream, &new_order(100 * (i + 1))).await }
        })
        .buffer_unordered(50)
        .collect()
        .await;

    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failures.len() <= 1,
        "{} failures: {failures:?}",
        failures.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_concurrent_payments_with_retries_never_charge_an_order_twice() {
    let sim = UpstreamSim::start(SimConfig {
        seed: 9,
        ..SimConfig::chaos(0.3)
    })
    .expect("a simulator");
    let upstream = Arc::new(adapter(&sim, |c| {
        c.max_attempts = 3;
        c.backoff_base = Duration::from_millis(5);
        c.backoff_max = Duration::from_millis(50);
    }));

    let first_round: Vec<_> = futures::stream::iter(0..200)
        .map(|i| {
            let upstream = upstream.clone();
            async move {
                let wanted = new_order(100 * (i + 1));
                let outcome = order_and_pay(&upstream, &wanted).await;
                (wanted, outcome)
            }
        })
        .buffer_unordered(40)
        .collect()
        .await;
    // What checkout's reconciliation does: the same request with the same key,
    // until the outcome is known.
    let unsettled = first_round.iter().filter(|(_, o)| o.is_err()).count();
    assert!(unsettled > 0, "the chaos left some payments to settle");
    let mut paid = Vec::new();
    for (wanted, mut outcome) in first_round {
        for _ in 0..20 {
            if outcome.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            outcome = order_and_pay(&upstream, &wanted).await;
        }
        paid.push((wanted, outcome.expect("settled within 20 rounds")));
    }

    for (wanted, payment) in &paid {
        let audit = sim
            .audit_order(&wanted.order_id.to_string())
            .expect("the order exists upstream");
        assert_eq!(audit.charges.len(), 1, "charged exactly once: {audit:?}");
        assert_eq!(audit.charges[0].payment_id, payment.id.as_str());
        assert_eq!(audit.charges[0].amount.minor(), wanted.total.minor());
    }
    assert_eq!(
        sim.audit().len(),
        200,
        "one upstream order per order, retries included"
    );
}
