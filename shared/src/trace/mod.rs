//! W3C trace context and OpenTelemetry traces. The gateway makes sure every request has a
//! `traceparent`, services keep it for the duration of the request, events carry it
//! (`CloudEvent.traceparent`), and consumers restore it while they handle an event, so one trace
//! id follows a change from the HTTP call through every event it causes.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set ([`export`]), the same context is made of real spans,
//! exported over OTLP: each service's server spans, its SQL statements, the relay's publishes,
//! each consumer's processing, a worker's run and its report, a notification's send. Without it,
//! no span is made and the context is only passed on.
//!
//! # Layout
//! - [`context`]: the context of the work in progress ([`current`], [`scope`]).
//! - [`middleware`](mod@middleware): the HTTP middleware that starts it, a server span.
//! - [`span`]: a span in progress, made current for the work it covers.
//! - [`export`]: the OTLP exporter, configured by the standard `OTEL_*` variables.
//! - [`sql`]: one span per SQL statement, from sqlx's own statement events.
//! - [`logs`]: `trace_id` and `span_id` on every JSON log line.

pub mod context;
pub mod export;
pub mod logs;
pub mod middleware;
pub mod span;
pub mod sql;

pub use context::{current, generate, is_valid, scope, HEADER};
pub use middleware::middleware;
pub use opentelemetry::KeyValue;
pub use span::{Kind, Span};
