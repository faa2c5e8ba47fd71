//! Helpers shared by the simulator's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use ordo_upstream_sim::{RunningSim, SimConfig, UpstreamSim};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A started simulator and a client for it.
pub struct Harness {
    pub sim: RunningSim,
    pub http: reqwest::Client,
}

pub fn start(config: SimConfig) -> Harness {
    let sim = UpstreamSim::start(config).unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    Harness { sim, http }
}

/// The outcome of one call: status and raw body text.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sim.url(), path)
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, self.url(path));
        if let Some(u) = user {
            rb = rb.header("x-auth-user", u);
        }
        rb
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, reqwest::Error> {
        let mut rb = self.request(method, path, user);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let r = rb.send().await?;
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await?;
        Ok(Resp {
            status,
            headers,
            text,
        })
    }

    pub async fn get(&self, path: &str, user: &str) -> Resp {
        self.call(Method::GET, path, Some(user), None, &[])
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, user: &str, body: &str) -> Resp {
        self.call(Method::POST, path, Some(user), Some(body), &[])
            .await
            .unwrap()
    }

    pub async fn post_with(
        &self,
        path: &str,
        user: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.call(Method::POST, path, Some(user), Some(body), headers)
            .await
            .unwrap()
    }

    /// Creates an upstream order with our `order_id` (healthy mode assumed).
    pub async fn order(&self, user: &str, order_id: &str, total: &str) -> Value {
        let r = self
            .post(
                "/orders/",
                user,
                &format!(r#"{{"total": {total}, "order_id": "{order_id}"}}"#),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json()
    }
}

/// A simple client: up to `retries` retries with exponential backoff and
/// jitter on connection errors, timeouts, 429, 500, 503 and 504, reusing one
/// idempotency key. Returns the final status, or `None` when every attempt
/// failed at the transport level.
pub async fn with_retries(
    h: &Harness,
    path: &str,
    user: &str,
    body: &str,
    key: &str,
    retries: u32,
) -> Option<StatusCode> {
    let mut last = None;
    for attempt in 0..=retries {
        if attempt > 0 {
            let base = 5u64 << attempt;
            let jitter = (u64::from(attempt) * 7 + key.len() as u64) % base;
            tokio::time::sleep(Duration::from_millis(base + jitter)).await;
        }
        match h
            .call(
                Method::POST,
                path,
                Some(user),
                Some(body),
                &[("idempotency-key", key)],
            )
            .await
        {
            Ok(r) => {
                last = Some(r.status);
                if !matches!(r.status.as_u16(), 429 | 500 | 503 | 504) {
                    return last;
                }
            }
            Err(_) => last = None,
        }
    }
    last
}
