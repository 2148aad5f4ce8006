//! The client's address, for per-address limits: the connection's peer or, behind
//! `rate_limit.trusted_proxies` proxies, the `X-Forwarded-For` entry the outermost of them wrote.

use std::net::SocketAddr;

use axum::http::HeaderMap;

use crate::AppState;

/// The client's address: the peer, or behind `rate_limit.trusted_proxies` proxies the entry of
/// `X-Forwarded-For` that the outermost of them wrote, counted from the right (what the client
/// wrote itself, further left, is ignored).
pub fn client_ip(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> String {
    forwarded_client(headers, state.config.rate_limit.trusted_proxies)
        .unwrap_or_else(|| peer.ip().to_string())
}

fn forwarded_client(headers: &HeaderMap, trusted_proxies: u32) -> Option<String> {
    let hops = usize::try_from(trusted_proxies).ok().filter(|n| *n > 0)?;
    // Every X-Forwarded-For line, in order, as one list.
    // A line that is not text still counts its entries (unreadable ones name no client), so a
    // client cannot make the whole header be ignored.
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let value = String::from_utf8_lossy(value.as_bytes());
        entries.extend(value.split(',').map(|e| e.trim().to_string()));
    }
    // Fewer entries than proxies: all of them were written by trusted proxies.
    let index = entries.len().saturating_sub(hops);
    let entry = entries.get(index)?;
    entry
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_client_is_read_from_the_right_past_the_trusted_proxies() {
        let mut headers = HeaderMap::new();
        // The client wrote the first entry; proxy 1 saw 198.51.100.7, proxy 2 saw proxy 1.
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.5, 198.51.100.7"),
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.2"));
        assert_eq!(forwarded_client(&headers, 0), None);
        assert_eq!(forwarded_client(&headers, 1).as_deref(), Some("10.0.0.2"));
        assert_eq!(
            forwarded_client(&headers, 2).as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(
            forwarded_client(&headers, 5).as_deref(),
            Some("203.0.113.5")
        );
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("not an address"),
        );
        assert_eq!(forwarded_client(&headers, 1), None);
        // Bytes that are not text in the client's line do not hide the proxy's entry.
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.5").unwrap(),
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        assert_eq!(
            forwarded_client(&headers, 1).as_deref(),
            Some("198.51.100.7")
        );
    }
}
