//! Plain HTTP (and WebSocket) connections per client address, counted as the TCP connection
//! is accepted and given back when it closes. A connection over the limit is answered 429
//! `rate_limited` (with `Connection: close`) for whatever it asks. Trusted proxies are not
//! counted: every client behind them shares their address, and the WebSocket admission counts
//! those clients by their forwarded address instead.

use std::any::Any;
use std::net::IpAddr;
use std::sync::Arc;

use actix_web::Error;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use corral_actors::metric_catalogue as metric;
use corral_protocol::ErrorCode;
use dashmap::DashMap;

use crate::http::ApiError;
use crate::http::client_ip::TrustedProxies;

/// Open connections per peer address.
pub struct PeerConnections {
    max_per_ip: usize,
    open: DashMap<IpAddr, usize>,
    trusted: TrustedProxies,
}

/// A connection's place in its address's count (kept in the connection's data, so it is
/// given back when the connection closes).
pub struct PeerPermit {
    owner: Arc<PeerConnections>,
    ip: IpAddr,
}

/// Marks a connection that was over its address's limit.
struct OverLimit;

impl PeerConnections {
    /// At most `max_per_ip` connections from one untrusted address.
    pub fn new(max_per_ip: usize, trusted: TrustedProxies) -> Arc<PeerConnections> {
        Arc::new(PeerConnections {
            max_per_ip,
            open: DashMap::new(),
            trusted,
        })
    }

    /// Counts a connection from `ip`; `None` when its address is at the limit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<PeerPermit> {
        let mut count = self.open.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(PeerPermit {
            owner: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.open.get(&ip).map_or(0, |c| *c)
    }

    /// The `HttpServer::on_connect` hook: counts the new connection, or marks it refused.
    pub fn on_connect(self: &Arc<Self>, conn: &dyn Any, data: &mut Extensions) {
        let Some(ip) = peer_ip(conn) else { return };
        if self.trusted.trusts(ip) {
            return;
        }
        match self.admit(ip) {
            Some(permit) => {
                // Shared: an upgraded WebSocket keeps it for the life of its socket.
                data.insert(Arc::new(permit));
            }
            None => {
                metrics::counter!(metric::CONNECTIONS_REFUSED, "reason" => "http_per_ip")
                    .increment(1);
                data.insert(OverLimit);
            }
        }
    }
}

impl Drop for PeerPermit {
    fn drop(&mut self) {
        self.owner.open.remove_if_mut(&self.ip, |_, count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
    }
}

/// The peer address of an accepted connection.
fn peer_ip(conn: &dyn Any) -> Option<IpAddr> {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let tcp = match conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        Some(tcp) => tcp,
        None => conn.downcast_ref::<Tls>()?.get_ref().0,
    };
    tcp.peer_addr().ok().map(|a| a.ip())
}

/// The middleware (`App::wrap(from_fn(refuse_over_limit))`): answers requests on a
/// connection that was over its address's limit.
pub async fn refuse_over_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if req.conn_data::<OverLimit>().is_some() {
        let mut response: HttpResponse = ApiError::new(
            ErrorCode::RateLimited,
            "too many connections from this address",
        )
        .with_status(429)
        .error_response();
        response
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        return Ok(req.into_response(response));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_gives_back_on_close() {
        let conns = PeerConnections::new(2, TrustedProxies::default());
        let ip: IpAddr = [127, 0, 0, 9].into();
        let a = conns.admit(ip);
        let b = conns.admit(ip);
        assert!(a.is_some() && b.is_some());
        assert!(conns.admit(ip).is_none());
        assert!(conns.admit([127, 0, 0, 8].into()).is_some());
        drop(a);
        assert_eq!(conns.open_from(ip), 1);
        assert!(conns.admit(ip).is_some());
    }
}
