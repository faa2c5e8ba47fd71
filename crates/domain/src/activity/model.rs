use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::window::hour_of;
use crate::auth::Principal;
use crate::value::{InvalidValue, text_newtype};

/// Whether a principal is a user or an API client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalKind {
    /// A logged-in user.
    User,
    /// An API client.
    Client,
}

impl PrincipalKind {
    /// `user` or `client`, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Client => "client",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s spelling.
    ///
    /// # Errors
    /// For anything else.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "user" => Ok(Self::User),
            "client" => Ok(Self::Client),
            _ => Err(InvalidValue::new("a principal is a user or a client")),
        }
    }
}

/// Who made a hit: a user or an API client, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HitPrincipal {
    kind: PrincipalKind,
    id: Uuid,
}

impl HitPrincipal {
    /// The principal `id` of `kind`.
    pub fn new(kind: PrincipalKind, id: Uuid) -> Self {
        Self { kind, id }
    }

    /// User or client.
    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }

    /// The user's or client's id.
    pub fn id(&self) -> Uuid {
        self.id
    }
}

impl From<Principal> for HitPrincipal {
    fn from(principal: Principal) -> Self {
        let kind = match principal {
            Principal::User { .. } => PrincipalKind::User,
            Principal::Client { .. } => PrincipalKind::Client,
        };
        Self::new(kind, principal.id())
    }
}

text_newtype!(
    /// What a hit called: a path or route template such as `/v1/orders/{id}`.
    Endpoint,
    "an endpoint",
    512
);

/// The HTTP method of a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HitMethod {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// Any other method the server saw (it never routes one); not accepted from
    /// reports.
    Other,
}

impl HitMethod {
    /// The method's name, upper case (`OTHER` for any other).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Other => "OTHER",
        }
    }

    /// Parses a reported method, case-insensitively.
    ///
    /// # Errors
    /// For anything but `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE`, `OPTIONS`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        const KNOWN: [HitMethod; 7] = [
            HitMethod::Get,
            HitMethod::Head,
            HitMethod::Post,
            HitMethod::Put,
            HitMethod::Patch,
            HitMethod::Delete,
            HitMethod::Options,
        ];
        let raw = raw.trim();
        KNOWN
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(raw))
            .ok_or_else(|| {
                InvalidValue::new("a method is one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
            })
    }
}

/// The HTTP status a hit was answered with, 100 to 599.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HitStatus(u16);

impl HitStatus {
    /// Parses a status code.
    ///
    /// # Errors
    /// Outside 100 to 599.
    pub fn new(code: i64) -> Result<Self, InvalidValue> {
        u16::try_from(code)
            .ok()
            .filter(|c| (100..=599).contains(c))
            .map(Self)
            .ok_or_else(|| InvalidValue::new("a status is 100 to 599"))
    }

    /// The code.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// Where a hit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HitSource {
    /// Sent by an API client to the logging endpoint.
    Reported,
    /// Recorded by the server for a request it served.
    Observed,
}

impl HitSource {
    /// `reported` or `observed`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reported => "reported",
            Self::Observed => "observed",
        }
    }
}

/// One request, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Who made it.
    pub principal: HitPrincipal,
    /// When; its hour is the bucket it counts in.
    pub occurred_at: DateTime<Utc>,
    /// The method.
    pub method: HitMethod,
    /// The path or route template.
    pub endpoint: Endpoint,
    /// The answer's status, when known.
    pub status: Option<HitStatus>,
    /// How long the server took, when it served it.
    pub latency: Option<Duration>,
    /// The address it came from, when the server saw it.
    pub ip: Option<IpAddr>,
    /// Reported or observed.
    pub source: HitSource,
}

/// A hit as a client reports it, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportedHit {
    /// The endpoint called.
    pub endpoint: String,
    /// Its method; `GET` when absent.
    pub method: Option<String>,
    /// The status it got.
    pub status: Option<i64>,
    /// When; now when absent.
    pub occurred_at: Option<DateTime<Utc>>,
}

/// How many hits one principal made in one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourlyCount {
    /// Who.
    pub principal: HitPrincipal,
    /// The start of the hour (UTC).
    pub hour: DateTime<Utc>,
    /// How many hits.
    pub requests: u64,
}

