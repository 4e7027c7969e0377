//! `rollbackd serve` as a child process, for tests of the real binary.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{OPERATOR_TOKEN, WEBHOOK_TOKEN};

/// A `rollbackd serve` child process; killed when dropped.
pub struct Proc {
    pub child: Child,
    pub url: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

pub async fn spawn(dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollbackd"));
    cmd.arg("serve")
        .arg("--listen=127.0.0.1:0")
        .arg(format!("--journal={}", dir.join("journal.db").display()))
        .args(extra)
        .env_remove("ROLLBACKD_WEBHOOK_TOKEN")
        // Never reach for a real cluster from a test: no kubeconfig, not
        // in-cluster.
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("ROLLBACKD_LOG", "trace")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !extra.iter().any(|a| a.starts_with("--rules")) {
        cmd.arg(format!("--rules={}/rules", env!("CARGO_MANIFEST_DIR")));
    }
    let mut child = cmd.spawn().expect("rollbackd starts");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let addr_tx = Arc::new(Mutex::new(Some(addr_tx)));
    let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(collect(stdout, log.clone(), addr_tx.clone()));
    tokio::spawn(collect(stderr, log.clone(), addr_tx));
    let addr = tokio::time::timeout(std::time::Duration::from_secs(30), addr_rx)
        .await
        .unwrap_or_else(|_| panic!("no listen address logged: {:?}", log.lock().unwrap()))
        .unwrap_or_else(|_| panic!("rollbackd exited: {:?}", log.lock().unwrap()));
    Proc {
        child,
        url: format!("http://{addr}"),
        log,
    }
}

type AddrSender = Arc<Mutex<Option<tokio::sync::oneshot::Sender<String>>>>;

/// Keeps every line of a child's output; sends the first `addr=` it logs.
async fn collect<R: tokio::io::AsyncBufRead + Unpin>(
    mut lines: tokio::io::Lines<R>,
    log: Arc<Mutex<Vec<String>>>,
    addr: AddrSender,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.split("addr=").nth(1) {
            if let Some(tx) = addr.lock().unwrap().take() {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
        log.lock().unwrap().push(line);
    }
}

impl Proc {
    pub async fn event(&self, id: i64) -> Value {
        reqwest::Client::new()
            .get(format!("{}/api/v1/events/{id}", self.url))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn post(&self, auth: &str, body: &[u8]) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/webhook", self.url))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }
}

pub fn auth_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ROLLBACKD_WEBHOOK_TOKEN", WEBHOOK_TOKEN),
        ("ROLLBACKD_OPERATOR_TOKEN", OPERATOR_TOKEN),
    ]
}

impl Proc {
    /// `GET /readyz`'s body; `None` when the process does not answer.
    pub async fn readyz(&self) -> Option<Value> {
        let resp = reqwest::Client::new()
            .get(format!("{}/readyz", self.url))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    /// This replica's role as `/readyz` says, `None` when it does not answer.
    pub async fn role(&self) -> Option<String> {
        Some(self.readyz().await?["role"].as_str()?.to_string())
    }

    /// Sends SIGTERM (graceful shutdown).
    pub async fn terminate(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
    }

    /// The lines logged so far, joined.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}
