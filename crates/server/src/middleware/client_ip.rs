//! Where a request comes from: the socket peer's address, left in the request's
//! extensions as [`ClientIp`] for rate limiting and allow-lists to read.

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

/// The address of the client that sent the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub std::net::IpAddr);

/// Middleware: stores the peer's address as [`ClientIp`] (absent only for requests
/// that did not come over a socket, such as in-process test requests).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(peer) = req.peer_addr() {
        req.extensions_mut().insert(ClientIp(peer.ip()));
    }
    next.call(req).await
}
