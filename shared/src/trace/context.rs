//! The trace context of the work in progress: a task-local `traceparent` and, while traces are
//! exported, the tracer of the service doing the work.

use std::future::Future;

use opentelemetry_sdk::trace::SdkTracer;
use rand::RngCore;

pub const HEADER: &str = "traceparent";

/// The trace context of the work in progress, and the tracer of the service doing it while
/// traces are exported.
#[derive(Clone)]
struct Scope {
    traceparent: String,
    tracer: Option<SdkTracer>,
}

tokio::task_local! {
    static CURRENT: Scope;
}

/// The trace context of the work in progress, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|scope| scope.traceparent.clone()).ok()
}

/// The tracer of the span in progress, if traces are exported and a span is in progress.
pub(super) fn current_tracer() -> Option<SdkTracer> {
    CURRENT
        .try_with(|scope| scope.tracer.clone())
        .ok()
        .flatten()
}

/// The trace id and span id of the work in progress (hex), for a log line.
pub(super) fn current_ids<R>(with: impl FnOnce(&str, &str) -> R) -> Option<R> {
    CURRENT
        .try_with(|scope| {
            let t = &scope.traceparent;
            // Valid by construction: `00-<32>-<16>-<2>`.
            with(&t[3..35], &t[36..52])
        })
        .ok()
}

/// Runs `work` with `traceparent` as the current trace context (the span in progress, if any,
/// stays the parent of the spans `work` makes in this service).
pub async fn scope<F: Future>(traceparent: Option<String>, work: F) -> F::Output {
    match traceparent.filter(|t| is_valid(t)) {
        Some(traceparent) => {
            let tracer = current_tracer();
            CURRENT
                .scope(
                    Scope {
                        traceparent,
                        tracer,
                    },
                    work,
                )
                .await
        }
        None => work.await,
    }
}

/// Runs `work` with `traceparent` current and `tracer` making its spans.
pub(super) async fn scope_with<F: Future>(
    traceparent: String,
    tracer: SdkTracer,
    work: F,
) -> F::Output {
    let scope = Scope {
        traceparent,
        tracer: Some(tracer),
    };
    CURRENT.scope(scope, work).await
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
