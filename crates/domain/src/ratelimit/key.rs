use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Whose allowance a check draws on. A typed key rather than text, so that the
/// common case (a user, a client, an address) is built without allocating; a
/// shared store renders it with `Display` (`user:<id>`, `ip:203.0.113.9`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// The requests of a logged-in user.
    User(uuid::Uuid),
    /// The requests of an API client.
    Client(uuid::Uuid),
    /// The requests without valid credentials from one network address.
    Address(IpAddr),
    /// The login attempts from one network address.
    LoginAddress(IpAddr),
    /// The login attempts for one e-mail address (trimmed, lower-cased), whether or
    /// not a user has it.
    LoginEmail(String),
}

/// The longest e-mail address a login limit is kept for, in bytes: no user's
/// address is longer (RFC 5321), so a longer one is not worth memory.
const MAX_EMAIL_KEY_BYTES: usize = 254;

impl RateKey {
    /// The key of the anonymous requests from `address`.
    pub fn address(address: IpAddr) -> Self {
        Self::Address(network_of(address))
    }

    /// The key of the login attempts from `address`.
    pub fn login_address(address: IpAddr) -> Self {
        Self::LoginAddress(network_of(address))
    }

    /// The key of the login attempts for `email` as typed: trimmed and lower-cased,
    /// so `Ann@Example.com ` and `ann@example.com` share one allowance. `None` for
    /// an address no user can have (empty, or longer than 254 bytes).
    pub fn login_email(email: &str) -> Option<Self> {
        let email = email.trim();
        (!email.is_empty() && email.len() <= MAX_EMAIL_KEY_BYTES)
            .then(|| Self::LoginEmail(email.to_lowercase()))
    }
}

/// The network an address stands for. An IPv6 host usually holds a whole /64 and
/// can pick any address in it, so IPv6 callers are limited per /64; an IPv4
/// address written as IPv6 (`::ffff:203.0.113.9`) is the IPv4 address it is.
fn network_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1_u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

impl fmt::Display for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Client(id) => write!(f, "client:{id}"),
            Self::Address(address) => write!(f, "ip:{address}"),
            Self::LoginAddress(address) => write!(f, "login-ip:{address}"),
            Self::LoginEmail(email) => write!(f, "login-email:{email}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_callers_share_one_allowance_per_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            RateKey::address(ip("2001:db8:1:2:aaaa::1")),
            RateKey::address(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            RateKey::address(ip("2001:db8:1:2::1")),
            RateKey::address(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            RateKey::address(ip("::ffff:203.0.113.9")),
            RateKey::address(ip("203.0.113.9"))
        );
        assert_ne!(
            RateKey::address(ip("203.0.113.9")),
            RateKey::address(ip("203.0.113.10"))
        );
    }

    #[test]
    fn login_emails_are_keyed_trimmed_and_lower_cased_and_bounded() {
        assert_eq!(
            RateKey::login_email(" Ann@Example.COM "),
            RateKey::login_email("ann@example.com")
        );
        assert_eq!(RateKey::login_email("   "), None);
        assert_eq!(RateKey::login_email(&"a".repeat(255)), None);
        assert!(RateKey::login_email(&"a".repeat(254)).is_some());
    }

    #[test]
    fn keys_render_with_their_kind_for_a_shared_store() {
        assert_eq!(
            RateKey::login_address(ip("2001:db8::7")).to_string(),
            "login-ip:2001:db8::"
        );
        assert_eq!(
            RateKey::login_email("Ann@example.com").unwrap().to_string(),
            "login-email:ann@example.com"
        );
    }
}
