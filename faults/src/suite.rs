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
use crate::objects::S3Store;
use crate::receiver::{Hooks, Receiver};
pub use crate::settings::Settings;
use crate::smtp::SmtpSink;
use crate::stack::{proxy_pairs, Dep, Outside, Stack};
use crate::workload::{Client, Load};

/// One fault.
#[derive(Clone, Debug)]
pub enum Fault {
    /// No fault: the figures every other row is read against.
    Baseline,
    /// `kill -9` of a process, started again after the hold.
    Kill9(&'static str),
    /// A worker restarted with a crash point (`TASKMESH_CRASH=after_report`): it dies right
    /// after the broker confirmed its first finished report, before acking the dispatches or
    /// marking their claims; started again (without it) after the hold.
    WorkerCrashAfterReport,
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
    /// The SMTP server `kill -9`ed (connections refused), started again after
    /// `Settings::smtp_down`.
    SmtpDown,
    /// The SMTP server down for this long, past the mail queue's default retry budget (15 s):
    /// mail must be held, not given up (in a full run, or when named).
    SmtpOutage(u64),
    /// The SMTP server restarted answering `451 4.3.0 try again later` to the end of DATA of
    /// the next `Settings::smtp_reject` mails; the fault ends when a mail is accepted again.
    Smtp451,
    /// The webhook receiver unreachable (its proxy resets every connection and refuses new
    /// ones) for `Settings::hook_down`, within the schedule the suite sets (31 s).
    WebhookDown,
    /// The webhook receiver answering 500 to every delivery for the hold.
    Webhook500,
    /// media-svc's S3 server `kill -9`ed (connections refused), started again after the hold.
    S3Down,
}

impl Fault {
    pub fn name(&self) -> String {
        match self {
            Fault::Baseline => "baseline".into(),
            Fault::Kill9(p) => format!("kill9:{}", p.trim_end_matches("-a")),
            Fault::WorkerCrashAfterReport => "crash:worker-after-report".into(),
            Fault::RabbitmqStopStart => "rabbitmq:stop-start".into(),
            Fault::PostgresRestart => "postgres:restart".into(),
            Fault::PostgresOutage(secs) => format!("postgres:down-{secs}s"),
            Fault::RedisRestart => "redis:restart".into(),
            Fault::Latency(s, d) => format!("latency:{s}->{}", d.name()),
            Fault::Resets(s, d) => format!("resets:{s}->{}", d.name()),
            Fault::SmtpDown => "smtp:down".into(),
            Fault::SmtpOutage(secs) => format!("smtp:down-{secs}s"),
            Fault::Smtp451 => "smtp:451".into(),
            Fault::WebhookDown => "webhook:down".into(),
            Fault::Webhook500 => "webhook:500".into(),
            Fault::S3Down => "s3:down".into(),
        }
    }
}

/// Every fault, in the order they run.
pub fn all() -> Vec<Fault> {
    let mut faults = vec![
        Fault::Baseline,
        Fault::Kill9("worker-a"),
        Fault::WorkerCrashAfterReport,
        Fault::Kill9("task-svc"),
        Fault::Kill9("notify-svc"),
        Fault::Kill9("media-svc"),
        Fault::Kill9("api-gateway"),
        Fault::RabbitmqStopStart,
        Fault::PostgresRestart,
        Fault::PostgresOutage(30),
        Fault::RedisRestart,
        Fault::SmtpDown,
        Fault::SmtpOutage(20),
        Fault::Smtp451,
        Fault::WebhookDown,
        Fault::Webhook500,
        Fault::S3Down,
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
/// long outages only in a full run or when named.
pub fn selected(only: &[String], quick: bool) -> Vec<Fault> {
    all()
        .into_iter()
        .filter(|f| {
            let named = only.iter().any(|o| f.name().contains(o.as_str()));
            match f {
                Fault::Baseline => true,
                Fault::PostgresOutage(_) if quick => named,
                Fault::SmtpOutage(_) if quick => named,
                _ => only.is_empty() || named,
            }
        })
        .collect()
}

/// One row of the table.
pub struct Row {
    pub fault: String,
    pub figures: Figures,
}

pub struct Report {
    pub settings: Settings,
    pub rows: Vec<Row>,
    /// Found only at the end: late duplicates, calls nobody asked for, late resends.
    pub late_duplicated: usize,
    pub late_unexpected: usize,
    pub late_resent: usize,
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
        out.push_str("| fault | requests ok / failed / unknown (done) | effects | reruns | mails (retries / resent) | webhooks (retries) | files (orphans) | lost | stuck | duplicated | unexpected | recovery: API / backlog |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for row in &self.rows {
            let f = &row.figures;
            out.push_str(&format!(
                "| {}{} | {} / {} / {} ({}) | {} | {} | {} ({} / {}) | {} ({}) | {} ({}) | {} | {} | {} | {} | {} / {} |\n",
                row.fault,
                if f.settled { "" } else { " (did not settle)" },
                f.ok,
                f.failed,
                f.unknown,
                f.unknown_done,
                f.effects,
                f.reruns,
                f.mails,
                f.mail_retries,
                f.resent,
                f.hooks,
                f.hook_retries,
                f.files,
                f.orphans,
                f.lost,
                f.stuck,
                f.duplicated,
                f.unexpected,
                secs(f.api_recovery),
                secs(f.backlog_recovery),
            ));
        }
        out.push_str(&format!(
            "\nAfter the last fault: {} late duplicated call(s), mail(s) or webhook(s), {} call(s), mail(s) or webhook(s) for requests nobody made, {} mail(s) resent late.\n",
            self.late_duplicated, self.late_unexpected, self.late_resent
        ));
        out
    }
}

/// Starts everything in a temporary directory, runs `faults` one after the other, stops
/// everything (also on Ctrl-C) and returns the report.
pub async fn run(
    taskmesh: &Path,
    python: &Path,
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
        result = run_in(taskmesh, python, &dir, &mut infra, &mut stack, faults, settings) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Some(stack) = stack {
        stack.stop().await;
    }
    infra.stop().await;
    let report = result.map(|(rows, late)| Report {
        settings: settings.clone(),
        rows,
        late_duplicated: late.duplicated,
        late_unexpected: late.unexpected,
        late_resent: late.resent,
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
    python: &Path,
    dir: &Path,
    infra: &mut Infra,
    slot: &mut Option<Stack>,
    faults: &[Fault],
    settings: &Settings,
) -> anyhow::Result<(Vec<Row>, check::Late)> {
    let (receiver, receiver_addr) = Receiver::start().await?;
    let (hooks, hooks_addr) = Hooks::start().await?;
    std::fs::create_dir_all(dir.join("logs"))?;
    let mut sink =
        SmtpSink::start(python, &dir.join("mail"), &dir.join("logs/smtp-sink.log")).await?;
    eprintln!(
        "faults: SMTP sink on {} (mail in {}), webhook receiver on {hooks_addr}",
        sink.addr(),
        sink.dir.display()
    );
    let mut store = S3Store::start(&dir.join("s3"), &dir.join("logs/s3s-fs.log")).await?;
    eprintln!("faults: S3 server (s3s-fs) on {}", store.addr());
    let t = Instant::now();
    let outside = Outside {
        smtp: sink.addr(),
        hooks: hooks_addr,
        s3: store.addr(),
    };
    let stack = slot.insert(Stack::start(taskmesh, dir, "127.0.0.1", outside).await?);
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
    let media = database("taskmesh_media").await?;
    let client = Client::new(stack.url("api-gateway"), format!("http://{receiver_addr}")).await?;
    client.verify_peer(&notify).await?;
    // The peer's webhook endpoint; notify-svc's users read model learns of the peer from
    // user.created, so the registration may need a moment.
    let hook_url = stack.hook_url();
    crate::wait_until(
        "the peer's webhook endpoint",
        Duration::from_secs(30),
        || async {
            match client.register_webhook(&hook_url).await {
                Ok(()) => Some(()),
                Err(e) => {
                    eprintln!("faults: {e:#}; trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    None
                }
            }
        },
    )
    .await?;
    let mut rows = Vec::new();
    let mut counted: HashMap<uuid::Uuid, usize> = HashMap::new();
    let mut told: HashMap<uuid::Uuid, check::Told> = HashMap::new();
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
        let (healed, worker_deaths) =
            inject(fault, stack, infra, &mut sink, &mut store, &hooks, settings).await?;
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
        anyhow::ensure!(
            !sink.exited(),
            "the SMTP sink stopped by itself; see {}",
            dir.join("logs/smtp-sink.log").display()
        );
        let settled = check::settle(
            &db,
            &notify,
            &receiver,
            &sink,
            &hooks,
            &name,
            &records,
            settings.settle,
        )
        .await;
        let mut figures = check::check(
            &db,
            &notify,
            &receiver,
            &sink,
            &hooks,
            &name,
            &records,
            healed,
            &worker_deaths,
            &mut told,
        )
        .await?;
        figures.settled = settled;
        let files = check::files(&media, &store, &records).await?;
        figures.files = files.files;
        figures.orphans = files.orphans;
        figures.lost += files.lost;
        figures.duplicated += files.duplicated;
        figures.unexpected += files.unexpected;
        figures.notes.extend(files.notes);
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
            "faults: {name}: ok {} failed {} unknown {} effects {} reruns {} mails {} retries {} resent {} webhooks {} retries {} files {} orphans {} lost {} stuck {} duplicated {} unexpected {} recovery {} / {}; slowest answer {:.2}s",
            figures.ok,
            figures.failed,
            figures.unknown,
            figures.effects,
            figures.reruns,
            figures.mails,
            figures.mail_retries,
            figures.resent,
            figures.hooks,
            figures.hook_retries,
            figures.files,
            figures.orphans,
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
    let known_mail_ids = check::known_mail_ids(&notify).await?;
    let late = check::at_the_end(&receiver, &counted, &sink, &hooks, &told, &known_mail_ids);
    for note in late.notes.iter().take(20) {
        eprintln!("faults: {note}");
    }
    Ok((rows, late))
}

/// Injects `fault`, holds it, heals it; returns when it ended and when workers were killed.
async fn inject(
    fault: &Fault,
    stack: &mut Stack,
    infra: &mut Infra,
    sink: &mut SmtpSink,
    store: &mut S3Store,
    hooks: &Hooks,
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
        Fault::WorkerCrashAfterReport => {
            stack.terminate("worker-a").await?;
            stack.spawn_with("worker-a", &[("TASKMESH_CRASH", "after_report")])?;
            stack.exit_of("worker-a", settings.settle).await?;
            worker_deaths.push(Instant::now());
            tokio::time::sleep(hold).await;
            stack.spawn("worker-a")?;
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
        Fault::SmtpDown => {
            sink.kill9().await?;
            tokio::time::sleep(settings.smtp_down).await;
            sink.spawn(0).await?;
        }
        Fault::SmtpOutage(secs) => {
            sink.kill9().await?;
            tokio::time::sleep(Duration::from_secs(*secs)).await;
            sink.spawn(0).await?;
        }
        Fault::Smtp451 => {
            sink.kill9().await?;
            let before = sink.files();
            sink.spawn(settings.smtp_reject).await?;
            // Held at least the hold, and until the rejections are spent (the first mail
            // accepted after them).
            tokio::time::sleep(hold).await;
            let _ = crate::wait_until("a mail accepted after the 451s", settings.settle, || {
                let accepted = sink.files() > before;
                async move { accepted.then_some(()) }
            })
            .await;
        }
        Fault::WebhookDown => {
            let proxy = stack.proxy("notify-svc", Dep::Webhook).clone();
            proxy.set_refuse(true);
            proxy.reset();
            tokio::time::sleep(settings.hook_down).await;
            proxy.heal();
        }
        Fault::Webhook500 => {
            hooks.set_status(500);
            tokio::time::sleep(hold).await;
            hooks.set_status(0);
        }
        Fault::S3Down => {
            store.kill9().await?;
            tokio::time::sleep(hold).await;
            store.spawn().await?;
        }
    }
    Ok((Instant::now(), worker_deaths))
}
