//! Black-box tests of the pipeline as an on-call engineer sees it: real
//! payloads in, decisions in `/api/v1/events`, replays, health and metrics.

mod common;

use common::*;
use serde_json::Value;

fn decisions(event: &Value) -> Vec<(String, String, Option<String>)> {
    event["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["alertname"].as_str().unwrap().to_string(),
                a["decision"]["kind"].as_str().unwrap().to_string(),
                a["decision"]["rule"].as_str().map(String::from),
            )
        })
        .collect()
}

#[tokio::test]
async fn real_firing_group_is_decided_per_alert_by_the_default_matrix() {
    let server = TestServer::start().await;
    let receipt: Value = server.post_webhook(FIRING).await.json().await.unwrap();
    let event = server
        .processed_event(receipt["id"].as_i64().unwrap())
        .await;
    let s = |x: &str| x.to_string();
    assert_eq!(
        decisions(&event),
        vec![
            (
                s("HighErrorRate"),
                s("rollback"),
                Some(s("high-error-rate"))
            ),
            (s("MinorUIGlitch"), s("notify"), Some(s("minor-bug"))),
            (s("ServiceDown"), s("rollback"), Some(s("service-down"))),
            (
                s("SlowCheckout"),
                s("rollback-after"),
                Some(s("performance-degradation"))
            ),
        ]
    );
    let high = &event["alerts"][0];
    assert_eq!(high["decision"]["target"]["namespace"], "shop");
    assert_eq!(high["decision"]["target"]["name"], "ecommerce");
    assert_eq!(high["decision"]["deadline_secs"], 60);
    assert_eq!(high["actions"][0]["action"], "rollback");
    // No cluster in this test: recorded as not done, with the way out.
    assert_eq!(high["actions"][0]["outcome"], "failed");
    assert_eq!(
        high["actions"][0]["detail"],
        "not rolled back: no cluster in this test; replay this webhook once the cluster is reachable"
    );
    let slow = &event["alerts"][3];
    // Hold of 2 minutes from the test clock's now (12:50:45).
    assert_eq!(slow["decision"]["hold_until"], "2026-11-22T12:52:45Z");
    assert_eq!(slow["actions"][0]["action"], "hold");
    assert_eq!(event["payload"]["groupKey"], "{}:{namespace=\"shop\"}");
    server.stop().await;
}

#[tokio::test]
async fn resolved_alert_is_never_a_rollback() {
    let server = TestServer::start().await;
    let receipt: Value = server.post_webhook(RESOLVED).await.json().await.unwrap();
    let event = server
        .processed_event(receipt["id"].as_i64().unwrap())
        .await;
    let slow = &event["alerts"][3];
    assert_eq!(slow["status"], "resolved");
    assert_eq!(slow["decision"]["kind"], "ignore");
    assert_eq!(slow["actions"].as_array().unwrap().len(), 0);
    server.stop().await;
}

#[tokio::test]
async fn events_are_newest_first_paginated_and_filtered() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for body in [FIRING, RESOLVED, FIRING] {
        let r: Value = server.post_webhook(body).await.json().await.unwrap();
        ids.push(r["id"].as_i64().unwrap());
    }
    for id in &ids {
        server.processed_event(*id).await;
    }
    let (status, page) = server.get_json("/api/v1/events?limit=2").await;
    assert_eq!(status, 200);
    let got: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![3, 2]);
    assert_eq!(page["next_before"], 2);
    let (_, page) = server.get_json("/api/v1/events?limit=2&before=2").await;
    let got: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![1]);
    assert!(page.get("next_before").is_none());

    // rollback-after only in the firing group (resolved SlowCheckout is ignore).
    let (_, page) = server
        .get_json("/api/v1/events?decision=rollback-after")
        .await;
    let got: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![3, 1]);
    let (_, page) = server
        .get_json("/api/v1/events?alertname=SlowCheckout&namespace=shop")
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
    let (_, page) = server
        .get_json("/api/v1/events?namespace=kube-system")
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 0);

    for (query, message) in [
        ("limit=0", "limit must be between 1 and 500"),
        (
            "decision=rollbak",
            "unknown decision \"rollbak\": expected rollback, rollback-after, notify or ignore",
        ),
    ] {
        let (status, body) = server.get_json(&format!("/api/v1/events?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["message"], message);
    }
    let (status, body) = server.get_json("/api/v1/events?limit=many").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "bad_query");
    let (status, body) = server.get_json("/api/v1/events/99").await;
    assert_eq!(
        (status, body["message"].as_str().unwrap()),
        (404, "event 99 not found")
    );
    let (status, _) = server.get_json("/api/v1/events/abc").await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test]
