//! The extractors whose rejections are JSON errors (the services share them:
//! [`confab_service_kit::extract`]; a rejection becomes an [`crate::ApiError`]), and the client
//! address used for throttling.

use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

pub use confab_service_kit::extract::{ApiForm, ApiJson, ApiPath, ApiQuery};

/// The client's address as used for throttling: the peer's IP, or the configured proxy header.
/// IPv6 addresses are reduced to their /64 network, the block a single host usually controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The throttling key: the IP (IPv6: its /64), or `unknown` without connection info.
    pub fn key(&self) -> String {
        match self.0 {
            Some(IpAddr::V4(ip)) => ip.to_string(),
            Some(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let network = u128::from(ip) & !((1u128 << 64) - 1);
                    format!("{}/64", Ipv6Addr::from(network))
                }
            },
            None => "unknown".to_owned(),
        }
    }
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(header) = state.client_address_header() {
            // Only the last entry was written by our proxy; earlier ones come from the client.
            let forwarded = parts
                .headers
                .get_all(header)
                .iter()
                .next_back()
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.rsplit(',').next())
                .and_then(|last| last.trim().parse::<IpAddr>().ok());
            if forwarded.is_some() {
                return Ok(ClientAddr(forwarded));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientAddr(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_grouped_by_their_64_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(ClientAddr(Some(a)).key(), ClientAddr(Some(b)).key());
        assert_ne!(ClientAddr(Some(a)).key(), ClientAddr(Some(c)).key());
        assert_eq!(ClientAddr(Some(a)).key(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert_eq!(ClientAddr(Some(mapped)).key(), "10.1.2.3");
        assert_eq!(ClientAddr(None).key(), "unknown");
    }
}
