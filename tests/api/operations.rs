use ordo_api_tests::spawn_app;
use reqwest::StatusCode;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;

    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    assert_eq!(ready.status, StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_the_clients() {
    let app = spawn_app().await;

    let generated = app.get("/healthz").await;
    let echoed = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .expect("sent");

    assert!(
        generated
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(
        echoed
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-abc-123")
    );
}

#[tokio::test]
async fn problem_documents_carry_the_request_id_and_instance() {
    let app = spawn_app().await;

    let reply = app
        .get("/v1/customers/00000000-0000-7000-8000-000000000000")
        .await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.problem_code(), "customer_not_found");
    assert_eq!(reply.body["type"], "/problems/customer_not_found");
    assert_eq!(reply.body["status"], 404);
    assert_eq!(
        reply.body["instance"],
        "/v1/customers/00000000-0000-7000-8000-000000000000"
    );
    assert_eq!(
        reply.body["request_id"].as_str(),
        reply.header("x-request-id")
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = spawn_app().await;
    app.get("/v1/products").await;

    let metrics = app.metrics().await;

    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/v1/products\""), "{metrics}");
}

#[tokio::test]
async fn the_openapi_document_lists_the_api_and_docs_render() {
    let app = spawn_app().await;

    let spec = app.get("/openapi.json").await;
    let docs = app
        .client
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .expect("sent");

    assert_eq!(spec.status, StatusCode::OK);
    assert_eq!(spec.body["openapi"], "3.1.0");
    for path in [
        "/v1/orders",
        "/v1/orders/{id}",
        "/v1/products/{id}/stock-adjustments",
        "/v1/customers",
        "/healthz",
    ] {
        assert!(
            spec.body["paths"][path].is_object(),
            "{path} missing from the spec"
        );
    }
    // OpenAPI forbids one path under two parameter names.
    assert!(spec.body["paths"]["/v1/orders/{id_or_number}"].is_null());
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.expect("html").contains("swagger"));
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problem_documents() {
    let app = spawn_app().await;

    let unknown = app.get("/v1/nothing-here").await;
    let wrong_method = app.send(reqwest::Method::PATCH, "/v1/orders", None).await;

    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.problem_code(), "not_found");
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.problem_code(), "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("GET, HEAD, POST"));
    // Templates with different parameter names share a path: their methods combine.
    let on_one_order = app
        .send(
            reqwest::Method::PATCH,
            "/v1/orders/0190aaaa-0000-7000-8000-000000000000",
            None,
        )
        .await;
    assert_eq!(on_one_order.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(on_one_order.header("allow"), Some("DELETE, GET, HEAD, PUT"));
}

#[tokio::test]
async fn an_unreachable_database_is_503_with_retry_after_not_500() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let app = spawn_app().await;
    let (server_url, _) = app.database.url.rsplit_once('/').expect("a database URL");
    let mut admin = AsyncPgConnection::establish(&format!("{server_url}/postgres"))
        .await
        .expect("an admin connection");
    diesel::sql_query(format!("DROP DATABASE {} WITH (FORCE)", app.database.name))
        .execute(&mut admin)
        .await
        .expect("the database is dropped");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let products = app.get("/v1/products").await;
    let ready = app.get("/readyz").await;

    assert_eq!(
        products.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{products:?}"
    );
    assert_eq!(products.problem_code(), "database_unavailable");
    assert_eq!(products.header("retry-after"), Some("1"));
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
}
