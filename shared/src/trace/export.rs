//! Exporting spans over OTLP, configured by the standard variables:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns it on;
//! `OTEL_EXPORTER_OTLP_PROTOCOL` is `http/protobuf` (the default) or `grpc`; `OTEL_TRACES_SAMPLER`
//! and `OTEL_TRACES_SAMPLER_ARG` choose what is kept; `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES` describe the process (each service is named after itself unless
//! they name it); `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_TIMEOUT` go to the exporter;
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off.
//!
//! Ending a span never waits: it joins a bounded queue (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048) that
//! one thread of its own drains, in batches of `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512) at most
//! `OTEL_BSP_SCHEDULE_DELAY` ms (5000) apart. A span that finds the queue full, or whose batch the
//! collector does not take, is dropped and counted in `taskmesh_trace_spans_dropped_total`
//! (`reason`: `queue_full`, `export_failed`); those exported in `taskmesh_trace_spans_exported_total`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use opentelemetry::{trace::TracerProvider as _, Context, KeyValue};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor},
    Resource,
};
use tokio::sync::{mpsc, oneshot};

/// How spans leave: the settings read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub grpc: bool,
    pub queue: usize,
    pub batch: usize,
    pub delay: Duration,
}

impl Settings {
    /// The settings `var` gives (`std::env::var` in a process), or `None` when nothing is to be
    /// exported; an error names a variable with a value it cannot use.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match var("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => {
                return Err(format!(
                    "OTEL_TRACES_EXPORTER={other}: only otlp (or none) is supported"
                ))
            }
        }
        if var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .is_none()
        {
            return Ok(None);
        }
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|| "http/protobuf".into());
        let grpc = match protocol.as_str() {
            "http/protobuf" => false,
            "grpc" => true,
            other => {
                return Err(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={other}: use http/protobuf or grpc"
                ))
            }
        };
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name}={v}: a positive whole number")),
            }
        };
        let queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)? as usize;
        let batch = (number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)? as usize).min(queue);
        let delay = Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000)?);
        Ok(Some(Self {
            grpc,
            queue,
            batch,
            delay,
        }))
    }
}

enum Item {
    Span(Arc<str>, Box<SpanData>),
    Flush(oneshot::Sender<()>),
}

struct Exporting {
    queue: mpsc::Sender<Item>,
    /// One provider per service, so that each is its own `service.name` in `taskmesh up`.
    providers: RwLock<HashMap<String, SdkTracer>>,
}

static EXPORTING: OnceLock<Option<Exporting>> = OnceLock::new();

/// Starts exporting as `settings` say (once per process; later calls keep the first).
pub fn start(settings: Option<Settings>) {
    EXPORTING.get_or_init(|| {
        let settings = settings?;
        let (queue, receiver) = mpsc::channel(settings.queue);
        let spawned = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the exporter");
                runtime.block_on(export_loop(receiver, settings));
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start the trace exporter; no trace is exported");
            return None;
        }
        Some(Exporting {
            queue,
            providers: RwLock::default(),
        })
    });
}

/// Whether spans are made and exported in this process.
pub fn enabled() -> bool {
    matches!(EXPORTING.get(), Some(Some(_)))
}

/// The tracer of `service`, while spans are exported.
pub(super) fn tracer(service: &str) -> Option<SdkTracer> {
    let exporting = EXPORTING.get()?.as_ref()?;
    if let Some(tracer) = exporting
        .providers
        .read()
        .expect("never poisoned")
        .get(service)
    {
        return Some(tracer.clone());
    }
    let mut providers = exporting.providers.write().expect("never poisoned");
    let tracer = providers.entry(service.to_string()).or_insert_with(|| {
        SdkTracerProvider::builder()
            .with_span_processor(Queue {
                service: service.into(),
                queue: exporting.queue.clone(),
            })
            .with_resource(resource(service))
            .build()
            .tracer("taskmesh")
    });
    Some(tracer.clone())
}

/// Exports what is queued, waiting at most `timeout` (before a process exits).
pub async fn flush(timeout: Duration) {
    let Some(Some(exporting)) = EXPORTING.get() else {
        return;
    };
    let (done, exported) = oneshot::channel();
    let _ = tokio::time::timeout(timeout, async {
        if exporting.queue.send(Item::Flush(done)).await.is_ok() {
            let _ = exported.await;
        }
    })
    .await;
}

/// `service.name` is the service's own unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
/// name it; the rest of `OTEL_RESOURCE_ATTRIBUTES` is added.
fn resource(service: &str) -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| {
            v.split(',')
                .any(|kv| kv.trim().starts_with("service.name="))
        });
    let builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    match named {
        true => builder.build(),
        false => builder.with_service_name(service.to_string()).build(),
    }
}

