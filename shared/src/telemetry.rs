//! Logging and metrics set-up shared by every binary.
//!
//! Logs are JSON lines when stdout is not a terminal (containers, CI) and human-readable in one;
//! `RUST_LOG` overrides the configured filter; inside a trace, a JSON line carries `trace_id`
//! and `span_id`. Metrics go to one Prometheus recorder per process,
//! rendered by each service's `/metrics`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::{LogConfig, LogFormat};

/// Installs the global tracing subscriber and, when the `OTEL_*` variables ask for it, the trace
/// exporter ([`crate::trace::export`]). Safe to call more than once (later calls are no-ops);
/// fails only on an `OTEL_*` value it cannot use.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let exporting = crate::trace::export::Settings::from_env(|name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!(e))?;
    crate::trace::export::start(exporting);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    // lapin logs every message the broker returns (an event no queue is bound for) at warn, with
    // its whole body. The publisher reports those itself (counted, marked in the outbox), so
    // the log line is noise: keep lapin's returns quiet whatever else the filter says.
    let filter = filter.add_directive(
        "lapin::returned_messages=error"
            .parse()
            .expect("a valid directive"),
    );
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let logs = match json {
        true => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .map_event_format(crate::trace::logs::WithTraceIds)
            .boxed(),
        false => fmt::layer().compact().boxed(),
    };
    // SQL statements become spans only while spans are exported: sqlx's statement events are
    // then wanted (at debug) by that layer alone, whatever the log filter says.
    let sql = crate::trace::export::enabled().then(|| {
        crate::trace::sql::SqlSpans.with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(crate::trace::sql::TARGET, tracing::Level::DEBUG),
        )
    });
    let result = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(sql)
        .try_init();
    // A second call (tests, the all-in-one launcher) keeps the first subscriber.
    let _ = result;
    Ok(())
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first, in which case ours stays unused
        // but `/metrics` still answers.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
