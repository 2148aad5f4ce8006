//! `bench media`: a large file uploaded and downloaded through the gateway (every service its
//! own process), on the local store and on s3s-fs, next to a raw copy of the same bytes to the
//! same store in the same run: a filesystem copy into the store's folder, and a raw S3 PUT / GET
//! with `object_store` to the same s3s-fs.

use std::path::PathBuf;
use std::time::Instant;

use futures::StreamExt;
use object_store::{aws::AmazonS3Builder, path::Path, ObjectStore, PutPayload};
use shared::testkit::TestEnv;

use crate::platform;

const MIB: usize = 1024 * 1024;

struct Figures {
    store: String,
    upload: f64,
    download: f64,
    raw_write: f64,
    raw_read: f64,
    raw_what: &'static str,
}

pub async fn run() -> anyhow::Result<()> {
    let mib: usize = std::env::var("BENCH_MEDIA_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    println!(
        "Taskmesh media benchmark: one {mib} MiB file, {} cores",
        crate::cores()
    );
    let bytes = zip_like(mib * MIB);
    let mut figures = Vec::new();
    if let Some(f) = local(&bytes).await? {
        figures.push(f);
    }
    match which("s3s-fs") {
        Some(_) => {
            if let Some(f) = s3(&bytes).await? {
                figures.push(f);
            }
        }
        None => println!(
            "(s3s-fs not installed: `cargo install --locked s3s-fs@0.14.1 --features binary`)"
        ),
    }
    println!();
    println!("| store | Taskmesh upload MiB/s | Taskmesh download MiB/s | raw write MiB/s | raw read MiB/s | raw is |");
    println!("|---|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            f.store, f.upload, f.download, f.raw_write, f.raw_read, f.raw_what
        );
    }
    Ok(())
}

fn rate(bytes: usize, started: Instant) -> f64 {
    bytes as f64 / MIB as f64 / started.elapsed().as_secs_f64()
}

/// Bytes that are a ZIP by their first bytes and otherwise random.
fn zip_like(len: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[..4].copy_from_slice(b"PK\x03\x04");
    bytes
}

fn settings(env: &TestEnv, bytes: usize) -> Vec<(&'static str, String)> {
    vec![
        ("TASKMESH_FILES__DIR", env.config.files.dir.clone()),
        ("TASKMESH_FILES__MAX_FILE_BYTES", (bytes + MIB).to_string()),
        (
            "TASKMESH_FILES__USER_QUOTA_BYTES",
            (4 * bytes + MIB).to_string(),
        ),
    ]
}

/// Uploads and downloads `bytes` through the gateway; MiB/s each way.
async fn through_gateway(bytes: &[u8], who: &str) -> anyhow::Result<(f64, f64)> {
    let http = reqwest::Client::new();
    let token = platform::token(&http, &format!("bench-media-{who}@example.com")).await?;
    let task: serde_json::Value = http
        .post(format!("{}/tasks", platform::API))
        .bearer_auth(&token)
        .json(&serde_json::json!({"title": "bench media"}))
        .send()
        .await?
        .json()
        .await?;
    let task_id = task["id"].as_str().unwrap_or_default();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("bench.zip"),
    );
    let started = Instant::now();
    let response = http
        .post(format!("{}/tasks/{task_id}/attachments", platform::API))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().as_u16() == 201,
        "upload: {}",
        response.status()
    );
    let body: serde_json::Value = response.json().await?;
    let upload = rate(bytes.len(), started);
    let id = body["items"][0]["id"].as_str().unwrap_or_default();
    let started = Instant::now();
    let response = http
        .get(format!("{}/media/{id}/content", platform::API))
        .bearer_auth(&token)
        .send()
        .await?;
    let mut stream = response.bytes_stream();
    let mut received = 0;
    while let Some(chunk) = stream.next().await {
        received += chunk?.len();
    }
    anyhow::ensure!(received == bytes.len(), "downloaded {received} bytes");
    Ok((upload, rate(bytes.len(), started)))
}

async fn local(bytes: &[u8]) -> anyhow::Result<Option<Figures>> {
    let env = TestEnv::new();
    let dir = PathBuf::from(&env.config.files.dir);
    std::fs::create_dir_all(&dir)?;
    // The raw limit first: the same bytes written into, and read back from, the store's folder.
    let source = std::env::temp_dir().join(format!("taskmesh-bench-{}.zip", env.id));
    std::fs::write(&source, bytes)?;
    let target = dir.join("raw-copy");
    let started = Instant::now();
    std::fs::copy(&source, &target)?;
    std::fs::File::open(&target)?.sync_all()?;
    let raw_write = rate(bytes.len(), started);
    let started = Instant::now();
    let read = std::fs::read(&target)?;
    let raw_read = rate(read.len(), started);
    drop(read);
    std::fs::remove_file(&target)?;
    std::fs::remove_file(&source)?;

    let Some(_children) = platform::spawn_with(&env, &settings(&env, bytes.len())).await? else {
        return Ok(None);
    };
    let (upload, download) = through_gateway(bytes, "local").await?;
    Ok(Some(Figures {
        store: "local folder".into(),
        upload,
        download,
        raw_write,
        raw_read,
        raw_what: "`std::fs::copy` into the folder + fsync / `std::fs::read`",
    }))
}

async fn s3(bytes: &[u8]) -> anyhow::Result<Option<Figures>> {
    let env = TestEnv::new();
    let root = std::env::temp_dir().join(format!("taskmesh-bench-s3-{}", env.id));
    std::fs::create_dir_all(root.join("bench"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut server = std::process::Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "bench", "--secret-key", "bench-secret"])
        .arg(&root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let store = AmazonS3Builder::new()
        .with_bucket_name("bench")
        .with_region("us-east-1")
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_access_key_id("bench")
        .with_secret_access_key("bench-secret")
        .build()?;
    // Wait for the server to answer.
    let mut tries = 0;
    while store.list_with_delimiter(None).await.is_err() {
        tries += 1;
        anyhow::ensure!(tries < 100, "s3s-fs did not start");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    store
        .put(&Path::from("raw-put"), PutPayload::from(bytes.to_vec()))
        .await?;
    let raw_write = rate(bytes.len(), started);
    let started = Instant::now();
    let read = store.get(&Path::from("raw-put")).await?.bytes().await?;
    let raw_read = rate(read.len(), started);
    drop(read);
    store.delete(&Path::from("raw-put")).await?;

    let mut extra = settings(&env, bytes.len());
    extra.extend([
        ("TASKMESH_FILES__STORE", "s3".to_string()),
        ("TASKMESH_FILES__S3_BUCKET", "bench".into()),
        ("TASKMESH_FILES__S3_ENDPOINT", endpoint),
        ("TASKMESH_FILES__S3_ACCESS_KEY_ID", "bench".into()),
        (
            "TASKMESH_FILES__S3_SECRET_ACCESS_KEY",
            "bench-secret".into(),
        ),
    ]);
    let outcome = async {
        let Some(_children) = platform::spawn_with(&env, &extra).await? else {
            return Ok(None);
        };
        let (upload, download) = through_gateway(bytes, "s3").await?;
        anyhow::Ok(Some(Figures {
            store: "S3 (s3s-fs)".into(),
            upload,
            download,
            raw_write,
            raw_read,
            raw_what: "one `object_store` PUT / GET of the whole file",
        }))
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&root);
    outcome
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(program))
        .find(|p| p.exists())
}