/// Hits written together, under an id that makes writing them again a no-op: a
/// writer that cannot tell whether its commit went through retries safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitBatch {
    id: Uuid,
    hits: Vec<Hit>,
}

impl HitBatch {
    /// The batch `id` of `hits`.
    pub fn new(id: Uuid, hits: Vec<Hit>) -> Self {
        Self { id, hits }
    }

    /// Its id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Its hits.
    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }

    /// The hits counted per principal and hour, ordered by principal then hour: one
    /// upsert per pair, and every writer touches the counters in the same order,
    /// so two writers never deadlock on them.
    pub fn hourly_counts(&self) -> Vec<HourlyCount> {
        let mut counts: BTreeMap<(HitPrincipal, DateTime<Utc>), u64> = BTreeMap::new();
        for hit in &self.hits {
            *counts
                .entry((hit.principal, hour_of(hit.occurred_at)))
                .or_default() += 1;
        }
        counts
            .into_iter()
            .map(|((principal, hour), requests)| HourlyCount {
                principal,
                hour,
                requests,
            })
            .collect()
    }

    /// The UTC days its hits fall on, each once, in order.
    pub fn days(&self) -> Vec<chrono::NaiveDate> {
        let mut days: Vec<_> = self
            .hits
            .iter()
            .map(|h| h.occurred_at.date_naive())
            .collect();
        days.sort_unstable();
        days.dedup();
        days
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn hit(principal: HitPrincipal, at: DateTime<Utc>) -> Hit {
        Hit {
            principal,
            occurred_at: at,
            method: HitMethod::Get,
            endpoint: Endpoint::parse("/v1/orders").unwrap(),
            status: None,
            latency: None,
            ip: None,
            source: HitSource::Reported,
        }
    }

    #[test]
    fn a_batch_counts_each_principal_once_per_hour_in_a_fixed_order() {
        let a = HitPrincipal::new(PrincipalKind::Client, Uuid::from_u128(2));
        let b = HitPrincipal::new(PrincipalKind::User, Uuid::from_u128(1));
        let nine = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let batch = HitBatch::new(
            Uuid::nil(),
            vec![
                hit(a, nine + chrono::TimeDelta::minutes(59)),
                hit(b, nine),
                hit(a, nine),
                hit(a, nine + chrono::TimeDelta::minutes(60)),
            ],
        );

        let counts = batch.hourly_counts();

        let seen: Vec<_> = counts
            .iter()
            .map(|c| (c.principal, c.hour, c.requests))
            .collect();
        assert_eq!(
            seen,
            [
                (b, nine, 1),
                (a, nine, 2),
                (a, nine + chrono::TimeDelta::hours(1), 1)
            ]
        );
        assert_eq!(counts.iter().map(|c| c.requests).sum::<u64>(), 4);
    }

    #[test]
    fn a_batch_names_each_day_once() {
        let a = HitPrincipal::new(PrincipalKind::Client, Uuid::nil());
        let late = Utc.with_ymd_and_hms(2026, 3, 1, 23, 59, 59).unwrap();
        let batch = HitBatch::new(
            Uuid::nil(),
            vec![
                hit(a, late),
                hit(a, late + chrono::TimeDelta::seconds(1)),
                hit(a, late),
            ],
        );
        assert_eq!(batch.days().len(), 2);
    }

    #[test]
    fn methods_parse_case_insensitively_and_only_the_standard_ones() {
        assert_eq!(HitMethod::parse("post"), Ok(HitMethod::Post));
        assert_eq!(HitMethod::parse(" GET "), Ok(HitMethod::Get));
        assert!(HitMethod::parse("BREW").is_err());
        assert!(HitMethod::parse("other").is_err());
    }

    #[test]
    fn statuses_are_100_to_599() {
        assert!(HitStatus::new(99).is_err());
        assert_eq!(HitStatus::new(100).map(HitStatus::get), Ok(100));
        assert_eq!(HitStatus::new(599).map(HitStatus::get), Ok(599));
        assert!(HitStatus::new(600).is_err());
        assert!(HitStatus::new(-200).is_err());
    }
}
