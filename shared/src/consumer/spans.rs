//! The consumer's spans while traces are exported: each event's processing, a batch's, and
//! the settling of a delivery, as OpenTelemetry's messaging conventions name them.

use super::queue::QueueSpec;
use crate::events::CloudEvent;

/// The span of `event`'s processing from `queue` by `service`: child of `parent` (the event's
/// own context), or a new trace linked to `links` (a batch of events of many traces).
pub(super) fn processing_span(
    service: &str,
    spec: &QueueSpec,
    event: &CloudEvent,
    parent: Option<&str>,
    links: &[&str],
) -> crate::trace::Span {
    // Not even the span's name is made while nothing is exported (once per message).
    if !crate::trace::export::enabled() {
        return crate::trace::Span::none();
    }
    crate::trace::Span::start_from(
        service,
        format!("process {}", spec.name),
        crate::trace::Kind::Consumer,
        parent,
        links,
        || {
            crate::trace::span::messaging(
                "process",
                &spec.name,
                Some(&event.event_type),
                Some(&event.id.to_string()),
            )
        },
    )
}

/// The span of settling a delivery (`ack`, `retry`, `dead_letter`), from `started`.
pub(super) fn settled(
    service: &str,
    queue: &str,
    outcome: &'static str,
    parent: Option<&str>,
    started: std::time::SystemTime,
) {
    if !crate::trace::export::enabled() {
        return;
    }
    crate::trace::Span::record(
        service,
        format!("{outcome} {queue}"),
        crate::trace::Kind::Consumer,
        parent,
        started,
        || {
            let mut attributes = crate::trace::span::messaging("settle", queue, None, None);
            attributes.push(opentelemetry::KeyValue::new(
                "messaging.operation.name",
                outcome,
            ));
            attributes
        },
    );
}

/// The span of a batch's processing: a new trace, linked to the context of each of its events.
pub(super) fn batch_span(
    service: &str,
    spec: &QueueSpec,
    events: &[&CloudEvent],
) -> crate::trace::Span {
    let links: Vec<&str> = events
        .iter()
        .filter_map(|e| e.traceparent.as_deref())
        .collect();
    let first = events[0];
    let mut span = processing_span(service, spec, first, None, &links);
    span.set(opentelemetry::KeyValue::new(
        "messaging.batch.message_count",
        events.len() as i64,
    ));
    span
}
