//! What the benchmarks share: the `rollbackd serve` child process, the fake
//! cluster's workloads, Alertmanager-shaped payloads, `/proc` and
//! `/metrics` readings, percentiles.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fakekube::Cluster;
use jiff::Timestamp;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The webhook bearer token every benchmark configures.
pub const WEBHOOK_TOKEN: &str = "bench-webhook-token";
/// The operator token (events API).
pub const OPERATOR_TOKEN: &str = "bench-operator-token";
/// Lines of a child's log kept for error messages.
const LOG_TAIL: usize = 200;
/// How long a child may take to log its address or to stop: a broken
/// build, not a timing assumption (it takes milliseconds).
const PATIENCE: Duration = Duration::from_secs(30);

/// Where and with what the benchmarks run.
pub struct Env {
    /// The rollbackd binary.
    pub rollbackd: PathBuf,
    /// Journals, kubeconfigs, sample files.
    pub work_dir: PathBuf,
    /// Where to append the PID of every rollbackd started.
    pub pid_file: Option<PathBuf>,
}

impl Env {
    /// A path in the work folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work_dir.join(name)
    }
}

/// How to start one `rollbackd serve`.
pub struct Launch {
    /// Journal file (created when missing).
    pub journal: PathBuf,
    /// Rules folder.
    pub rules: PathBuf,
    /// Kubeconfig of the fake API server.
    pub kubeconfig: PathBuf,
}

/// A running `rollbackd serve`, killed if dropped before [`stop`](Self::stop).
pub struct Rollbackd {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// When it was spawned.
    pub spawned: Instant,
    /// When its "listening" line (with the address) was read.
    pub listening: Instant,
    client: reqwest::Client,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Rollbackd {
    /// Spawns `rollbackd serve` on a port from the OS, with the default log
    /// level, and waits for the line that logs its address.
    pub async fn spawn(env: &Env, launch: &Launch) -> anyhow::Result<Rollbackd> {
        let client = reqwest::Client::new();
        let mut cmd = Command::new(&env.rollbackd);
        cmd.arg("serve")
            .arg("--listen=127.0.0.1:0")
            .arg(format!("--journal={}", launch.journal.display()))
            .arg(format!("--rules={}", launch.rules.display()))
            .env("ROLLBACKD_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
            .env("ROLLBACKD_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("KUBECONFIG", &launch.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env_remove("ROLLBACKD_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", env.rollbackd.display()))?;
        let pid = child.id().context("the child has a pid")?;
        if let Some(file) = &env.pid_file {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)?;
            writeln!(f, "{pid}")?;
        }
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let stderr = child.stderr.take().context("stderr is piped")?;
        tokio::spawn(keep_log(
            BufReader::new(stderr).lines(),
            log.clone(),
            addr_tx,
        ));
        let addr = match tokio::time::timeout(PATIENCE, addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => bail!("rollbackd logged no address: {}", tail(&log)),
        };
        Ok(Rollbackd {
            child,
            pid,
            url: format!("http://{addr}"),
            spawned,
            listening: Instant::now(),
            client,
            log,
        })
    }

    /// Polls `/readyz` (1 ms apart) until it answers 200; returns when.
    pub async fn ready(&self) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let resp = self.client.get(format!("{}/readyz", self.url)).send().await;
            if resp.is_ok_and(|r| r.status().as_u16() == 200) {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("/readyz never answered 200: {}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Posts a webhook as Alertmanager does; returns the journal id.
    pub async fn post(&self, body: Vec<u8>) -> anyhow::Result<i64> {
        let resp = self
            .client
            .post(format!("{}/webhook", self.url))
            .bearer_auth(WEBHOOK_TOKEN)
            .header("content-type", "application/json")
            .header("user-agent", "Alertmanager/0.25.0")
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        if status != 200 {
            bail!("webhook answered {status}: {text}");
        }
        let receipt: Value = serde_json::from_str(&text)?;
        receipt["id"].as_i64().context("the receipt has an id")
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let url = format!("{}/metrics", self.url);
        Ok(self.client.get(url).send().await?.text().await?)
    }

    /// Whether webhook `id` is processed (the worker goes in id order, so
    /// every earlier one is too).
    pub async fn processed(&self, id: i64) -> anyhow::Result<bool> {
        let event: Value = self
            .client
            .get(format!("{}/api/v1/events/{id}", self.url))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await?
            .json()
            .await?;
        Ok(!event["processed_at"].is_null())
    }

    /// Waits (polling every 100 ms) until webhook `id` is processed.
    pub async fn wait_processed(&self, id: i64, patience: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + patience;
        while !self.processed(id).await? {
            if Instant::now() > deadline {
                bail!("webhook {id} not processed within {patience:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Its memory now, from `/proc/PID/status`.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.pid)
    }

    /// The last lines it logged.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Stops it as Kubernetes does (SIGTERM) and waits for it to exit;
    /// SIGKILL if it takes longer than 30 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        if !sent.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("rollbackd exited with {status}: {}", self.log_tail());
                }
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("rollbackd did not stop within {PATIENCE:?} of SIGTERM");
            }
        }
        Ok(())
    }
}

/// Keeps the last lines of a child's log; sends the first `addr=` value.
async fn keep_log<R: tokio::io::AsyncBufRead + Unpin>(
    mut lines: tokio::io::Lines<R>,
    log: Arc<Mutex<VecDeque<String>>>,
    addr: tokio::sync::oneshot::Sender<String>,
) {
    let mut addr = Some(addr);
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.split("addr=").nth(1) {
            if let Some(tx) = addr.take() {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == LOG_TAIL {
            log.pop_front();
        }
        log.push_back(line);
    }
}

fn tail(log: &Mutex<VecDeque<String>>) -> String {
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.iter().cloned().collect::<Vec<_>>().join("\n")
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size since the process started.
    pub hwm_kib: u64,
    /// `RssAnon`: the resident heap, stacks and other anonymous memory.
    pub anon_kib: u64,
    /// `RssFile`: resident pages of mapped files (the binary's code).
    pub file_kib: u64,
}

impl Memory {
    /// Reads `/proc/PID/status`.
    pub fn of(pid: u32) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
            anon_kib: field("RssAnon:")?,
            file_kib: field("RssFile:")?,
        })
    }
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (anonymous {}, file {}; VmHWM {})",
            mib(self.rss_kib),
            mib(self.anon_kib),
            mib(self.file_kib),
            mib(self.hwm_kib)
        )
    }
}

