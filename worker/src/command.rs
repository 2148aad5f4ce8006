//! The `command` kind: runs one of the operator's commands (`workers.commands`: a program and an
//! argument template whose named parameters are all a job gives; [`shared::commands`]), no
//! shell, in a clean environment (`PATH` and the job's `TASKMESH_*` variables only), in a process
//! group of its own, and by default in a network namespace of its own (started through
//! util-linux's `unshare`), so it reaches no address over the network, the platform's stores
//! included (a Unix socket with a path on the worker's file system stays reachable).
//!
//! Output is read while it streams: each of stdout and stderr keeps its first
//! `workers.http_max_response_bytes` and reads the rest into nothing (so the program never blocks
//! on a full pipe and the worker never holds more). When the job stops (timeout, cancel, worker
//! shutdown), or when the program exits, the whole group is killed, so nothing it started stays
//! behind, unless a process left the group on purpose (`setsid`). Killed processes are reaped by
//! init: in a container, run the worker under an init so they do not linger as zombies
//! (compose.yaml sets `init: true`; k8s/base/worker.yaml shares the pod's process namespace, so
//! its pause container is PID 1).

use std::collections::BTreeMap;

use serde_json::json;
use shared::commands::{CommandRequest, CommandTemplate};
use shared::config::CommandNetwork;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::handler::{JobContext, JobError, JobResult};

/// util-linux's `unshare`, which starts a command in namespaces of its own
/// (`workers.command_network = "none"`).
const UNSHARE: &str = "/usr/bin/unshare";

pub struct Commands {
    /// The operator's commands by name (`workers.commands`).
    pub templates: BTreeMap<String, CommandTemplate>,
    pub network: CommandNetwork,
    pub max_output: usize,
}

/// Kills a process group when dropped (however the job ends), unless it was killed already once
/// its leader exited (after that its id may come to name another group).
struct Group {
    pid: Option<rustix::process::Pid>,
    armed: std::sync::atomic::AtomicBool,
}

impl Group {
    fn kill(&self) {
        if !self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if let Some(pid) = self.pid {
            // ESRCH: every process of the group has ended already.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes this process non-dumpable, so that a program the `command` kind runs as the same
/// (non-root) user cannot read the worker's environment (its connection URLs) or memory through
/// `/proc` or ptrace.
pub fn shield_worker() {
    let behavior = rustix::process::DumpableBehavior::NotDumpable;
    if let Err(err) = rustix::process::set_dumpable_behavior(behavior) {
        tracing::warn!(error = %err, "cannot make the worker non-dumpable");
    }
}

/// The first `max` bytes of `stream`, whether more came, reading it to its end.
async fn capped(stream: Option<impl AsyncRead + Unpin>, max: usize) -> (Vec<u8>, bool) {
    let Some(mut stream) = stream else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    let mut cut = false;
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let room = max.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..n.min(room)]);
        cut |= n > room;
    }
    (kept, cut)
}

impl Commands {
    /// The program and arguments a job's payload names: one of the operator's commands with
    /// the job's values in its placeholders.
    fn resolve(&self, payload: &serde_json::Value) -> Result<(String, Vec<String>), JobError> {
        let request = CommandRequest::parse(payload)
            .map_err(|why| JobError::fatal(format!("command: {why}")))?;
        let template = self.templates.get(&request.command).ok_or_else(|| {
            JobError::fatal(format!(
                "command: {:?} is not in workers.commands",
                request.command
            ))
        })?;
        let args = template
            .render(&request.params)
            .map_err(|why| JobError::fatal(format!("command {:?}: {why}", request.command)))?;
        Ok((template.program.clone(), args))
    }

    /// The process to start: the program itself, or `unshare` starting it without a network.
    fn process(&self, program: &str, args: &[String]) -> tokio::process::Command {
        match self.network {
            CommandNetwork::Shared => {
                let mut command = tokio::process::Command::new(program);
                command.args(args);
                command
            }
            CommandNetwork::None => {
                let mut command = tokio::process::Command::new(UNSHARE);
                // As root a network namespace needs nothing more; otherwise a user namespace
                // comes with it, the worker's own ids mapped, so files look as they did.
                if !rustix::process::geteuid().is_root() {
                    command.args(["--user", "--map-current-user"]);
                }
                command.args(["--net", "--", program]).args(args);
                command
            }
        }
    }

    pub async fn run(&self, ctx: JobContext) -> JobResult {
        let (program, args) = self.resolve(&ctx.payload)?;
        if self.network == CommandNetwork::None && !std::path::Path::new(UNSHARE).exists() {
            return Err(JobError::fatal(format!(
                "command: {UNSHARE} (util-linux) is needed to run commands without a network (workers.command_network = \"none\"); install it in the worker's image, or set workers.command_network = \"shared\""
            )));
        }
        let program = program.as_str();
        let mut command = self.process(program, &args);
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("TASKMESH_TASK_ID", ctx.task_id.to_string())
            .env("TASKMESH_ATTEMPT", ctx.attempt.to_string())
            .env("TASKMESH_IDEMPOTENCY_KEY", &ctx.idempotency_key)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| JobError::fatal(format!("command: cannot run {program}: {e}")))?;
        // The group's id is the leader's pid.
        let group = Group {
            pid: child
                .id()
                .and_then(|id| rustix::process::Pid::from_raw(id as i32)),
            armed: std::sync::atomic::AtomicBool::new(true),
        };
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let run = async {
            let waited = async {
                let status = child.wait().await;
                // What the program left running ends with it, so its pipes close.
                group.kill();
                status
            };
            tokio::join!(
                waited,
                capped(stdout, self.max_output),
                capped(stderr, self.max_output)
            )
        };
        let (status, (stdout, stdout_cut), (stderr, stderr_cut)) = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(JobError::retry("stopped")),
            finished = run => finished,
        };
        let status =
            status.map_err(|e| JobError::retry(format!("command: waiting for {program}: {e}")))?;
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let (stdout, stderr) = (text(&stdout), text(&stderr));
        if !status.success() {
            let tail: String = {
                let chars: Vec<char> = stderr.chars().collect();
                chars[chars.len().saturating_sub(300)..].iter().collect()
            };
            let refused = ["unshare: unshare failed", "unshare: write failed"];
            if self.network == CommandNetwork::None && refused.iter().any(|r| stderr.starts_with(r))
            {
                return Err(JobError::fatal(format!(
                    "command: cannot start {program} without a network ({}); run the worker where it may create namespaces, or set workers.command_network = \"shared\"",
                    tail.trim()
                )));
            }
            return Err(JobError::retry(format!(
                "command: {program} exited with {status}: {tail}"
            )));
        }
        Ok(json!({
            "exit_code": status.code(),
            "stdout": stdout,
            "stderr": stderr,
            "truncated": stdout_cut || stderr_cut,
        }))
    }
}
