//! Black-box tests of `POST /webhook`: every answer, with its body.

mod common;

use base64::Engine;
use common::*;
use rollbackd::adapters::journal::JournalOptions;
use rollbackd::core::secret::Secret;
use serde_json::{json, Value};
use std::time::Duration;

struct Case {
    name: &'static str,
    auth: Option<String>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    response: Value,
}

fn with(mutate: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(FIRING).unwrap();
    mutate(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn bearer(t: &str) -> Option<String> {
    Some(format!("Bearer {t}"))
}

fn basic(user: &str, pass: &str) -> Option<String> {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    Some(format!("Basic {b}"))
}

#[tokio::test]
async fn every_status_code_comes_with_a_json_body_that_says_what_is_wrong() {
    let server =
        TestServer::start_with(|s| s.max_body_bytes = 64 * 1024, JournalOptions::default()).await;
    let too_big = {
        let mut v: Value = serde_json::from_slice(FIRING).unwrap();
        v["commonAnnotations"]["padding"] = "x".repeat(64 * 1024).into();
        serde_json::to_vec(&v).unwrap()
    };
    let cases = vec![
        Case {
            name: "real payload, bearer",
            auth: bearer(WEBHOOK_TOKEN),
            content_type: Some("application/json"),
            body: FIRING.to_vec(),
            status: 200,
            response: json!({"status": "accepted", "id": 1, "alerts": 4}),
        },
        Case {
            name: "real payload, basic auth, charset parameter",
            auth: basic("alertmanager", "basic-pass"),
            content_type: Some("application/json; charset=utf-8"),
            body: RESOLVED.to_vec(),
            status: 200,
            response: json!({"status": "accepted", "id": 2, "alerts": 4}),
        },
        Case {
            name: "no credentials",
            auth: None,
            content_type: Some("application/json"),
            body: FIRING.to_vec(),
            status: 401,
            response: json!({"error": "unauthorized", "message": "credentials required"}),
        },
        Case {
            name: "wrong bearer token",
            auth: bearer("guess"),
            content_type: Some("application/json"),
            body: FIRING.to_vec(),
            status: 401,
            response: json!({"error": "unauthorized", "message": "invalid credentials"}),
        },
        Case {
            name: "operator token is not a webhook credential",
            auth: bearer(OPERATOR_TOKEN),
            content_type: Some("application/json"),
            body: FIRING.to_vec(),
            status: 401,
            response: json!({"error": "unauthorized", "message": "invalid credentials"}),
        },
        Case {
            name: "wrong basic password",
            auth: basic("alertmanager", "nope"),
            content_type: Some("application/json"),
            body: FIRING.to_vec(),
            status: 401,
            response: json!({"error": "unauthorized", "message": "invalid credentials"}),
        },
        Case {
            name: "wrong content type",
            auth: bearer(WEBHOOK_TOKEN),
            content_type: Some("text/plain"),
            body: FIRING.to_vec(),
            status: 415,
            response: json!({"error": "unsupported_media_type",
                "message": "content type must be application/json, got text/plain"}),
        },
        Case {
            name: "no content type",
            auth: bearer(WEBHOOK_TOKEN),
            content_type: None,
            body: FIRING.to_vec(),
            status: 415,
            response: json!({"error": "unsupported_media_type",
                "message": "content type must be application/json, got none"}),
        },
        Case {
            name: "body over the limit",
            auth: bearer(WEBHOOK_TOKEN),
            content_type: Some("application/json"),
            body: too_big,
            status: 413,
            response: json!({"error": "body_too_large", "message": "body exceeds the limit of 65536 bytes"}),
        },
        Case {
            name: "malformed JSON",
            auth: bearer(WEBHOOK_TOKEN),
            content_type: Some("application/json"),
            body: b"{\"version\": \"4\",\n \"alerts\": [}".to_vec(),
            status: 400,
            response: json!({"error": "malformed_json", "line": 2, "column": 13,
                "message": "malformed JSON at line 2 column 13: expected value"}),
        },
        Case {
            name: "truncated JSON",
            auth: bearer(WEBHOOK_TOKEN),
            content_type: Some("application/json"),
            body: FIRING[..100].to_vec(),
            status: 400,
            response: json!({"error": "malformed_json", "line": 1, "column": 100,
                "message": "malformed JSON at line 1 column 100: EOF while parsing a string"}),
        },
        Case {
            name: "wrong version",
            auth: bearer(WEBHOOK_TOKEN),
            content_type: Some("application/json"),
            body: with(|v| v["version"] = "3".into()),
            status: 422,
            response: json!({"error": "unsupported_version",
                "message": "unsupported payload version \"3\": rollbackd understands version \"4\""}),
        },
        Case {
            name: "missing required field",
            auth: bearer(WEBHOOK_TOKEN),
            content_type: Some("application/json"),
            body: with(|v| {
                v["alerts"][2].as_object_mut().unwrap().remove("startsAt");
            }),
            status: 422,
            response: json!({"error": "invalid_payload",
                "message": "invalid payload: alerts[2]: missing field `startsAt`"}),
        },
        Case {
            name: "wrong type",
            auth: bearer(WEBHOOK_TOKEN),
            content_type: Some("application/json"),
            body: with(|v| v["alerts"] = "none".into()),
            status: 422,
            response: json!({"error": "invalid_payload",
                "message": "invalid payload: alerts: invalid type: string \"none\", expected a sequence"}),
        },
    ];
    for case in cases {
        let mut req = server
            .client
            .post(format!("{}/webhook", server.url))
            .body(case.body);
        if let Some(a) = &case.auth {
            req = req.header("authorization", a);
        }
        if let Some(ct) = case.content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), case.status, "{}", case.name);
        if case.status == 401 {
            let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.starts_with("Bearer realm=\"rollbackd\""),
                "{}: {challenge}",
                case.name
            );
        }
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body, case.response, "{}", case.name);
    }

    // Nothing from a rejected request was journaled or acted on.
    let (_, page) = server.get_json("/api/v1/events").await;
    let ids: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![2, 1]);

    let metrics = server.metrics().await;
    for line in [
        r#"rollbackd_webhooks_total{outcome="accepted",code="200"} 2"#,
        r#"rollbackd_webhooks_total{outcome="unauthorized",code="401"} 4"#,
        r#"rollbackd_webhooks_total{outcome="unsupported_media_type",code="415"} 2"#,
        r#"rollbackd_webhooks_total{outcome="too_large",code="413"} 1"#,
        r#"rollbackd_webhooks_total{outcome="malformed",code="400"} 2"#,
        r#"rollbackd_webhooks_total{outcome="invalid",code="422"} 3"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn locked_journal_answers_503_so_alertmanager_retries_and_nothing_is_acknowledged() {
    let server = TestServer::start_with(
        |_| {},
        JournalOptions {
            busy_timeout: Duration::from_millis(50),
            ..Default::default()
        },
    )
    .await;
    let other = rusqlite::Connection::open(server.state.journal.path()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let resp = server.post_webhook(FIRING).await;
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "journal_unavailable");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("database is locked"),
        "{body}"
    );

    let (status, ready) = server.get_open_json("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(ready["ready"], false);

    other.execute_batch("ROLLBACK").unwrap();
    // Alertmanager's retry now succeeds; only that delivery exists.
    let resp = server.post_webhook(FIRING).await;
    assert_eq!(resp.status().as_u16(), 200);
    let receipt: Value = resp.json().await.unwrap();
    assert_eq!(receipt["id"], 1);
    let (_, ready) = server.get_open_json("/readyz").await;
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["checks"]["journal"], "writable");
    server.stop().await;
}

