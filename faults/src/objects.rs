//! media-svc's object store: a real S3 server (`s3s-fs`, which `scripts/test` installs) as a
//! child process on a fixed port with bucket `taskmesh`, reached through the `media-svc→s3`
//! fault proxy. It can be `kill -9`ed (the `s3:down` fault) and started again on its port; the
//! suite counts the objects it holds in its folder.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

pub const BUCKET: &str = "taskmesh";
pub const ACCESS_KEY: &str = "faults";
pub const SECRET_KEY: &str = "faults-secret";

pub struct S3Store {
    root: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl S3Store {
    /// Starts the server on a free port, storing into `root`.
    pub async fn start(root: &Path, log: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root.join(BUCKET))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut store = Self {
            root: root.to_path_buf(),
            log: log.to_path_buf(),
            port,
            child: None,
        };
        store.spawn().await?;
        Ok(store)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting s3s-fs (cargo install --locked s3s-fs@0.14.1 --features binary)")?;
        self.child = Some(child);
        crate::wait_until("s3s-fs to listen", Duration::from_secs(30), || async {
            tokio::net::TcpStream::connect(self.addr())
                .await
                .ok()
                .map(|_| ())
        })
        .await
    }

    /// `kill -9`: connections are refused until [`S3Store::spawn`].
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// The keys of every object in the bucket (the server's own bookkeeping left out).
    pub fn keys(&self) -> HashSet<String> {
        let bucket = self.root.join(BUCKET);
        let mut keys = HashSet::new();
        let mut folders = vec![bucket.clone()];
        while let Some(folder) = folders.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = path.to_string_lossy().to_string();
                if name.contains(".s3s") {
                    continue;
                }
                if path.is_dir() {
                    folders.push(path);
                } else if let Ok(key) = path.strip_prefix(&bucket) {
                    keys.insert(key.to_string_lossy().to_string());
                }
            }
        }
        keys
    }

    /// S3 settings media-svc needs besides the endpoint (its proxy, set per process).
    pub fn settings() -> Vec<(String, String)> {
        [
            ("TASKMESH_FILES__STORE", "s3"),
            ("TASKMESH_FILES__S3_BUCKET", BUCKET),
            ("TASKMESH_FILES__S3_ACCESS_KEY_ID", ACCESS_KEY),
            ("TASKMESH_FILES__S3_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}
