//! W3C trace context: the gateway makes sure every request has a `traceparent`, services keep it
//! for the duration of the request, events carry it (`CloudEvent.traceparent`), and consumers
//! restore it while they handle an event, so one trace id follows a change from the HTTP call
//! through every event it causes.

use std::future::Future;

use axum::{extract::Request, http::HeaderValue, middleware::Next, response::Response};
use rand::RngCore;

pub const HEADER: &str = "traceparent";

tokio::task_local! {
    static CURRENT: String;
}

/// The trace context of the work in progress, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `work` with `traceparent` as the current trace context.
pub async fn scope<F: Future>(traceparent: Option<String>, work: F) -> F::Output {
    match traceparent.filter(|t| is_valid(t)) {
        Some(t) => CURRENT.scope(t, work).await,
        None => work.await,
    }
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids not all zero.
pub fn is_valid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

/// A new trace context (sampled).
pub fn generate() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("00-{}-{}-01", &hex[..32], &hex[32..])
}

/// Middleware: keeps a valid incoming `traceparent`, or starts a trace, and makes it current.
pub async fn middleware(mut request: Request, next: Next) -> Response {
    let incoming = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid(v))
        .map(str::to_string);
    let traceparent = incoming.unwrap_or_else(generate);
    if let Ok(value) = HeaderValue::from_str(&traceparent) {
        request.headers_mut().insert(HEADER, value);
    }
    scope(Some(traceparent), next.run(request)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_contexts_are_valid_and_garbage_is_not() {
        assert!(is_valid(&generate()));
        assert!(is_valid(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-0000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_scope_is_visible_inside_and_gone_outside() {
        let t = generate();
        let seen = scope(Some(t.clone()), async { current() }).await;
        assert_eq!(seen, Some(t));
        assert_eq!(current(), None);
    }
}
