//! `GET /metrics`: every stage's families after real traffic (webhooks
//! refused and accepted, decisions, a guard refusal, rollbacks against the
//! fake API server with one healthy and one stalled rollout, Slack reports
//! through a fake Slack that fails twice), in both exposition formats: the
//! classic text format passes `promtool check metrics`, and a real
//! Prometheus scrapes the OpenMetrics one.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::slack::{Answer, FakeSlack, BOT_TOKEN};
use common::*;
use fakekube::Rollout;
use rollbackd::adapters::cluster::Cluster;
use rollbackd::adapters::report::SlackConfig;
use rollbackd::core::secret::Secret;
use serde_json::{json, Value};

/// What Prometheus 2.42 (Debian's) sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

const PROMTOOL: &str = "/usr/bin/promtool";

/// One scrape: status, `Content-Type`, body.
async fn scrape(server: &TestServer, accept: Option<&str>) -> (u16, String, String) {
    let mut request = server.client.get(format!("{}/metrics", server.url));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// `promtool check metrics` on `body`: whether it exited 0, and what it
/// printed (its lint findings).
fn promtool(body: &str) -> (bool, String) {
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{PROMTOOL} must be installed (apt-get install prometheus; scripts/test does): {e}"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

/// The samples of a text-format body: series (`name{labels}`) to value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The value of `series`, failing with the whole body when it is missing.
fn value(samples: &BTreeMap<String, f64>, series: &str, body: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series} in\n{body}"))
}

/// Polls `check` for up to 60 s (Slack's backoff after a 503 is 2 s, and
/// reports go out at one a second per channel).
async fn until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    common::until(what, Duration::from_secs(60), check).await
}

