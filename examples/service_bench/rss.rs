//! Resident memory of `rollbackd serve` idle, then during a storm of
//! alerts: `--webhooks` groups of `--alerts` alerts posted
//! `--concurrency` at a time, against workloads that exist in the fake
//! cluster, with the shipped rules and guard. VmRSS is sampled every
//! 100 ms from the POST of the first webhook until 5 s after the last one
//! is processed; VmHWM is the kernel's own peak.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use fakekube::FakeKube;
use futures::StreamExt;

use crate::harness::{self, AlertSpec, Env, Launch, Memory, Rollbackd};

/// Options of `rss`.
#[derive(clap::Args)]
pub struct Args {
    /// Webhooks in the storm (one Alertmanager group each).
    #[arg(long, default_value_t = 1000)]
    webhooks: usize,
    /// Alerts per webhook.
    #[arg(long, default_value_t = 10)]
    alerts: usize,
    /// Webhooks in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Namespaces in the fake cluster.
    #[arg(long, default_value_t = 20)]
    namespaces: usize,
    /// Deployments per namespace.
    #[arg(long, default_value_t = 10)]
    deployments: usize,
    /// Seconds idle after `/readyz` before the idle reading.
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
    /// Every alert at severity `warning`, which no shipped rule matches:
    /// no cluster call, only intake, journal and decisions.
    #[arg(long)]
    ignored: bool,
    /// Rules folder (the shipped matrix and guard).
    #[arg(long, default_value = "rules")]
    rules: PathBuf,
}

/// The storm's alerts, in turn: two roll back at once (and meet the
/// guard), one holds for 2 minutes, one notifies, one matches no rule.
const KINDS: [(&str, &str); 5] = [
    ("ServiceDown", "critical"),
    ("HighErrorRate", "high"),
    ("HighLatency", "medium"),
    ("MinorBug", "low"),
    ("DiskAlmostFull", "warning"),
];
/// The storm's alerts with `--ignored`.
const IGNORED: (&str, &str) = ("DiskAlmostFull", "warning");
/// Sampling period of VmRSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Sampling goes on this long after the storm is processed.
const SETTLE: Duration = Duration::from_secs(5);

/// Runs the benchmark and prints the readings.
pub async fn run(env: &Env, args: Args) -> anyhow::Result<()> {
    let fake = FakeKube::start().await;
    let kubeconfig = env.path("rss-kubeconfig");
    fake.write_kubeconfig(&kubeconfig)?;
    harness::seed(
        &fake.cluster(),
        "team",
        args.namespaces,
        "app",
        args.deployments,
    )
    .await;
    let journal = env.path("rss-journal.db");
    harness::remove_journal(&journal);
    let rollbackd = Rollbackd::spawn(
        env,
        &Launch {
            journal: journal.clone(),
            rules: args.rules.clone(),
            kubeconfig,
        },
    )
    .await?;
    rollbackd.ready().await?;
    let at_ready = rollbackd.memory()?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle = rollbackd.memory()?;

    // Built before the storm, so the storm is only sending.
    let starts_at = jiff::Timestamp::now();
    let bodies: Vec<Vec<u8>> = (0..args.webhooks)
        .map(|k| {
            let ns = format!("team-{}", k % args.namespaces);
            let names: Vec<String> = (0..args.alerts)
                .map(|j| format!("app-{}", (k / args.namespaces + j) % args.deployments))
                .collect();
            let alerts: Vec<AlertSpec<'_>> = (0..args.alerts)
                .map(|j| {
                    let n = k * args.alerts + j;
                    let (name, severity) = if args.ignored {
                        IGNORED
                    } else {
                        KINDS[n % KINDS.len()]
                    };
                    AlertSpec {
                        name,
                        severity,
                        deployment: &names[j],
                        fingerprint: harness::fingerprint(n as u64),
                    }
                })
                .collect();
            harness::payload(&ns, &alerts, starts_at)
        })
        .collect();
    let body_bytes: usize = bodies.iter().map(Vec::len).sum();
    eprintln!(
        "rollbackd pid {}: idle {}; storm of {} webhooks × {} alerts ({} KiB of JSON), {} in flight",
        rollbackd.pid,
        harness::mib(idle.rss_kib),
        args.webhooks,
        args.alerts,
        body_bytes / 1024,
        args.concurrency
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample(rollbackd.pid, stop.clone()));
    let storm_start = Instant::now();
    let results: Vec<anyhow::Result<i64>> = futures::stream::iter(bodies)
        .map(|body| rollbackd.post(body))
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let acked = storm_start.elapsed();
    let mut ids = Vec::with_capacity(results.len());
    for r in results {
        ids.push(r?);
    }
    let last = ids.iter().copied().max().unwrap_or(0);
    rollbackd
        .wait_processed(last, Duration::from_secs(600))
        .await?;
    let processed = storm_start.elapsed();
    tokio::time::sleep(SETTLE).await;
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await??;
    let after = rollbackd.memory()?;
    let m = rollbackd.metrics().await?;
    let journal_bytes = harness::journal_size(&journal);
    rollbackd.stop().await?;

    let Some(peak) = samples.iter().map(|&(_, kib)| kib).max() else {
        bail!("no RSS samples");
    };
    // When the peak was first reached (it usually stays: freed memory is
    // kept by the allocator).
    let peak_at = samples
        .iter()
        .find(|&&(_, kib)| kib == peak)
        .map_or(Duration::ZERO, |&(t, _)| t);

    println!(
        "storm: {} webhooks × {} alerts = {} alerts{}, {} in flight, against {} Deployments in {} namespaces",
        args.webhooks,
        args.alerts,
        args.webhooks * args.alerts,
        if args.ignored { " (all ignored)" } else { "" },
        args.concurrency,
        args.namespaces * args.deployments,
        args.namespaces
    );
    println!(
        "  all acknowledged after {:.1} s, all processed after {:.1} s",
        acked.as_secs_f64(),
        processed.as_secs_f64()
    );
    println!("RSS at ready:               {at_ready}");
    println!("RSS idle ({} s after ready): {idle}", args.idle_secs);
    println!(
        "RSS storm peak (sampled):   {} at {:.1} s; VmHWM at the end {}",
        harness::mib(peak),
        peak_at.as_secs_f64(),
        harness::mib(after.hwm_kib)
    );
    println!("RSS {} s after the storm:   {after}", SETTLE.as_secs());
    println!(
        "journal after the storm: {:.1} MiB",
        journal_bytes as f64 / (1024.0 * 1024.0)
    );
    let series: Vec<String> = samples
        .iter()
        .step_by(5)
        .map(|(t, kib)| format!("{:.1}s {:.1}", t.as_secs_f64(), *kib as f64 / 1024.0))
        .collect();
    println!("VmRSS (MiB) every 0.5 s: {}", series.join(", "));
    for prefix in [
        "rollbackd_alerts_total{",
        "rollbackd_rollbacks_total{",
        "rollbackd_guard_refusals_total{",
        "rollbackd_breaker_openings_total",
    ] {
        for line in harness::metric_lines(&m, prefix) {
            println!("  {line}");
        }
    }
    println!(
        "  requests to the fake API server: {}",
        fake.requests().len()
    );
    Ok(())
}

/// VmRSS (KiB) every 100 ms, with the time since sampling began, until
/// `stop`.
async fn sample(pid: u32, stop: Arc<AtomicBool>) -> anyhow::Result<Vec<(Duration, u64)>> {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let Memory { rss_kib, .. } = Memory::of(pid)?;
        samples.push((start.elapsed(), rss_kib));
    }
    Ok(samples)
}
