//! The faults, how one is run, and the report.
//!
//! One deployment serves the whole run; each fault gets its own load (its requests are tagged
//! with its name) and its own check. A fault runs as: load for `before`; fault on; held for
//! `hold`; healed (the process restarted, the dependency started, the proxy clean again): the
//! *fault's end*; load for `after`; load stopped; every service ready again; every job settled;
//! counted.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;

use crate::check::{self, Figures};
use crate::infra::{self, Infra};
use crate::receiver::Receiver;
use crate::stack::{proxy_pairs, Dep, Stack};
use crate::workload::{Client, Load};

/// One fault.
#[derive(Clone, Debug)]
pub enum Fault {
    /// No fault: the figures every other row is read against.
    Baseline,
    /// `kill -9` of a process, started again after the hold.
    Kill9(&'static str),
    /// `rabbitmqctl stop_app`, `start_app` after the hold.
    RabbitmqStopStart,
    /// `pg_ctl stop -m immediate`, started after the hold.
    PostgresRestart,
    /// PostgreSQL down for this long, past the event consumers' default retry budget
    /// (deliveries after 1, 2, 4 and 8 s: 15 s); not in `--quick` unless named.
    PostgresOutage(u64),
    /// Redis killed, started (empty) after the hold.
    RedisRestart,
    /// Every chunk between the service and the dependency delayed.
    Latency(&'static str, Dep),
    /// Every connection between the service and the dependency reset, again and again.
    Resets(&'static str, Dep),
}

impl Fault {
    pub fn name(&self) -> String {
        match self {
            Fault::Baseline => "baseline".into(),
            Fault::Kill9(p) => format!("kill9:{}", p.trim_end_matches("-a")),
            Fault::RabbitmqStopStart => "rabbitmq:stop-start".into(),
            Fault::PostgresRestart => "postgres:restart".into(),
            Fault::PostgresOutage(secs) => format!("postgres:down-{secs}s"),
            Fault::RedisRestart => "redis:restart".into(),
            Fault::Latency(s, d) => format!("latency:{s}->{}", d.name()),
            Fault::Resets(s, d) => format!("resets:{s}->{}", d.name()),
        }
    }
}

/// Every fault, in the order they run.
pub fn all() -> Vec<Fault> {
    let mut faults = vec![
        Fault::Baseline,
        Fault::Kill9("worker-a"),
        Fault::Kill9("task-svc"),
        Fault::Kill9("notify-svc"),
        Fault::Kill9("api-gateway"),
        Fault::RabbitmqStopStart,
        Fault::PostgresRestart,
        Fault::PostgresOutage(30),
        Fault::RedisRestart,
    ];
    for (service, dep) in proxy_pairs() {
        faults.push(Fault::Latency(service, dep));
    }
    for (service, dep) in proxy_pairs() {
        faults.push(Fault::Resets(service, dep));
    }
    faults
}

/// The faults whose name contains one of `only` (all when empty), the baseline first; the
/// long outage only in a full run or when named.
pub fn selected(only: &[String], quick: bool) -> Vec<Fault> {
    all()
        .into_iter()
        .filter(|f| {
            let named = only.iter().any(|o| f.name().contains(o.as_str()));
            match f {
                Fault::Baseline => true,
                Fault::PostgresOutage(_) if quick => named,
                _ => only.is_empty() || named,
            }
        })
        .collect()
}

/// How hard and how long.
#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: &'static str,
    /// Requests a second.
    pub rate: u32,
    pub before: Duration,
    pub hold: Duration,
    pub after: Duration,
    /// Added to every chunk in the latency faults.
    pub latency: Duration,
    /// How often connections are reset in the resets faults.
    pub reset_every: Duration,
    /// How long jobs may take to settle after a fault.
    pub settle: Duration,
}

impl Settings {
    pub fn quick() -> Self {
        Self {
            mode: "--quick",
            rate: 10,
            before: Duration::from_secs(2),
            hold: Duration::from_secs(3),
            after: Duration::from_secs(2),
            latency: Duration::from_millis(100),
            reset_every: Duration::from_millis(500),
            settle: Duration::from_secs(60),
        }
    }

    pub fn full() -> Self {
        Self {
            mode: "full",
            rate: 25,
            before: Duration::from_secs(5),
            hold: Duration::from_secs(15),
            after: Duration::from_secs(5),
            latency: Duration::from_millis(250),
            reset_every: Duration::from_millis(500),
            settle: Duration::from_secs(180),
        }
    }
}

/// One row of the table.
pub struct Row {
    pub fault: String,
    pub figures: Figures,
}

pub struct Report {
    pub settings: Settings,
    pub rows: Vec<Row>,
    /// Found only at the end: late duplicates and calls nobody asked for.
    pub late_duplicated: usize,
    pub late_unexpected: usize,
    pub took: Duration,
}

fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1}s", d.as_secs_f64()))
        .unwrap_or_else(|| "never".into())
}

