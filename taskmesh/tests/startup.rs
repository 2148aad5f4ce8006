//! `taskmesh up` with its stores down talks to people: one line per store every few seconds,
//! naming the store, where it was looked for and the setting to change, never a password.

use std::process::Stdio;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::Value;
use shared::testkit::TestEnv;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What `taskmesh up` prints to stdout (and stderr) over `window`, with `env` set: its JSON lines
/// and all of it as text.
async fn watch(env: &[(String, String)], window: Duration) -> (Vec<Value>, String) {
    // Its own folder: `up` keeps mail and uploads under the working directory.
    let dir = std::env::temp_dir().join(format!(
        "taskmesh-startup-{}-{}",
        std::process::id(),
        closed_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskmesh"));
    command
        .arg("up")
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for section in ["USER", "TASK", "NOTIFY", "MEDIA", "WORKER", "GATEWAY"] {
        command.env(format!("TASKMESH_{section}__BIND"), "127.0.0.1:0");
    }
    let mut up = command.spawn().expect("the taskmesh binary starts");
    let mut stdout = BufReader::new(up.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut lines = Vec::new();
    while let Some(left) = window.checked_sub(started.elapsed()) {
        match tokio::time::timeout(left, stdout.next_line()).await {
            Ok(Ok(Some(line))) => lines.push(line),
            _ => break,
        }
    }
    let _ = up.start_kill();
    let stderr = up.wait_with_output().await.unwrap().stderr;
    let _ = std::fs::remove_dir_all(&dir);
    let printed = format!("{}\n{}", lines.join("\n"), String::from_utf8_lossy(&stderr));
    let parsed = lines
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    (parsed, printed)
}

/// Twelve seconds: long enough for a store's line to come again, short enough for a third
/// repeat at most.
const WINDOW: Duration = Duration::from_secs(12);

/// The warnings (and errors) among `lines`.
fn warnings(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|line| line["level"] == "WARN" || line["level"] == "ERROR")
        .collect()
}

/// Two or three lines about `store` over the window, each naming where it was looked for and
/// the setting to change.
fn told_every_few_seconds(
    warnings: &[&Value],
    store: &str,
    port: u16,
    setting: &str,
    printed: &str,
) {
    let about: Vec<&&Value> = warnings
        .iter()
        .filter(|w| w["dependency"] == store)
        .collect();
    assert!(
        (2..=3).contains(&about.len()),
        "{store}: {} lines in {WINDOW:?}, expected one every 5 s:\n{printed}",
        about.len()
    );
    for line in about {
        let message = line["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("127.0.0.1:{port}")) && message.contains(setting),
            "{store}'s line names neither its address nor {setting}: {line}"
        );
    }
}

#[tokio::test]
async fn with_every_store_down_up_says_so_once_every_few_seconds_per_store() {
    let (pg, mq, redis) = (closed_port(), closed_port(), closed_port());
    let env = [
        (
            "TASKMESH_POSTGRES__URL",
            format!("postgres://app:pg-secret-pw@127.0.0.1:{pg}/postgres"),
        ),
        (
            "TASKMESH_AMQP__URL",
            format!("amqp://app:mq-secret-pw@127.0.0.1:{mq}/%2f"),
        ),
        (
            "TASKMESH_REDIS__URL",
            format!("redis://:redis-secret-pw@127.0.0.1:{redis}"),
        ),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let (lines, printed) = watch(&env, WINDOW).await;
    for secret in ["pg-secret-pw", "mq-secret-pw", "redis-secret-pw"] {
        assert!(
            !printed.contains(secret),
            "a password was printed:\n{printed}"
        );
    }
    let warnings = warnings(&lines);
    // The services wait for PostgreSQL, the gateway for Redis, before anything else.
    told_every_few_seconds(
        &warnings,
        "postgres",
        pg,
        "TASKMESH_POSTGRES__URL",
        &printed,
    );
    told_every_few_seconds(&warnings, "redis", redis, "TASKMESH_REDIS__URL", &printed);
    assert!(
        warnings.iter().all(|w| w["dependency"].is_string()),
        "other warnings:\n{printed}"
    );
}

/// Settings pointing every store at `test`'s, except RabbitMQ, looked for at `port`.
fn with_broker_at(test: &TestEnv, port: u16) -> Vec<(String, String)> {
    let c = &test.config;
    let mq = port;
    [
        (
            "TASKMESH_POSTGRES__URL",
            c.postgres.url.expose_secret().to_string(),
        ),
        ("TASKMESH_USER__DATABASE", c.user.database.clone()),
        ("TASKMESH_TASK__DATABASE", c.task.database.clone()),
        ("TASKMESH_NOTIFY__DATABASE", c.notify.database.clone()),
        ("TASKMESH_MEDIA__DATABASE", c.media.database.clone()),
        (
            "TASKMESH_REDIS__URL",
            c.redis.url.expose_secret().to_string(),
        ),
        ("TASKMESH_REDIS__KEY_PREFIX", c.redis.key_prefix.clone()),
        (
            "TASKMESH_AMQP__URL",
            format!("amqp://guest:guest@127.0.0.1:{mq}/%2f"),
        ),
        ("TASKMESH_AMQP__NAMESPACE", c.amqp.namespace.clone()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec()
}

/// RabbitMQ alone down: six services and their consumers wait for it, and it is still one line
/// every few seconds (and one for user-svc, which waits for it, as the gateway asks for its keys).
#[tokio::test]
async fn with_the_broker_down_every_consumer_waits_and_one_line_says_so() {
    let test = TestEnv::new();
    let mq = closed_port();
    let env = with_broker_at(&test, mq);
    let (lines, printed) = watch(&env, WINDOW).await;
    let warnings = warnings(&lines);
    told_every_few_seconds(&warnings, "rabbitmq", mq, "TASKMESH_AMQP__URL", &printed);
    let user_svc = warnings
        .iter()
        .filter(|w| w["dependency"] == "user-svc")
        .count();
    assert!(user_svc <= 3, "user-svc: {user_svc} lines:\n{printed}");
    assert!(
        warnings
            .iter()
            .all(|w| w["dependency"] == "rabbitmq" || w["dependency"] == "user-svc"),
        "other warnings:\n{printed}"
    );
}

/// A broker that accepts connections but never speaks AMQP (a port of something else, a proxy
/// whose far side is gone): each try gives up after `amqp.connect_timeout_secs` and it is told
/// like a broker that is down, instead of every service waiting on it for ever.
#[tokio::test]
async fn a_broker_that_accepts_but_never_answers_is_told_like_one_that_is_down() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mq = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in silent.incoming() {
            held.push(connection);
        }
    });
    let test = TestEnv::new();
    let mut env = with_broker_at(&test, mq);
    env.push(("TASKMESH_AMQP__CONNECT_TIMEOUT_SECS".into(), "1".into()));
    let (lines, printed) = watch(&env, WINDOW).await;
    let warnings = warnings(&lines);
    told_every_few_seconds(&warnings, "rabbitmq", mq, "TASKMESH_AMQP__URL", &printed);
}
