//! End to end with real Prometheus and Alertmanager (Debian's `prometheus`
//! and `prometheus-alertmanager`), rollbackd against the fake API server and
//! a fake Slack: the seeds' alerts fire at once (`expr: vector(1)`), and
//! what reaches the cluster and Slack is asserted exactly.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::slack::{FakeSlack, BOT_TOKEN};
use common::*;
use fakekube::{FakeKube, Rollout, WorkloadKind as FakeKind};
use rollbackd::adapters::cluster::Cluster;
use rollbackd::adapters::report::SlackConfig;
use rollbackd::core::secret::Secret;
use serde_json::Value;
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const RULES_ALL: &str = r#"
groups:
  - name: rollback.rules
    interval: 1s
    rules:
      - alert: ServiceDown
        expr: vector(1)
        labels: {severity: critical, namespace: shop, deployment: checkout}
        annotations: {rollback: "true", summary: "checkout is down"}
      - alert: MinorUIGlitch
        expr: vector(1)
        labels: {severity: low, namespace: shop, deployment: frontend}
        annotations: {rollback: "true", reason: "CSS regression"}
      - alert: SlowCheckout
        expr: vector(1)
        labels: {severity: medium, namespace: shop, deployment: payments}
        annotations: {rollback: "true", reason: "p99 latency above 2s"}
"#;

/// Spawns a Debian-packaged binary, killed when the test ends.
fn spawn(binary: &str, args: &[String]) -> Child {
    Command::new(binary)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{binary} must be installed (apt-get install prometheus prometheus-alertmanager): {e}"))
}

async fn ready(url: &str) {
    let client = reqwest::Client::new();
    eventually(|| async {
        let r = client.get(format!("{url}/-/ready")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}

/// Starts Alertmanager on a free port, routing everything to rollbackd at
/// `rollbackd_url` with the test's bearer token from a file (as
/// `http_config.authorization.credentials_file` reads it); returns the
/// process and its port once it is ready.
async fn alertmanager(
    dir: &std::path::Path,
    rollbackd_url: &str,
    group_by: &str,
    repeat_interval: &str,
    send_resolved: bool,
) -> (Child, u16) {
    let token = dir.join("token");
    std::fs::write(&token, WEBHOOK_TOKEN).unwrap();
    let port = free_port();
    std::fs::write(
        dir.join("am.yml"),
        format!(
            "route:\n  receiver: rollbackd\n  group_by: {group_by}\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: {repeat_interval}\n\
             receivers:\n  - name: rollbackd\n    webhook_configs:\n      - url: {rollbackd_url}/webhook\n        send_resolved: {send_resolved}\n        \
             http_config:\n          authorization:\n            type: Bearer\n            credentials_file: {}\n",
            token.display()
        ),
    )
    .unwrap();
    let d = |p: &str| dir.join(p).display().to_string();
    let child = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", d("am.yml")),
            format!("--storage.path={}", d("am-data")),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
        ],
    );
    ready(&format!("http://127.0.0.1:{port}")).await;
    (child, port)
}

/// Slack requests about one alert (its name appears in the message).
fn about(slack: &FakeSlack, alertname: &str) -> Vec<(String, String, Value)> {
    slack
        .delivered()
        .into_iter()
        .filter(|r| r.body.to_string().contains(alertname))
        .map(|r| {
            (
                r.method().to_string(),
                r.body["text"].as_str().unwrap_or_default().to_string(),
                r.body.clone(),
            )
        })
        .collect()
}

/// Waits (up to 60 s: Prometheus evaluates every second, Alertmanager groups
/// within 1-2 s) for a condition on the live system.
async fn until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    common::until(what, Duration::from_secs(60), check).await
}