async fn replay_needs_the_operator_token_is_dry_run_by_default_and_is_linked() {
    let server = TestServer::start().await;
    let original: Value = server.post_webhook(FIRING).await.json().await.unwrap();
    let original = original["id"].as_i64().unwrap();
    server.processed_event(original).await;

    let url = format!("{}/api/v1/replay/{original}", server.url);
    let r = server
        .client
        .post(&url)
        .bearer_auth(WEBHOOK_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "the webhook's token is not the operator's"
    );
    let r = server.client.post(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"rollbackd operator\""
    );

    let r = server
        .client
        .post(&url)
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(receipt["replay_of"], original);
    assert_eq!(receipt["dry_run"], true);
    let replay = server
        .processed_event(receipt["id"].as_i64().unwrap())
        .await;
    assert_eq!(replay["source"], "replay");
    assert_eq!(replay["replay_of"], original);
    assert_eq!(replay["dry_run"], true);
    assert_eq!(replay["alerts"][0]["decision"]["kind"], "rollback");

    let r = server
        .client
        .post(format!("{url}?dry_run=false"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    let live: Value = r.json().await.unwrap();
    assert_eq!(live["dry_run"], false);

    let (_, detail) = server.get_json(&format!("/api/v1/events/{original}")).await;
    assert_eq!(
        detail["replays"],
        serde_json::json!([receipt["id"], live["id"]])
    );

    let r = server
        .client
        .post(format!("{}/api/v1/replay/42", server.url))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = server
        .client
        .post(format!("{url}?dry_run=maybe"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    server.stop().await;
}

#[tokio::test]
async fn global_dry_run_wins_over_a_live_replay() {
    let server = TestServer::start_with(|s| s.dry_run = true, Default::default()).await;
    let original: Value = server.post_webhook(FIRING).await.json().await.unwrap();
    let r = server
        .client
        .post(format!(
            "{}/api/v1/replay/{}?dry_run=false",
            server.url, original["id"]
        ))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(receipt["dry_run"], true);
    server.stop().await;
}

#[tokio::test]
async fn operator_api_is_closed_when_no_operator_token_is_configured() {
    let server = TestServer::start_with(|s| s.operator_token = None, Default::default()).await;
    let r = server
        .client
        .get(format!("{}/api/v1/events", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        "the operator API is disabled: set ROLLBACKD_OPERATOR_TOKEN[_FILE]"
    );
    server.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics_report_the_pipeline() {
    let server = TestServer::start().await;
    let (_, h) = server.get_open_json("/healthz").await;
    assert_eq!(h["status"], "ok");
    let (status, r) = server.get_open_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(r["checks"]["rules"], "5 rules loaded");

    let receipt: Value = server.post_webhook(FIRING).await.json().await.unwrap();
    server
        .processed_event(receipt["id"].as_i64().unwrap())
        .await;
    let m = server.metrics().await;
    for line in [
        r#"rollbackd_alerts_total{decision="rollback",rule="service-down"} 1"#,
        r#"rollbackd_alerts_total{decision="rollback",rule="high-error-rate"} 1"#,
        r#"rollbackd_alerts_total{decision="notify",rule="minor-bug"} 1"#,
        r#"rollbackd_alerts_total{decision="rollback-after",rule="performance-degradation"} 1"#,
        "# TYPE rollbackd_journal_write_seconds histogram",
        "rollbackd_webhooks_pending 0",
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
    assert!(m.contains("rollbackd_journal_write_seconds_count"), "{m}");
    server.stop().await;
}

#[tokio::test]
async fn journal_counts_the_webhooks_waiting_for_a_worker() {
    let server = TestServer::start_with(|s| s.intake_only = true, Default::default()).await;
    for _ in 0..3 {
        server.post_webhook(FIRING).await;
    }
    assert_eq!(server.state.journal.pending_count().await.unwrap(), 3);
    server.stop().await;
}

#[tokio::test]
async fn a_webhook_that_cannot_be_read_back_is_set_aside_and_the_rest_go_on() {
    let journal = tempfile::tempdir().unwrap();
    let path = journal.path().join("journal.db");
    let at = path.clone();
    // Accepted while no worker runs, then damaged on disk.
    let intake = TestServer::start_with(
        move |s| {
            s.journal = at;
            s.intake_only = true;
        },
        Default::default(),
    )
    .await;
    for _ in 0..3 {
        assert_eq!(intake.post_webhook(FIRING).await.status().as_u16(), 200);
    }
    intake.stop().await;
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE webhooks SET raw = substr(raw, 1, 40) WHERE id = 2",
            [],
        )
        .unwrap();

    let at = path.clone();
    let server = TestServer::start_with(move |s| s.journal = at, Default::default()).await;
    for id in [1, 3] {
        let event = server.processed_event(id).await;
        assert_eq!(event["alerts"].as_array().unwrap().len(), 4, "{event}");
        assert!(event.get("unreadable").is_none(), "{event}");
    }
    let damaged = server.processed_event(2).await;
    assert_eq!(
        damaged["unreadable"],
        "stored body does not decompress: literal is out of bounds of the input",
        "{damaged}"
    );
    assert_eq!(damaged["alerts"], serde_json::json!([]));
    assert_eq!(damaged["receiver"], "rollbackd");
    assert_eq!(damaged["status"], "firing");
    assert!(damaged.get("payload").is_none(), "{damaged}");

    let (status, list) = server.get_json("/api/v1/events").await;
    assert_eq!(status, 200, "one damaged row does not hide the others");
    let ids: Vec<i64> = list["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 2, 1]);

    let r = server
        .client
        .post(format!("{}/api/v1/replay/2", server.url))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    assert!(
        r.headers().get("retry-after").is_none(),
        "retrying won't help"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "journal_row_unreadable");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("journal row 2 is unreadable: stored body does not decompress"),
        "{body}"
    );
    server.stop().await;
}
