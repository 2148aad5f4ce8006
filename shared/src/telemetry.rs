//! Logging and metrics set-up shared by every binary.
//!
//! Logs are JSON lines when stdout is not a terminal (containers, CI) and human-readable in one;
//! `RUST_LOG` overrides the configured filter. Metrics go to one Prometheus recorder per process,
//! rendered by each service's `/metrics`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::{LogConfig, LogFormat};

/// Installs the global tracing subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(config: &LogConfig) {
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
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().compact()).try_init()
    };
    // A second call (tests, the all-in-one launcher) keeps the first subscriber.
    let _ = result;
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