/// A duration in milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Nearest-rank percentile `p` (0–100) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One line: n, p50, p90, p99, max, mean of the samples.
pub fn summary(label: &str, samples: &[Duration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let mean = sorted.iter().sum::<Duration>() / sorted.len().max(1) as u32;
    format!(
        "{label:<28} n={:<5} p50={:>10} p90={:>10} p99={:>10} max={:>10} mean={:>10}",
        sorted.len(),
        ms(percentile(&sorted, 50.0)),
        ms(percentile(&sorted, 90.0)),
        ms(percentile(&sorted, 99.0)),
        ms(sorted.last().copied().unwrap_or_default()),
        ms(mean),
    )
}

/// The value of one metric sample (`name{labels}` exactly as exported),
/// 0 when absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Every sample of a metric family whose name starts with `prefix`, as
/// `name{labels} value` lines.
pub fn metric_lines(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// The upper bound of the histogram bucket holding quantile `q` (0–1)
/// of a Prometheus histogram `name` (`name_bucket{le="…"}` lines), or
/// `None` when it has no samples.
pub fn histogram_quantile(text: &str, name: &str, q: f64) -> Option<f64> {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, cumulative)| *cumulative >= q * total)
        .map(|(le, _)| *le)
}

/// Creates `per_namespace` Deployments in each of `namespaces` namespaces
/// (`{ns_prefix}-N`/`{name_prefix}-M`), each with two revisions: a good
/// release and the bad one that is live. Returns (namespace, name) pairs.
pub async fn seed(
    cluster: &Cluster,
    ns_prefix: &str,
    namespaces: usize,
    name_prefix: &str,
    per_namespace: usize,
) -> Vec<(String, String)> {
    let mut workloads = Vec::with_capacity(namespaces * per_namespace);
    for n in 0..namespaces {
        for m in 0..per_namespace {
            let (ns, name) = (format!("{ns_prefix}-{n}"), format!("{name_prefix}-{m}"));
            let w = cluster
                .deployment(&ns, &name)
                .image(&format!("registry.example/{name}:v1.1.0"))
                .change_cause("good release")
                .create()
                .await;
            w.deploy(&format!("registry.example/{name}:v1.2.0"), "bad release");
            workloads.push((ns, name));
        }
    }
    workloads
}

/// One alert of a payload.
pub struct AlertSpec<'a> {
    /// `alertname`.
    pub name: &'a str,
    /// `severity` label.
    pub severity: &'a str,
    /// `deployment` label (the target).
    pub deployment: &'a str,
    /// Alertmanager's fingerprint (16 hex digits).
    pub fingerprint: String,
}

/// A fingerprint-shaped id for alert number `n` (splitmix64: distinct for
/// distinct `n`).
pub fn fingerprint(n: u64) -> String {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("{:016x}", z ^ (z >> 31))
}

/// An Alertmanager v4 webhook body: one group (`namespace`), every alert
/// firing since `starts_at` with `rollback: "true"`, fields as Alertmanager
/// 0.25 sends them (see tests/fixtures).
pub fn payload(namespace: &str, alerts: &[AlertSpec<'_>], starts_at: Timestamp) -> Vec<u8> {
    let starts_at = starts_at
        .round(jiff::Unit::Millisecond)
        .unwrap_or(starts_at);
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|a| {
            json!({
                "status": "firing",
                "labels": {
                    "alertname": a.name,
                    "deployment": a.deployment,
                    "namespace": namespace,
                    "severity": a.severity,
                },
                "annotations": {
                    "rollback": "true",
                    "summary": format!("{} on {}", a.name, a.deployment),
                },
                "startsAt": starts_at.to_string(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=vector%281%29&g0.tab=1",
                "fingerprint": a.fingerprint,
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "receiver": "rollbackd",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"namespace": namespace},
        "commonLabels": {"namespace": namespace},
        "commonAnnotations": {"rollback": "true"},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": format!("{{}}:{{namespace=\"{namespace}\"}}"),
        "truncatedAlerts": 0,
    }))
    .expect("a JSON value serializes")
}

/// Removes a journal and its WAL files, if any.
pub fn remove_journal(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Size of a journal with its WAL, in bytes.
pub fn journal_size(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(PathBuf::from(p)).ok().map(|m| m.len())
        })
        .sum()
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
