//! Start to ready: from spawning `rollbackd serve` to the first 200 from
//! `/readyz` (polled 1 ms apart once the process has logged its address),
//! with a fresh journal, then with one that already holds `--journal-webhooks`
//! processed webhooks. Each run ends with SIGTERM, as a rolling restart
//! would, before the next one starts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fakekube::FakeKube;
use futures::StreamExt;

use crate::harness::{self, Env, Launch, Rollbackd};

/// Options of `start`.
#[derive(clap::Args)]
pub struct Args {
    /// Starts per series.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Webhooks journaled (and processed) before the second series; 0
    /// skips it.
    #[arg(long, default_value_t = 10_000)]
    journal_webhooks: usize,
    /// Rules folder.
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
}

/// A real Alertmanager 0.25 group of four alerts (tests/fixtures).
const FIRING: &[u8] = include_bytes!("../../tests/fixtures/alertmanager-0.25-firing-group.json");

/// Runs both series and prints them.
pub async fn run(env: &Env, args: Args) -> anyhow::Result<()> {
    // A cluster to talk to: /readyz asks the API server for its version.
    let fake = FakeKube::start().await;
    let kubeconfig = env.path("start-kubeconfig");
    fake.write_kubeconfig(&kubeconfig)?;
    let launch = |journal: PathBuf| Launch {
        journal,
        rules: args.rules.clone(),
        kubeconfig: kubeconfig.clone(),
    };

    let mut fresh = Series::default();
    for r in 0..args.runs {
        let journal = env.path(&format!("start-fresh-{r}.db"));
        harness::remove_journal(&journal);
        fresh
            .add(Rollbackd::spawn(env, &launch(journal.clone())).await?)
            .await?;
        harness::remove_journal(&journal);
    }
    println!("start to ready, {} runs each", args.runs);
    fresh.print("fresh journal");

    if args.journal_webhooks > 0 {
        let journal = env.path("start-existing.db");
        harness::remove_journal(&journal);
        let filler = Rollbackd::spawn(env, &launch(journal.clone())).await?;
        filler.ready().await?;
        let ids: Vec<anyhow::Result<i64>> = futures::stream::iter(0..args.journal_webhooks)
            .map(|_| filler.post(FIRING.to_vec()))
            .buffer_unordered(32)
            .collect()
            .await;
        let mut last = 0;
        for id in ids {
            last = last.max(id?);
        }
        filler
            .wait_processed(last, Duration::from_secs(600))
            .await?;
        filler.stop().await?;
        let size = harness::journal_size(&journal);
        let mut existing = Series::default();
        for _ in 0..args.runs {
            existing
                .add(Rollbackd::spawn(env, &launch(journal.clone())).await?)
                .await?;
        }
        existing.print(&format!(
            "journal of {} processed webhooks ({:.1} MiB)",
            args.journal_webhooks,
            size as f64 / (1024.0 * 1024.0)
        ));
    }
    Ok(())
}

/// The timings of one series of starts.
#[derive(Default)]
struct Series {
    /// Spawn → the log line with the address.
    listening: Vec<Duration>,
    /// Spawn → the first 200 from `/readyz`.
    ready: Vec<Duration>,
}

impl Series {
    /// Times one start, then stops the process.
    async fn add(&mut self, rollbackd: Rollbackd) -> anyhow::Result<()> {
        let ready: Instant = rollbackd.ready().await?;
        self.listening.push(rollbackd.listening - rollbackd.spawned);
        self.ready.push(ready - rollbackd.spawned);
        rollbackd.stop().await
    }

    fn print(&self, label: &str) {
        println!("{label}:");
        println!(
            "{}",
            harness::summary("  spawn → address logged", &self.listening)
        );
        println!("{}", harness::summary("  spawn → /readyz 200", &self.ready));
    }
}
