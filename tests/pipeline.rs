//! The whole pipeline against the fake API server: a real Alertmanager
//! payload in, exactly the right writes to the cluster out.

mod common;

use common::*;
use fakekube::WorkloadKind as FakeKind;
use rollbackd::adapters::cluster::Cluster;
use serde_json::Value;

fn rollback_outcomes(event: &Value) -> Vec<(String, String)> {
    event["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| {
            let name = a["alertname"].as_str().unwrap().to_string();
            a["actions"].as_array().unwrap().iter().map(move |x| {
                (
                    name.clone(),
                    format!(
                        "{}:{}",
                        x["action"].as_str().unwrap(),
                        x["outcome"].as_str().unwrap()
                    ),
                )
            })
        })
        .collect()
}

fn s(x: &str, y: &str) -> (String, String) {
    (x.to_string(), y.to_string())
}

#[tokio::test]
async fn firing_group_rolls_back_exactly_the_decided_workloads_once() {
    let fake = shop().await;
    let server = TestServer::start_with_cluster(Cluster::at_url(&fake.url())).await;
    let receipt: Value = server.post_webhook(FIRING).await.json().await.unwrap();
    let id = receipt["id"].as_i64().unwrap();

    // The rollout of each rollback is followed to its end and journaled.
    let event = eventually(|| async {
        let (_, e) = server.get_json(&format!("/api/v1/events/{id}")).await;
        let watched = rollback_outcomes(&e)
            .iter()
            .filter(|(_, a)| a.starts_with("watch:"))
            .count();
        (watched == 2).then_some(e)
    })
    .await;
    assert_eq!(
        rollback_outcomes(&event),
        vec![
            s("HighErrorRate", "rollback:rolled-back"),
            s("HighErrorRate", "watch:healthy"),
            s("MinorUIGlitch", "notify:planned"),
            s("ServiceDown", "rollback:rolled-back"),
            s("ServiceDown", "watch:healthy"),
            s("SlowCheckout", "hold:waiting"),
        ]
    );
    let detail = event["alerts"][0]["actions"][0]["detail"].as_str().unwrap();
    assert_eq!(
        detail,
        "rolled back shop/deployment/ecommerce from revision 2 (ghcr.io/company/ecommerce:v1.2.0) \
         to revision 1 (ghcr.io/company/ecommerce:v1.1.0)"
    );
    assert!(event["alerts"][2]["actions"][1]["detail"]
        .as_str()
        .unwrap()
        .starts_with("deployment \"checkout\" successfully rolled out in "));
    let patched = |name: &str| fake.patches_to("deployments", "shop", name).len();
    assert_eq!(
        (
            patched("ecommerce"),
            patched("checkout"),
            patched("frontend")
        ),
        (1, 1, 0)
    );
    for name in ["ecommerce", "checkout"] {
        let w = fake.workload(FakeKind::Deployment, "shop", name);
        assert_eq!(w.image(), format!("ghcr.io/company/{name}:v1.1.0"));
    }

    // Alertmanager re-sends the same group (repeat_interval, HA peer).
    let again: Value = server.post_webhook(FIRING).await.json().await.unwrap();
    let event = server.processed_event(again["id"].as_i64().unwrap()).await;
    assert_eq!(
        rollback_outcomes(&event),
        vec![
            s("HighErrorRate", "rollback:already-rolled-back"),
            s("MinorUIGlitch", "notify:planned"),
            s("ServiceDown", "rollback:already-rolled-back"),
            s("SlowCheckout", "hold:waiting"),
        ]
    );
    assert_eq!(
        (patched("ecommerce"), patched("checkout")),
        (1, 1),
        "still one rollback each"
    );

    let m = server.metrics().await;
    assert!(
        m.contains(r#"rollbackd_rollbacks_total{outcome="rolled_back"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"rollbackd_rollbacks_total{outcome="already_rolled_back"} 2"#),
        "{m}"
    );
    let (_, ready) = server.get_open_json("/readyz").await;
    assert!(
        ready["checks"]["cluster"]
            .as_str()
            .unwrap()
            .starts_with("reachable"),
        "{ready}"
    );
    server.stop().await;
}

#[tokio::test]
async fn dry_run_asks_the_api_server_and_changes_nothing() {
    let fake = shop().await;
    let server = TestServer::start_full(
        |s| s.dry_run = true,
        Default::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;
    let receipt: Value = server.post_webhook(FIRING).await.json().await.unwrap();
    let event = server
        .processed_event(receipt["id"].as_i64().unwrap())
        .await;
    let high = &event["alerts"][0]["actions"][0];
    assert_eq!(high["outcome"], "dry-run");
    assert!(high["detail"]
        .as_str()
        .unwrap()
        .starts_with("dry-run (accepted by the API server): would have rolled back"));
    let sent = fake.patches_to("deployments", "shop", "ecommerce");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].dry_run);
    let w = fake.workload(FakeKind::Deployment, "shop", "ecommerce");
    assert_eq!(
        (w.image().as_str(), w.revision()),
        ("ghcr.io/company/ecommerce:v1.2.0", 2)
    );
    server.stop().await;
}

