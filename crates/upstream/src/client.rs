//! The adapter: one `reqwest` client, the retry loop around every call, and the
//! domain's ports on top.
//!
//! Which calls are retried: reads, `PATCH` and `DELETE` are safe to repeat by
//! nature; a `POST` only because every one carries an `Idempotency-Key` — the same
//! on each attempt — so the upstream performs it once. A retry happens on a
//! timeout, a connection error, `429` or a `5xx` that means "not now"
//! ([`is_retryable_status`]), never on another `4xx`; it waits a jittered,
//! doubling time, at least the upstream's `Retry-After`, and never past the
//! call's deadline. Each attempt is recorded by the circuit breaker, which fails
//! calls at once while it is open.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use ordo_domain::upstream::{
    CatalogSource, ChargeError, CreateUpstreamOrderError, NewPayment, NewUpstreamOrder,
    PaymentGateway, UpstreamCallError, UpstreamHealth, UpstreamMonitor, UpstreamOrder,
    UpstreamOrderId, UpstreamOrderStatus, UpstreamOrders, UpstreamPayment, UpstreamPaymentId,
    UpstreamProduct, UpstreamProductId,
};
use ordo_domain::{Currency, Dependency, Unavailable};
use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;
use tracing::Instrument;

use crate::breaker::Breaker;
use crate::config::UpstreamConfig;
use crate::retry::{full_jitter, is_retryable_status, retry_after_seconds};
use crate::wire;

/// Answers larger than this are not read (the upstream's are a few KiB).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The upstream adapter; implements [`UpstreamOrders`], [`PaymentGateway`],
/// [`CatalogSource`] and [`UpstreamMonitor`]. Cheap to share behind an `Arc`;
/// connections are pooled and kept alive.
pub struct UpstreamClient {
    config: UpstreamConfig,
    base: Option<reqwest::Url>,
    http: reqwest::Client,
    breaker: Mutex<Breaker>,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("base", &self.base.as_ref().map(reqwest::Url::as_str))
            .finish_non_exhaustive()
    }
}

/// One call to make: method, path segments, and what goes with it.
struct Call<'a> {
    method: Method,
    segments: Vec<&'a str>,
    body: Option<Vec<u8>>,
    idempotency_key: Option<&'a str>,
    payment_token: Option<&'a str>,
}

impl<'a> Call<'a> {
    fn new(method: Method, segments: &[&'a str]) -> Self {
        Self {
            method,
            segments: segments.to_vec(),
            body: None,
            idempotency_key: None,
            payment_token: None,
        }
    }

    fn json(mut self, body: &impl Serialize) -> anyhow::Result<Self> {
        self.body = Some(serde_json::to_vec(body).context("writing the request body")?);
        Ok(self)
    }
}

/// A definitive answer: anything but a failure worth retrying.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status)
    }

    fn describe(&self) -> String {
        format!(
            "the upstream answered {}: {}",
            self.status,
            wire::reason(&self.body)
        )
    }
}

/// Why a call ended without a definitive answer.
enum NoAnswer {
    /// Nothing reached the upstream: every attempt failed to connect, or the
    /// circuit was open.
    NotSent {
        reason: String,
        retry_after: Duration,
    },
    /// At least one attempt reached the upstream, and none answered definitively.
    Unsettled {
        reason: String,
        retry_after: Duration,
    },
}

impl NoAnswer {
    fn new(reached: bool, reason: String, retry_after: Duration) -> Self {
        if reached {
            Self::Unsettled {
                reason,
                retry_after,
            }
        } else {
            Self::NotSent {
                reason,
                retry_after,
            }
        }
    }

    /// For calls that are safe to repeat, whether they reached the upstream does
    /// not matter: the caller tries again later.
    fn into_unavailable(self) -> Unavailable {
        let (Self::NotSent {
            reason,
            retry_after,
        }
        | Self::Unsettled {
            reason,
            retry_after,
        }) = self;
        Unavailable::new(Dependency::Upstream, retry_after, reason)
    }
}

