//! What operators monitor, on the real platform: the state gauges the alert rules read (jobs per
//! pool and state, workers alive per pool, outbox lag, dependencies ready), label values a
//! client cannot choose, and every metric the alert rules (deploy/monitoring/alerts.yml) and the
//! Grafana dashboards (k8s/components/monitoring/dashboards) name is one the running services
//! expose.

mod common;

use std::collections::BTreeSet;

use common::jobs::job_config;
use common::{App, WAIT};
use serde_json::json;
use shared::testkit::eventually;

/// Every `taskmesh_…` metric name in `text`, a histogram's or summary's series by their name.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("taskmesh_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.insert(base.to_string());
        rest = &tail[end..];
    }
    names
}

/// The value of the series of `name` whose labels contain every one of `labels` (`k="v"`).
fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .find(|line| labels.iter().all(|l| line.contains(l)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_gauges_follow_the_platform_and_every_metric_monitoring_names_is_exposed() {
    let app = App::start_with(job_config).await;
    let admin = app.admin_token().await;
    let ada = app.sign_up("ada@example.com").await;
    // A job that dies at once (the SSRF guard), one that completes, and one queued in a pool no
    // worker serves (an admin's job opens a pool).
    let doomed = json!({"kind": "http", "pool": "inproc", "max_attempts": 1,
        "payload": {"url": "http://169.254.169.254/latest/meta-data"}});
    let dead = app.create_job(&ada, "doomed", doomed).await;
    app.wait_status(&ada, dead["id"].as_str().unwrap(), "dead")
        .await;
    let quick = app
        .create_job(&ada, "quick", json!({"kind": "noop", "pool": "inproc"}))
        .await;
    app.wait_status(&ada, quick["id"].as_str().unwrap(), "completed")
        .await;
    app.create_job(&admin, "orphan", json!({"kind": "noop", "pool": "orphan"}))
        .await;

    let urls = app.service_urls();
    let task_url = urls[2].clone();
    let scrape = |url: String| {
        let http = app.http.clone();
        async move {
            let reply = http.get(format!("{url}/metrics")).send().await.unwrap();
            reply.text().await.unwrap()
        }
    };
    // task-svc's gauges, read every 15 s: the dead job, the queued one, the worker of inproc.
    let task = eventually("the jobs' gauges", WAIT * 2, || async {
        let text = scrape(task_url.clone()).await;
        let dead = value(
            &text,
            "taskmesh_jobs",
            &[r#"pool="inproc""#, r#"state="dead""#],
        );
        let queued = value(
            &text,
            "taskmesh_jobs",
            &[r#"pool="orphan""#, r#"state="queued""#],
        );
        (dead == Some(1.0) && queued == Some(1.0)).then_some(text)
    })
    .await;
    assert!(
        value(&task, "taskmesh_workers_alive", &[r#"pool="inproc""#]).is_some_and(|n| n >= 1.0),
        "{task}"
    );
    assert!(
        value(&task, "taskmesh_workers_alive", &[r#"pool="orphan""#]).unwrap_or(0.0) == 0.0,
        "no worker serves orphan"
    );
    for service in ["task-svc", "user-svc", "notify-svc", "media-svc"] {
        let lag = value(
            &task,
            "taskmesh_outbox_lag_seconds",
            &[&format!(r#"service="{service}""#)],
        );
        assert!(
            lag.is_some_and(|s| (0.0..60.0).contains(&s)),
            "{service}: {lag:?}"
        );
    }
    let up = value(
        &task,
        "taskmesh_dependency_up",
        &[r#"service="task-svc""#, r#"dependency="postgres""#],
    );
    assert_eq!(up, Some(1.0), "{task}");

    // A method of the client's own making is counted as `other`: no label value a client
    // chooses.
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let reply = app
        .http
        .request(brew, format!("{task_url}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 405);
    let text = scrape(task_url.clone()).await;
    assert!(
        !text.contains("BREW"),
        "a client's method became a label value"
    );
    assert!(
        value(
            &text,
            "taskmesh_http_requests_total",
            &[r#"method="other""#]
        )
        .is_some(),
        "{text}"
    );

    // Every metric the alert rules and the dashboards name, exposed by some service.
    let mut exposed = BTreeSet::new();
    for url in urls {
        exposed.extend(names_in(&scrape(url).await));
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut named =
        names_in(&std::fs::read_to_string(root.join("deploy/monitoring/alerts.yml")).unwrap());
    let dashboards = root.join("k8s/components/monitoring/dashboards");
    let mut boards = 0;
    for entry in std::fs::read_dir(dashboards).unwrap() {
        named.extend(names_in(
            &std::fs::read_to_string(entry.unwrap().path()).unwrap(),
        ));
        boards += 1;
    }
    assert_eq!(boards, 2);
    let missing: Vec<&String> = named.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "named by the rules or dashboards, exposed by no service: {missing:?}"
    );
    assert!(named.len() >= 12, "{named:?}");
}