#[tokio::test]
async fn an_api_server_failure_is_recorded_and_a_replay_finishes_the_job() {
    let fake = shop().await;
    fake.fail_next(("PATCH", "deployments/ecommerce"), 500, 1);
    let server = TestServer::start_with_cluster(Cluster::at_url(&fake.url())).await;
    let receipt: Value = server.post_webhook(FIRING).await.json().await.unwrap();
    let id = receipt["id"].as_i64().unwrap();
    let event = server.processed_event(id).await;
    let high = &event["alerts"][0]["actions"][0];
    assert_eq!(high["outcome"], "failed");
    assert!(
        high["detail"]
            .as_str()
            .unwrap()
            .starts_with("shop/deployment/ecommerce: failed restoring revision 1: "),
        "{high}"
    );

    let r: Value = server
        .client
        .post(format!("{}/api/v1/replay/{id}?dry_run=false", server.url))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let replay = server.processed_event(r["id"].as_i64().unwrap()).await;
    assert_eq!(replay["alerts"][0]["actions"][0]["outcome"], "rolled-back");
    assert_eq!(
        replay["alerts"][2]["actions"][0]["outcome"],
        "already-rolled-back"
    );
    let w = fake.workload(FakeKind::Deployment, "shop", "ecommerce");
    assert_eq!(w.image(), "ghcr.io/company/ecommerce:v1.1.0");
    server.stop().await;
}

#[tokio::test]
async fn slack_channel_comes_from_the_alert_then_the_rule_then_the_default() {
    use common::slack::{FakeSlack, BOT_TOKEN};
    let fake = shop().await;
    let slack = FakeSlack::start().await;
    let rules = tempfile::tempdir().unwrap();
    let default =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.yaml"))
            .unwrap();
    let with_channel = default.replace(
        "    decision: rollback\n    deadline: 30s\n\n  # High error rate",
        "    decision: rollback\n    deadline: 30s\n    slack_channel: \"#sre-critical\"\n\n  # High error rate",
    );
    assert_ne!(with_channel, default, "the rule got its channel");
    std::fs::write(rules.path().join("rules.yaml"), with_channel).unwrap();
    let (dir, api) = (rules.path().to_path_buf(), slack.api_url());
    let server = TestServer::start_full(
        move |s| {
            s.rules = rollbackd::service::config::RulesSource::Dir(dir);
            s.slack_allowed_channels = vec!["#frontend".into()];
            s.slack = rollbackd::adapters::report::SlackConfig::Bot {
                token: rollbackd::core::secret::Secret::new(BOT_TOKEN),
                channel: "#rollbacks".into(),
                api_url: api,
            };
        },
        Default::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;
    let mut body: Value = serde_json::from_slice(FIRING).unwrap();
    body["alerts"][1]["annotations"]["slack_channel"] = "#frontend".into();
    // Not on the allow-list: the default channel, and the message says why.
    body["alerts"][3]["annotations"]["slack_channel"] = "#everyone".into();
    server
        .post_webhook(&serde_json::to_vec(&body).unwrap())
        .await;
    // ServiceDown: posted, then updated to healthy; HighErrorRate: posted
    // and updated; MinorUIGlitch and SlowCheckout: posted.
    let requests = slack.wait_for(4).await;
    let channel_of = |alert: &str| -> Vec<String> {
        requests
            .iter()
            .filter(|r| r.method() == "chat.postMessage" && r.body.to_string().contains(alert))
            .map(|r| r.body["channel"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        channel_of("ServiceDown"),
        ["#sre-critical"],
        "the rule's channel"
    );
    assert_eq!(
        channel_of("MinorUIGlitch"),
        ["#frontend"],
        "the alert's annotation wins"
    );
    assert_eq!(channel_of("HighErrorRate"), ["#rollbacks"], "the default");
    assert_eq!(
        channel_of("SlowCheckout"),
        ["#rollbacks"],
        "an annotation naming a channel not allowed is not followed"
    );
    let refused = requests
        .iter()
        .find(|r| r.method() == "chat.postMessage" && r.body.to_string().contains("SlowCheckout"))
        .unwrap();
    assert!(
        refused
            .body
            .to_string()
            .contains("is not an allowed channel (ROLLBACKD_SLACK_ALLOWED_CHANNELS)"),
        "{}",
        refused.body
    );
    server.stop().await;
}
