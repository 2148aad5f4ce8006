//! Where the CPU went during a measured path: user+system time of the processes taking part
//! (each service, PostgreSQL's backends, RabbitMQ, Redis, the bench itself), read from
//! `/proc/<pid>/stat` before and after. Linux only; elsewhere the meter reads nothing.

use std::collections::BTreeMap;
use std::time::Instant;

/// Processes grouped under a label; a group's time is the sum of its processes.
#[derive(Clone)]
pub struct CpuMeter {
    /// (label, pid) for processes the bench started.
    children: Vec<(String, u32)>,
}

/// One reading: CPU seconds per label and when it was taken.
pub struct Reading {
    at: Instant,
    seconds: BTreeMap<String, f64>,
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

fn ticks(pid: &str) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces, so split after the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    // Fields 14 and 15 of the whole line (utime, stime) are 11 and 12 after the comm.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / TICKS))
}

impl CpuMeter {
    pub fn new(children: Vec<(String, u32)>) -> Self {
        Self { children }
    }

    /// A meter of the platform's processes, as [`crate::platform::spawn`] started them.
    pub fn of(children: &[(&str, tokio::process::Child)]) -> Self {
        Self::new(
            children
                .iter()
                .filter_map(|(name, child)| Some((name.to_string(), child.id()?)))
                .collect(),
        )
    }

    pub fn read(&self) -> Reading {
        let mut seconds = BTreeMap::new();
        for (label, pid) in &self.children {
            if let Some((_, s)) = ticks(&pid.to_string()) {
                *seconds.entry(label.clone()).or_insert(0.0) += s;
            }
        }
        if let Some((_, s)) = ticks("self") {
            seconds.insert("bench".into(), s);
        }
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name
                    .to_str()
                    .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
                else {
                    continue;
                };
                let Some((comm, s)) = ticks(pid) else {
                    continue;
                };
                let label = match comm.as_str() {
                    "postgres" => "postgresql",
                    "beam.smp" => "rabbitmq",
                    "redis-server" => "redis",
                    _ => continue,
                };
                *seconds.entry(label.to_string()).or_insert(0.0) += s;
            }
        }
        Reading {
            at: Instant::now(),
            seconds,
        }
    }
}

/// Prints the CPU seconds per label between two readings, per 1,000 `unit`s, busiest first, with
/// the machine's capacity over the same wall time.
pub fn report(title: &str, before: &Reading, after: &Reading, count: usize, unit: &str) {
    let wall = after.at.duration_since(before.at).as_secs_f64();
    let mut used: Vec<(String, f64)> = after
        .seconds
        .iter()
        .map(|(label, s)| {
            let was = before.seconds.get(label).copied().unwrap_or(0.0);
            (label.clone(), (s - was).max(0.0))
        })
        .collect();
    used.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = used.iter().map(|u| u.1).sum();
    let per = 1000.0 / count.max(1) as f64;
    let parts: Vec<String> = used
        .iter()
        .filter(|u| u.1 >= 0.005)
        .map(|(label, s)| format!("{label} {:.2}", s * per))
        .collect();
    println!(
        "CPU, {title}: {:.2} s of {:.2} s available ({} cores × {wall:.2} s wall); per 1,000 {unit}, s: {}",
        total,
        wall * crate::cores() as f64,
        crate::cores(),
        parts.join(", ")
    );
}
