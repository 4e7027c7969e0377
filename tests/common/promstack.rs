//! Real Prometheus and Alertmanager (Debian's `prometheus` and
//! `prometheus-alertmanager`, see `/work/shared/fixtures/README.md`) on
//! loopback for end-to-end tests: each in a folder of the test's own, on a
//! free port, its output kept in `NAME.log` there for failure messages, and
//! killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

/// A free loopback port, chosen by the OS. Prometheus and Alertmanager
/// cannot report the port they bound, so the port is reserved here and
/// released just before; a process that loses the race exits and is
/// started again on another port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Debian-packaged server; killed when dropped.
pub struct Packaged {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its port.
    pub port: u16,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Packaged {
    /// Starts `binary` with `args(port)` on a free port, its output in
    /// `dir/NAME.log`; returns once `/-/ready` answers 2xx. Tries three
    /// ports: one may be taken between [`free_port`] and the bind.
    pub async fn start(
        binary: &str,
        dir: &Path,
        name: &str,
        args: impl Fn(u16) -> Vec<String>,
    ) -> Packaged {
        let log = dir.join(format!("{name}.log"));
        let client = reqwest::Client::new();
        for _attempt in 0..3 {
            let port = free_port();
            let out = std::fs::File::create(&log).unwrap();
            let mut child = Command::new(binary)
                .args(args(port))
                .stdout(Stdio::from(out.try_clone().unwrap()))
                .stderr(Stdio::from(out))
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "{binary} must be installed \
                         (apt-get install -y prometheus prometheus-alertmanager): {e}"
                    )
                });
            let url = format!("http://127.0.0.1:{port}");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    eprintln!(
                        "{name} exited ({status}) on port {port}, trying another:\n{}",
                        tail(&log, 20)
                    );
                    break;
                }
                let ok = client
                    .get(format!("{url}/-/ready"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    return Packaged {
                        child,
                        url,
                        port,
                        log,
                    };
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name} not ready within 30 s:\n{}",
                    tail(&log, 40)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("{name} did not start:\n{}", tail(&log, 40));
    }

    /// The last `n` lines of its output.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// `GET path` as JSON (`Value::Null` when it does not answer JSON).
    pub async fn get_json(&self, path: &str) -> Value {
        match reqwest::get(format!("{}{path}", self.url)).await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Alertmanager's route and its one receiver: a webhook with Bearer
/// credentials from a file, as the README wires rollbackd.
pub struct AlertmanagerConfig<'a> {
    /// The webhook URL (`http://.../webhook`).
    pub webhook_url: &'a str,
    /// The Bearer token, written to a `credentials_file`.
    pub token: &'a str,
    /// `group_by`, as YAML (`[namespace]`).
    pub group_by: &'a str,
    /// `group_wait`.
    pub group_wait: &'a str,
    /// `group_interval`.
    pub group_interval: &'a str,
    /// `repeat_interval`.
    pub repeat_interval: &'a str,
    /// `send_resolved`.
    pub send_resolved: bool,
}

impl AlertmanagerConfig<'_> {
    /// The configuration file's text; the token file is `token_file`.
    pub fn yaml(&self, token_file: &Path) -> String {
        format!(
            "route:\n  receiver: rollbackd\n  group_by: {group_by}\n  group_wait: {group_wait}\n  \
             group_interval: {group_interval}\n  repeat_interval: {repeat_interval}\n\
             receivers:\n  - name: rollbackd\n    webhook_configs:\n      - url: {url}\n        \
             send_resolved: {send_resolved}\n        http_config:\n          authorization:\n            \
             type: Bearer\n            credentials_file: {token}\n",
            group_by = self.group_by,
            group_wait = self.group_wait,
            group_interval = self.group_interval,
            repeat_interval = self.repeat_interval,
            url = self.webhook_url,
            send_resolved = self.send_resolved,
            token = token_file.display(),
        )
    }
}

/// Starts Alertmanager in `dir` (clustering off).
pub async fn alertmanager(dir: &Path, config: &AlertmanagerConfig<'_>) -> Packaged {
    let token = dir.join("alertmanager-token");
    std::fs::write(&token, config.token).unwrap();
    let file = dir.join("alertmanager.yml");
    std::fs::write(&file, config.yaml(&token)).unwrap();
    let data = dir.join("alertmanager-data");
    Packaged::start("prometheus-alertmanager", dir, "alertmanager", |port| {
        vec![
            format!("--config.file={}", file.display()),
            format!("--storage.path={}", data.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
        ]
    })
    .await
}

/// Prometheus: what it scrapes and evaluates, and where it sends alerts.
pub struct PrometheusConfig<'a> {
    /// `global.scrape_interval` and `global.evaluation_interval` (`1s`).
    pub interval: &'a str,
    /// The rule file's text.
    pub rules: &'a str,
    /// `host:port` targets of one scrape job, `kube-state-metrics`
    /// (`honor_labels: true`, as kube-state-metrics is scraped).
    pub targets: &'a [String],
    /// The Alertmanager's port on 127.0.0.1.
    pub alertmanager_port: u16,
}

/// Starts Prometheus in `dir` with `--rules.alert.resend-delay=1s` (without
/// it the first alerts wait a minute).
pub async fn prometheus(dir: &Path, config: &PrometheusConfig<'_>) -> Packaged {
    let rules = dir.join("prometheus-rules.yml");
    std::fs::write(&rules, config.rules).unwrap();
    let targets: Vec<String> = config.targets.iter().map(|t| format!("'{t}'")).collect();
    let file = dir.join("prometheus.yml");
    std::fs::write(
        &file,
        format!(
            "global:\n  scrape_interval: {i}\n  evaluation_interval: {i}\n\
             rule_files: ['{rules}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am}']\n\
             scrape_configs:\n  - job_name: kube-state-metrics\n    honor_labels: true\n    \
             static_configs:\n      - targets: [{targets}]\n",
            i = config.interval,
            rules = rules.display(),
            am = config.alertmanager_port,
            targets = targets.join(", "),
        ),
    )
    .unwrap();
    let data = dir.join("prometheus-data");
    Packaged::start("prometheus", dir, "prometheus", |port| {
        vec![
            format!("--config.file={}", file.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--rules.alert.resend-delay=1s".into(),
        ]
    })
    .await
}
