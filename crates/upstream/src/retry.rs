//! When to try again: which answers are worth a retry, how long to wait
//! (exponential backoff with full jitter), and the upstream's `Retry-After`.

use std::time::Duration;

use rand::Rng;

/// Statuses that say "not now" rather than "never": overload and server errors.
/// `501 Not Implemented`, `505` and `507` will not change on a retry.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// The random wait before retry number `retry` (1 for the first retry): uniform in
/// `0..=min(max, base · 2^(retry−1))`. Full jitter spreads the retries of many
/// clients that failed together, so they do not return in one burst.
pub fn full_jitter(rng: &mut impl Rng, base: Duration, max: Duration, retry: u32) -> Duration {
    let doubling = 2_u32.saturating_pow(retry.saturating_sub(1));
    let bound = base.saturating_mul(doubling).min(max);
    let bound_micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rng.random_range(0..=bound_micros))
}

/// `Retry-After` in delta-seconds (`Retry-After: 2`). The HTTP-date form is not
/// used by the upstream and is ignored, as is anything unreadable.
pub fn retry_after_seconds(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn only_overload_and_server_errors_are_retried() {
        for status in [429, 500, 502, 503, 504] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [200, 201, 400, 401, 402, 404, 409, 422, 501, 507] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }

    #[test]
    fn the_jittered_wait_stays_under_a_doubling_bound_capped_at_the_maximum() {
        let mut rng = StdRng::seed_from_u64(7);
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(700);
        for retry in 1..=6 {
            let bound = (base * 2_u32.pow(retry - 1)).min(max);
            let waits: Vec<Duration> = (0..500)
                .map(|_| full_jitter(&mut rng, base, max, retry))
                .collect();
            assert!(waits.iter().all(|w| *w <= bound), "retry {retry}");
            assert!(
                waits.iter().any(|w| *w > bound / 2) && waits.iter().any(|w| *w < bound / 2),
                "spread over the whole range, retry {retry}"
            );
        }
        assert!(full_jitter(&mut rng, base, max, 200) <= max, "no overflow");
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(retry_after_seconds(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after_seconds(Some(" 0 ")), Some(Duration::ZERO));
        assert_eq!(
            retry_after_seconds(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(retry_after_seconds(Some("-1")), None);
        assert_eq!(retry_after_seconds(None), None);
    }
}
