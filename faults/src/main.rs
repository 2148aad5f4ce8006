//! `faults`: the fault suite's command line; `scripts/faults` builds and runs it.

use std::path::PathBuf;

use clap::Parser;

/// Runs Taskmesh under faults and checks that nothing is lost, duplicated or unexpected.
#[derive(Parser)]
#[command(about)]
struct Cli {
    /// Fewer requests and shorter faults (about 6 minutes; for CI).
    #[arg(long)]
    quick: bool,
    /// Run only the faults whose name contains one of these (comma-separated), e.g.
    /// `kill9,postgres`; the baseline always runs first. `--list` names them.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// List the faults and exit.
    #[arg(long)]
    list: bool,
    /// The `taskmesh` binary to run the services with.
    #[arg(long, env = "TASKMESH_BIN")]
    taskmesh: Option<PathBuf>,
    /// The Python with aiosmtpd that runs the SMTP sink (`tests/notify/smtp_sink.py`):
    /// the venv's, printed by `scripts/python-env` (which `scripts/faults` passes).
    #[arg(long, env = "TASKMESH_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// Keep the temporary directory (logs, data) after the run.
    #[arg(long)]
    keep: bool,
    /// Also write the table (markdown) to this file.
    #[arg(long)]
    table: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let faults = faults::suite::selected(&cli.only, cli.quick);
    if cli.list {
        for fault in faults::suite::all() {
            println!("{}", fault.name());
        }
        return Ok(());
    }
    let taskmesh = match cli.taskmesh {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("taskmesh"))
            .ok_or_else(|| anyhow::anyhow!("no taskmesh binary: pass --taskmesh"))?,
    };
    anyhow::ensure!(
        taskmesh.exists(),
        "{} does not exist: build it (cargo build -p taskmesh) or pass --taskmesh",
        taskmesh.display()
    );
    let settings = if cli.quick {
        faults::suite::Settings::quick()
    } else {
        faults::suite::Settings::full()
    };
    let report = faults::suite::run(&taskmesh, &cli.python, &faults, &settings, cli.keep).await?;
    println!();
    println!("{}", report.table());
    if let Some(path) = cli.table {
        std::fs::write(path, report.table())?;
    }
    if !report.passed() {
        eprintln!("faults: FAILED: lost, duplicated or unexpected effects (details above)");
        std::process::exit(1);
    }
    Ok(())
}
