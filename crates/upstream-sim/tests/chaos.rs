//! Chaos: failure rates, dropped connections, hangs, failures before and after
//! the effect, and clients that retry with idempotency keys.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Harness, start, with_retries};
use ordo_upstream_sim::{Endpoint, FailureRates, SimConfig};
use reqwest::StatusCode;

fn no_latency(c: SimConfig) -> SimConfig {
    SimConfig {
        latency_ms: 0,
        jitter_ms: 0,
        tail_probability: 0.0,
        ..c
    }
}

fn only(endpoint: Endpoint, rates: FailureRates, after: f64) -> SimConfig {
    SimConfig {
        endpoint_failures: BTreeMap::from([(endpoint, rates)]),
        fail_after_effect_ratio: after,
        ..SimConfig::healthy()
    }
}

/// Outcome of one call as a short label: the status, or "err".
async fn outcome(h: &Harness) -> String {
    match h
        .call(reqwest::Method::GET, "/products/", Some("u1"), None, &[])
        .await
    {
        Ok(r) => r.status.as_u16().to_string(),
        Err(_) => "err".into(),
    }
}

#[tokio::test]
async fn chaos_rates_are_plausible_and_reproducible() {
    let h = start(no_latency(SimConfig::chaos(0.3)));
    let mut first = Vec::new();
    for _ in 0..1000 {
        first.push(outcome(&h).await);
    }
    let failures = first.iter().filter(|o| *o != "200").count();
    assert!(
        (250..=350).contains(&failures),
        "{failures} failures of 1000"
    );
    for kind in ["500", "503", "429", "err"] {
        assert!(first.iter().any(|o| o == kind), "no {kind} seen");
    }
    // Setting the same config re-seeds: the same sequence again.
    h.sim.set_config(no_latency(SimConfig::chaos(0.3))).unwrap();
    let mut second = Vec::new();
    for _ in 0..200 {
        second.push(outcome(&h).await);
    }
    assert_eq!(second[..], first[..200]);
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error() {
    let h = start(only(
        Endpoint::ListProducts,
        FailureRates {
            drop_connection: 1.0,
            ..FailureRates::default()
        },
        0.0,
    ));
    for _ in 0..3 {
        let err = h
            .call(reqwest::Method::GET, "/products/", Some("u1"), None, &[])
            .await
            .unwrap_err();
        assert!(err.status().is_none(), "{err:?}");
        assert!(!err.is_timeout(), "{err:?}");
        assert!(err.is_request() || err.is_connect(), "{err:?}");
    }
    // Other endpoints are untouched.
    assert_eq!(
        h.get("/products/prod_tea", "u1").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_hang_outlasts_the_client_timeout() {
    let mut config = only(
        Endpoint::GetProduct,
        FailureRates {
            hang: 1.0,
            ..FailureRates::default()
        },
        0.0,
    );
    config.hang_ms = 3_000;
    let h = start(config);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .get(h.url("/products/prod_tea"))
        .header("x-auth-user", "u1")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let h = start(only(
        Endpoint::ListOrders,
        FailureRates {
            error_429: 1.0,
            ..FailureRates::default()
        },
        0.0,
    ));
    let r = h.get("/orders/", "u1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "1");
}

#[tokio::test]
async fn a_failure_before_the_effect_charges_nothing() {
    let h = start(SimConfig::healthy());
    h.order("u1", "o1", "9").await;
    h.sim
        .set_config(only(
            Endpoint::CreatePayment,
            FailureRates {
                error_500: 1.0,
                ..FailureRates::default()
            },
            0.0,
        ))
        .unwrap();
    let r = h
        .post("/payments/", "u1", r#"{"order_id": "o1", "amount": 9}"#)
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(h.sim.audit_order("o1").unwrap().charges.is_empty());
}

#[tokio::test]
async fn a_failure_after_the_effect_charges_and_a_keyed_retry_replays() {
    for failure in [
        FailureRates {
            error_500: 1.0,
            ..FailureRates::default()
        },
        FailureRates {
            drop_connection: 1.0,
            ..FailureRates::default()
        },
    ] {
        let h = start(SimConfig::healthy());
        h.order("u1", "o1", "9").await;
        h.sim
            .set_config(only(Endpoint::CreatePayment, failure, 1.0))
            .unwrap();
        let body = r#"{"order_id": "o1", "amount": 9}"#;
        let key = [("idempotency-key", "pay-o1")];
        let r = h
            .call(
                reqwest::Method::POST,
                "/payments/",
                Some("u1"),
                Some(body),
                &key,
            )
            .await;
        match r {
            Ok(r) => assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR),
            Err(e) => assert!(e.status().is_none()),
        }
        // Charged although the client saw an error…
        assert_eq!(h.sim.audit_order("o1").unwrap().charges.len(), 1);
        // …and the retry with the same key gets the charge, not a second one.
        h.sim.set_config(SimConfig::healthy()).unwrap();
        let r = h.post_with("/payments/", "u1", body, &key).await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.headers["idempotent-replayed"], "true");
        let audit = h.sim.audit_order("o1").unwrap();
        assert_eq!(audit.charges.len(), 1);
        assert_eq!(r.json()["id"], audit.charges[0].payment_id.as_str());
    }
}

#[tokio::test]
async fn down_means_every_call_is_503_and_nothing_happens() {
    let h = start(SimConfig::down());
    for _ in 0..20 {
        assert_eq!(
            h.get("/products/", "u1").await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let r = h
            .post("/orders/", "u1", r#"{"total": 1, "order_id": "x"}"#)
            .await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(h.sim.audit().is_empty());
}

/// Creates the order and pays it, each with up to 3 retries; returns whether
/// the payment succeeded.
async fn checkout(h: &Harness, i: usize) -> bool {
    let order_id = format!("our-{i}");
    let order = with_retries(
        h,
        "/orders/",
        "u1",
        &format!(r#"{{"total": 12.50, "order_id": "{order_id}"}}"#),
        &format!("order-{i}"),
        3,
    )
    .await;
    if order != Some(StatusCode::CREATED) {
        return false;
    }
    let paid = with_retries(
        h,
        "/payments/",
        "u1",
        &format!(r#"{{"order_id": "{order_id}", "amount": 12.50}}"#),
        &format!("pay-{i}"),
        3,
    )
    .await;
    paid == Some(StatusCode::CREATED)
}

async fn run_checkouts(h: Arc<Harness>, n: usize, concurrency: usize) -> usize {
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in (w..n).step_by(concurrency) {
                if checkout(&h, i).await {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_defaults_with_three_retries_succeed_at_least_999_of_1000() {
    let h = Arc::new(start(SimConfig::sandbox()));
    let ok = run_checkouts(h.clone(), 1000, 16).await;
    assert!(ok >= 999, "{ok} of 1000 payments succeeded");
    let audit = h.sim.audit();
    assert!(audit.iter().all(|a| a.charges.len() <= 1));
    assert_eq!(audit.iter().filter(|a| a.charges.len() == 1).count(), ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_keyed_retries_never_charge_twice() {
    let h = Arc::new(start(no_latency(SimConfig::chaos(0.3))));
    let ok = run_checkouts(h.clone(), 300, 8).await;
    let audit = h.sim.audit();
    // Every order is charged at most once, and every success exactly once;
    // some orders may be charged although the client gave up (after-effect).
    assert!(audit.iter().all(|a| a.charges.len() <= 1), "double charge");
    let charged = audit.iter().filter(|a| a.charges.len() == 1).count();
    assert!(charged >= ok, "{charged} charged < {ok} succeeded");
    assert!(ok > 200, "only {ok} of 300 succeeded under 30 % chaos");
}

#[tokio::test]
async fn a_fixed_latency_is_never_cut_short() {
    let latency = Duration::from_millis(15);
    let h = start(SimConfig {
        latency_ms: 15,
        ..no_latency(SimConfig::healthy())
    });
    for _ in 0..10 {
        let sent = std::time::Instant::now();
        assert_eq!(outcome(&h).await, "200");
        assert!(
            sent.elapsed() >= latency,
            "answered after {:?}, before the configured {latency:?}",
            sent.elapsed()
        );
    }
}
