use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::{
    AdmitError, Decision, LimitCheck, LimitedRequest, RateLimitOutcome, RateLimitStore,
    RatePolicies,
};
use crate::Clock;

/// Where a caller stands against the tightest of the limits a request was checked
/// against: what the `RateLimit-*` headers tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed at once (the policy's burst).
    pub limit: u32,
    /// Requests that could still be made right now.
    pub remaining: u32,
    /// Until the allowance is whole again.
    pub reset: Duration,
}

/// Whether a request may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within every limit; it used up one unit of each.
    Allowed(Quota),
    /// Over a limit; it used up nothing.
    Refused {
        /// Where the caller stands against the policy that refused it.
        quota: Quota,
        /// The earliest time from now at which the same request would be allowed.
        retry_after: Duration,
    },
    /// The store could not decide and the request goes ahead unchecked (a warning
    /// is logged): outside logins, an outage of the store must not become an outage
    /// of the whole API.
    Unchecked,
}

/// Rate limiting, the use case: which policies a request is checked against, and
/// what happens when the store cannot say.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn Clock>,
    policies: RatePolicies,
    /// The second (Unix time) of the last warning about a failing store: while
    /// it fails, every request would say so, and one line a second is enough.
    warned_at: Arc<AtomicI64>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter keeping its state in `store`, telling time by `clock`.
    pub fn new(
        store: Arc<dyn RateLimitStore>,
        clock: Arc<dyn Clock>,
        policies: RatePolicies,
    ) -> Self {
        Self {
            store,
            clock,
            policies,
            warned_at: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// The policies in force.
    pub fn policies(&self) -> &RatePolicies {
        &self.policies
    }

    /// Admits or refuses `request`, using up one unit of every allowance it draws
    /// on when admitted and none when refused.
    ///
    /// # Errors
    /// [`AdmitError::Unavailable`] when the store fails on a login attempt; on any
    /// other request a failing store admits it as [`Admission::Unchecked`].
    pub async fn admit(&self, request: LimitedRequest<'_>) -> Result<Admission, AdmitError> {
        let now = self.clock.now();
        let general = self.policies.request_check(request.caller, request.address);
        let Some(attempt) = request.login else {
            // The common path: one check, built without allocating.
            let checks = std::slice::from_ref(&general);
            return match self.store.check(checks, now).await {
                Ok(outcome) => Ok(admission(checks, &outcome)),
                Err(error) => {
                    let second = now.timestamp();
                    if self.warned_at.swap(second, Ordering::Relaxed) != second {
                        tracing::warn!(%error, key = %general.key, "rate limits unavailable; requests other than logins go ahead unchecked");
                    }
                    Ok(Admission::Unchecked)
                }
            };
        };
        let checks = self
            .policies
            .login_checks(request.caller, request.address, attempt.email);
        match self.store.check(&checks, now).await {
            Ok(outcome) => Ok(admission(&checks, &outcome)),
            Err(error) => Err(AdmitError::Unavailable(error)),
        }
    }
}

/// The admission an outcome amounts to, reporting the tightest policy: the one
/// with the fewest requests left, or, when refused, the one asking for the
/// longest wait.
fn admission(checks: &[LimitCheck], outcome: &RateLimitOutcome) -> Admission {
    let decided = || checks.iter().zip(&outcome.decisions);
    let refusal = decided()
        .filter_map(|(check, decision)| match *decision {
            Decision::Denied { retry_after, reset } => Some((check, retry_after, reset)),
            Decision::Allowed { .. } => None,
        })
        .max_by_key(|(_, retry_after, _)| *retry_after);
    if let Some((check, retry_after, reset)) = refusal {
        return Admission::Refused {
            quota: Quota {
                limit: check.policy.burst(),
                remaining: 0,
                reset,
            },
            retry_after,
        };
    }
    decided()
        .filter_map(|(check, decision)| match *decision {
            Decision::Allowed {
                remaining, reset, ..
            } => Some(Quota {
                limit: check.policy.burst(),
                remaining,
                reset,
            }),
            Decision::Denied { .. } => None,
        })
        .min_by_key(|quota| quota.remaining)
        .map_or(Admission::Unchecked, Admission::Allowed)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use chrono::{DateTime, TimeZone, Utc};

    use super::*;
    use crate::ratelimit::{
        LimitedCaller, LoginAttempt, MockRateLimitStore, RateKey, RateLimitError, RatePolicy,
        decide,
    };

    struct FixedClock;

    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
        }
    }

    fn policies() -> RatePolicies {
        RatePolicies {
            user: RatePolicy::per_minute(6_000, 1_000).unwrap(),
            anonymous: RatePolicy::per_minute(600, 100).unwrap(),
            login_per_address: RatePolicy::per_minute(30, 20).unwrap(),
            login_per_email: RatePolicy::per_minute(1, 5).unwrap(),
        }
    }

    fn address() -> IpAddr {
        "203.0.113.9".parse().unwrap()
    }

    /// The check of anonymous requests from [`address`].
    fn address_check() -> LimitCheck {
        LimitCheck {
            key: RateKey::Address(address()),
            policy: policies().anonymous,
        }
    }

    /// The check of login attempts from [`address`].
    fn login_address_check() -> LimitCheck {
        LimitCheck {
            key: RateKey::LoginAddress(address()),
            policy: policies().login_per_address,
        }
    }

    fn user() -> uuid::Uuid {
        uuid::Uuid::from_u128(7)
    }

    /// A store that decides each check as a key never seen before (everything is
    /// allowed with its whole burst) and records what it was asked.
    fn store_expecting(expected: Vec<LimitCheck>) -> MockRateLimitStore {
        let mut store = MockRateLimitStore::new();
        store
            .expect_check()
            .withf(move |checks, _| checks == expected.as_slice())
            .times(1)
            .returning(|checks, now| {
                Ok(RateLimitOutcome {
                    decisions: checks.iter().map(|c| decide(c.policy, None, now)).collect(),
                })
            });
        store
    }

    fn failing_store() -> MockRateLimitStore {
        let mut store = MockRateLimitStore::new();
        store
            .expect_check()
            .returning(|_, _| Err(RateLimitError(anyhow::anyhow!("connection refused"))));
        store
    }

    fn limiter(store: MockRateLimitStore) -> RateLimiter {
        RateLimiter::new(Arc::new(store), Arc::new(FixedClock), policies())
    }

    fn request(caller: LimitedCaller, login: Option<LoginAttempt<'_>>) -> LimitedRequest<'_> {
        LimitedRequest {
            caller,
            address: address(),
            login,
        }
    }

    #[tokio::test]
    async fn a_user_draws_on_the_user_policy_under_their_id_wherever_they_call_from() {
        let limiter = limiter(store_expecting(vec![LimitCheck {
            key: RateKey::User(user()),
            policy: policies().user,
        }]));

        let admission = limiter
            .admit(request(LimitedCaller::User(user()), None))
            .await
            .unwrap();

        assert_eq!(
            admission,
            Admission::Allowed(Quota {
                limit: 1_000,
                remaining: 999,
                reset: Duration::from_millis(10),
            })
        );
    }

    #[tokio::test]
    async fn a_client_draws_on_the_limit_of_its_own_record() {
        let own = RatePolicy::per_minute(60, 3).unwrap();
        let id = uuid::Uuid::from_u128(9);
        let limiter = limiter(store_expecting(vec![LimitCheck {
            key: RateKey::Client(id),
            policy: own,
        }]));

        let admission = limiter
            .admit(request(LimitedCaller::Client { id, policy: own }, None))
            .await
            .unwrap();

        assert!(matches!(
            admission,
            Admission::Allowed(Quota {
                limit: 3,
                remaining: 2,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_caller_without_credentials_draws_on_its_address() {
        let limiter = limiter(store_expecting(vec![address_check()]));

        let admission = limiter
            .admit(request(LimitedCaller::Anonymous, None))
            .await
            .unwrap();

        assert!(matches!(
            admission,
            Admission::Allowed(Quota { limit: 100, .. })
        ));
    }

    #[tokio::test]
    async fn a_login_is_decided_against_the_address_the_login_address_and_the_email_at_once() {
        let limiter = limiter(store_expecting(vec![
            address_check(),
            login_address_check(),
            LimitCheck {
                key: RateKey::LoginEmail("ann@example.com".into()),
                policy: policies().login_per_email,
            },
        ]));
        let attempt = LoginAttempt {
            email: Some(" Ann@Example.com"),
        };

        let admission = limiter
            .admit(request(LimitedCaller::Anonymous, Some(attempt)))
            .await
            .unwrap();

        // The e-mail's allowance is the tightest: 5 at once, 4 left.
        assert!(matches!(
            admission,
            Admission::Allowed(Quota {
                limit: 5,
                remaining: 4,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_login_without_an_email_is_still_an_attempt_from_its_address() {
        let limiter = limiter(store_expecting(vec![
            address_check(),
            login_address_check(),
        ]));

        let admission = limiter
            .admit(request(
                LimitedCaller::Anonymous,
                Some(LoginAttempt { email: None }),
            ))
            .await
            .unwrap();

        assert!(matches!(admission, Admission::Allowed(_)));
    }

    #[tokio::test]
    async fn a_refusal_reports_the_policy_asking_for_the_longest_wait() {
        let mut store = MockRateLimitStore::new();
        store.expect_check().returning(|_, _| {
            Ok(RateLimitOutcome {
                decisions: vec![
                    Decision::Denied {
                        retry_after: Duration::from_secs(2),
                        reset: Duration::from_secs(5),
                    },
                    Decision::Allowed {
                        tat: Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 1).unwrap(),
                        remaining: 3,
                        reset: Duration::from_secs(1),
                    },
                    Decision::Denied {
                        retry_after: Duration::from_secs(60),
                        reset: Duration::from_secs(300),
                    },
                ],
            })
        });
        let attempt = LoginAttempt {
            email: Some("ann@example.com"),
        };

        let admission = limiter(store)
            .admit(request(LimitedCaller::Anonymous, Some(attempt)))
            .await
            .unwrap();

        assert_eq!(
            admission,
            Admission::Refused {
                quota: Quota {
                    limit: 5,
                    remaining: 0,
                    reset: Duration::from_secs(300),
                },
                retry_after: Duration::from_secs(60),
            }
        );
    }

    #[tokio::test]
    async fn when_the_store_fails_a_login_is_refused() {
        let attempt = LoginAttempt {
            email: Some("ann@example.com"),
        };

        let result = limiter(failing_store())
            .admit(request(LimitedCaller::Anonymous, Some(attempt)))
            .await;

        assert!(matches!(result, Err(AdmitError::Unavailable(_))));
    }

    #[tokio::test]
    async fn when_the_store_fails_any_other_request_goes_ahead_unchecked() {
        let limiter = limiter(failing_store());

        for caller in [LimitedCaller::User(user()), LimitedCaller::Anonymous] {
            let admission = limiter.admit(request(caller, None)).await.unwrap();
            assert_eq!(admission, Admission::Unchecked);
        }
    }
}
