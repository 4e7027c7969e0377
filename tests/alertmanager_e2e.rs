//! End to end with a real Alertmanager (Debian's `prometheus-alertmanager`):
//! alerts posted to Alertmanager's API reach `/webhook` with bearer auth and
//! show up in `/api/v1/events` with the right decisions.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::json;
use tokio::process::Command;

const ALERTMANAGER: &str = "prometheus-alertmanager";

/// A free loopback port, chosen by the OS. Alertmanager cannot report the
/// port it bound, so the port is reserved here and released just before.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn real_alertmanager_delivers_alerts_with_bearer_auth_and_they_are_decided() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, WEBHOOK_TOKEN).unwrap();
    let config = format!(
        r#"
route:
  receiver: rollbackd
  group_by: [namespace]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: rollbackd
    webhook_configs:
      - url: {url}/webhook
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token}
"#,
        url = server.url,
        token = token_file.display()
    );
    let config_file = dir.path().join("am.yml");
    std::fs::write(&config_file, config).unwrap();
    let port = free_port();
    let am_url = format!("http://127.0.0.1:{port}");
    let mut am = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{ALERTMANAGER} must be installed (apt-get install prometheus-alertmanager): {e}"
            )
        });

    let client = reqwest::Client::new();
    eventually(|| async {
        let ok = client.get(format!("{am_url}/-/ready")).send().await.ok()?;
        ok.status().is_success().then_some(())
    })
    .await;

    let alert = |name: &str, severity: &str, deployment: &str| {
        json!({
            "labels": {"alertname": name, "severity": severity, "namespace": "shop", "deployment": deployment},
            "annotations": {"rollback": "true", "summary": format!("{name} on {deployment}")},
            "generatorURL": "http://prometheus.local/graph"
        })
    };
    let resp = client
        .post(format!("{am_url}/api/v2/alerts"))
        .json(&json!([
            alert("ServiceDown", "critical", "checkout"),
            alert("MinorUIGlitch", "low", "frontend"),
            json!({"labels": {"alertname": "NoOptIn", "severity": "critical", "namespace": "shop", "deployment": "web"}}),
        ]))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);

    // Alertmanager groups the three alerts into one notification.
    let event = eventually(|| async {
        let (_, page) = server.get_json("/api/v1/events").await;
        let e = page["events"].as_array()?.first()?.clone();
        (e["alerts"].as_array()?.len() == 3 && !e["processed_at"].is_null()).then_some(e)
    })
    .await;
    let _ = am.kill().await;

    assert_eq!(event["source"], "alertmanager");
    assert_eq!(event["receiver"], "rollbackd");
    assert_eq!(event["group_key"], "{}:{namespace=\"shop\"}");
    let mut decided: Vec<(String, String)> = event["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["alertname"].as_str().unwrap().into(),
                a["decision"]["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    decided.sort();
    assert_eq!(
        decided,
        vec![
            ("MinorUIGlitch".to_string(), "notify".to_string()),
            ("NoOptIn".to_string(), "ignore".to_string()),
            ("ServiceDown".to_string(), "rollback".to_string()),
        ]
    );
    let (_, detail) = server
        .get_json(&format!("/api/v1/events/{}", event["id"]))
        .await;
    assert_eq!(detail["payload"]["version"], "4");
    assert_eq!(
        detail["payload"]["externalURL"]
            .as_str()
            .map(|u| u.contains(&port.to_string())),
        Some(true)
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"rollbackd_webhooks_total{outcome="accepted",code="200"}"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"outcome="unauthorized""#),
        "Alertmanager's bearer token was accepted"
    );
    server.stop().await;
}
