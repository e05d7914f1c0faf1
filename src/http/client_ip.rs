//! The client's IP address: the TCP peer, or — only when the peer is a configured trusted
//! proxy — the nearest untrusted address in `X-Forwarded-For`. Anything else in that header is
//! written by the client and ignored (trusting it would let anyone pick the IP their limits are
//! counted against).

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use actix_web::HttpRequest;

/// An address or a CIDR block (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A `trusted_proxies` entry that is neither an address nor a CIDR block.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR block")]
pub struct BadNet(String);

impl FromStr for IpNet {
    type Err = BadNet;

    fn from_str(s: &str) -> Result<IpNet, BadNet> {
        let bad = || BadNet(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(IpNet { addr, prefix })
    }
}

impl IpNet {
    /// Whether `ip` is inside this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32)
                    == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The configured trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses the `server.trusted_proxies` entries.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, BadNet> {
        entries
            .iter()
            .map(|e| e.parse())
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client address of a request from `peer` carrying `forwarded_for`.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        // Right to left: each hop appended the address it saw; the first one not ours is the
        // client as far as anything we trust can tell.
        for hop in forwarded_for.unwrap_or("").rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }

    /// The client address of `req`.
    pub fn of(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        self.client(peer, forwarded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn proxies(entries: &[&str]) -> TrustedProxies {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        TrustedProxies::parse(&entries).unwrap_or_default()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let none = proxies(&[]);
        assert_eq!(none.client(ip("10.0.0.5"), Some("1.2.3.4")), ip("10.0.0.5"));
        let lb = proxies(&["10.0.0.0/8", "::1"]);
        assert_eq!(lb.client(ip("10.0.0.5"), Some("1.2.3.4")), ip("1.2.3.4"));
        // A client-written entry left of the real one is ignored.
        assert_eq!(
            lb.client(ip("10.0.0.5"), Some("6.6.6.6, 1.2.3.4, 10.0.0.7")),
            ip("1.2.3.4")
        );
        // An untrusted peer's header is ignored.
        assert_eq!(lb.client(ip("8.8.8.8"), Some("1.2.3.4")), ip("8.8.8.8"));
        // No header, or garbage: the proxy itself.
        assert_eq!(lb.client(ip("10.0.0.5"), None), ip("10.0.0.5"));
        assert_eq!(lb.client(ip("::1"), Some("junk")), ip("::1"));
        assert_eq!(
            lb.client(ip("::ffff:10.1.2.3"), Some("1.2.3.4")),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn parses_addresses_and_blocks() {
        assert!("127.0.0.1".parse::<IpNet>().is_ok());
        assert!("fd00::/8".parse::<IpNet>().is_ok());
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("proxy.local".parse::<IpNet>().is_err());
        let all: IpNet = "0.0.0.0/0".parse().unwrap_or(IpNet {
            addr: ip("1.1.1.1"),
            prefix: 32,
        });
        assert!(all.contains(ip("9.9.9.9")));
    }
}