impl Report {
    pub fn passed(&self) -> bool {
        self.late_duplicated == 0
            && self.late_unexpected == 0
            && self.rows.iter().all(|r| {
                r.figures.lost == 0
                    && r.figures.stuck == 0
                    && r.figures.duplicated == 0
                    && r.figures.unexpected == 0
                    && r.figures.settled
            })
    }

    pub fn table(&self) -> String {
        let s = &self.settings;
        let mut out = format!(
            "Fault suite ({}): {} requests/s (4 of 5 `http` jobs, 1 a person's task), load {}s before the fault, fault held {}s, load {}s after; run took {:.0}s.\n\n",
            s.mode,
            s.rate,
            s.before.as_secs(),
            s.hold.as_secs(),
            s.after.as_secs(),
            self.took.as_secs_f64()
        );
        out.push_str("| fault | requests ok / failed / unknown (done) | effects | reruns | lost | stuck | duplicated | unexpected | recovery: API / backlog |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for row in &self.rows {
            let f = &row.figures;
            out.push_str(&format!(
                "| {}{} | {} / {} / {} ({}) | {} | {} | {} | {} | {} | {} | {} / {} |\n",
                row.fault,
                if f.settled { "" } else { " (did not settle)" },
                f.ok,
                f.failed,
                f.unknown,
                f.unknown_done,
                f.effects,
                f.reruns,
                f.lost,
                f.stuck,
                f.duplicated,
                f.unexpected,
                secs(f.api_recovery),
                secs(f.backlog_recovery),
            ));
        }
        out.push_str(&format!(
            "\nAfter the last fault: {} late duplicated call(s), {} call(s) for requests nobody made.\n",
            self.late_duplicated, self.late_unexpected
        ));
        out
    }
}