#[tokio::test]
async fn prometheus_alerts_roll_back_once_notify_and_cancel_a_hold_with_slack_told() {
    let fake = FakeKube::start().await;
    for name in ["checkout", "frontend", "payments"] {
        let w = fake
            .deployment("shop", name)
            .image(&format!("{name}:v1"))
            .create()
            .await;
        w.deploy(&format!("{name}:v2-bad"), "release v2");
    }
    let slack = FakeSlack::start().await;
    let slack_config = SlackConfig::Bot {
        token: Secret::new(BOT_TOKEN),
        channel: "#rollbacks".into(),
        api_url: slack.api_url(),
    };
    fake.set_rollout("shop", "checkout", Rollout::Steps(1));
    let server = TestServer::start_full(
        move |s| s.slack = slack_config,
        Default::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let (_am, am_port) = alertmanager(dir.path(), &server.url, "[namespace]", "3s", true).await;
    let prom_port = free_port();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES_ALL).unwrap();
    std::fs::write(
        dir.path().join("prom.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [{}]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    let prometheus = spawn(
        "prometheus",
        &[
            format!("--config.file={}", d("prom.yml")),
            format!("--storage.tsdb.path={}", d("prom-data")),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--rules.alert.resend-delay=1s".into(),
        ],
    );

    // The critical alert: exactly one rollback, Slack posted then updated
    // to healthy. The rollout moves only when the test steps it, so the
    // first message is out before the rollout ends.
    let checkout = fake.workload(FakeKind::Deployment, "shop", "checkout");
    until("checkout rolled back", || async {
        (checkout.image() == "checkout:v1").then_some(())
    })
    .await;
    until("Slack told of the rollback", || async {
        about(&slack, "ServiceDown")
            .iter()
            .any(|(m, _, _)| m == "chat.postMessage")
            .then_some(())
    })
    .await;
    while checkout.advance() {}
    until("Slack says healthy", || async {
        about(&slack, "ServiceDown")
            .iter()
            .any(|(m, text, _)| m == "chat.update" && text.contains("healthy"))
            .then_some(())
    })
    .await;
    let service_down = about(&slack, "ServiceDown");
    assert_eq!(
        service_down[0].0, "chat.postMessage",
        "the incident's first message is posted"
    );
    let ts = service_down[0].2["ts"].clone();
    assert!(
        service_down[1..]
            .iter()
            .all(|(m, _, body)| m == "chat.update" && (ts.is_null() || body["ts"] == ts)),
        "then that same message is updated: {service_down:?}"
    );

    // Alertmanager re-sends the group (repeat_interval 3s): still one patch.
    let webhooks_with_service_down = || async {
        let (_, page) = server
            .get_json("/api/v1/events?alertname=ServiceDown&limit=50")
            .await;
        let n = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| !e["processed_at"].is_null())
            .count();
        (n >= 2).then_some(page)
    };
    let page = until("a re-sent ServiceDown", webhooks_with_service_down).await;
    let resent = &page["events"][0];
    let down = resent["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alertname"] == "ServiceDown")
        .unwrap();
    assert_eq!(down["actions"][0]["outcome"], "already-rolled-back");
    assert_eq!(fake.patches_to("deployments", "shop", "checkout").len(), 1);

    // The low-severity alert: Slack only, nothing written to the cluster.
    until("Slack notified of MinorUIGlitch", || async {
        (!about(&slack, "MinorUIGlitch").is_empty()).then_some(())
    })
    .await;
    assert!(fake
        .patches_to("deployments", "shop", "frontend")
        .is_empty());
    assert_eq!(
        fake.workload(FakeKind::Deployment, "shop", "frontend")
            .image(),
        "frontend:v2-bad"
    );

    // The medium alert holds; it resolves (rule removed, SIGHUP) before the
    // hold ends: no rollback, Slack says cancelled.
    until("SlowCheckout held", || async {
        about(&slack, "SlowCheckout")
            .iter()
            .any(|(_, text, _)| text.contains("holding"))
            .then_some(())
    })
    .await;
    let without_slow = RULES_ALL
        .split("      - alert: SlowCheckout")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&rules, without_slow).unwrap();
    let pid = prometheus.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .await
        .unwrap()
        .success());
    until("Slack says the hold was cancelled", || async {
        about(&slack, "SlowCheckout")
            .iter()
            .any(|(m, text, _)| m == "chat.update" && text.contains("cancelled"))
            .then_some(())
    })
    .await;
    server.clock.advance(Duration::from_secs(600));
    server.state.wake_worker();
    let (_, page) = server
        .get_json("/api/v1/events?alertname=SlowCheckout&limit=100")
        .await;
    let cancelled = page["events"].as_array().unwrap().iter().any(|e| {
        e["alerts"].as_array().unwrap().iter().any(|a| {
            a["alertname"] == "SlowCheckout"
                && a["actions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["outcome"] == "cancelled")
        })
    });
    assert!(cancelled, "the journal says cancelled");
    // The worker has run since the clock moved past the hold: one more
    // (notify-only) webhook goes through it.
    let mut minor: Value = serde_json::from_slice(FIRING).unwrap();
    minor["alerts"] = serde_json::json!([minor["alerts"][1].clone()]);
    let id: Value = server
        .post_webhook(&serde_json::to_vec(&minor).unwrap())
        .await
        .json()
        .await
        .unwrap();
    server.processed_event(id["id"].as_i64().unwrap()).await;
    assert!(
        fake.patches_to("deployments", "shop", "payments")
            .is_empty(),
        "no rollback after the hold"
    );
    assert_eq!(
        fake.workload(FakeKind::Deployment, "shop", "payments")
            .image(),
        "payments:v2-bad"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_storm_through_alertmanager_is_bounded_by_the_budgets() {
    let fake = FakeKube::start().await;
    for i in 0..200 {
        let w = fake
            .deployment(&format!("team{}", i % 20), &format!("svc{i}"))
            .image("app:good")
            .create()
            .await;
        w.set_image("app:bad");
    }
    let server = TestServer::start_with_cluster(Cluster::at_url(&fake.url())).await;
    let dir = tempfile::tempdir().unwrap();
    let (_am, am_port) = alertmanager(dir.path(), &server.url, "[severity]", "1h", false).await;
    let am = format!("http://127.0.0.1:{am_port}");

    // 1,000 alerts over 200 workloads (5 each), posted to Alertmanager's
    // API in four batches; it groups them into a few webhooks.
    let client = reqwest::Client::new();
    for batch in 0..4 {
        let alerts: Vec<Value> = (batch * 250..(batch + 1) * 250)
            .map(|n| {
                let w = n % 200;
                serde_json::json!({
                    "labels": {"alertname": format!("Alert{}", n / 200), "severity": "critical",
                               "namespace": format!("team{}", w % 20), "deployment": format!("svc{w}")},
                    "annotations": {"rollback": "true"},
                })
            })
            .collect();
        let r = client
            .post(format!("{am}/api/v2/alerts"))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    // Every alert reaches a recorded outcome.
    let outcomes = until("an outcome for each of the 1,000 alerts", || async {
        let mut first: std::collections::HashMap<String, String> = Default::default();
        let mut before: Option<i64> = None;
        loop {
            let path = match before {
                Some(b) => format!("/api/v1/events?limit=500&before={b}"),
                None => "/api/v1/events?limit=500".to_string(),
            };
            let (_, page) = server.get_json(&path).await;
            for e in page["events"].as_array()?.iter().rev() {
                for a in e["alerts"].as_array()? {
                    if let Some(outcome) = a["actions"][0]["outcome"].as_str() {
                        first
                            .entry(a["fingerprint"].as_str()?.to_string())
                            .or_insert_with(|| outcome.to_string());
                    }
                }
            }
            match page["next_before"].as_i64() {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        (first.len() == 1000).then_some(first)
    })
    .await;
    let count = |o: &str| outcomes.values().filter(|v| v.as_str() == o).count();
    assert_eq!(count("rolled-back"), 10, "the cluster budget: 10 per 10m");
    assert_eq!(
        count("rolled-back") + count("cooling-down") + count("refused"),
        1000,
        "{outcomes:?}"
    );
    let applied = fake
        .writes()
        .iter()
        .filter(|w| w.method == "PATCH" && w.status == 200)
        .count();
    assert_eq!(applied, 10, "exactly the budget reached the cluster");
    let m = server.metrics().await;
    assert!(
        m.contains("rollbackd_breaker_openings_total 1"),
        "the breaker reported once:\n{m}"
    );
    server.stop().await;
}
