use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::to_micros;
use crate::value::InvalidValue;

/// How many requests a caller may make: `limit` per `period` on average, up to
/// `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RatePolicy {
    limit: u32,
    period: Duration,
    burst: u32,
}

impl RatePolicy {
    /// A policy of `limit` requests per `period`, `burst` at once.
    ///
    /// # Errors
    /// When `limit` or `burst` is zero, `period` is zero or longer than a day, or
    /// the emission interval (`period / limit`) is below a microsecond.
    pub fn new(limit: u32, period: Duration, burst: u32) -> Result<Self, InvalidValue> {
        if limit == 0 || burst == 0 {
            return Err(InvalidValue::new(
                "a rate limit allows at least one request",
            ));
        }
        if period.is_zero() || period > Duration::from_secs(86_400) {
            return Err(InvalidValue::new(
                "a rate limit's period is between 1 ms and one day",
            ));
        }
        if period / limit < Duration::from_micros(1) {
            return Err(InvalidValue::new(
                "a rate limit allows at most one request per microsecond",
            ));
        }
        Ok(Self {
            limit,
            period,
            burst,
        })
    }

    /// `requests_per_minute` per minute, `burst` at once.
    ///
    /// # Errors
    /// As [`RatePolicy::new`].
    pub fn per_minute(requests_per_minute: u32, burst: u32) -> Result<Self, InvalidValue> {
        Self::new(requests_per_minute, Duration::from_secs(60), burst)
    }

    /// Requests allowed per period on average.
    pub fn limit(self) -> u32 {
        self.limit
    }

    /// The period of [`limit`](Self::limit).
    pub fn period(self) -> Duration {
        self.period
    }

    /// Requests allowed at once.
    pub fn burst(self) -> u32 {
        self.burst
    }

    /// The time one request uses up of the allowance.
    pub fn emission_interval(self) -> TimeDelta {
        micros(self.period / self.limit)
    }

    /// How far ahead of now the theoretical arrival time may run: `burst`
    /// emission intervals.
    pub fn tolerance(self) -> TimeDelta {
        self.emission_interval() * i32::try_from(self.burst).unwrap_or(i32::MAX)
    }
}

fn micros(duration: Duration) -> TimeDelta {
    TimeDelta::microseconds(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX))
}

fn to_duration(delta: TimeDelta) -> Duration {
    delta.to_std().unwrap_or(Duration::ZERO)
}

