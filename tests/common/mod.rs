//! Test harness: the real router on port 0 with a journal in a temp dir.
#![allow(dead_code)]

pub mod cluster;
pub mod proc;
pub mod promstack;
pub mod rbac;
pub mod slack;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use rollbackd::adapters::cluster::Cluster;
use rollbackd::adapters::journal::JournalOptions;
use rollbackd::core::clock::Clock;
use rollbackd::core::secret::Secret;
use rollbackd::service::config::{RulesSource, Settings, WebhookAuth};
use rollbackd::service::server::Server;
use rollbackd::service::state::AppState;

pub const WEBHOOK_TOKEN: &str = "am-webhook-token";
pub const OPERATOR_TOKEN: &str = "oncall-operator-token";
pub const FIRING: &[u8] = include_bytes!("../fixtures/alertmanager-0.25-firing-group.json");
pub const RESOLVED: &[u8] = include_bytes!("../fixtures/alertmanager-0.25-one-resolved.json");

/// shop/ecommerce, shop/checkout and shop/frontend, each with a good and a
/// bad release.
pub async fn shop() -> fakekube::FakeKube {
    let fake = fakekube::FakeKube::start().await;
    for name in ["ecommerce", "checkout", "frontend"] {
        let w = fake
            .deployment("shop", name)
            .image(&format!("ghcr.io/company/{name}:v1.1.0"))
            .change_cause("good release")
            .create()
            .await;
        w.deploy(&format!("ghcr.io/company/{name}:v1.2.0"), "bad release");
    }
    fake
}

/// A clock the test sets.
pub struct TestClock(Mutex<Timestamp>);

impl TestClock {
    pub fn at(t: &str) -> Arc<TestClock> {
        Arc::new(TestClock(Mutex::new(t.parse().unwrap())))
    }

    pub fn advance(&self, d: Duration) {
        let mut now = self.0.lock().unwrap();
        *now += d;
    }

    pub fn set(&self, t: &str) {
        *self.0.lock().unwrap() = t.parse().unwrap();
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

pub fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        rules: RulesSource::Dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules")),
        journal: dir.join("journal.db"),
        dry_run: false,
        max_body_bytes: 1 << 20,
        webhook_auth: WebhookAuth {
            bearer: Some(Secret::new(WEBHOOK_TOKEN)),
            basic: Some(("alertmanager".into(), Secret::new("basic-pass"))),
        },
        operator_token: Some(Secret::new(OPERATOR_TOKEN)),
        insecure_no_auth: false,
        intake_only: false,
        slack: rollbackd::adapters::report::SlackConfig::Disabled,
        leader_election: None,
        cluster_name: None,
        slack_allowed_channels: Vec::new(),
    }
}

pub struct TestServer {
    pub url: String,
    pub state: AppState,
    pub clock: Arc<TestClock>,
    pub client: reqwest::Client,
    server: Option<Server>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}, JournalOptions::default()).await
    }

    pub async fn start_with(
        adjust: impl FnOnce(&mut Settings),
        journal: JournalOptions,
    ) -> TestServer {
        let cluster = Cluster::Unavailable("no cluster in this test".into());
        Self::start_full(adjust, journal, cluster).await
    }

    pub async fn start_with_cluster(cluster: Cluster) -> TestServer {
        Self::start_full(|_| {}, JournalOptions::default(), cluster).await
    }

    pub async fn start_full(
        adjust: impl FnOnce(&mut Settings),
        journal: JournalOptions,
        cluster: Cluster,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        adjust(&mut s);
        let clock = TestClock::at("2026-11-22T12:50:45Z");
        let state = AppState::build(s, clock.clone(), journal, cluster).unwrap();
        let server = Server::start(state.clone()).await.unwrap();
        TestServer {
            url: format!("http://{}", server.addr),
            state,
            clock,
            client: reqwest::Client::new(),
            server: Some(server),
            dir,
        }
    }

    pub async fn post_webhook(&self, body: &[u8]) -> reqwest::Response {
        self.client
            .post(format!("{}/webhook", self.url))
            .bearer_auth(WEBHOOK_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Posts a webhook; the journal id of the receipt.
    pub async fn post_id(&self, body: &[u8]) -> i64 {
        let r: serde_json::Value = self.post_webhook(body).await.json().await.unwrap();
        r["id"].as_i64().unwrap()
    }

    /// An endpoint without credentials (`/healthz`, `/readyz`): status and
    /// JSON body.
    pub async fn get_open_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.url);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// Waits until webhook `id` is processed; returns its event.
    pub async fn processed_event(&self, id: i64) -> serde_json::Value {
        let path = format!("/api/v1/events/{id}");
        eventually(|| async {
            let (_, e) = self.get_json(&path).await;
            (!e["processed_at"].is_null()).then_some(e)
        })
        .await
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// Polls `check` until it yields a value; fails after 10 s (a deadline for
/// a broken build, not a timing assumption: the work takes milliseconds).
pub async fn eventually<T, F, Fut>(check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(Duration::from_secs(10), check).await
}

/// [`eventually`] with a longer deadline, for conditions that wait on a
/// real timer of the code under test (a Lease expiring).
pub async fn eventually_within<T, F, Fut>(limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    until("condition", limit, check).await
}

/// Polls `check` until it yields a value; fails after `limit`, naming
/// `what` was awaited.
pub async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An event's actions for alert `alert`, as `action:outcome`.
pub fn actions(event: &serde_json::Value, alert: usize) -> Vec<String> {
    event["alerts"][alert]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["action"].as_str().unwrap(),
                a["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

/// A rules folder under `dir`: the default matrix with the namespace and
/// cluster budgets raised to `budget` per 10 minutes (for storms whose
/// subject is not the rate limits). Returns the `--rules=` argument.
pub fn rules_with_budget(dir: &std::path::Path, budget: u32) -> String {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.yaml"))
        .unwrap()
        .replace(
            "namespace: 5 per 10m",
            &format!("namespace: {budget} per 10m"),
        )
        .replace("cluster: 10 per 10m", &format!("cluster: {budget} per 10m"));
    assert!(
        text.contains(&format!("cluster: {budget} per 10m")),
        "the default budgets moved"
    );
    std::fs::write(rules.join("default.yaml"), text).unwrap();
    format!("--rules={}", rules.display())
}

/// A firing group (the real fixture's envelope) of critical `ServiceDown`
/// alerts for the deployments named, in `ns`, started at `starts_at`, each
/// with extra labels.
pub fn service_down(ns: &str, starts_at: &str, list: &[(&str, &[(&str, &str)])]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(FIRING).unwrap();
    v["alerts"] = list
        .iter()
        .enumerate()
        .map(|(i, (deploy, extra))| {
            let mut labels = serde_json::json!({"alertname": "ServiceDown", "severity": "critical",
                "namespace": ns, "deployment": deploy});
            for (k, val) in *extra {
                labels[*k] = serde_json::json!(val);
            }
            serde_json::json!({"status": "firing", "labels": labels,
                "annotations": {"rollback": "true"},
                "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph", "fingerprint": format!("{i:016x}")})
        })
        .collect();
    serde_json::to_vec(&v).unwrap()
}
