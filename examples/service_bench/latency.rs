//! Webhook → rollback PATCH latency: one webhook at a time, each with one
//! critical alert (rule `service-down`: an immediate rollback, no hold) for
//! a Deployment of its own. The clock starts just before the POST is sent
//! and stops when fakekube has read the PATCH of that Deployment (a hook
//! runs at that moment, before the patch is applied).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fakekube::FakeKube;

use crate::harness::{self, AlertSpec, Env, Launch, Rollbackd};

/// Options of `patch-latency`.
#[derive(clap::Args)]
pub struct Args {
    /// Measured webhooks.
    #[arg(long, default_value_t = 500)]
    samples: usize,
    /// Webhooks sent first and not measured (connections, caches).
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Pause after each PATCH before the next webhook, so the rest of one
    /// rollback (its Event, the journal commit, the rollout watch) does not
    /// overlap the next sample.
    #[arg(long, default_value_t = 20)]
    gap_ms: u64,
    /// Rules folder: the default matrix with the namespace and cluster
    /// limits raised (bench/rules), so hundreds of rollbacks pass.
    #[arg(long, default_value = "bench/rules")]
    rules: PathBuf,
}

/// Workloads are spread over this many namespaces.
const NAMESPACES: usize = 10;
/// How long one PATCH may take to arrive before the run is declared broken.
const PATCH_PATIENCE: Duration = Duration::from_secs(10);

/// Runs the benchmark and prints the percentiles.
pub async fn run(env: &Env, args: Args) -> anyhow::Result<()> {
    let total = args.warmup + args.samples;
    let fake = FakeKube::start().await;
    let kubeconfig = env.path("latency-kubeconfig");
    fake.write_kubeconfig(&kubeconfig)?;
    let per_ns = total.div_ceil(NAMESPACES);
    let workloads = harness::seed(&fake.cluster(), "bench", NAMESPACES, "svc", per_ns).await;
    let journal = env.path("latency-journal.db");
    harness::remove_journal(&journal);
    let rollbackd = Rollbackd::spawn(
        env,
        &Launch {
            journal,
            rules: args.rules.clone(),
            kubeconfig,
        },
    )
    .await?;
    rollbackd.ready().await?;
    eprintln!(
        "rollbackd pid {} at {}; {} Deployments in {NAMESPACES} namespaces; {} warm-up + {} measured webhooks",
        rollbackd.pid,
        rollbackd.url,
        workloads.len(),
        args.warmup,
        args.samples
    );

    let mut acks = Vec::with_capacity(args.samples);
    let mut patches = Vec::with_capacity(args.samples);
    let mut ack_to_patch = Vec::with_capacity(args.samples);
    for (i, (ns, name)) in workloads.iter().take(total).enumerate() {
        let (tx, rx) = tokio::sync::oneshot::channel::<Instant>();
        fake.on_next(
            "PATCH",
            &format!("namespaces/{ns}/deployments/{name}"),
            move |_| {
                let _ = tx.send(Instant::now());
            },
        );
        let body = harness::payload(
            ns,
            &[AlertSpec {
                name: "ServiceDown",
                severity: "critical",
                deployment: name,
                fingerprint: harness::fingerprint(i as u64),
            }],
            jiff::Timestamp::now(),
        );
        let sent = Instant::now();
        rollbackd.post(body).await?;
        let acked = Instant::now();
        let patched = tokio::time::timeout(PATCH_PATIENCE, rx)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no PATCH of {ns}/{name} within {PATCH_PATIENCE:?}: {}",
                    rollbackd.log_tail()
                )
            })?
            .context("the hook was dropped")?;
        if i >= args.warmup {
            acks.push(acked - sent);
            patches.push(patched - sent);
            ack_to_patch.push(patched.saturating_duration_since(acked));
        }
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
    }

    // Every webhook rolled back its own workload, once, with no hold.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = rollbackd.metrics().await?;
    let rolled_back = harness::metric(&m, r#"rollbackd_rollbacks_total{outcome="rolled_back"}"#);
    let decided = harness::metric(
        &m,
        r#"rollbackd_alerts_total{decision="rollback",rule="service-down"}"#,
    );
    let held = harness::metric_lines(&m, "rollbackd_alerts_total{decision=\"rollback-after\"");
    if rolled_back as usize != total || decided as usize != total || !held.is_empty() {
        bail!(
            "expected {total} immediate rollbacks, metrics say: {}",
            harness::metric_lines(&m, "rollbackd_")
                .into_iter()
                .filter(|l| l.contains("rollbacks_total") || l.contains("alerts_total"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    for (ns, name) in workloads.iter().take(total) {
        let n = fake.patches_to("deployments", ns, name).len();
        if n != 1 {
            bail!("{ns}/{name} was patched {n} times");
        }
    }
    let memory = rollbackd.memory()?;
    rollbackd.stop().await?;

    println!(
        "webhook → PATCH, {} samples after {} warm-up, one at a time ({} ms apart)",
        args.samples, args.warmup, args.gap_ms
    );
    println!("{}", harness::summary("POST → 200 (journaled)", &acks));
    println!("{}", harness::summary("POST → PATCH received", &patches));
    println!(
        "{}",
        harness::summary("200 → PATCH received", &ack_to_patch)
    );
    let commit = |q: f64| {
        harness::histogram_quantile(&m, "rollbackd_journal_write_seconds", q)
            .map_or("-".to_string(), |s| format!("≤ {:.1} ms", s * 1000.0))
    };
    println!(
        "journal commits (fsync included), whole run: p50 {}, p90 {}, p99 {}, count {}",
        commit(0.5),
        commit(0.9),
        commit(0.99),
        harness::metric(&m, "rollbackd_journal_write_seconds_count")
    );
    println!(
        "checked: {total} rollbacks by rule service-down, one PATCH per Deployment, no hold; rollbackd VmHWM {}",
        harness::mib(memory.hwm_kib)
    );
    Ok(())
}
