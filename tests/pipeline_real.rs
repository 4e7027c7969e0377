//! The whole pipeline, real except Slack: a bad release on the real control
//! plane leaves its pods unready; an exporter in this test serves
//! kube-state-metrics' Deployment series, read from the API server on each
//! scrape; a real Prometheus scrapes it and fires an alert; a real
//! Alertmanager routes it to the real `rollbackd serve`, which rolls the
//! Deployment back on the real server and tells the fake Slack; the real
//! controller brings the good ReplicaSet back, rollbackd reports healthy,
//! and the alert resolves. Everything is asserted from the outside:
//! kubectl, the events API, the fake Slack's requests.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use common::cluster::TestKube;
use common::proc::{auth_env, spawn, Proc};
use common::promstack::{alertmanager, prometheus, AlertmanagerConfig, Packaged, PrometheusConfig};
use common::slack::{FakeSlack, BOT_TOKEN};
use common::{OPERATOR_TOKEN, WEBHOOK_TOKEN};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use rollbackd::core::decide::WorkloadKind;
use serde_json::Value;

const DEPLOY: WorkloadKind = WorkloadKind::Deployment;
const GOOD: &str = "registry.local/web:v1";
/// fakelet runs it but never reports it Ready (`-bad`).
const BAD: &str = "registry.local/web:v2-bad";
const ALERT: &str = "KubeDeploymentReplicasUnavailable";
/// The bound on each wait below: the chain (scrape 1 s, evaluation 1 s,
/// `for: 2s`, group_wait 1 s, a rollout of ready-at-once pods) takes
/// seconds; this only names a broken build.
const LIMIT: Duration = Duration::from_secs(40);

/// What the exporter serves and how often it was scraped.
#[derive(Clone)]
struct Exporter {
    deployments: Api<Deployment>,
    scrapes: Arc<AtomicUsize>,
}

/// A label value in the text exposition format.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// kube-state-metrics' Deployment series (its names and labels), from the
/// Deployments the API server has now.
async fn scrape(
    State(exporter): State<Exporter>,
) -> Result<String, (axum::http::StatusCode, String)> {
    let list = exporter
        .deployments
        .list(&ListParams::default())
        .await
        .map_err(|e| (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    type Field = fn(&Deployment) -> i32;
    let families: [(&str, &str, Field); 6] = [
        (
            "kube_deployment_spec_replicas",
            "Number of desired pods for a deployment.",
            |d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ),
        (
            "kube_deployment_status_replicas",
            "The number of replicas per deployment.",
            |d| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        ),
        (
            "kube_deployment_status_replicas_available",
            "The number of available replicas per deployment.",
            |d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
            },
        ),
        (
            "kube_deployment_status_replicas_unavailable",
            "The number of unavailable replicas per deployment.",
            |d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.unavailable_replicas)
                    .unwrap_or(0)
            },
        ),
        (
            "kube_deployment_status_replicas_updated",
            "The number of updated replicas per deployment.",
            |d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.updated_replicas)
                    .unwrap_or(0)
            },
        ),
        (
            "kube_deployment_status_observed_generation",
            "The generation observed by the deployment controller.",
            |d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .unwrap_or(0) as i32
            },
        ),
    ];
    let mut text = String::new();
    for (name, help, field) in families {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for d in &list.items {
            text.push_str(&format!(
                "{name}{{namespace=\"{}\",deployment=\"{}\"}} {}\n",
                escape(d.metadata.namespace.as_deref().unwrap_or_default()),
                escape(d.metadata.name.as_deref().unwrap_or_default()),
                field(d)
            ));
        }
    }
    exporter.scrapes.fetch_add(1, Ordering::Relaxed);
    Ok(text)
}

/// The exporter on 127.0.0.1:0 for the Deployments of `kube`'s namespace;
/// its `host:port`, its scrape count, and the task (aborted by the caller).
async fn start_exporter(
    kube: &TestKube,
) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let exporter = Exporter {
        deployments: Api::namespaced(kube.client(), &kube.ns),
        scrapes: Arc::new(AtomicUsize::new(0)),
    };
    let scrapes = exporter.scrapes.clone();
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(exporter);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, scrapes, task)
}

/// Everything that runs besides the cluster, for failure messages.
struct Stack {
    rollbackd: Proc,
    prometheus: Packaged,
    alertmanager: Packaged,
}