/// The firing group's ServiceDown alert, moved to the protected
/// kube-system namespace (a new episode).
fn protected_namespace_alert() -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(FIRING).unwrap();
    let mut alert = payload["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "ServiceDown")
        .unwrap()
        .clone();
    alert["labels"]["namespace"] = json!("kube-system");
    alert["labels"]["deployment"] = json!("coredns");
    alert["fingerprint"] = json!("0d1e2f3a4b5c6d7e");
    payload["alerts"] = json!([alert]);
    payload["groupKey"] = json!("{}:{namespace=\"kube-system\"}");
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test]
async fn every_stage_is_exported_and_promtool_accepts_the_scrape() {
    let fake = shop().await;
    // ecommerce's rollback never gets healthy.
    fake.set_rollout("shop", "ecommerce", Rollout::Never);
    let slack = FakeSlack::start().await;
    // The first request fails (503: backoff), the second is rate limited.
    slack.script([
        Answer::Status(503),
        Answer::TooManyRequests { retry_after: 1 },
    ]);
    let slack_config = SlackConfig::Bot {
        token: Secret::new(BOT_TOKEN),
        channel: "#rollbacks".into(),
        api_url: slack.api_url(),
    };
    let server = TestServer::start_full(
        move |s| s.slack = slack_config,
        Default::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;

    // Refused webhooks: no credentials, then not JSON.
    let webhook = format!("{}/webhook", server.url);
    let r = server
        .client
        .post(&webhook)
        .body(FIRING)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = server
        .client
        .post(&webhook)
        .bearer_auth(WEBHOOK_TOKEN)
        .header("content-type", "text/plain")
        .body(FIRING)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Accepted: the firing group (two rollbacks, a notify, a hold), and an
    // alert the guard refuses.
    let receipt: Value = server.post_webhook(FIRING).await.json().await.unwrap();
    let id = receipt["id"].as_i64().unwrap();
    let refused: Value = server
        .post_webhook(&protected_namespace_alert())
        .await
        .json()
        .await
        .unwrap();
    server
        .processed_event(refused["id"].as_i64().unwrap())
        .await;

    // ecommerce's rollout stalls (ProgressDeadlineExceeded); checkout's
    // completes at once.
    until("ecommerce patched and its rollout stuck", || async {
        fake.expire_progress_deadline("shop", "ecommerce")
            .then_some(())
    })
    .await;
    until("both rollouts followed to their end", || async {
        let (_, e) = server.get_json(&format!("/api/v1/events/{id}")).await;
        let watched = e["alerts"]
            .as_array()?
            .iter()
            .flat_map(|a| a["actions"].as_array().unwrap())
            .filter(|a| a["action"] == "watch")
            .count();
        (watched == 2).then_some(())
    })
    .await;
    // Slack is told the ends (the last reports queued), then the outbox
    // drains.
    until("Slack told of both rollouts' ends", || async {
        let told = |stage: &str| {
            slack
                .delivered()
                .iter()
                .any(|r| r.body.to_string().contains(stage))
        };
        (told("rolled back, healthy") && told("rollout stalled")).then_some(())
    })
    .await;
    until("the Slack outbox empty, every report counted", || async {
        let (_, _, body) = scrape(&server, None).await;
        let m = samples(&body);
        let get = |series: &str| m.get(series).copied();
        let closed = ["delivered", "superseded", "failed"]
            .iter()
            .map(|o| {
                get(&format!(
                    r#"rollbackd_slack_deliveries_total{{outcome="{o}"}}"#
                ))
            })
            .sum::<Option<f64>>()?;
        let queued = get("rollbackd_slack_reports_queued_total")?;
        (get("rollbackd_slack_reports_pending") == Some(0.0) && queued == closed).then_some(())
    })
    .await;

    // The classic text format: what curl (no Accept) and promtool get.
    let (status, content_type, text) = scrape(&server, None).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (ok, printed) = promtool(&text);
    assert!(
        ok && printed.trim().is_empty(),
        "promtool check metrics: {printed}\non\n{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");

    let m = samples(&text);
    let v = |series: &str| value(&m, series, &text);
    let exact = [
        // webhook
        (
            r#"rollbackd_webhooks_total{outcome="accepted",code="200"}"#,
            2.0,
        ),
        (
            r#"rollbackd_webhooks_total{outcome="unauthorized",code="401"}"#,
            1.0,
        ),
        (
            r#"rollbackd_webhooks_total{outcome="unsupported_media_type",code="415"}"#,
            1.0,
        ),
        // journal
        ("rollbackd_webhooks_pending", 0.0),
        ("rollbackd_holds_pending", 1.0),
        // decide
        (
            r#"rollbackd_alerts_total{decision="rollback",rule="service-down"}"#,
            2.0,
        ),
        (
            r#"rollbackd_alerts_total{decision="rollback",rule="high-error-rate"}"#,
            1.0,
        ),
        (
            r#"rollbackd_alerts_total{decision="notify",rule="minor-bug"}"#,
            1.0,
        ),
        (
            r#"rollbackd_alerts_total{decision="rollback-after",rule="performance-degradation"}"#,
            1.0,
        ),
        // guard
        (
            r#"rollbackd_guard_refusals_total{reason="protected_namespace"}"#,
            1.0,
        ),
        ("rollbackd_breaker_openings_total", 0.0),
        // undo
        (r#"rollbackd_rollbacks_total{outcome="rolled_back"}"#, 2.0),
        (r#"rollbackd_rollbacks_total{outcome="refused"}"#, 1.0),
        // Both alerts started at 12:50:41.011, the clock says 12:50:45.
        (
            r#"rollbackd_time_to_patch_seconds_count{rule="service-down"}"#,
            1.0,
        ),
        (
            r#"rollbackd_time_to_patch_seconds_count{rule="high-error-rate"}"#,
            1.0,
        ),
        (
            r#"rollbackd_time_to_patch_seconds_bucket{rule="service-down",le="2"}"#,
            0.0,
        ),
        (
            r#"rollbackd_time_to_patch_seconds_bucket{rule="service-down",le="5"}"#,
            1.0,
        ),
        // watch: checkout healthy within service-down's 30 s; ecommerce
        // stalled, so high-error-rate's deadline was missed.
        (
            r#"rollbackd_rollout_duration_seconds_count{outcome="healthy"}"#,
            1.0,
        ),
        (
            r#"rollbackd_rollout_duration_seconds_count{outcome="stalled"}"#,
            1.0,
        ),
        (
            r#"rollbackd_time_to_rollback_seconds_count{rule="service-down"}"#,
            1.0,
        ),
        (
            r#"rollbackd_time_to_rollback_seconds_bucket{rule="service-down",le="30"}"#,
            1.0,
        ),
        (
            r#"rollbackd_rollback_deadline_misses_total{rule="service-down"}"#,
            0.0,
        ),
        (
            r#"rollbackd_rollback_deadline_misses_total{rule="high-error-rate"}"#,
            1.0,
        ),
        // report
        (r#"rollbackd_slack_retries_total{reason="transient"}"#, 1.0),
        (
            r#"rollbackd_slack_retries_total{reason="rate_limited"}"#,
            1.0,
        ),
        (
            r#"rollbackd_slack_retries_total{reason="message_gone"}"#,
            0.0,
        ),
        (r#"rollbackd_slack_deliveries_total{outcome="failed"}"#, 0.0),
        ("rollbackd_slack_reports_pending", 0.0),
        // lease: a single replica is its own leader
        ("rollbackd_leader", 1.0),
    ];
    for (series, expected) in exact {
        assert_eq!(v(series), expected, "{series} in\n{text}");
    }
    let since_start = 3.989;
    for series in [
        r#"rollbackd_time_to_patch_seconds_sum{rule="service-down"}"#,
        r#"rollbackd_time_to_patch_seconds_sum{rule="high-error-rate"}"#,
        r#"rollbackd_time_to_rollback_seconds_sum{rule="service-down"}"#,
    ] {
        assert!(
            (v(series) - since_start).abs() < 1e-6,
            "{series} in\n{text}"
        );
    }
    assert!(
        !text.contains(r#"rollbackd_time_to_rollback_seconds_count{rule="high-error-rate"}"#),
        "a stalled rollout has no time to rollback:\n{text}"
    );
    // Every report queued left the outbox one way or another.
    let delivered = v(r#"rollbackd_slack_deliveries_total{outcome="delivered"}"#);
    let superseded = v(r#"rollbackd_slack_deliveries_total{outcome="superseded"}"#);
    assert!(
        delivered >= 5.0,
        "one message per incident at least:\n{text}"
    );
    assert_eq!(
        v("rollbackd_slack_reports_queued_total"),
        delivered + superseded,
        "{text}"
    );
    assert_eq!(
        delivered as usize,
        slack.delivered().len(),
        "what Slack took"
    );
    assert!(v("rollbackd_journal_write_seconds_count") > 0.0);
    assert!(v("rollbackd_journal_batch_size_count") > 0.0);

    // Each family is described, with its type, under the name the classic
    // format gives it (counters with `_total`).
    let families = [
        ("rollbackd_webhooks_total", "counter"),
        ("rollbackd_alerts_total", "counter"),
        ("rollbackd_journal_write_seconds", "histogram"),
        ("rollbackd_journal_batch_size", "histogram"),
        ("rollbackd_webhooks_pending", "gauge"),
        ("rollbackd_holds_pending", "gauge"),
        ("rollbackd_rollbacks_total", "counter"),
        ("rollbackd_guard_refusals_total", "counter"),
        ("rollbackd_breaker_openings_total", "counter"),
        ("rollbackd_time_to_patch_seconds", "histogram"),
        ("rollbackd_time_to_rollback_seconds", "histogram"),
        ("rollbackd_rollback_deadline_misses_total", "counter"),
        ("rollbackd_rollout_duration_seconds", "histogram"),
        ("rollbackd_slack_reports_queued_total", "counter"),
        ("rollbackd_slack_deliveries_total", "counter"),
        ("rollbackd_slack_retries_total", "counter"),
        ("rollbackd_slack_reports_pending", "gauge"),
        ("rollbackd_leader", "gauge"),
    ];
    for (name, kind) in families {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "no TYPE line for {name} in\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP line for {name} in\n{text}"
        );
    }

    // OpenMetrics, as Prometheus asks: the same samples, counter families
    // named without `_total`, and the closing `# EOF`.
    let (status, content_type, open_metrics) = scrape(&server, Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(status, 200);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");
    for (name, kind) in families {
        let family = match kind {
            "counter" => name.strip_suffix("_total").unwrap(),
            _ => name,
        };
        assert!(
            open_metrics.contains(&format!("# TYPE {family} {kind}\n")),
            "no TYPE line for {family} in\n{open_metrics}"
        );
    }
    assert!(
        open_metrics.contains(r#"rollbackd_rollbacks_total{outcome="rolled_back"} 2"#),
        "{open_metrics}"
    );
    assert!(
        open_metrics.contains(
            r#"rollbackd_time_to_rollback_seconds_bucket{le="30.0",rule="service-down"} 1"#
        ) || open_metrics.contains(
            r#"rollbackd_time_to_rollback_seconds_bucket{rule="service-down",le="30.0"} 1"#
        ),
        "{open_metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn depth_gauges_are_read_from_the_journal_at_each_scrape() {
    // Intake only: no worker drains the journal, so only the scrape itself
    // can know how much waits.
    let server = TestServer::start_with(|s| s.intake_only = true, Default::default()).await;
    let pending = |body: &str| samples(body)["rollbackd_webhooks_pending"];
    let (_, _, body) = scrape(&server, None).await;
    assert_eq!(pending(&body), 0.0, "{body}");
    for n in 1..=2 {
        assert_eq!(server.post_webhook(FIRING).await.status(), 200);
        let (_, _, body) = scrape(&server, None).await;
        assert_eq!(pending(&body), f64::from(n), "{body}");
    }
    let (_, _, body) = scrape(&server, None).await;
    let (ok, printed) = promtool(&body);
    assert!(ok && printed.trim().is_empty(), "{printed}\non\n{body}");
    server.stop().await;
}

#[tokio::test]
async fn accept_header_picks_the_format() {
    let server = TestServer::start().await;
    let cases = [
        (None, "text/plain; version=0.0.4; charset=utf-8"),
        (Some("*/*"), "text/plain; version=0.0.4; charset=utf-8"),
        (
            Some("text/html,application/xhtml+xml,*/*;q=0.8"),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        (
            Some("application/openmetrics-text"),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        (
            Some(PROMETHEUS_ACCEPT),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    ];
    for (accept, expected) in cases {
        let (status, content_type, body) = scrape(&server, accept).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, expected, "Accept: {accept:?}");
        assert_eq!(
            body.ends_with("# EOF\n"),
            expected.starts_with("application/openmetrics-text"),
            "Accept: {accept:?}:\n{body}"
        );
    }
    server.stop().await;
}

/// Starts Debian's Prometheus scraping `target` every second; returns the
/// process (killed on drop) and its URL.
async fn prometheus(dir: &std::path::Path, target: &str) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rollbackd\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let child = tokio::process::Command::new("prometheus")
        .args([
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "prometheus must be installed (apt-get install prometheus; scripts/test does): {e}"
            )
        });
    (child, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn prometheus_scrapes_the_openmetrics_exposition() {
    let server = TestServer::start().await;
    let receipt: Value = server.post_webhook(FIRING).await.json().await.unwrap();
    server
        .processed_event(receipt["id"].as_i64().unwrap())
        .await;
    let dir = tempfile::tempdir().unwrap();
    let target = server.url.trim_start_matches("http://").to_string();
    let (_prometheus, url) = prometheus(dir.path(), &target).await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client.get(format!("{url}{path}")).send().await.ok()?;
            r.json::<Value>().await.ok()
        }
    };

    // Scraped, and parsed without error by Prometheus' strict OpenMetrics
    // parser.
    let scrape = until("Prometheus scraped rollbackd", || async {
        let targets = get("/api/v1/targets".into()).await?;
        let t = targets["data"]["activeTargets"].get(0)?.clone();
        let health = t["health"].as_str()?;
        (health != "unknown").then_some(t)
    })
    .await;
    assert_eq!(scrape["health"], "up", "{scrape}");
    assert_eq!(scrape["lastError"], "", "{scrape}");

    // It was OpenMetrics: Prometheus records a counter's metadata under
    // the family's name, without `_total`, only from OpenMetrics.
    let metadata = until("the target's metadata", || async {
        let m = get("/api/v1/targets/metadata?match_target={job=\"rollbackd\"}".into()).await?;
        let entries = m["data"].as_array()?.clone();
        (!entries.is_empty()).then_some(entries)
    })
    .await;
    let kind = |metric: &str| {
        metadata
            .iter()
            .find(|e| e["metric"] == metric)
            .map(|e| e["type"].as_str().unwrap().to_string())
    };
    assert_eq!(
        kind("rollbackd_alerts").as_deref(),
        Some("counter"),
        "{metadata:?}"
    );
    assert_eq!(
        kind("rollbackd_journal_write_seconds").as_deref(),
        Some("histogram"),
        "{metadata:?}"
    );
    assert_eq!(
        kind("rollbackd_leader").as_deref(),
        Some("gauge"),
        "{metadata:?}"
    );

    // And the samples are there to query.
    let result = until("rollbackd_alerts_total queryable", || async {
        let q = get("/api/v1/query?query=rollbackd_alerts_total".into()).await?;
        let result = q["data"]["result"].as_array()?.clone();
        (result.len() == 4).then_some(result)
    })
    .await;
    let service_down = result
        .iter()
        .find(|s| s["metric"]["rule"] == "service-down")
        .unwrap();
    assert_eq!(service_down["value"][1], "1", "{result:?}");
    server.stop().await;
}