/// The outcome of one request against one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request may go ahead; store `tat` as the key's new state.
    Allowed {
        /// The key's new theoretical arrival time.
        tat: DateTime<Utc>,
        /// Requests that could still be made right now.
        remaining: u32,
        /// Until the allowance is whole again.
        reset: Duration,
    },
    /// The request must wait; the key's state is unchanged.
    Denied {
        /// The earliest time from now at which the same request would be allowed.
        retry_after: Duration,
        /// Until the allowance is whole again.
        reset: Duration,
    },
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// The GCRA decision for one request at `now`, given the key's stored theoretical
/// arrival time (`None` for a key never seen, or forgotten).
///
/// Time is counted in whole microseconds: `now` is truncated to one, and every
/// interval is a whole number of them. A shared store can then keep and compare
/// theoretical arrival times as exact integers and decide exactly as this
/// function does.
pub fn decide(policy: RatePolicy, stored: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Decision {
    let now = to_micros(now);
    let interval = policy.emission_interval();
    let tolerance = policy.tolerance();
    let tat = stored.map_or(now, |tat| tat.max(now));
    let new_tat = tat + interval;
    let ahead = new_tat - now;
    if ahead <= tolerance {
        let spare = (tolerance - ahead).num_microseconds().unwrap_or(0);
        let per = interval.num_microseconds().unwrap_or(1).max(1);
        Decision::Allowed {
            tat: new_tat,
            remaining: u32::try_from(spare / per).unwrap_or(u32::MAX),
            reset: to_duration(ahead),
        }
    } else {
        Decision::Denied {
            retry_after: to_duration(ahead - tolerance),
            reset: to_duration(tat - now),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
    }

    /// Runs `arrivals` (offsets from t0) through one key; returns which were allowed.
    fn run(policy: RatePolicy, arrivals: &[TimeDelta]) -> Vec<bool> {
        let mut tat = None;
        arrivals
            .iter()
            .map(|&offset| match decide(policy, tat, t0() + offset) {
                Decision::Allowed { tat: next, .. } => {
                    tat = Some(next);
                    true
                }
                Decision::Denied { .. } => false,
            })
            .collect()
    }

    #[test]
    fn a_burst_is_allowed_at_once_and_one_more_is_denied() {
        let policy = RatePolicy::per_minute(60, 5).unwrap();
        let allowed = run(policy, &[TimeDelta::zero(); 6]);
        assert_eq!(allowed, [true, true, true, true, true, false]);
    }

    #[test]
    fn remaining_counts_down_through_the_burst() {
        let policy = RatePolicy::per_minute(60, 3).unwrap();
        let first = decide(policy, None, t0());
        let Decision::Allowed { tat, remaining, .. } = first else {
            panic!("{first:?}");
        };
        assert_eq!(remaining, 2);
        let second = decide(policy, Some(tat), t0());
        assert!(matches!(second, Decision::Allowed { remaining: 1, .. }));
    }

    #[test]
    fn a_denied_request_is_allowed_exactly_after_its_retry_after() {
        let policy = RatePolicy::per_minute(60, 2).unwrap();
        let mut tat = None;
        for _ in 0..2 {
            if let Decision::Allowed { tat: next, .. } = decide(policy, tat, t0()) {
                tat = Some(next);
            }
        }
        let Decision::Denied { retry_after, .. } = decide(policy, tat, t0()) else {
            panic!("the third request at once is denied");
        };
        assert_eq!(retry_after, Duration::from_secs(1));
        let just_before = t0() + micros(retry_after) - TimeDelta::microseconds(1);
        assert!(!decide(policy, tat, just_before).is_allowed());
        assert!(decide(policy, tat, t0() + micros(retry_after)).is_allowed());
    }

    #[test]
    fn a_denied_request_does_not_use_up_the_allowance() {
        let policy = RatePolicy::per_minute(60, 1).unwrap();
        let allowed = run(
            policy,
            &[
                TimeDelta::zero(),
                TimeDelta::milliseconds(500),
                TimeDelta::milliseconds(999),
                TimeDelta::seconds(1),
            ],
        );
        assert_eq!(allowed, [true, false, false, true]);
    }

    #[test]
    fn an_idle_key_recovers_its_whole_burst_and_no_more() {
        let policy = RatePolicy::per_minute(60, 3).unwrap();
        let mut arrivals = vec![TimeDelta::zero(); 3];
        arrivals.extend([TimeDelta::hours(1); 4]);
        let allowed = run(policy, &arrivals);
        assert_eq!(allowed, [true, true, true, true, true, true, false]);
    }

    #[test]
    fn decisions_count_whole_microseconds() {
        let policy = RatePolicy::per_minute(60, 1).unwrap();
        let now = t0() + TimeDelta::nanoseconds(1_999);
        let Decision::Allowed { tat, .. } = decide(policy, None, now) else {
            panic!("the first request is allowed");
        };
        assert_eq!(tat, t0() + TimeDelta::microseconds(1_000_001));
        assert_eq!(
            decide(policy, Some(tat), now),
            decide(policy, Some(tat), t0() + TimeDelta::microseconds(1))
        );
    }

    #[test]
    fn nonsense_policies_are_refused() {
        assert!(RatePolicy::per_minute(0, 1).is_err());
        assert!(RatePolicy::per_minute(1, 0).is_err());
        assert!(RatePolicy::new(1, Duration::ZERO, 1).is_err());
        assert!(RatePolicy::new(u32::MAX, Duration::from_millis(1), 1).is_err());
    }

    /// A small deterministic generator, so the property runs without extra crates
    /// and fails reproducibly.
    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *seed >> 33
    }

    #[test]
    fn in_any_window_no_more_than_burst_plus_rate_times_elapsed_are_allowed() {
        let mut seed = 42;
        for case in 0..200 {
            let limit = 1 + u32::try_from(lcg(&mut seed) % 120).unwrap();
            let burst = 1 + u32::try_from(lcg(&mut seed) % 20).unwrap();
            let policy = RatePolicy::per_minute(limit, burst).unwrap();
            let mut offset = TimeDelta::zero();
            let mut arrivals = Vec::new();
            for _ in 0..300 {
                // Bursts of simultaneous requests and gaps of up to five seconds.
                if !lcg(&mut seed).is_multiple_of(3) {
                    offset +=
                        TimeDelta::milliseconds(i64::try_from(lcg(&mut seed) % 5_000).unwrap());
                }
                arrivals.push(offset);
            }
            let allowed: Vec<TimeDelta> = run(policy, &arrivals)
                .into_iter()
                .zip(&arrivals)
                .filter_map(|(ok, at)| ok.then_some(*at))
                .collect();
            let interval = policy.emission_interval().num_microseconds().unwrap();
            for (i, start) in allowed.iter().enumerate() {
                for (j, end) in allowed.iter().enumerate().skip(i) {
                    let elapsed = (*end - *start).num_microseconds().unwrap();
                    let count = i64::try_from(j - i + 1).unwrap();
                    let bound = i64::from(burst) + elapsed / interval;
                    assert!(
                        count <= bound,
                        "case {case}: {count} allowed within {elapsed} µs, at most {bound} (limit {limit}/min, burst {burst})"
                    );
                }
            }
        }
    }
}
