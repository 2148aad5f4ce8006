//! Traces over OTLP, at a real receiver (tests/otlp/receiver.py, built on the collector's own
//! protocol definitions): this test process runs every service (as `taskmesh up` does) exporting
//! over HTTP, and a worker process of its own exports over gRPC, both configured by the standard
//! `OTEL_*` variables only.

mod common;

use std::process::Stdio;

use serde_json::{json, Value};
use shared::testkit::eventually;
use tokio::io::AsyncBufReadExt;

use common::jobs::{job_config, Effects, WorkerProcess};
use common::{venv_python, App, WAIT};

/// The receiver, listening for OTLP over HTTP and gRPC; stops when dropped.
struct Receiver {
    _child: tokio::process::Child,
    http: u16,
    grpc: u16,
}

impl Receiver {
    async fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/otlp/receiver.py");
        let mut child = tokio::process::Command::new(venv_python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the receiver starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("the receiver listens in time")
            .unwrap()
            .expect("a line");
        let port = |name: &str| -> u16 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("{name} port in {line:?}"))
        };
        Self {
            http: port("http"),
            grpc: port("grpc"),
            _child: child,
        }
    }

    async fn spans(&self) -> Vec<Value> {
        reqwest::get(format!("http://127.0.0.1:{}/spans", self.http))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Whether `span` is in trace `trace` or linked to it.
fn touches(span: &Value, trace: &str) -> bool {
    span["trace_id"] == trace
        || span["links"]
            .as_array()
            .is_some_and(|links| links.iter().any(|l| l["trace_id"] == trace))
}

/// Whether `span` is task-svc's processing of job reports of trace `trace` (or linked to it).
fn processes_reports_of(span: &Value, trace: &str) -> bool {
    span["service"] == "task-svc"
        && span["kind"] == "consumer"
        && span["name"]
            .as_str()
            .is_some_and(|n| n.contains("job-reports"))
        && touches(span, trace)
}

fn find(spans: &[Value], what: impl Fn(&Value) -> bool) -> Option<&Value> {
    spans.iter().find(|s| what(s))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_created_through_the_gateway_is_one_trace_across_services_broker_and_worker() {
    let receiver = Receiver::start().await;
    // This process's services export over HTTP, as any service does with these variables.
    std::env::set_var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{}", receiver.http),
    );
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    let quiet = shared::config::LogConfig {
        filter: "warn".into(),
        ..Default::default()
    };
    shared::telemetry::init(&quiet).unwrap();
    let app = App::start_with(job_config).await;
    let effects = Effects::start(&app).await;
    let grpc = format!("http://127.0.0.1:{}", receiver.grpc);
    let _worker = WorkerProcess::start(
        &app,
        "traced",
        &["bulk"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &grpc),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let ada = app.sign_up("ada@example.com").await;

    // The caller's own trace: everything the request causes belongs to it, or links to it.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let created = app
        .http
        .post(format!("{}/api/v1/tasks", app.api))
        .bearer_auth(&ada)
        .header("traceparent", format!("00-{trace}-{caller}-01"))
        .json(&json!({"title": "Traced", "job": {"kind": "http", "pool": "bulk", "payload": effects.job("")}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let task: Value = created.json().await.unwrap();
    let id = task["id"].as_str().unwrap().to_string();
    app.wait_status(&ada, &id, "completed").await;

    let spans = eventually("the spans of every part", WAIT, || async {
        let spans = receiver.spans().await;
        let worker_done = spans.iter().any(|s| {
            s["service"] == "worker"
                && s["trace_id"] == trace
                && s["attributes"]["messaging.operation.type"] == "send"
        });
        let notified = spans
            .iter()
            .any(|s| s["service"] == "notify-svc" && s["kind"] == "consumer" && touches(s, trace));
        let reported = spans.iter().any(|s| processes_reports_of(s, trace));
        (worker_done && notified && reported).then_some(spans)
    })
    .await;
    let in_trace: Vec<Value> = spans
        .iter()
        .filter(|s| s["trace_id"] == trace)
        .cloned()
        .collect();
    let names: Vec<String> = in_trace
        .iter()
        .map(|s| format!("{} {}", s["service"], s["name"]))
        .collect();

    // The gateway's server span is the caller's child; task-svc's is the gateway's.
    let gateway = find(&in_trace, |s| {
        s["service"] == "api-gateway" && s["kind"] == "server"
    })
    .unwrap_or_else(|| panic!("a gateway span in {names:?}"));
    assert_eq!(gateway["parent_span_id"], caller);
    assert_eq!(gateway["attributes"]["http.request.method"], "POST");
    assert_eq!(gateway["attributes"]["http.response.status_code"], 201);
    let service = find(&in_trace, |s| {
        s["service"] == "task-svc" && s["name"] == "POST /api/v1/tasks"
    })
    .unwrap_or_else(|| panic!("task-svc's server span in {names:?}"));
    assert_eq!(service["parent_span_id"], gateway["span_id"]);
    assert_eq!(service["attributes"]["http.route"], "/api/v1/tasks");

    // Its SQL: the statement's kind and table, never its values.
    let outbox = find(&in_trace, |s| {
        s["service"] == "task-svc" && s["name"] == "INSERT outbox"
    })
    .unwrap_or_else(|| panic!("the outbox row's span in {names:?}"));
    assert_eq!(outbox["attributes"]["db.system.name"], "postgresql");
    assert_eq!(outbox["attributes"]["db.operation.name"], "INSERT");
    // Written in the creation's transaction (a group's, when requests arrive together).
    let creation = find(&in_trace, |s| {
        s["service"] == "task-svc" && s["name"] == "create task"
    })
    .unwrap_or_else(|| panic!("the creation's span in {names:?}"));
    assert_eq!(creation["parent_span_id"], service["span_id"]);
    assert_eq!(outbox["parent_span_id"], creation["span_id"]);
    assert!(
        in_trace
            .iter()
            .filter(|s| s["attributes"]["db.system.name"] == "postgresql")
            .all(|s| s["attributes"].get("db.query.text").is_none()),
        "no statement text"
    );

    // The relay's publish, as the messaging conventions name it.
    let exchange = format!("{}.events", app.env.config.amqp.namespace);
    let send = find(&in_trace, |s| {
        s["service"] == "task-svc" && s["name"] == format!("send {exchange}").as_str()
    })
    .unwrap_or_else(|| panic!("the relay's send in {names:?}"));
    assert_eq!(send["kind"], "producer");
    assert_eq!(send["attributes"]["messaging.system"], "rabbitmq");
    assert_eq!(send["attributes"]["messaging.operation.type"], "send");
    assert_eq!(send["attributes"]["messaging.destination.name"], exchange);
    assert!(send["attributes"]["messaging.message.id"].is_string());

    // The worker (its own process, over gRPC): the dispatch's processing, the run inside it, and
    // its report's send after it.
    let queue = format!("{}.jobs.bulk", app.env.config.amqp.namespace);
    let processing = find(&in_trace, |s| {
        s["service"] == "worker" && s["name"] == format!("process {queue}").as_str()
    })
    .unwrap_or_else(|| panic!("the worker's processing in {names:?}"));
    assert_eq!(processing["protocol"], "grpc");
    assert_eq!(processing["kind"], "consumer");
    assert_eq!(
        processing["attributes"]["messaging.operation.type"],
        "process"
    );
    assert_eq!(
        processing["attributes"]["messaging.destination.name"],
        queue
    );
    let run = find(&in_trace, |s| {
        s["service"] == "worker" && s["name"] == "run http"
    })
    .unwrap_or_else(|| panic!("the run in {names:?}"));
    assert_eq!(run["parent_span_id"], processing["span_id"]);
    assert_eq!(run["attributes"]["taskmesh.job.outcome"], "succeeded");
    assert_eq!(run["attributes"]["taskmesh.task.id"], id.as_str());
    assert!(find(&in_trace, |s| {
        s["service"] == "worker"
            && s["kind"] == "producer"
            && s["parent_span_id"] == processing["span_id"]
    })
    .is_some());
    // The spans of this process went over HTTP.
    assert_eq!(gateway["protocol"], "http/protobuf");

    // Settling a delivery is a span too.
    assert!(
        spans
            .iter()
            .any(|s| s["attributes"]["messaging.operation.type"] == "settle"),
        "a settle span"
    );
    // A batch of reports starts a trace of its own, linked to each report's.
    let reports =
        find(&spans, |s| processes_reports_of(s, trace)).expect("the reports' processing");
    assert_eq!(reports["attributes"]["messaging.system"], "rabbitmq");
    // Every span names its service, in the resource as OpenTelemetry says.
    for service in [
        "api-gateway",
        "task-svc",
        "worker",
        "notify-svc",
        "user-svc",
    ] {
        assert!(
            spans.iter().any(|s| s["service"] == service),
            "no span of {service}"
        );
    }
}

#[test]
fn a_log_line_inside_a_trace_carries_its_ids() {
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .map_event_format(shared::trace::logs::WithTraceIds)
        .with_writer(lines.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(shared::trace::scope(Some(traceparent.into()), async {
            tracing::info!(answer = 42, "inside");
        }));
        tracing::info!("outside");
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(lines[0]["span_id"], "00f067aa0ba902b7");
    assert_eq!(lines[0]["answer"], 42);
    assert_eq!(lines[0]["message"], "inside");
    assert!(lines[1].get("trace_id").is_none());
}
