use chrono::{DateTime, Utc};

use crate::orders::OrderId;
use crate::upstream::IdempotencyKey;
use crate::value::InvalidValue;

/// Whose key it is: `user:<id>` or `client:<id>`. Two principals may use the same
/// key without meeting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyOwner(String);

impl KeyOwner {
    /// The owner `kind:id` (e.g. `user`, and the user's id).
    pub fn new(kind: &str, id: uuid::Uuid) -> Self {
        Self(format!("{kind}:{id}"))
    }

    /// The owner as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What identifies a request for comparison: a digest of its method, path and
/// body, 64 lower-case hex digits (SHA-256), computed where the request is read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestFingerprint(String);

impl RequestFingerprint {
    /// Parses a digest.
    ///
    /// # Errors
    /// When `hex` is not 64 lower-case hex digits.
    pub fn parse(hex: &str) -> Result<Self, InvalidValue> {
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(hex.to_owned()))
        } else {
            Err(InvalidValue::new(
                "a request fingerprint is 64 lower-case hex digits",
            ))
        }
    }

    /// The digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A request that carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    /// Whose key.
    pub owner: KeyOwner,
    /// The key.
    pub key: IdempotencyKey,
    /// What the request was.
    pub fingerprint: RequestFingerprint,
}

/// The response to a request, kept to answer its repetitions: status, the
/// headers that describe the result (`Location`, `ETag`, `Content-Type`) and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: u16,
    /// Headers to send again, by name.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key was free (or had expired): this request is the first, and runs.
    Claimed,
    /// The same request finished before: answer with its response.
    Replay(StoredResponse),
    /// The same request is still running.
    InUse,
    /// The same request began before but stopped without an answer (its process
    /// died) and its lease ran out: this request takes the key over and carries
    /// on from what the first one left.
    TakeOver {
        /// The order the first request created, if it got that far.
        order_id: Option<OrderId>,
    },
    /// The key was used for a different request.
    Reused,
}

/// A key as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// What the first request was.
    pub fingerprint: RequestFingerprint,
    /// Its response, once it finished; `None` while it runs.
    pub response: Option<StoredResponse>,
    /// The order it created, if it links one.
    pub order_id: Option<OrderId>,
    /// Until when the request that holds the key (while it has no response) may
    /// still be running; after that it is taken to have died.
    pub lease_until: DateTime<Utc>,
    /// When the key is forgotten.
    pub expires_at: DateTime<Utc>,
}

impl IdempotencyRecord {
    /// What a request with `fingerprint` arriving at `now` gets from this record:
    /// the rule the store applies to the record it finds, holding it.
    pub fn claim_by(
        &self,
        fingerprint: &RequestFingerprint,
        now: DateTime<Utc>,
    ) -> IdempotencyClaim {
        if now >= self.expires_at {
            IdempotencyClaim::Claimed
        } else if &self.fingerprint != fingerprint {
            IdempotencyClaim::Reused
        } else {
            match &self.response {
                Some(response) => IdempotencyClaim::Replay(response.clone()),
                None if now >= self.lease_until => IdempotencyClaim::TakeOver {
                    order_id: self.order_id,
                },
                None => IdempotencyClaim::InUse,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;

    fn fingerprint(c: char) -> RequestFingerprint {
        RequestFingerprint::parse(&c.to_string().repeat(64)).expect("a fingerprint")
    }

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
            .single()
            .expect("a time")
    }

    fn record(response: Option<StoredResponse>) -> IdempotencyRecord {
        IdempotencyRecord {
            fingerprint: fingerprint('a'),
            response,
            order_id: None,
            lease_until: noon() + TimeDelta::minutes(1),
            expires_at: noon() + TimeDelta::hours(24),
        }
    }

    #[test]
    fn the_same_request_is_in_use_while_it_runs_and_replayed_once_finished() {
        let response = StoredResponse {
            status: 201,
            headers: vec![("location".into(), "/v1/orders/1".into())],
            body: b"{}".to_vec(),
        };
        assert_eq!(
            record(None).claim_by(&fingerprint('a'), noon()),
            IdempotencyClaim::InUse
        );
        assert_eq!(
            record(Some(response.clone())).claim_by(&fingerprint('a'), noon()),
            IdempotencyClaim::Replay(response)
        );
    }

    #[test]
    fn a_first_request_silent_past_its_lease_is_taken_over_by_the_same_request_only() {
        let order = OrderId::from_uuid(uuid::Uuid::from_u128(9));
        let crashed = IdempotencyRecord {
            order_id: Some(order),
            ..record(None)
        };
        let lease_over = noon() + TimeDelta::minutes(1);

        assert_eq!(
            crashed.claim_by(&fingerprint('a'), lease_over - TimeDelta::seconds(1)),
            IdempotencyClaim::InUse
        );
        assert_eq!(
            crashed.claim_by(&fingerprint('a'), lease_over),
            IdempotencyClaim::TakeOver {
                order_id: Some(order)
            }
        );
        assert_eq!(
            crashed.claim_by(&fingerprint('b'), lease_over),
            IdempotencyClaim::Reused
        );
        let answered = StoredResponse {
            status: 202,
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert_eq!(
            record(Some(answered.clone())).claim_by(&fingerprint('a'), lease_over),
            IdempotencyClaim::Replay(answered),
            "a finished request is replayed, never taken over"
        );
    }

    #[test]
    fn another_request_with_the_key_is_refused_until_the_key_expires() {
        assert_eq!(
            record(None).claim_by(&fingerprint('b'), noon()),
            IdempotencyClaim::Reused
        );
        assert_eq!(
            record(None).claim_by(&fingerprint('b'), noon() + TimeDelta::hours(24)),
            IdempotencyClaim::Claimed
        );
    }

    #[test]
    fn fingerprints_are_sha256_hex_digests() {
        assert!(RequestFingerprint::parse(&"0f".repeat(32)).is_ok());
        for bad in ["", "abc", &"A".repeat(64), &"g".repeat(64)] {
            assert!(RequestFingerprint::parse(bad).is_err(), "{bad}");
        }
    }
}
