//! Benchmarks of the whole service, run by `bench/patch-latency.sh`,
//! `bench/rss.sh` and `bench/start.sh` (see bench/README.md), never by CI.
//!
//! ```text
//!  this process                                   child process
//!  ┌──────────────────────────────────┐  webhook  ┌──────────────────────┐
//!  │ load: Alertmanager-shaped POSTs  │ ────────▶ │ target/release/      │
//!  │                                  │           │   rollbackd serve    │
//!  │ FakeKube (in-process): seeded    │ ◀──────── │ (kubeconfig → fake)  │
//!  │   Deployments; a hook per PATCH  │  GET LIST │                      │
//!  │   stamps its arrival time        │  PATCH …  └──────────────────────┘
//!  └──────────────────────────────────┘    /proc/PID/status: VmRSS, VmHWM
//! ```
//!
//! - `patch-latency`: one webhook at a time, each for a workload of its
//!   own; time from sending the POST to fakekube receiving the PATCH.
//! - `rss`: resident memory idle, then during a storm of alerts.
//! - `start`: process spawn to the first 200 from `/readyz`.

#![forbid(unsafe_code)]

mod harness;
mod latency;
mod rss;
mod start;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Benchmarks of rollbackd as a process against the fake API server.
#[derive(Parser)]
struct Cli {
    /// The rollbackd binary to run (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/rollbackd", global = true)]
    rollbackd: PathBuf,
    /// Where journals, kubeconfigs and logs go [default: a temporary
    /// folder, removed at the end].
    #[arg(long, global = true)]
    work_dir: Option<PathBuf>,
    /// Appends the PID of every rollbackd started, so the calling script
    /// can stop any this process could not.
    #[arg(long, global = true)]
    pid_file: Option<PathBuf>,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Webhook → rollback PATCH latency, one webhook at a time.
    PatchLatency(latency::Args),
    /// Resident memory idle and during a storm of alerts.
    Rss(rss::Args),
    /// Spawn to the first 200 from `/readyz`.
    Start(start::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let temp;
    let work_dir = match &cli.work_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let env = harness::Env {
        rollbackd: cli.rollbackd,
        work_dir,
        pid_file: cli.pid_file,
    };
    let run = async {
        match cli.bench {
            Bench::PatchLatency(args) => latency::run(&env, args).await,
            Bench::Rss(args) => rss::run(&env, args).await,
            Bench::Start(args) => start::run(&env, args).await,
        }
    };
    // On SIGTERM or Ctrl-C the bench is dropped, and with it every child
    // (killed on drop) and the fake API server.
    tokio::select! {
        result = run => result,
        _ = harness::interrupted() => anyhow::bail!("interrupted"),
    }
}