/// Starts everything in a temporary directory, runs `faults` one after the other, stops
/// everything (also on Ctrl-C) and returns the report.
pub async fn run(
    taskmesh: &Path,
    faults: &[Fault],
    settings: &Settings,
    keep: bool,
) -> anyhow::Result<Report> {
    let dir = std::env::temp_dir().join(format!("taskmesh-faults-{}", std::process::id()));
    eprintln!("faults: working in {}", dir.display());
    let started = Instant::now();
    let mut infra = Infra::start(&dir).await?;
    eprintln!(
        "faults: private PostgreSQL :{}, Redis :{}, RabbitMQ :{} up after {:.1}s",
        infra::PG_PORT,
        infra::REDIS_PORT,
        infra::AMQP_PORT,
        started.elapsed().as_secs_f64()
    );
    let mut stack = None;
    let result = tokio::select! {
        result = run_in(taskmesh, &dir, &mut infra, &mut stack, faults, settings) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Some(stack) = stack {
        stack.stop().await;
    }
    infra.stop().await;
    let report = result.map(|(rows, late_duplicated, late_unexpected)| Report {
        settings: settings.clone(),
        rows,
        late_duplicated,
        late_unexpected,
        took: started.elapsed(),
    });
    if keep || !report.as_ref().is_ok_and(Report::passed) {
        eprintln!("faults: logs and data kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    report
}

async fn run_in(
    taskmesh: &Path,
    dir: &Path,
    infra: &mut Infra,
    slot: &mut Option<Stack>,
    faults: &[Fault],
    settings: &Settings,
) -> anyhow::Result<(Vec<Row>, usize, usize)> {
    let (receiver, receiver_addr) = Receiver::start().await?;
    let t = Instant::now();
    let stack = slot.insert(Stack::start(taskmesh, dir, "127.0.0.1").await?);
    eprintln!(
        "faults: {} processes ready after {:.1}s (logs in {})",
        crate::stack::SERVICES.len(),
        t.elapsed().as_secs_f64(),
        dir.join("logs").display()
    );
    // The checker reads what task-svc and notify-svc stored, straight from their databases.
    let database = |name: &'static str| async move {
        PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&format!("postgres://postgres@{}/{name}", infra::pg_addr()))
            .await
    };
    let db = database("taskmesh_tasks").await?;
    let notify = database("taskmesh_notify").await?;
    let client = Client::new(stack.url("api-gateway"), format!("http://{receiver_addr}")).await?;
    let mut rows = Vec::new();
    let mut counted: HashMap<uuid::Uuid, usize> = HashMap::new();
    for fault in faults {
        let name = fault.name();
        stack.wait_ready(Duration::from_secs(120)).await?;
        crate::wait_until("a fresh login", Duration::from_secs(60), || async {
            client.login().await.ok()
        })
        .await?;
        eprintln!("faults: {name}: load on");
        let load = Load::start(client.clone(), name.clone(), settings.rate);
        tokio::time::sleep(settings.before).await;
        let (healed, worker_deaths) = inject(fault, stack, infra, settings).await?;
        tokio::time::sleep(settings.after).await;
        // Keep the load on until a request made after the fault's end succeeds (or the
        // settle deadline passes): that moment is the API's recovery.
        let _ = crate::wait_until("a request succeeds again", settings.settle, || async {
            load.history
                .records()
                .iter()
                .any(|r| r.sent >= healed && matches!(r.outcome, crate::workload::Outcome::Ok(_)))
                .then_some(())
        })
        .await;
        let records = load.finish().await;
        eprintln!(
            "faults: {name}: {} requests; waiting for the services and the jobs",
            records.len()
        );
        stack.wait_ready(Duration::from_secs(120)).await?;
        let settled =
            check::settle(&db, &notify, &receiver, &name, &records, settings.settle).await;
        let mut figures = check::check(
            &db,
            &notify,
            &receiver,
            &name,
            &records,
            healed,
            &worker_deaths,
        )
        .await?;
        figures.settled = settled;
        for r in &records {
            counted.insert(r.req, receiver.calls(&r.req).len());
        }
        for note in figures.notes.iter().take(20) {
            eprintln!("faults: {name}: {note}");
        }
        let slowest = records
            .iter()
            .map(|r| r.answered - r.sent)
            .max()
            .unwrap_or_default();
        eprintln!(
            "faults: {name}: ok {} failed {} unknown {} effects {} reruns {} lost {} stuck {} duplicated {} unexpected {} recovery {} / {}; slowest answer {:.2}s",
            figures.ok,
            figures.failed,
            figures.unknown,
            figures.effects,
            figures.reruns,
            figures.lost,
            figures.stuck,
            figures.duplicated,
            figures.unexpected,
            secs(figures.api_recovery),
            secs(figures.backlog_recovery),
            slowest.as_secs_f64()
        );
        rows.push(Row {
            fault: name,
            figures,
        });
    }
    let (late_duplicated, late_unexpected, notes) = check::at_the_end(&receiver, &counted);
    for note in notes.iter().take(20) {
        eprintln!("faults: {note}");
    }
    Ok((rows, late_duplicated, late_unexpected))
}

/// Injects `fault`, holds it, heals it; returns when it ended and when workers were killed.
async fn inject(
    fault: &Fault,
    stack: &mut Stack,
    infra: &mut Infra,
    settings: &Settings,
) -> anyhow::Result<(Instant, Vec<Instant>)> {
    let hold = settings.hold;
    let mut worker_deaths = Vec::new();
    match fault {
        Fault::Baseline => tokio::time::sleep(hold).await,
        Fault::Kill9(process) => {
            if process.starts_with("worker") {
                worker_deaths.push(Instant::now());
            }
            stack.kill9(process).await?;
            tokio::time::sleep(hold).await;
            stack.spawn(process)?;
        }
        Fault::RabbitmqStopStart => {
            infra.stop_rabbitmq_app().await?;
            tokio::time::sleep(hold).await;
            infra.start_rabbitmq_app().await?;
        }
        Fault::PostgresRestart => {
            infra.stop_postgres().await?;
            tokio::time::sleep(hold).await;
            infra.start_postgres().await?;
        }
        Fault::PostgresOutage(secs) => {
            infra.stop_postgres().await?;
            tokio::time::sleep(Duration::from_secs(*secs)).await;
            infra.start_postgres().await?;
        }
        Fault::RedisRestart => {
            infra.stop_redis().await?;
            tokio::time::sleep(hold).await;
            infra.start_redis().await?;
        }
        Fault::Latency(service, dep) => {
            let proxy = stack.proxy(service, *dep);
            proxy.set_latency(settings.latency);
            tokio::time::sleep(hold).await;
            proxy.heal();
        }
        Fault::Resets(service, dep) => {
            let proxy = stack.proxy(service, *dep).clone();
            let until = Instant::now() + hold;
            while Instant::now() < until {
                proxy.reset();
                tokio::time::sleep(settings.reset_every).await;
            }
            proxy.heal();
        }
    }
    Ok((Instant::now(), worker_deaths))
}