/// `--insecure-no-auth` accepts webhooks without credentials. It used to
/// open the operator API too, real replays included; it opens the webhook
/// only: without an operator token the operator API answers 403, with one
/// it wants that token.
#[tokio::test]
async fn insecure_no_auth_opens_the_webhook_and_leaves_the_operator_api_closed() {
    for operator_token in [None, Some("oncall")] {
        let server = TestServer::start_with(
            |s| {
                s.webhook_auth = Default::default();
                s.insecure_no_auth = true;
                s.operator_token = operator_token.map(Secret::new);
            },
            JournalOptions::default(),
        )
        .await;
        let resp = server
            .client
            .post(format!("{}/webhook", server.url))
            .header("content-type", "application/json")
            .body(FIRING.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let expected = if operator_token.is_some() { 401 } else { 403 };
        for (method, path) in [
            ("POST", "/api/v1/replay/1?dry_run=false"),
            ("GET", "/api/v1/events"),
            ("GET", "/api/v1/events/1"),
        ] {
            let resp = server
                .client
                .request(method.parse().unwrap(), format!("{}{path}", server.url))
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status().as_u16(),
                expected,
                "{method} {path} without a token"
            );
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn bodies_larger_than_the_intake_budget_are_still_accepted_one_at_a_time() {
    // The intake budget (8 MiB of bodies in flight) grows to the largest
    // body accepted, so a 9 MiB webhook under a 10 MiB limit is journaled,
    // not left waiting forever; two of them in parallel take turns.
    let server =
        TestServer::start_with(|s| s.max_body_bytes = 10 << 20, JournalOptions::default()).await;
    let mut v: serde_json::Value = serde_json::from_slice(FIRING).unwrap();
    v["alerts"][0]["annotations"]["reason"] = "x".repeat(9 << 20).into();
    let body = serde_json::to_vec(&v).unwrap();
    assert!(body.len() > rollbackd::service::state::INTAKE_BUDGET_BYTES);
    let (a, b) = tokio::join!(server.post_webhook(&body), server.post_webhook(&body));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    server.stop().await;
}

/// `/readyz` answers without credentials (kubelet probes): it used to show
/// the API server's version and its error text to anyone. Those details go
/// to the operator token only.
#[tokio::test]
async fn readyz_keeps_cluster_details_for_the_operator() {
    let fake = fakekube::FakeKube::start().await;
    let server = TestServer::start_full(
        |s| s.cluster_name = Some("prod-us".into()),
        JournalOptions::default(),
        rollbackd::adapters::cluster::Cluster::at_url(&fake.url()),
    )
    .await;
    let (status, open) = server.get_open_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(open["checks"]["cluster"], "reachable");
    assert_eq!(open["cluster_name"], Value::Null);
    assert!(!open.to_string().contains("prod-us"), "{open}");
    let (_, operator) = server.get_json("/readyz").await;
    let detail = operator["checks"]["cluster"].as_str().unwrap();
    assert!(detail.starts_with("reachable (Kubernetes v"), "{detail}");
    assert_eq!(operator["cluster_name"], "prod-us");
    server.stop().await;

    // An API server that is not there: no error text for anyone.
    let server = TestServer::start_with_cluster(rollbackd::adapters::cluster::Cluster::at_url(
        "http://127.0.0.1:9",
    ))
    .await;
    let (_, open) = server.get_open_json("/readyz").await;
    assert_eq!(open["checks"]["cluster"], "unreachable");
    let (_, operator) = server.get_json("/readyz").await;
    let detail = operator["checks"]["cluster"].as_str().unwrap();
    assert!(detail.starts_with("unreachable: "), "{detail}");
    assert!(detail.len() > "unreachable: ".len(), "{detail}");
    server.stop().await;
}

/// Refused credentials were neither counted nor logged: a scanner or a
/// misconfigured Alertmanager went unseen. Each is counted by API and
/// reason (the WARN is rate-limited and checked in tests/process.rs).
#[tokio::test]
async fn refused_credentials_are_counted_by_api_and_reason() {
    let server = TestServer::start().await;
    let post = |auth: Option<&'static str>| {
        let mut req = server
            .client
            .post(format!("{}/webhook", server.url))
            .header("content-type", "application/json")
            .body(FIRING.to_vec());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    assert_eq!(post(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(
        post(Some("Bearer nope")).await.unwrap().status().as_u16(),
        401
    );
    assert_eq!(
        post(Some("Bearer nope")).await.unwrap().status().as_u16(),
        401
    );
    let resp = server
        .client
        .get(format!("{}/api/v1/events", server.url))
        .bearer_auth(WEBHOOK_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        401,
        "the webhook token is not the operator's"
    );
    let m = server.metrics().await;
    for line in [
        r#"rollbackd_auth_failures_total{api="webhook",reason="missing"} 1"#,
        r#"rollbackd_auth_failures_total{api="webhook",reason="wrong"} 2"#,
        r#"rollbackd_auth_failures_total{api="operator",reason="wrong"} 1"#,
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    server.stop().await;
}
