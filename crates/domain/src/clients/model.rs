use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use crate::customers::Email;
use crate::ratelimit::RatePolicy;
use crate::value::{InvalidValue, Version, id_newtype, text_newtype};

id_newtype!(
    /// Identifies an API client.
    ClientId
);

text_newtype!(
    /// A client's name, as an administrator calls it.
    ClientName,
    "a name",
    200
);

/// An API key as a client sends it: `ordo_<prefix>_<secret>`, where the prefix is 8
/// and the secret 32 to 64 characters of `[A-Za-z0-9-]` (base64url without `_`, so
/// the separators stay unambiguous). Never printed whole.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    prefix: String,
    secret: String,
}

impl ApiKey {
    /// The length of a key's prefix.
    pub const PREFIX_LEN: usize = 8;

    /// Parses a presented key.
    ///
    /// # Errors
    /// When it does not have the shape of an Ordo key.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue::new("not an Ordo API key (ordo_<prefix>_<secret>)");
        let rest = raw.strip_prefix("ordo_").ok_or_else(invalid)?;
        let (prefix, secret) = rest.split_once('_').ok_or_else(invalid)?;
        let allowed = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if prefix.len() != Self::PREFIX_LEN
            || !(32..=64).contains(&secret.len())
            || !allowed(prefix)
            || !allowed(secret)
        {
            return Err(invalid());
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The part that may be shown and logged.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The whole key, to show once or to digest.
    pub fn expose(&self) -> String {
        format!("ordo_{}_{}", self.prefix, self.secret)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey(ordo_{}_…)", self.prefix)
    }
}

/// The digest under which a key is stored and looked up (SHA-256, hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyDigest(String);

impl ApiKeyDigest {
    /// Wraps a digest computed by an adapter.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    /// The digest, hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The networks a client may call from; empty allows every address. At most 100
/// entries of IPv4 or IPv6 addresses or CIDR blocks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpAllowList(Vec<IpNet>);

impl IpAllowList {
    /// The most entries a list has.
    pub const MAX_ENTRIES: usize = 100;

    /// Parses entries like `203.0.113.0/24`, `2001:db8::/32`, `::1` or `192.0.2.7`
    /// (a bare address is a block of one). Host bits below the prefix are cleared,
    /// so `203.0.113.9/24` means `203.0.113.0/24`.
    ///
    /// # Errors
    /// Naming the first entry that is not an address or block, or when there are too many.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, InvalidValue> {
        if entries.len() > Self::MAX_ENTRIES {
            return Err(InvalidValue::new(format!(
                "an allow-list has at most {} entries",
                Self::MAX_ENTRIES
            )));
        }
        let mut networks = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let text = entry.as_ref().trim();
            let network = text
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    InvalidValue::new(format!(
                        "entry {i} ({text:?}) is not an IP address or CIDR block"
                    ))
                })?;
            networks.push(network);
        }
        networks.sort_unstable();
        networks.dedup();
        Ok(Self(networks))
    }

    /// Whether `address` may call. An IPv4 address written as IPv6
    /// (`::ffff:203.0.113.9`) is matched as the IPv4 address it is.
    pub fn allows(&self, address: IpAddr) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The entries, normalised, as text.
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Whether every address is allowed.
    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }
}

/// A client's rate limit: requests per minute and burst (default 600/min, 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRateLimit(RatePolicy);

impl ClientRateLimit {
    /// The largest burst a client may be given.
    pub const MAX_BURST: u32 = 1_000_000;

    /// Builds a limit.
    ///
    /// # Errors
    /// When either number is zero, the rate is above 600 000 per minute or the
    /// burst above 1 000 000.
    pub fn new(requests_per_minute: u32, burst: u32) -> Result<Self, InvalidValue> {
        if requests_per_minute > 600_000 {
            return Err(InvalidValue::new(
                "a client's rate limit is at most 600000 requests per minute",
            ));
        }
        if burst > Self::MAX_BURST {
            return Err(InvalidValue::new(
                "a client's burst is at most 1000000 requests",
            ));
        }
        RatePolicy::per_minute(requests_per_minute, burst).map(Self)
    }

    /// The policy the limiter applies.
    pub fn policy(self) -> RatePolicy {
        self.0
    }

    /// Requests per minute.
    pub fn requests_per_minute(self) -> u32 {
        self.0.limit()
    }

    /// Requests at once.
    pub fn burst(self) -> u32 {
        self.0.burst()
    }
}

impl Default for ClientRateLimit {
    fn default() -> Self {
        #[allow(clippy::expect_used)] // constants within the bounds
        Self(RatePolicy::per_minute(600, 100).expect("the default limit is valid"))
    }
}

/// The parts of a stored [`Client`], for adapters to reassemble one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientParts {
    /// Its id.
    pub id: ClientId,
    /// Its name.
    pub name: ClientName,
    /// Its contact address.
    pub email: Email,
    /// Where it may call from.
    pub ip_allowlist: IpAllowList,
    /// Its own rate limit.
    pub rate_limit: ClientRateLimit,
    /// The prefix of its current key.
    pub key_prefix: String,
    /// When its current key was issued.
    pub key_issued_at: DateTime<Utc>,
    /// Its revision.
    pub version: Version,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a key rotation included).
    pub updated_at: DateTime<Utc>,
}

