//! media-svc as its own process (`taskmesh serve media-svc`), on the local store and on a real
//! S3 server (`s3s-fs`): large files round trip byte-identical while its memory stays flat, and
//! a crash between the store write and the commit leaves nothing the sweep does not remove.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::media::{files_in, rows, sha256, task};
use common::{App, Reply, WAIT};
use futures::StreamExt;
use secrecy::ExposeSecret;
use shared::testkit::eventually;

const MIB: usize = 1024 * 1024;

/// media-svc in a process of its own, in place of the stack's: same address, database, queues.
struct MediaProcess {
    child: tokio::process::Child,
}

impl MediaProcess {
    async fn start(app: &mut App, extra: &[(&str, String)]) -> Self {
        let stack = app.stack.as_mut().unwrap();
        if stack.stop_service("media-svc").await.is_err() {
            // Already stopped (a process ran in its place before).
        }
        let c = stack.config.clone();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskmesh"));
        command
            .args(["serve", "media-svc"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TASKMESH_POSTGRES__URL", c.postgres.url.expose_secret())
            .env("TASKMESH_MEDIA__DATABASE", &c.media.database)
            .env("TASKMESH_MEDIA__BIND", c.media.bind.to_string())
            .env("TASKMESH_TASK__URL", &c.task.url)
            .env(
                "TASKMESH_INTERNAL__SECRET",
                c.internal.secret.as_ref().unwrap().expose_secret(),
            )
            .env("TASKMESH_AMQP__URL", c.amqp.url.expose_secret())
            .env("TASKMESH_AMQP__NAMESPACE", &c.amqp.namespace)
            .env("TASKMESH_FILES__DIR", &c.files.dir)
            .env(
                "TASKMESH_FILES__MAX_FILE_BYTES",
                c.files.max_file_bytes.to_string(),
            )
            .env(
                "TASKMESH_FILES__USER_QUOTA_BYTES",
                c.files.user_quota_bytes.to_string(),
            )
            .env("TASKMESH_LOG__FILTER", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(expires) = c.amqp.queue_expires_ms {
            command.env("TASKMESH_AMQP__QUEUE_EXPIRES_MS", expires.to_string());
        }
        for (key, value) in extra {
            command.env(key, value);
        }
        let child = command.spawn().expect("taskmesh serve media-svc starts");
        let ready = format!("{}/readyz", c.media.url);
        eventually("media-svc to be ready", WAIT * 3, || async {
            let answer = reqwest::get(&ready).await.ok()?;
            answer.status().is_success().then_some(())
        })
        .await;
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// A line of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    }

    /// Resets the peak resident size to the current one (Linux `clear_refs`).
    fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").unwrap();
    }
}

/// A real S3 server on a free port, storing into a temporary folder, with bucket `taskmesh`.
struct S3Server {
    child: std::process::Child,
    endpoint: String,
    root: PathBuf,
}

impl S3Server {
    fn start() -> Self {
        let root = std::env::temp_dir().join(format!("taskmesh-s3-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join("taskmesh")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--access-key",
                "taskmesh-test",
                "--secret-key",
                "taskmesh-test-secret",
            ])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs is installed (scripts/test installs it)");
        let endpoint = format!("http://127.0.0.1:{port}");
        Self {
            child,
            endpoint,
            root,
        }
    }

    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TASKMESH_FILES__STORE", "s3".into()),
            ("TASKMESH_FILES__S3_BUCKET", "taskmesh".into()),
            ("TASKMESH_FILES__S3_ENDPOINT", self.endpoint.clone()),
            ("TASKMESH_FILES__S3_ACCESS_KEY_ID", "taskmesh-test".into()),
            (
                "TASKMESH_FILES__S3_SECRET_ACCESS_KEY",
                "taskmesh-test-secret".into(),
            ),
        ]
    }

    /// Every object the server holds (its folder, without its own bookkeeping).
    fn objects(&self) -> Vec<PathBuf> {
        files_in(&self.root.join("taskmesh"))
            .into_iter()
            .filter(|p| !p.to_string_lossy().contains(".s3s"))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Bytes that are a ZIP by their first bytes and otherwise random (nothing to compress).
fn zip_like(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[..4].copy_from_slice(b"PK\x03\x04");
    bytes
}

async fn upload(app: &App, token: &str, task_id: &str, name: &str, bytes: Vec<u8>) -> Reply {
    common::media::upload(app, token, task_id, &[(name, bytes)]).await
}

/// Downloads a file, hashing it as it streams; returns its SHA-256 and length.
async fn download_hash(app: &App, token: &str, id: &str) -> (String, usize) {
    use sha2::Digest;
    let response = app
        .http
        .get(format!("{}/api/v1/media/{id}/content", app.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut hasher = sha2::Sha256::new();
    let mut len = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        len += chunk.len();
        hasher.update(&chunk);
    }
    (hex::encode(hasher.finalize()), len)
}

/// 1 KiB and 200 MiB through the gateway into media-svc's process and back.
async fn round_trip(app: &mut App, store: &[(&str, String)]) -> u64 {
    let media = MediaProcess::start(app, store).await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(app, &ada, "Files").await;

    let small = b"x".repeat(1024);
    let uploaded = upload(app, &ada, &task_id, "small.txt", small.clone()).await;
    assert_eq!(uploaded.status, 201, "{:?}", uploaded.body);
    let id = uploaded.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(download_hash(app, &ada, &id).await, (sha256(&small), 1024));

    let large = zip_like(200 * MIB);
    let expected = sha256(&large);
    let before = media.memory_kib("VmRSS");
    media.reset_peak();
    let uploaded = upload(app, &ada, &task_id, "large.zip", large).await;
    let peak = media.memory_kib("VmHWM");
    assert_eq!(uploaded.status, 201, "{:?}", uploaded.body);
    let file = &uploaded.body["items"][0];
    assert_eq!(file["sha256"], expected);
    let id = file["id"].as_str().unwrap().to_string();
    assert_eq!(download_hash(app, &ada, &id).await, (expected, 200 * MIB));
    let growth = peak.saturating_sub(before);
    eprintln!("media-svc resident memory: {before} KiB before, {peak} KiB at most during the 200 MiB upload (+{growth} KiB)");
    assert!(
        growth < 32 * 1024,
        "media-svc grew by {growth} KiB during the upload"
    );
    growth
}

fn big_files(c: &mut shared::Config) {
    c.files.max_file_bytes = 256 * MIB as u64;
    c.files.user_quota_bytes = 1024 * MIB as u64;
    c.auth.bootstrap_admin_email = Some("admin@example.com".into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_on_the_local_store_with_flat_memory() {
    let mut app = App::start_with(big_files).await;
    round_trip(&mut app, &[]).await;
    let objects = files_in(&PathBuf::from(&app.env.config.files.dir));
    assert_eq!(objects.len(), 2, "{objects:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_on_s3_with_multipart_uploads_and_flat_memory() {
    let s3 = S3Server::start();
    let mut app = App::start_with(big_files).await;
    round_trip(&mut app, &s3.settings()).await;
    assert_eq!(s3.objects().len(), 2, "{:?}", s3.objects());
    assert_eq!(rows(&app).await, 2);
    // Nothing is kept in the local folder when S3 holds the files.
    assert!(files_in(&PathBuf::from(&app.env.config.files.dir)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_store_write_and_the_commit_leaves_only_what_the_sweep_removes() {
    let mut app = App::start_with(big_files).await;
    let dir = PathBuf::from(&app.env.config.files.dir);
    let admin = app.sign_up_verified("admin@example.com").await;
    let ada = app.sign_up("ada@example.com").await;
    let task_id = task(&app, &ada, "Files").await;

    // media-svc dies right after writing the object, before committing its row.
    let mut crashing =
        MediaProcess::start(&mut app, &[("TASKMESH_CRASH", "before_commit".into())]).await;
    let lost = upload(
        &app,
        &ada,
        &task_id,
        "lost.txt",
        b"never committed".to_vec(),
    )
    .await;
    assert!(lost.status >= 500, "{lost:?}");
    let exit = tokio::time::timeout(WAIT, crashing.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!exit.success());
    assert_eq!(files_in(&dir).len(), 1, "the object was written");
    assert_eq!(rows(&app).await, 0, "its row was not");

    // Restarted (with a short grace, so the test need not wait an hour): a file whose object
    // then vanishes from the store.
    let media = MediaProcess::start(
        &mut app,
        &[
            ("TASKMESH_FILES__TRANSFER_TIMEOUT_SECS", "5".into()),
            ("TASKMESH_FILES__SWEEP_GRACE_SECS", "6".into()),
        ],
    )
    .await;
    let kept = upload(&app, &ada, &task_id, "kept.txt", b"kept".to_vec()).await;
    assert_eq!(kept.status, 201);
    let vanished = upload(&app, &ada, &task_id, "vanished.txt", b"gone".to_vec()).await;
    let vanished_id = vanished.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(dir.join("objects").join(&vanished_id)).unwrap();

    // Sweeps until the orphan is past the grace period: one orphan object and one row without
    // its object removed in all.
    let (mut orphans, mut rows_gone) = (0, 0);
    let deadline = std::time::Instant::now() + WAIT;
    while orphans == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the orphan was never swept"
        );
        let report = app
            .send(
                reqwest::Method::POST,
                "/api/v1/admin/media/sweep",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(report.status, 200, "{:?}", report.body);
        assert_eq!(report.body["refused"], serde_json::Value::Null);
        orphans += report.body["orphan_objects_removed"].as_i64().unwrap();
        rows_gone += report.body["rows_without_object_removed"].as_i64().unwrap();
        // The next round, a little later: the orphan ages past the grace period.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!((orphans, rows_gone), (1, 1));
    assert_eq!(rows(&app).await, 1);
    assert_eq!(files_in(&dir).len(), 1);
    let (status, _) = app
        .get(&format!("/api/v1/media/{vanished_id}"), Some(&ada))
        .await;
    assert_eq!(status, 404);
    // A member may not sweep.
    let refused = app
        .send(
            reqwest::Method::POST,
            "/api/v1/admin/media/sweep",
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(refused.status, 403);
    drop(media);
}