impl Stack {
    /// What each part says now.
    async fn diagnosis(&self) -> String {
        let events = self.events().await;
        let rules = self.prometheus.get_json("/api/v1/alerts").await;
        let am = self.alertmanager.get_json("/api/v2/alerts").await;
        format!(
            "rollbackd events: {events:#}\nPrometheus alerts: {rules}\nAlertmanager alerts: {am}\n\
             --- rollbackd log (tail):\n{}\n--- Prometheus log (tail):\n{}\n--- Alertmanager log (tail):\n{}",
            tail(&self.rollbackd.log_text(), 40),
            self.prometheus.log_tail(20),
            self.alertmanager.log_tail(20),
        )
    }

    /// rollbackd's events about the alert (operator token), newest first.
    async fn events(&self) -> Value {
        let resp = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/events?alertname={ALERT}&limit=100",
                self.rollbackd.url
            ))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await;
        match resp {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => Value::String(e.to_string()),
        }
    }

    /// Polls `check` until it yields; after [`LIMIT`] fails with `what` and
    /// the diagnosis.
    async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{what}: not reached within {LIMIT:?}\n{}",
                    self.diagnosis().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The alert's actions in an event, as `action:outcome`.
fn actions(event: &Value) -> Vec<String> {
    event["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["alertname"] == ALERT)
        .flat_map(|a| a["actions"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            format!(
                "{}:{}",
                a["action"].as_str().unwrap_or("?"),
                a["outcome"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_release_is_rolled_back_through_real_prometheus_alertmanager_and_api_server() {
    let kube = TestKube::start_real("pipeline").await;
    let ns = kube.ns.clone();
    kube.workload(DEPLOY, "web", GOOD, 2).await;

    // kube-state-metrics stand-in, Prometheus, Alertmanager, rollbackd,
    // Slack: all on loopback.
    let (exporter, scrapes, exporter_task) = start_exporter(&kube).await;
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("rollbackd");
    std::fs::create_dir_all(&journal).unwrap();
    let kubeconfig = kube.kubeconfig().display().to_string();
    let api_url = slack.api_url();
    let mut env = auth_env();
    env.extend([
        ("KUBECONFIG", kubeconfig.as_str()),
        ("ROLLBACKD_SLACK_BOT_TOKEN", BOT_TOKEN),
        ("ROLLBACKD_SLACK_CHANNEL", "#rollbacks"),
        ("ROLLBACKD_SLACK_API_URL", api_url.as_str()),
    ]);
    let rollbackd = spawn(&journal, &[], &env).await;
    let webhook_url = format!("{}/webhook", rollbackd.url);
    let alertmanager = alertmanager(
        dir.path(),
        &AlertmanagerConfig {
            webhook_url: &webhook_url,
            token: WEBHOOK_TOKEN,
            group_by: "[alertname, namespace, deployment]",
            group_wait: "1s",
            group_interval: "2s",
            repeat_interval: "1h",
            send_resolved: true,
        },
    )
    .await;
    // A rule as kube-prometheus writes it, opted in to rollbacks: its
    // namespace and deployment labels come from the series.
    let rules = format!(
        r#"groups:
  - name: rollback.rules
    rules:
      - alert: {ALERT}
        expr: kube_deployment_status_replicas_unavailable{{job="kube-state-metrics", namespace="{ns}"}} > 0
        for: 2s
        labels:
          severity: critical
        annotations:
          rollback: "true"
          summary: "{{{{ $labels.namespace }}}}/{{{{ $labels.deployment }}}}: {{{{ $value }}}} replicas unavailable"
"#
    );
    let prometheus = prometheus(
        dir.path(),
        &PrometheusConfig {
            interval: "1s",
            rules: &rules,
            targets: std::slice::from_ref(&exporter),
            alertmanager_port: alertmanager.port,
        },
    )
    .await;
    let stack = Stack {
        rollbackd,
        prometheus,
        alertmanager,
    };

    // Prometheus has the healthy Deployment (0 unavailable) before the bad
    // release: the alert starts with the release, not with the scrape.
    let query = format!(
        "/api/v1/query?query=kube_deployment_status_replicas_unavailable%7Bnamespace%3D%22{ns}%22%7D"
    );
    stack
        .until("Prometheus scraped the healthy Deployment", || async {
            let r = stack.prometheus.get_json(&query).await;
            (r["data"]["result"][0]["value"][1] == "0").then_some(())
        })
        .await;
    assert!(scrapes.load(Ordering::Relaxed) >= 1);

    // The bad release: its pod runs but never becomes ready.
    kube.kubectl_ok(&["set", "image", "deployment/web", &format!("app={BAD}")])
        .await;
    let firing = stack
        .until("the alert fires in Prometheus", || async {
            let r = stack.prometheus.get_json("/api/v1/alerts").await;
            r["data"]["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["labels"]["alertname"] == ALERT && a["state"] == "firing")
                .cloned()
        })
        .await;
    assert_eq!(firing["labels"]["namespace"], ns.as_str());
    assert_eq!(firing["labels"]["deployment"], "web");
    assert_eq!(firing["labels"]["severity"], "critical");

    // rollbackd rolls back on the real server; the controller brings the
    // good ReplicaSet back.
    stack
        .until("kubectl shows the good image back", || async {
            let image = kube
                .kubectl_ok(&[
                    "get",
                    "deployment/web",
                    "-o",
                    "jsonpath={.spec.template.spec.containers[0].image}",
                ])
                .await;
            (image == GOOD).then_some(())
        })
        .await;
    let status = kube
        .kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );

    // The events API: the firing webhook rolled back, the watch saw it
    // healthy.
    let rolled = stack
        .until("the events API says rolled back, then healthy", || async {
            let page = stack.events().await;
            page["events"].as_array()?.iter().find_map(|e| {
                let acts = actions(e);
                (e["status"] == "firing"
                    && acts.contains(&"rollback:rolled-back".to_string())
                    && acts.contains(&"watch:healthy".to_string()))
                .then(|| e.clone())
            })
        })
        .await;
    let alert = rolled["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alertname"] == ALERT)
        .unwrap();
    assert_eq!(alert["namespace"], ns.as_str());
    assert_eq!(alert["decision"]["kind"], "rollback");
    assert_eq!(alert["decision"]["rule"], "service-down");

    // The fake Slack: one incident message, posted as rolled back, then
    // updated to healthy.
    let about_web = |r: &common::slack::Recorded| r.body.to_string().contains(ALERT);
    stack
        .until("Slack says rolled back, healthy", || async {
            slack
                .delivered()
                .iter()
                .filter(|r| about_web(r))
                .any(|r| {
                    r.method() == "chat.update"
                        && r.body["text"]
                            .as_str()
                            .is_some_and(|t| t.contains("healthy"))
                })
                .then_some(())
        })
        .await;
    let messages: Vec<_> = slack.delivered().into_iter().filter(about_web).collect();
    assert_eq!(messages[0].method(), "chat.postMessage", "{messages:?}");
    assert!(
        messages.iter().any(|r| r.body["text"]
            .as_str()
            .is_some_and(|t| t.contains("rolled back"))),
        "{messages:?}"
    );
    assert!(
        messages[1..].iter().all(|r| r.method() == "chat.update"),
        "one message per incident, then updated: {messages:?}"
    );

    // The alert resolves: Alertmanager sends the resolved notification.
    let resolved = stack
        .until("Alertmanager's resolved notification", || async {
            let page = stack.events().await;
            page["events"]
                .as_array()?
                .iter()
                .find(|e| e["status"] == "resolved" && !e["processed_at"].is_null())
                .cloned()
        })
        .await;
    assert!(
        resolved["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["alertname"] == ALERT && a["status"] == "resolved"),
        "{resolved:#}"
    );

    // Exactly one rollback: the good release is revision 3 (a second undo
    // would have made the bad one 4), one RolledBack Event, the episode
    // marker set.
    let web = kube.get(DEPLOY, "web").await;
    assert_eq!(
        web["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3",
        "{web}"
    );
    assert!(
        web["metadata"]["annotations"]["rollbackd.io/episode"]
            .as_str()
            .is_some_and(|m| m.contains(" from=2 to=1 ")),
        "{web}"
    );
    let events: Api<Event> = Api::namespaced(kube.client(), &ns);
    let rolled_back = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("RolledBack"))
        .count();
    assert_eq!(rolled_back, 1);
    let metrics = reqwest::get(format!("{}/metrics", stack.rollbackd.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // rollbackd's own account: one rollback, timed against the rule's 30 s
    // deadline (from the alert's start to healthy) and within it.
    let sample = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    assert_eq!(
        sample(r#"rollbackd_rollbacks_total{outcome="rolled_back"}"#),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(r#"rollbackd_time_to_rollback_seconds_count{rule="service-down"}"#),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(r#"rollbackd_rollback_deadline_misses_total{rule="service-down"}"#).unwrap_or(0.0),
        0.0,
        "{metrics}"
    );
    exporter_task.abort();
}