/// A registered API client. Its key is not part of it: only the key's prefix is
/// kept in the clear, the key itself only as a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client(ClientParts);

impl Client {
    /// Reassembles a stored client.
    pub fn restore(parts: ClientParts) -> Self {
        Self(parts)
    }

    /// Its id.
    pub fn id(&self) -> ClientId {
        self.0.id
    }
    /// Its name.
    pub fn name(&self) -> &ClientName {
        &self.0.name
    }
    /// Its contact address.
    pub fn email(&self) -> &Email {
        &self.0.email
    }
    /// The networks it may call from.
    pub fn ip_allowlist(&self) -> &IpAllowList {
        &self.0.ip_allowlist
    }
    /// Its rate limit.
    pub fn rate_limit(&self) -> ClientRateLimit {
        self.0.rate_limit
    }
    /// The prefix of its current key (safe to show).
    pub fn key_prefix(&self) -> &str {
        &self.0.key_prefix
    }
    /// When its current key was issued: access tokens obtained before that came
    /// from a key that no longer works.
    pub fn key_issued_at(&self) -> DateTime<Utc> {
        self.0.key_issued_at
    }
    /// Its revision, for optimistic concurrency.
    pub fn version(&self) -> Version {
        self.0.version
    }
    /// When it was registered.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A client to register, every field parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClient {
    /// Its name.
    pub name: ClientName,
    /// Its contact address.
    pub email: Email,
    /// Where it may call from; empty for anywhere.
    pub ip_allowlist: IpAllowList,
    /// Its rate limit.
    pub rate_limit: ClientRateLimit,
}

/// A partial update of a client; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientChanges {
    /// A new name.
    pub name: Option<ClientName>,
    /// A new allow-list (empty opens it to every address).
    pub ip_allowlist: Option<IpAllowList>,
    /// A new rate limit.
    pub rate_limit: Option<ClientRateLimit>,
}

impl ClientChanges {
    /// Whether no field changes.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A client together with a key just issued to it: the only moment the whole key
/// exists outside the client's hands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedKey {
    /// The client as stored now.
    pub client: Client,
    /// The new key, to show once.
    pub api_key: ApiKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_has_the_ordo_shape_and_prints_only_its_prefix() {
        let key = ApiKey::parse("ordo_Ab12-xYz_0123456789abcdefghijABCDEFGHIJ-_").err();
        assert!(key.is_some(), "an underscore inside the secret is refused");
        let key = ApiKey::parse("ordo_Ab12-xYz_0123456789abcdefghijABCDEFGHIJ-x").unwrap();
        assert_eq!(key.prefix(), "Ab12-xYz");
        assert_eq!(
            key.expose(),
            "ordo_Ab12-xYz_0123456789abcdefghijABCDEFGHIJ-x"
        );
        assert!(!format!("{key:?}").contains("0123456789"));
        for bad in [
            "",
            "ordo_",
            "Bearer x",
            "ordo_short_0123456789abcdefghijABCDEFGHIJ",
            "ordo_Ab12-xYz_tooshort",
            "ordo_Ab12-xYz_0123456789abcdefghij'OR'1'='1--xxxxxxx",
        ] {
            assert!(ApiKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_allow_list_allows_everyone() {
        let open = IpAllowList::parse::<&str>(&[]).unwrap();
        assert!(open.allows("198.51.100.1".parse().unwrap()));
        assert!(open.is_open());
    }

    #[test]
    fn ipv4_and_ipv6_blocks_and_single_addresses_are_matched() {
        let list = IpAllowList::parse(&["203.0.113.0/24", "::1", "2001:db8::/32"]).unwrap();
        assert!(list.allows("203.0.113.200".parse().unwrap()));
        assert!(!list.allows("203.0.114.1".parse().unwrap()));
        assert!(list.allows("::1".parse().unwrap()));
        assert!(list.allows("2001:db8:1::5".parse().unwrap()));
        assert!(!list.allows("2001:db9::1".parse().unwrap()));
        assert!(!list.allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn an_ipv4_mapped_ipv6_address_matches_its_ipv4_block() {
        let list = IpAllowList::parse(&["203.0.113.0/24"]).unwrap();
        assert!(list.allows("::ffff:203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn host_bits_are_cleared_and_duplicates_dropped() {
        let list = IpAllowList::parse(&["203.0.113.9/24", "203.0.113.0/24"]).unwrap();
        assert_eq!(list.entries(), ["203.0.113.0/24"]);
    }

    #[test]
    fn a_bad_entry_is_named() {
        let error = IpAllowList::parse(&["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert!(error.message().contains("entry 1"), "{error}");
        let sql = IpAllowList::parse(&["1.2.3.4'; DROP TABLE clients; --"]).unwrap_err();
        assert!(sql.message().contains("entry 0"));
    }

    #[test]
    fn the_default_client_limit_is_600_a_minute_with_a_burst_of_100() {
        let limit = ClientRateLimit::default();
        assert_eq!((limit.requests_per_minute(), limit.burst()), (600, 100));
        assert!(ClientRateLimit::new(0, 1).is_err());
        assert!(ClientRateLimit::new(600_001, 1).is_err());
        assert!(ClientRateLimit::new(600, ClientRateLimit::MAX_BURST).is_ok());
        assert!(ClientRateLimit::new(600, ClientRateLimit::MAX_BURST + 1).is_err());
    }
}
