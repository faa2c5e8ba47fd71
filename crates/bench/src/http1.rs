//! A lean HTTP/1.1 client for the read scenarios: one keep-alive connection per
//! worker, requests built from ready header values. The load generator shares the
//! machine's cores with Ordo and PostgreSQL, and what it spends per request is
//! taken from them: a `reqwest` request (its pool, URL parsing, default-header
//! map, response wrapping) costs the generator more than a cheap read costs
//! Ordo. Ordo sees the same requests either way: a `GET` with `Host`, the
//! credential, and nothing else it would read.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::sync::Mutex;

/// How long a request may take before it counts as failed (as the reqwest
/// clients of the other scenarios): a stalled answer must not stall its worker
/// for the rest of the run.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A header sent with every request, such as the credential.
pub type FixedHeader = (HeaderName, HeaderValue);

/// `name: value` as a header whose value is marked sensitive (left out of debug
/// output), as the bench's credentials are sent.
///
/// # Errors
/// When `value` is not a valid header value.
pub fn credential(name: HeaderName, value: &str) -> anyhow::Result<FixedHeader> {
    let mut value = HeaderValue::from_str(value)?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// Keep-alive connections to one server, one per worker, each opened on first use
/// and again after a failure.
pub struct LeanClient {
    address: SocketAddr,
    host: HeaderValue,
    credential: Option<FixedHeader>,
    connections: Vec<Mutex<Option<SendRequest<Empty<Bytes>>>>>,
}

impl std::fmt::Debug for LeanClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanClient")
            .field("address", &self.address)
            .field("workers", &self.connections.len())
            .finish_non_exhaustive()
    }
}

impl LeanClient {
    /// A client of the server at `base_url` (`http://host:port`) for `workers`
    /// workers, sending `credential` with every request.
    ///
    /// # Errors
    /// When `base_url` names no socket address.
    pub fn new(
        base_url: &str,
        credential: Option<FixedHeader>,
        workers: usize,
    ) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(base_url).context("the server's base URL")?;
        let address = url
            .socket_addrs(|| None)?
            .into_iter()
            .next()
            .context("the server's address")?;
        let host = HeaderValue::from_str(&address.to_string())?;
        Ok(Self {
            address,
            host,
            credential,
            connections: (0..workers.max(1)).map(|_| Mutex::new(None)).collect(),
        })
    }

    /// Whether `GET path` answered a success whose body arrived whole, sent on
    /// `worker`'s connection.
    pub async fn get_ok(&self, worker: usize, path: &str) -> bool {
        let mut slot = self.connections[worker % self.connections.len()]
            .lock()
            .await;
        let sender = match slot.take() {
            Some(sender) if !sender.is_closed() => slot.insert(sender),
            _ => match self.connect().await {
                Ok(sender) => slot.insert(sender),
                Err(_) => return false,
            },
        };
        if sender.ready().await.is_err() {
            *slot = None;
            return false;
        }
        let mut request = hyper::Request::new(Empty::new());
        let Ok(uri) = path.parse() else {
            return false;
        };
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        if let Some((name, value)) = &self.credential {
            headers.insert(name.clone(), value.clone());
        }
        let exchange = async {
            let response = sender.send_request(request).await.ok()?;
            let success = response.status().is_success();
            let whole = response.into_body().collect().await.is_ok();
            Some((success, whole))
        };
        match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(Some((success, true))) => success,
            // Failed, cut short or stalled: the connection is not used again.
            _ => {
                *slot = None;
                false
            }
        }
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(self.address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // Ends when the connection closes; a failure shows as the sender's error.
        tokio::spawn(connection);
        Ok(sender)
    }
}