/// The outcome of one attempt.
enum Attempt {
    Answered(Answer),
    Failed {
        reached: bool,
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// The outcome of a creating call, before the use case's error is chosen.
enum Created {
    Success(Vec<u8>),
    ClientError(Answer),
    Unknown(String),
    Unavailable(Unavailable),
}

impl UpstreamClient {
    /// A client for `config`.
    ///
    /// # Errors
    /// When the configuration is invalid or the TLS backend cannot start.
    pub fn new(config: UpstreamConfig) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let base = config
            .base_url
            .as_deref()
            .map(reqwest::Url::parse)
            .transpose()
            .context("the upstream's base URL")?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .context("building the upstream's HTTP client")?;
        let seed =
            getrandom::u64().map_err(|e| anyhow::anyhow!("seeding the retry jitter: {e}"))?;
        Ok(Self {
            breaker: Mutex::new(Breaker::new(config.breaker.clone(), config.attempt_timeout)),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            base,
            http,
            config,
        })
    }

    /// The base URL, when one is configured.
    pub fn base_url(&self) -> Option<&str> {
        self.base.as_ref().map(reqwest::Url::as_str)
    }

    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        // Every update of the breaker leaves it consistent, so a panic elsewhere
        // while it was held does not matter.
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn url(&self, base: &reqwest::Url, segments: &[&str]) -> anyhow::Result<reqwest::Url> {
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("the upstream's base URL cannot have a path"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Runs `call` with retries until a definitive answer, the last attempt, or
    /// the deadline.
    async fn execute(&self, call: &Call<'_>) -> anyhow::Result<Result<Answer, NoAnswer>> {
        let Some(base) = &self.base else {
            return Ok(Err(NoAnswer::NotSent {
                reason: "no upstream URL is configured".to_owned(),
                retry_after: self.config.default_retry_after,
            }));
        };
        let url = self.url(base, &call.segments)?;
        let span = tracing::info_span!(
            "upstream",
            method = %call.method,
            path = url.path(),
            attempts = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        Ok(self.retry(&url, call).instrument(span).await)
    }

    async fn retry(&self, url: &reqwest::Url, call: &Call<'_>) -> Result<Answer, NoAnswer> {
        let deadline = Instant::now() + self.config.deadline;
        let mut reached = false;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            tracing::Span::current().record("attempts", attempt);
            let started = Instant::now();
            if let Err(wait) = self.breaker().permit(started) {
                return Err(NoAnswer::new(
                    reached,
                    "the upstream's circuit is open".to_owned(),
                    wait,
                ));
            }
            let timeout = self
                .config
                .attempt_timeout
                .min(deadline.saturating_duration_since(started));
            let outcome = self.attempt(url, call, timeout).await;
            let finished = Instant::now();
            let failed = matches!(outcome, Attempt::Failed { .. });
            self.breaker()
                .record(finished, failed, finished.duration_since(started));
            let (reason, retry_after) = match outcome {
                Attempt::Answered(answer) => {
                    tracing::Span::current().record("status", answer.status);
                    return Ok(answer);
                }
                Attempt::Failed {
                    reached: this_reached,
                    reason,
                    retry_after,
                } => {
                    reached |= this_reached;
                    (reason, retry_after)
                }
            };
            tracing::debug!(attempt, %reason, "an upstream attempt failed");
            let come_back = retry_after.unwrap_or(self.config.default_retry_after);
            if attempt >= self.config.max_attempts {
                return Err(NoAnswer::new(
                    reached,
                    format!("{reason} (after {attempt} attempts)"),
                    come_back,
                ));
            }
            let jitter = {
                let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                full_jitter(
                    &mut *rng,
                    self.config.backoff_base,
                    self.config.backoff_max,
                    attempt,
                )
            };
            let wait = retry_after.map_or(jitter, |asked| asked.max(jitter));
            if Instant::now() + wait >= deadline {
                return Err(NoAnswer::new(
                    reached,
                    format!(
                        "{reason} (no time left for attempt {} before the deadline)",
                        attempt + 1
                    ),
                    come_back,
                ));
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, url: &reqwest::Url, call: &Call<'_>, timeout: Duration) -> Attempt {
        let mut request = self
            .http
            .request(call.method.clone(), url.clone())
            .timeout(timeout)
            .header("x-auth-user", &self.config.auth_user);
        if let Some(key) = call.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(token) = call.payment_token {
            request = request.header("x-payment-token", token);
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return Attempt::Failed {
                    // A refused or timed-out connection sent nothing.
                    reached: !e.is_connect(),
                    reason: describe(&e),
                    retry_after: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = retry_after_seconds(
            response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ANSWER_BYTES => {
                    body.extend_from_slice(&chunk);
                }
                Ok(Some(_)) => {
                    return Attempt::Failed {
                        reached: true,
                        reason: format!(
                            "the answer ({status}) is larger than {MAX_ANSWER_BYTES} bytes"
                        ),
                        retry_after: None,
                    };
                }
                Ok(None) => break,
                Err(e) => {
                    return Attempt::Failed {
                        reached: true,
                        reason: format!("reading the answer ({status}): {}", describe(&e)),
                        retry_after: None,
                    };
                }
            }
        }
        if is_retryable_status(status) {
            return Attempt::Failed {
                reached: true,
                reason: format!("the upstream answered {status}: {}", wire::reason(&body)),
                retry_after,
            };
        }
        Attempt::Answered(Answer { status, body })
    }

    /// A call that is safe to repeat; its successful answer's body.
    async fn repeatable(&self, call: Call<'_>) -> Result<Vec<u8>, UpstreamCallError> {
        match self.execute(&call).await? {
            Ok(answer) if answer.is_success() => Ok(answer.body),
            Ok(answer) if answer.status == 404 => {
                Err(UpstreamCallError::NotFound(wire::reason(&answer.body)))
            }
            Ok(answer) if answer.is_client_error() => Err(UpstreamCallError::Rejected(
                wire::rejection(answer.status, &answer.body),
            )),
            Ok(answer) => Err(UpstreamCallError::Unexpected(anyhow::anyhow!(
                answer.describe()
            ))),
            Err(no_answer) => Err(UpstreamCallError::Unavailable(no_answer.into_unavailable())),
        }
    }

    /// A call that is safe to repeat, its answer read by `parse`.
    async fn repeatable_read<T>(
        &self,
        call: Call<'_>,
        parse: fn(&[u8], Currency) -> anyhow::Result<T>,
    ) -> Result<T, UpstreamCallError> {
        let body = self.repeatable(call).await?;
        Ok(parse(&body, self.config.currency)?)
    }

    /// A creating call (a `POST` with an idempotency key).
    async fn create(&self, call: Call<'_>) -> anyhow::Result<Created> {
        Ok(match self.execute(&call).await? {
            Ok(answer) if answer.is_success() => Created::Success(answer.body),
            Ok(answer) if answer.is_client_error() => Created::ClientError(answer),
            // A server error we do not retry says nothing about the effect.
            Ok(answer) => Created::Unknown(answer.describe()),
            Err(NoAnswer::Unsettled { reason, .. }) => Created::Unknown(reason),
            Err(not_sent @ NoAnswer::NotSent { .. }) => {
                Created::Unavailable(not_sent.into_unavailable())
            }
        })
    }
}

/// A transport error with its causes, which `reqwest` keeps in its sources.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the connection failed".to_owned()
    };
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl UpstreamOrders for UpstreamClient {
    async fn create_order(
        &self,
        order: NewUpstreamOrder,
    ) -> Result<UpstreamOrder, CreateUpstreamOrderError> {
        let body = wire::CreateOrderBody {
            total: wire::amount(order.total, self.config.currency)?,
            order_id: order.order_id.to_string(),
            basket_id: order.basket_id.map(|id| id.to_string()),
        };
        let mut call = Call::new(Method::POST, &["orders", ""]).json(&body)?;
        call.idempotency_key = Some(order.idempotency_key.as_str());
        match self.create(call).await? {
            Created::Success(body) => {
                let created = wire::parse_order(&body, self.config.currency)?;
                if created.total != order.total {
                    return Err(anyhow::anyhow!(
                        "the upstream created order {} for {} instead of {}",
                        created.id,
                        created.total.minor(),
                        order.total.minor()
                    )
                    .into());
                }
                Ok(created)
            }
            Created::ClientError(answer) => Err(CreateUpstreamOrderError::Rejected(
                wire::rejection(answer.status, &answer.body),
            )),
            Created::Unknown(reason) => Err(CreateUpstreamOrderError::OutcomeUnknown(reason)),
            Created::Unavailable(unavailable) => Err(unavailable.into()),
        }
    }

    async fn update_order_status(
        &self,
        id: &UpstreamOrderId,
        status: UpstreamOrderStatus,
    ) -> Result<UpstreamOrder, UpstreamCallError> {
        let body = wire::PatchOrderBody {
            status: wire::order_status_name(status),
        };
        let call = Call::new(Method::PATCH, &["orders", id.as_str()]).json(&body)?;
        self.repeatable_read(call, wire::parse_order).await
    }

    async fn get_order(&self, id: &UpstreamOrderId) -> Result<UpstreamOrder, UpstreamCallError> {
        self.repeatable_read(
            Call::new(Method::GET, &["orders", id.as_str()]),
            wire::parse_order,
        )
        .await
    }
}

#[async_trait]
impl PaymentGateway for UpstreamClient {
    async fn create_payment(&self, payment: NewPayment) -> Result<UpstreamPayment, ChargeError> {
        let body = wire::CreatePaymentBody {
            order_id: payment.order_id.to_string(),
            amount: wire::amount(payment.amount, self.config.currency)?,
        };
        let mut call = Call::new(Method::POST, &["payments", ""]).json(&body)?;
        call.idempotency_key = Some(payment.idempotency_key.as_str());
        call.payment_token = Some(payment.token.as_str());
        match self.create(call).await? {
            Created::Success(body) => {
                let charged = wire::parse_payment(&body, self.config.currency)?;
                if charged.amount != payment.amount || charged.order_id != payment.order_id {
                    return Err(anyhow::anyhow!(
                        "the upstream charged {} for order {} instead of {} for order {}",
                        charged.amount.minor(),
                        charged.order_id,
                        payment.amount.minor(),
                        payment.order_id
                    )
                    .into());
                }
                Ok(charged)
            }
            Created::ClientError(answer) if answer.status == 402 => Err(ChargeError::Declined {
                reason: wire::reason(&answer.body),
            }),
            Created::ClientError(answer) => Err(ChargeError::Rejected(wire::rejection(
                answer.status,
                &answer.body,
            ))),
            Created::Unknown(reason) => Err(ChargeError::OutcomeUnknown(reason)),
            Created::Unavailable(unavailable) => Err(unavailable.into()),
        }
    }

    async fn get_payment(
        &self,
        id: &UpstreamPaymentId,
    ) -> Result<UpstreamPayment, UpstreamCallError> {
        self.repeatable_read(
            Call::new(Method::GET, &["payments", id.as_str()]),
            wire::parse_payment,
        )
        .await
    }

    async fn refund_payment(
        &self,
        id: &UpstreamPaymentId,
    ) -> Result<UpstreamPayment, UpstreamCallError> {
        self.repeatable_read(
            Call::new(Method::DELETE, &["payments", id.as_str()]),
            wire::parse_payment,
        )
        .await
    }
}

#[async_trait]
impl CatalogSource for UpstreamClient {
    async fn list_products(&self) -> Result<Vec<UpstreamProduct>, UpstreamCallError> {
        self.repeatable_read(
            Call::new(Method::GET, &["products", ""]),
            wire::parse_products,
        )
        .await
    }

    async fn get_product(
        &self,
        id: &UpstreamProductId,
    ) -> Result<UpstreamProduct, UpstreamCallError> {
        self.repeatable_read(
            Call::new(Method::GET, &["products", id.as_str()]),
            wire::parse_product,
        )
        .await
    }
}

impl UpstreamMonitor for UpstreamClient {
    fn health(&self) -> UpstreamHealth {
        self.breaker().health(Instant::now())
    }
}