/// The processor of every provider: ends a sampled span into the queue without waiting.
#[derive(Debug)]
struct Queue {
    service: Arc<str>,
    queue: mpsc::Sender<Item>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Item")
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self
            .queue
            .try_send(Item::Span(self.service.clone(), Box::new(span)))
            .is_err()
        {
            metrics::counter!("taskmesh_trace_spans_dropped_total", "reason" => "queue_full")
                .increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Drains the queue: a batch goes when it is full or `delay` after its first span, each
/// service's spans to its own exporter (made on first use, as the protocol says).
async fn export_loop(mut receiver: mpsc::Receiver<Item>, settings: Settings) {
    let mut exporters: HashMap<Arc<str>, opentelemetry_otlp::SpanExporter> = HashMap::new();
    let mut complained = None::<Instant>;
    while let Some(first) = receiver.recv().await {
        let mut spans = Vec::new();
        let mut flushed = Vec::new();
        let deadline = tokio::time::Instant::now() + settings.delay;
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Item::Span(service, span) => spans.push((service, *span)),
                Item::Flush(done) => {
                    flushed.push(done);
                    break;
                }
            }
            if spans.len() >= settings.batch {
                break;
            }
            next = tokio::time::timeout_at(deadline, receiver.recv())
                .await
                .ok()
                .flatten();
        }
        let mut by_service: HashMap<Arc<str>, Vec<SpanData>> = HashMap::new();
        for (service, span) in spans {
            by_service.entry(service).or_default().push(span);
        }
        for (service, batch) in by_service {
            let count = batch.len() as u64;
            let outcome = match exporters.get(&service) {
                Some(exporter) => exporter.export(batch).await.map_err(|e| e.to_string()),
                None => match exporter(&settings, &service) {
                    Ok(exporter) => exporters
                        .entry(service.clone())
                        .or_insert(exporter)
                        .export(batch)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(err) => Err(err),
                },
            };
            match outcome {
                Ok(()) => metrics::counter!("taskmesh_trace_spans_exported_total").increment(count),
                Err(err) => {
                    metrics::counter!("taskmesh_trace_spans_dropped_total", "reason" => "export_failed")
                        .increment(count);
                    // Once a minute at most: a collector that is away fails every batch.
                    if complained.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        complained = Some(Instant::now());
                        tracing::warn!(%service, spans = count, error = %err, "the trace collector did not take a batch; its spans are dropped");
                    }
                }
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

fn exporter(
    settings: &Settings,
    service: &str,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::WithHttpConfig as _;
    let mut exporter = match settings.grpc {
        true => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build(),
        false => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(Http(reqwest::Client::new()))
            .build(),
    }
    .map_err(|e| e.to_string())?;
    exporter.set_resource(&resource(service));
    Ok(exporter)
}

/// OTLP over HTTP through the reqwest every service already has.
#[derive(Debug)]
struct Http(reqwest::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Http {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let mut answer = http::Response::builder().status(response.status());
        if let Some(headers) = answer.headers_mut() {
            *headers = response.headers().clone();
        }
        Ok(answer.body(response.bytes().await?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<Settings>, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_env(|name| vars.get(name).cloned())
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting_or_growing() {
        use opentelemetry::trace::{Span as _, Tracer as _};
        let metrics = crate::telemetry::metrics();
        let (queue, mut receiver) = mpsc::channel(1);
        let tracer = SdkTracerProvider::builder()
            .with_span_processor(Queue {
                service: "test".into(),
                queue,
            })
            .build()
            .tracer("test");
        // Nothing drains the queue (a collector that is away): the first span waits in it, the
        // next two are dropped at once.
        for _ in 0..3 {
            tracer.start("work").end();
        }
        assert!(matches!(receiver.try_recv(), Ok(Item::Span(..))));
        assert!(receiver.try_recv().is_err());
        let text = metrics.render();
        assert!(
            text.contains("taskmesh_trace_spans_dropped_total{reason=\"queue_full\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint_and_bad_values_are_named() {
        assert_eq!(settings(&[]), Ok(None));
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        let on = settings(&[endpoint]).unwrap().expect("on");
        assert!(!on.grpc);
        assert_eq!((on.queue, on.batch), (2048, 512));
        assert_eq!(on.delay, Duration::from_secs(5));
        assert_eq!(
            settings(&[endpoint, ("OTEL_SDK_DISABLED", "true")]),
            Ok(None)
        );
        assert_eq!(
            settings(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]),
            Ok(None)
        );
        let grpc = settings(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap();
        assert!(grpc.expect("on").grpc);
        let err = settings(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        assert!(err.unwrap_err().contains("OTEL_EXPORTER_OTLP_PROTOCOL"));
        let err = settings(&[endpoint, ("OTEL_BSP_MAX_QUEUE_SIZE", "lots")]);
        assert!(err.unwrap_err().contains("OTEL_BSP_MAX_QUEUE_SIZE"));
        let small = settings(&[endpoint, ("OTEL_BSP_MAX_QUEUE_SIZE", "10")]).unwrap();
        assert_eq!(small.expect("on").batch, 10);
    }
}
