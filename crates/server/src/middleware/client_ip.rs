//! The address a request comes from, decided once: the socket peer, or — when the
//! peer is one of the configured trusted proxies — the nearest address in
//! `X-Forwarded-For` that is not a trusted proxy itself.
//!
//! The header is read right to left because each proxy appends the address it saw:
//! the rightmost entries were written by our own proxies and can be believed,
//! anything left of the first untrusted address was written by the client and can
//! be anything. A client that sends `X-Forwarded-For` straight to Ordo (from an
//! untrusted peer) is therefore ignored. The allow-lists of API clients and the
//! rate limiter read [`ClientIp`] from the request's extensions.

use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use ipnet::IpNet;

use crate::problem::ApiError;

/// The address the request comes from (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub std::net::IpAddr);

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses and CIDR blocks.
    ///
    /// # Errors
    /// Naming the first entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> anyhow::Result<Self> {
        entries
            .iter()
            .map(|entry| {
                let text = entry.as_ref().trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "http.trusted_proxies: {text:?} is not an IP address or CIDR block"
                        )
                    })
            })
            .collect::<anyhow::Result<_>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|proxy| proxy.contains(&address))
    }

    /// The client's address, given the socket peer and the `X-Forwarded-For`
    /// values in the order received.
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops = forwarded_for.rev().flat_map(|value| value.rsplit(','));
        for hop in hops {
            // A malformed entry ends the chain: what lies left of it cannot be
            // placed, so the last address a trusted proxy vouched for stands.
            let Some(address) = parse_hop(hop) else {
                break;
            };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// An IPv4 address written as IPv6 (`::ffff:192.0.2.1`, as a dual-stack socket
/// reports IPv4 peers) is the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]` or with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let bare = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })?;
    Some(canonical(bare))
}

/// Puts the request's [`ClientIp`] in its extensions.
///
/// # Errors
/// Only those of the wrapped service.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |addr| addr.ip());
    let address = match req.app_data::<web::Data<TrustedProxies>>() {
        Some(proxies) => proxies.client_address(
            peer,
            req.headers()
                .get_all("x-forwarded-for")
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .into_iter(),
        ),
        None => canonical(peer),
    };
    req.extensions_mut().insert(ClientIp(address));
    next.call(req).await
}

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let known = req.extensions().get::<ClientIp>().copied();
        let fallback = || {
            ClientIp(
                req.peer_addr()
                    .map_or(IpAddr::from([0, 0, 0, 0]), |a| canonical(a.ip())),
            )
        };
        ready(Ok(known.unwrap_or_else(fallback)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries).expect("valid proxies")
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let none = proxies(&[]);
        assert_eq!(
            none.client_address(ip("198.51.100.7"), ["203.0.113.9"].into_iter()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_spoof_its_address() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_address(ip("198.51.100.7"), ["10.0.0.1"].into_iter()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "::1"]);
        // spoofed by the client, then the real client, then our inner proxy
        let header = ["1.2.3.4, 203.0.113.9", "10.0.0.2"];
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), header.into_iter()),
            ip("203.0.113.9")
        );
        assert_eq!(
            trusted.client_address(ip("::1"), ["2001:db8::5"].into_iter()),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn a_trusted_peer_without_a_header_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), std::iter::empty()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_malformed_hop_ends_the_chain_at_the_last_trusted_address() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_address(
                ip("10.0.0.1"),
                ["203.0.113.9, garbage, 10.0.0.3"].into_iter()
            ),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn hops_with_ports_brackets_and_mapped_ipv4_are_read() {
        assert_eq!(parse_hop(" 203.0.113.9:4711 "), Some(ip("203.0.113.9")));
        assert_eq!(parse_hop("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_hop("::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_hop("unknown"), None);
    }

    #[test]
    fn a_bad_proxy_entry_is_named() {
        let error = TrustedProxies::parse(&["10.0.0.0/8", "proxy.local"]).expect_err("bad");
        assert!(error.to_string().contains("proxy.local"));
    }
}
