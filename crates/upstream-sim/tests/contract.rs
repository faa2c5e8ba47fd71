//! The upstream contract with no chaos: every endpoint's happy path and errors,
//! idempotency, sandbox tokens, exact amounts, the audit and the admin routes.
#![allow(clippy::unwrap_used)]

mod common;

use common::start;
use ordo_upstream_sim::{Money, OrderStatus, SimConfig, UpstreamSim};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn products_list_and_get() {
    let h = start(SimConfig::healthy());
    let r = h.get("/products/", "u1").await;
    assert_eq!(r.status, StatusCode::OK);
    let items = r.json();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 10);
    for p in items {
        for field in ["id", "name", "vat_rate", "price_unit"] {
            assert!(p.get(field).is_some(), "{field} in {p}");
        }
        assert!(p["price_unit"].is_number() && p["vat_rate"].is_number());
    }
    // Amounts are written as exact decimal numbers.
    assert!(r.text.contains(r#""price_unit":25.00"#), "{}", r.text);
    assert!(r.text.contains(r#""vat_rate":0.25"#), "{}", r.text);

    let r = h.get("/products/prod_coffee", "u1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["name"], "Coffee");
    assert_eq!(
        h.get("/products/nope", "u1").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn every_contract_call_needs_x_auth_user() {
    let h = start(SimConfig::healthy());
    for (method, path) in [
        (Method::GET, "/products/"),
        (Method::GET, "/products/prod_tea"),
        (Method::GET, "/orders/"),
        (Method::POST, "/orders/"),
        (Method::GET, "/orders/x"),
        (Method::PATCH, "/orders/x"),
        (Method::POST, "/payments/"),
        (Method::GET, "/payments/x"),
        (Method::DELETE, "/payments/x"),
    ] {
        let r = h
            .call(method.clone(), path, None, Some(r#"{"total": 1}"#), &[])
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        let r = h
            .call(method.clone(), path, Some(""), Some(r#"{"total": 1}"#), &[])
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path} empty");
    }
}

#[tokio::test]
async fn orders_create_get_list_patch_and_errors() {
    let h = start(SimConfig::healthy());
    let r = h
        .post("/orders/", "u1", r#"{"total": 12.34, "basket_id": "b1"}"#)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let o = r.json();
    assert_eq!(o["status"], "pending");
    assert_eq!(o["user_id"], "u1");
    assert_eq!(o["basket_id"], "b1");
    assert!(o["created_at"].is_string());
    assert!(r.text.contains(r#""amount_total":12.34"#), "{}", r.text);
    let id = o["id"].as_str().unwrap().to_owned();

    // Without basket_id it is null.
    let r = h.post("/orders/", "u1", r#"{"total": 5}"#).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.json()["basket_id"].is_null());

    let r = h.get(&format!("/orders/{id}"), "u1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["id"], id.as_str());
    assert_eq!(
        h.get(&format!("/orders/{id}"), "u2").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.get("/orders/unknown", "u1").await.status,
        StatusCode::NOT_FOUND
    );

    let list = h.get("/orders/", "u1").await.json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        h.get("/orders/", "u2")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let patch = |user: &'static str, path: String, body: &'static str| {
        let h = &h;
        async move {
            h.call(Method::PATCH, &path, Some(user), Some(body), &[])
                .await
                .unwrap()
        }
    };
    let r = patch("u1", format!("/orders/{id}"), r#"{"status": "completed"}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "completed");
    let r = patch("u1", format!("/orders/{id}"), r#"{"status": "failed"}"#).await;
    assert_eq!(r.json()["status"], "failed");
    let r = patch("u1", format!("/orders/{id}"), r#"{"status": "shipped"}"#).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = patch("u2", format!("/orders/{id}"), r#"{"status": "pending"}"#).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = patch("u1", "/orders/unknown".into(), r#"{"status": "pending"}"#).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    for bad in [
        "",
        "{",
        "{}",
        r#"{"total": "12.34"}"#,
        r#"{"total": 1.005}"#,
        r#"{"total": -1}"#,
        r#"{"total": 1, "order_id": ""}"#,
        r#"{"total": 1, "extra": true}"#,
    ] {
        let r = h.post("/orders/", "u1", bad).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn the_same_order_id_is_the_same_upstream_order() {
    let h = start(SimConfig::healthy());
    let a = h.order("u1", "our-1", "10.00").await;
    let b = h.order("u1", "our-1", "10.00").await;
    assert_eq!(a, b);
    assert_eq!(a["id"], "our-1");
    assert_eq!(
        h.get("/orders/", "u1")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = h
        .post("/orders/", "u1", r#"{"total": 11, "order_id": "our-1"}"#)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = h
        .post("/orders/", "u2", r#"{"total": 10, "order_id": "our-1"}"#)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn payments_charge_get_refund_and_errors() {
    let h = start(SimConfig::healthy());
    h.order("u1", "o1", "20.50").await;
    let r = h
        .post("/payments/", "u1", r#"{"order_id": "o1", "amount": 20.50}"#)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let p = r.json();
    assert_eq!(p["status"], "completed");
    assert_eq!(p["order_id"], "o1");
    assert_eq!(p["user_id"], "u1");
    assert!(p["type"].is_string() && p["created_at"].is_string());
    assert!(r.text.contains(r#""amount":20.50"#), "{}", r.text);
    let pid = p["id"].as_str().unwrap().to_owned();

    let r = h.get(&format!("/payments/{pid}"), "u1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), p);
    assert_eq!(
        h.get(&format!("/payments/{pid}"), "u2").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.get("/payments/nope", "u1").await.status,
        StatusCode::NOT_FOUND
    );

    let del = |user: &'static str, path: String| {
        let h = &h;
        async move {
            h.call(Method::DELETE, &path, Some(user), None, &[])
                .await
                .unwrap()
        }
    };
    assert_eq!(
        del("u2", format!("/payments/{pid}")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        del("u1", "/payments/nope".into()).await.status,
        StatusCode::NOT_FOUND
    );
    let r = del("u1", format!("/payments/{pid}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "refunded");
    // Refunding again changes nothing.
    let r = del("u1", format!("/payments/{pid}")).await;
    assert_eq!(r.json()["status"], "refunded");
    let audit = h.sim.audit_order("o1").unwrap();
    assert_eq!(audit.charges.len(), 1);
    assert_eq!(audit.refunds.len(), 1);
    assert_eq!(audit.refunds[0].payment_id, pid);
    assert_eq!(audit.net_charged(), Money(0));

    // Unknown and foreign orders, malformed bodies.
    let r = h
        .post("/payments/", "u1", r#"{"order_id": "nope", "amount": 1}"#)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h
        .post("/payments/", "u2", r#"{"order_id": "o1", "amount": 1}"#)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for bad in [
        "{",
        r#"{"order_id": "o1"}"#,
        r#"{"amount": 1}"#,
        r#"{"order_id": "o1", "amount": 0}"#,
        r#"{"order_id": "o1", "amount": "1"}"#,
        r#"{"order_id": "o1", "amount": 0.001}"#,
    ] {
        let r = h.post("/payments/", "u1", bad).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
    }
    assert_eq!(h.sim.audit_order("o1").unwrap().charges.len(), 1);
}

#[tokio::test]
async fn sandbox_tokens_and_the_13_rule() {
    let h = start(SimConfig::healthy());
    h.order("u1", "o1", "10.00").await;
    let pay = |body: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let h = &h;
        async move { h.post_with("/payments/", "u1", body, headers).await }
    };
    let r = pay(
        r#"{"order_id": "o1", "amount": 10, "token": "tok_declined"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    let r = pay(
        r#"{"order_id": "o1", "amount": 10}"#,
        &[("x-payment-token", "tok_declined")],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    let r = pay(r#"{"order_id": "o1", "amount": 10.13}"#, &[]).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    let r = pay(
        r#"{"order_id": "o1", "amount": 10, "token": "tok_bogus"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    let audit = h.sim.audit_order("o1").unwrap();
    assert!(audit.charges.is_empty());
    assert_eq!(audit.declines.len(), 4);

    // tok_flaky: two 503, then 201 — per order.
    h.order("u1", "o2", "10.00").await;
    let body = r#"{"order_id": "o2", "amount": 10, "token": "tok_flaky"}"#;
    assert_eq!(pay(body, &[]).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(pay(body, &[]).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(pay(body, &[]).await.status, StatusCode::CREATED);
    assert_eq!(h.sim.audit_order("o2").unwrap().charges.len(), 1);
    // A body token wins over the header; the default is tok_ok.
    let r = pay(
        r#"{"order_id": "o1", "amount": 10, "token": "tok_ok"}"#,
        &[("x-payment-token", "tok_declined")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn idempotency_keys_replay_and_never_charge_twice() {
    let h = start(SimConfig::healthy());
    h.order("u1", "o1", "10.00").await;
    let body = r#"{"order_id": "o1", "amount": 10}"#;
    let key = [("idempotency-key", "k1")];
    let first = h.post_with("/payments/", "u1", body, &key).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let second = h.post_with("/payments/", "u1", body, &key).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.text, first.text);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(h.sim.audit_order("o1").unwrap().charges.len(), 1);

    // The same key with another body: 422, nothing charged.
    let r = h
        .post_with(
            "/payments/",
            "u1",
            r#"{"order_id": "o1", "amount": 11}"#,
            &key,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Whitespace does not matter: the request is compared, not its bytes.
    let r = h
        .post_with(
            "/payments/",
            "u1",
            r#"{ "amount": 10.0, "order_id": "o1" }"#,
            &key,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.text, first.text);
    assert_eq!(h.sim.audit_order("o1").unwrap().charges.len(), 1);

    // Without a key, a second POST is a second charge (what the audit catches).
    h.post("/payments/", "u1", body).await;
    assert_eq!(h.sim.audit_order("o1").unwrap().charges.len(), 2);

    // Declines are replayed too.
    let key2 = [("idempotency-key", "k2")];
    let d = r#"{"order_id": "o1", "amount": 1, "token": "tok_declined"}"#;
    assert_eq!(
        h.post_with("/payments/", "u1", d, &key2).await.status,
        StatusCode::PAYMENT_REQUIRED
    );
    let r = h.post_with("/payments/", "u1", d, &key2).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.headers["idempotent-replayed"], "true");

    // Keys are per path: the same key on /orders/ is independent.
    let r = h.post_with("/orders/", "u1", r#"{"total": 3}"#, &key).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let again = h.post_with("/orders/", "u1", r#"{"total": 3}"#, &key).await;
    assert_eq!(again.text, r.text);
    assert_eq!(
        h.get("/orders/", "u1")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn amounts_are_exact_decimals() {
    let h = start(SimConfig::healthy());
    h.order("u1", "o1", "0.30").await;
    for amount in ["0.1", "0.2"] {
        let r = h
            .post(
                "/payments/",
                "u1",
                &format!(r#"{{"order_id": "o1", "amount": {amount}}}"#),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let audit = h.sim.audit_order("o1").unwrap();
    assert_eq!(audit.net_charged(), Money(30));
    assert_eq!(Money::parse_json_number("12.34"), Ok(Money(1234)));
    assert_eq!(Money(1234).to_string(), "12.34");
    let r = h.get("/_audit/orders/o1", "-").await;
    assert!(r.text.contains(r#""amount":0.10"#), "{}", r.text);
    assert!(r.text.contains(r#""amount":0.20"#), "{}", r.text);
}

#[tokio::test]
async fn audit_routes_show_exactly_the_charges_made() {
    let h = start(SimConfig::healthy());
    h.order("u1", "o1", "5").await;
    h.order("u1", "o2", "7").await;
    let p1 = h
        .post("/payments/", "u1", r#"{"order_id": "o1", "amount": 5}"#)
        .await
        .json();
    h.post("/payments/", "u1", r#"{"order_id": "o2", "amount": 7}"#)
        .await;
    let pid = p1["id"].as_str().unwrap();
    h.call(
        Method::DELETE,
        &format!("/payments/{pid}"),
        Some("u1"),
        None,
        &[],
    )
    .await
    .unwrap();
    h.call(
        Method::PATCH,
        "/orders/o2",
        Some("u1"),
        Some(r#"{"status":"completed"}"#),
        &[],
    )
    .await
    .unwrap();

    let r = h.get("/_audit/orders/o1", "any").await;
    assert_eq!(r.status, StatusCode::OK);
    let a = r.json();
    assert_eq!(a["order_id"], "o1");
    assert_eq!(a["charges"].as_array().unwrap().len(), 1);
    assert_eq!(a["charges"][0]["payment_id"], pid);
    assert_eq!(a["refunds"].as_array().unwrap().len(), 1);
    assert_eq!(a["upstream_order_status"], "pending");
    assert_eq!(
        h.get("/_audit/orders/nope", "any").await.status,
        StatusCode::NOT_FOUND
    );

    let all = h.get("/_audit", "any").await.json();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1]["upstream_order_status"], "completed");
    let lib = h.sim.audit();
    assert_eq!(lib.len(), 2);
    assert_eq!(lib[1].upstream_order_status, OrderStatus::Completed);
    assert_eq!(lib[1].net_charged(), Money(700));
    // The HTTP audit parses back into the library's types.
    let typed: Vec<ordo_upstream_sim::OrderAudit> =
        serde_json::from_value(serde_json::Value::Array(all.clone())).unwrap();
    assert_eq!(typed, lib);
}

#[tokio::test]
async fn admin_routes_switch_modes() {
    let h = start(SimConfig::healthy());
    let r = h.post("/_admin/preset/down", "-", "").await;
    assert_eq!(r.status, StatusCode::OK);
    for path in ["/products/", "/orders/"] {
        assert_eq!(
            h.get(path, "u1").await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let r = h.post("/orders/", "u1", r#"{"total": 1}"#).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h.sim.audit().is_empty());
    assert_eq!(
        h.post("/_admin/preset/nope", "-", "").await.status,
        StatusCode::NOT_FOUND
    );

    let r = h
        .post("/_admin/config", "-", r#"{"jitter_ms": 0, "failures": {}}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["down"], false);
    assert_eq!(h.get("/products/", "u1").await.status, StatusCode::OK);
    let r = h
        .post("/_admin/config", "-", r#"{"failures": {"error_500": 2}}"#)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = h.post("/_admin/config", "-", r#"{"bogus": 1}"#).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let cfg = h.get("/_admin/config", "-").await.json();
    assert_eq!(cfg["jitter_ms"], 0);

    // The library API does the same.
    h.sim.set_config(SimConfig::down()).unwrap();
    assert_eq!(
        h.get("/products/", "u1").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        h.sim
            .set_config(SimConfig {
                tail_probability: 3.0,
                ..SimConfig::healthy()
            })
            .is_err()
    );
    h.sim.set_config(SimConfig::healthy()).unwrap();
    assert_eq!(h.get("/products/", "u1").await.status, StatusCode::OK);
    let Harness { sim, .. } = h;
    sim.stop().await;
}

use common::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_charge_once() {
    let h = std::sync::Arc::new(start(SimConfig::healthy()));
    h.order("u1", "o1", "10.00").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.post_with(
                "/payments/",
                "u1",
                r#"{"order_id": "o1", "amount": 10}"#,
                &[("idempotency-key", "same")],
            )
            .await
        }));
    }
    let mut bodies = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, StatusCode::CREATED);
        bodies.insert(r.text);
    }
    assert_eq!(bodies.len(), 1);
    assert_eq!(h.sim.audit_order("o1").unwrap().charges.len(), 1);
}

#[tokio::test]
async fn request_bodies_are_bounded() {
    let h = start(SimConfig::healthy());
    let big = format!(r#"{{"total": 1, "basket_id": "{}"}}"#, "x".repeat(100_000));
    let r = h.post("/orders/", "u1", &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(h.sim.audit().is_empty());
}

#[tokio::test]
async fn stored_records_are_bounded() {
    let h = start(SimConfig {
        max_records: 2,
        ..SimConfig::healthy()
    });
    h.order("u1", "o1", "1").await;
    h.order("u1", "o2", "1").await;
    let r = h.post("/orders/", "u1", r#"{"total": 1}"#).await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE);
    // A retry of an existing order still answers.
    h.order("u1", "o1", "1").await;
    for id in ["o1", "o2"] {
        let r = h
            .post(
                "/payments/",
                "u1",
                &format!(r#"{{"order_id": "{id}", "amount": 1}}"#),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let r = h
        .post("/payments/", "u1", r#"{"order_id": "o1", "amount": 1}"#)
        .await;
    assert_eq!(r.status, StatusCode::INSUFFICIENT_STORAGE);
    // Idempotency keys beyond the bound are forgotten oldest first.
    for k in ["a", "b", "c"] {
        let r = h
            .post_with(
                "/orders/",
                "u1",
                r#"{"total": 1, "order_id": "o1"}"#,
                &[("idempotency-key", k)],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
}

#[test]
fn start_outside_a_runtime_is_an_error() {
    assert!(UpstreamSim::start(SimConfig::healthy()).is_err());
    assert!(
        UpstreamSim::start_on_own_thread(SimConfig {
            tail_probability: 2.0,
            ..SimConfig::healthy()
        })
        .is_err()
    );
}

#[test]
fn own_thread_runs_without_a_runtime_and_stops() {
    let sim = UpstreamSim::start_on_own_thread(SimConfig::healthy()).unwrap();
    let url = sim.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::new();
        let r = client
            .get(format!("{url}/products/"))
            .header("x-auth-user", "u1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        sim.stop().await;
        // New connections are refused once `stop` returns (the worker closes
        // kept-alive ones a moment later).
        let after = reqwest::Client::new()
            .get(format!("{url}/products/"))
            .header("x-auth-user", "u1")
            .send()
            .await;
        assert!(after.is_err(), "{after:?}");
    });
}
