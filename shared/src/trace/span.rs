//! A span in progress: made while traces are exported, nothing otherwise (every method is then
//! a no-op and the attributes are never built). It ends when dropped.

use std::borrow::Cow;
use std::future::Future;
use std::time::SystemTime;

use opentelemetry::{
    trace::{
        Link, Span as _, SpanContext, SpanId, Status, TraceContextExt as _, TraceFlags, TraceId,
        TraceState, Tracer as _,
    },
    Context, KeyValue,
};
use opentelemetry_sdk::trace::{SdkTracer, Span as SdkSpan};

pub use opentelemetry::trace::SpanKind as Kind;

/// A span in progress, or nothing while traces are not exported.
pub struct Span {
    live: Option<Live>,
}

struct Live {
    span: SdkSpan,
    tracer: SdkTracer,
    traceparent: String,
}

impl Span {
    /// No span.
    pub fn none() -> Self {
        Self { live: None }
    }

    /// A span of `service`, child of `parent` (a new trace without one), linked to `links`.
    pub fn start_from(
        service: &str,
        name: impl Into<Cow<'static, str>>,
        kind: Kind,
        parent: Option<&str>,
        links: &[&str],
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Self {
        match super::export::tracer(service) {
            Some(tracer) => Self::make(tracer, name, kind, parent, links, attributes, None),
            None => Self::none(),
        }
    }

    /// A span of the service whose span is in progress, child of it, started at `start` (now
    /// without one); none outside a span.
    pub fn child(
        name: impl Into<Cow<'static, str>>,
        kind: Kind,
        start: Option<SystemTime>,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Self {
        match super::context::current_tracer() {
            Some(tracer) => {
                let parent = super::context::current();
                Self::make(
                    tracer,
                    name,
                    kind,
                    parent.as_deref(),
                    &[],
                    attributes,
                    start,
                )
            }
            None => Self::none(),
        }
    }

    /// A span of `service` that began at `start` and ends now (the work is done), child of
    /// `parent`.
    pub fn record(
        service: &str,
        name: impl Into<Cow<'static, str>>,
        kind: Kind,
        parent: Option<&str>,
        start: SystemTime,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) {
        if let Some(tracer) = super::export::tracer(service) {
            Self::make(tracer, name, kind, parent, &[], attributes, Some(start));
        }
    }

    fn make(
        tracer: SdkTracer,
        name: impl Into<Cow<'static, str>>,
        kind: Kind,
        parent: Option<&str>,
        links: &[&str],
        attributes: impl FnOnce() -> Vec<KeyValue>,
        start: Option<SystemTime>,
    ) -> Self {
        let parent = match parent.and_then(span_context) {
            Some(context) => Context::new().with_remote_span_context(context),
            None => Context::new(),
        };
        let mut builder = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes());
        if !links.is_empty() {
            let links = links
                .iter()
                .filter_map(|l| span_context(l))
                .map(Link::with_context)
                .collect();
            builder = builder.with_links(links);
        }
        if let Some(start) = start {
            builder = builder.with_start_time(start);
        }
        let span = builder.start_with_context(&tracer, &parent);
        let traceparent = traceparent(span.span_context());
        Self {
            live: Some(Live {
                span,
                tracer,
                traceparent,
            }),
        }
    }

    /// This span's context as a `traceparent`, to pass on.
    pub fn traceparent(&self) -> Option<&str> {
        self.live.as_ref().map(|l| l.traceparent.as_str())
    }

    pub(super) fn tracer(&self) -> Option<SdkTracer> {
        self.live.as_ref().map(|l| l.tracer.clone())
    }

    /// Whether attributes set now are kept (a span made and sampled).
    pub fn is_recording(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.span.is_recording())
    }

    pub fn set(&mut self, attribute: KeyValue) {
        if let Some(live) = &mut self.live {
            live.span.set_attribute(attribute);
        }
    }

    /// Marks the span failed with `description`.
    pub fn error(&mut self, description: impl Into<Cow<'static, str>>) {
        if let Some(live) = &mut self.live {
            live.span.set_status(Status::error(description));
        }
    }

    /// Ends the span at `end`.
    pub fn end_at(mut self, end: SystemTime) {
        if let Some(live) = &mut self.live {
            live.span.end_with_timestamp(end);
        }
    }

    /// Runs `work` with this span current: its spans are this one's children, and the events
    /// it makes carry this span's context.
    pub async fn enter<F: Future>(&self, work: F) -> F::Output {
        match &self.live {
            Some(live) => {
                super::context::scope_with(live.traceparent.clone(), live.tracer.clone(), work)
                    .await
            }
            None => work.await,
        }
    }
}

/// Runs `work`, a call to something outside, as a client span `name` of the service whose span
/// is in progress (no span outside one), marked failed when it fails.
pub async fn call<T, E: std::fmt::Display>(
    name: &'static str,
    attributes: impl FnOnce() -> Vec<KeyValue>,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let mut span = Span::child(name, Kind::Client, None, attributes);
    let outcome = span.enter(work).await;
    if let Err(err) = &outcome {
        span.error(err.to_string());
    }
    outcome
}

/// The span context a `traceparent` (from another process) names (see
/// [`super::context::is_valid`]).
fn span_context(traceparent: &str) -> Option<SpanContext> {
    if !super::context::is_valid(traceparent) {
        return None;
    }
    let trace_id = TraceId::from_hex(&traceparent[3..35]).ok()?;
    let span_id = SpanId::from_hex(&traceparent[36..52]).ok()?;
    let flags = u8::from_str_radix(&traceparent[53..55], 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// `context` as a `traceparent`.
fn traceparent(context: &SpanContext) -> String {
    format!(
        "00-{:032x}-{:016x}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// The attributes of a span over the broker, as OpenTelemetry's messaging conventions name
/// them: `operation` is `send`, `process` or `settle`, `destination` the exchange (sending) or
/// the queue (processing).
pub fn messaging(
    operation: &'static str,
    destination: &str,
    routing_key: Option<&str>,
    message_id: Option<&str>,
) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("messaging.system", "rabbitmq"),
        KeyValue::new("messaging.operation.type", operation),
        KeyValue::new("messaging.destination.name", destination.to_string()),
    ];
    attributes.extend(routing_key.map(|key| {
        KeyValue::new(
            "messaging.rabbitmq.destination.routing_key",
            key.to_string(),
        )
    }));
    attributes.extend(message_id.map(|id| KeyValue::new("messaging.message.id", id.to_string())));
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_reads_back_as_itself() {
        let t = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = span_context(t).expect("valid");
        assert!(context.is_sampled());
        assert_eq!(traceparent(&context), t);
        assert!(span_context("00-4bf9-00f0-01").is_none());
    }

    #[tokio::test]
    async fn without_export_a_span_is_nothing_and_the_context_stays() {
        let t = super::super::context::generate();
        let seen = super::super::context::scope(Some(t.clone()), async {
            let span = Span::start_from("task-svc", "work", Kind::Internal, None, &[], || {
                panic!("attributes are not built while nothing is exported")
            });
            assert!(span.traceparent().is_none());
            span.enter(async { super::super::context::current() }).await
        })
        .await;
        assert_eq!(seen, Some(t));
    }
}
