//! Report: what Slack receives, through a fake Slack on a loopback port,
//! on a paused tokio clock (rate limits, backoff and Retry-After are
//! asserted on the fake's arrival times).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollbackd::adapters::journal::{Journal, JournalError, JournalOptions};
use rollbackd::adapters::report::{
    render, Incident, Reporter, SlackConfig, Stage, MAX_BLOCKS, MAX_HEADER_CHARS,
    MAX_SECTION_CHARS, TRUNCATED,
};
use rollbackd::core::clock::Clock;
use rollbackd::core::decide::{Decision, Target, WorkloadKind};
use rollbackd::core::parse::{parse_notification, Notification};
use rollbackd::core::rules::DecisionKind;
use rollbackd::core::secret::Secret;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use common::slack::{Answer, FakeSlack, Recorded, BOT_TOKEN};
use common::TestClock;

const SECOND: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- harness

/// A reporter over a journal in a temp dir, its delivery loop running.
struct Harness {
    slack: FakeSlack,
    reporter: Reporter,
    journal: Journal,
    stop: watch::Sender<bool>,
    delivery: JoinHandle<()>,
    dir: tempfile::TempDir,
}

fn clock() -> Arc<dyn Clock> {
    TestClock::at("2026-11-22T12:51:00Z")
}

fn bot(slack: &FakeSlack) -> SlackConfig {
    SlackConfig::Bot {
        token: Secret::new(BOT_TOKEN),
        channel: "#rollbacks".into(),
        api_url: slack.api_url(),
    }
}

fn webhook(slack: &FakeSlack) -> SlackConfig {
    SlackConfig::Webhook {
        url: Secret::new(slack.webhook_url("hook-s3cr3t")),
    }
}

impl Harness {
    async fn bot() -> Harness {
        let slack = FakeSlack::start().await;
        let config = bot(&slack);
        Harness::start(slack, config, tempfile::tempdir().unwrap())
    }

    fn start(slack: FakeSlack, config: SlackConfig, dir: tempfile::TempDir) -> Harness {
        let journal =
            Journal::open(&journal_path(dir.path()), JournalOptions::default(), None).unwrap();
        let reporter = Reporter::new(config, journal.clone(), clock());
        let (stop, stopped) = watch::channel(false);
        let delivery = tokio::spawn(reporter.clone().run(stopped));
        Harness {
            slack,
            reporter,
            journal,
            stop,
            delivery,
            dir,
        }
    }

    async fn report(&self, incident: &Incident) {
        self.reporter.report(incident).await.unwrap();
    }

    /// Waits until `n` reports were delivered (and journaled as such).
    async fn delivered(&self, n: u64) {
        until(|| self.reporter.stats().delivered >= n).await;
    }

    /// Stops the delivery loop, as `Server::shutdown` does.
    async fn stop(self) -> (FakeSlack, tempfile::TempDir) {
        self.stop.send(true).unwrap();
        self.delivery.await.unwrap();
        (self.slack, self.dir)
    }

    async fn outbox(&self) -> Vec<OutboxRow> {
        outbox(&self.journal).await
    }
}

fn journal_path(dir: &Path) -> PathBuf {
    dir.join("journal.db")
}

#[derive(Debug, Clone, PartialEq)]
struct OutboxRow {
    id: i64,
    incident: String,
    channel: String,
    stage: String,
    attempts: i64,
    delivered: bool,
    last_error: Option<String>,
}

async fn outbox(journal: &Journal) -> Vec<OutboxRow> {
    journal
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, incident, channel, payload, attempts, delivered_at IS NOT NULL,
                        last_error FROM outbox ORDER BY id",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    let payload: String = r.get(3)?;
                    let payload: Value = serde_json::from_str(&payload).unwrap();
                    Ok(OutboxRow {
                        id: r.get(0)?,
                        incident: r.get(1)?,
                        channel: r.get(2)?,
                        stage: payload["stage"].as_str().unwrap().to_string(),
                        attempts: r.get(4)?,
                        delivered: r.get(5)?,
                        last_error: r.get(6)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, JournalError>(rows)
        })
        .await
        .unwrap()
}

/// Polls `check` on the (paused) test clock; fails after 10 minutes of it.
async fn until(mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !check() {
        assert!(Instant::now() < deadline, "condition not reached");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`until`], for a condition on the outbox.
async fn until_outbox(journal: &Journal, mut check: impl FnMut(&[OutboxRow]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let rows = outbox(journal).await;
        if check(&rows) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "outbox never got there: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn gap(a: &Recorded, b: &Recorded) -> Duration {
    b.at.duration_since(a.at)
}

/// Asserts `d` is `expected`, give or take the fake's own scheduling (the
/// paused clock only moves to timers, so the slack is generous but far below
/// a second).
fn assert_about(d: Duration, expected: Duration) {
    assert!(
        d >= expected && d < expected + Duration::from_millis(500),
        "waited {d:?}, expected {expected:?}"
    );
}

// -------------------------------------------------------------- incidents

/// The real Alertmanager 0.25 payload the other tests use: HighErrorRate
/// (shop/ecommerce, high), MinorUIGlitch (frontend, low), ServiceDown
/// (checkout, critical), SlowCheckout (checkout, medium).
fn notification() -> Notification {
    parse_notification(common::FIRING).unwrap()
}

fn target(name: &str) -> Option<Target> {
    Some(Target {
        namespace: "shop".into(),
        kind: WorkloadKind::Deployment,
        name: name.into(),
        to_revision: None,
    })
}

fn decision(kind: DecisionKind, rule: &str, reason: &str, name: &str, deadline: u64) -> Decision {
    Decision {
        kind,
        rule: Some(rule.into()),
        reason: reason.into(),
        target: target(name),
        deadline_secs: Some(deadline),
        hold_until: None,
    }
}

/// HighErrorRate on shop/deployment/ecommerce, rule high-error-rate.
fn high_error_rate(stage: Stage, detail: &str) -> Incident {
    let n = notification();
    let d = decision(
        DecisionKind::Rollback,
        "high-error-rate",
        "rule high-error-rate matched: severity=\"high\"",
        "ecommerce",
        60,
    );
    Incident::new(&n.external_url, &n.alerts[0], &d, stage, detail)
}

/// MinorUIGlitch on shop/deployment/frontend, rule minor-bug (notify).
fn minor_ui_glitch(stage: Stage, detail: &str) -> Incident {
    let n = notification();
    let d = decision(
        DecisionKind::Notify,
        "minor-bug",
        "rule minor-bug matched: severity=\"low\"; investigate first",
        "frontend",
        1800,
    );
    Incident::new(&n.external_url, &n.alerts[1], &d, stage, detail)
}

/// ServiceDown on shop/deployment/checkout, rule service-down.
fn service_down(stage: Stage, detail: &str) -> Incident {
    let n = notification();
    let d = decision(
        DecisionKind::Rollback,
        "service-down",
        "rule service-down matched: severity=\"critical\"",
        "checkout",
        30,
    );
    Incident::new(&n.external_url, &n.alerts[2], &d, stage, detail)
}

/// SlowCheckout on shop/deployment/checkout, rule performance-degradation.
fn slow_checkout(stage: Stage, detail: &str) -> Incident {
    let n = notification();
    let d = decision(
        DecisionKind::RollbackAfter,
        "performance-degradation",
        "rule performance-degradation matched: severity=\"medium\"; hold 2m",
        "checkout",
        300,
    );
    Incident::new(&n.external_url, &n.alerts[3], &d, stage, detail)
}

/// An incident of its own on `channel`, for pacing tests.
fn on_channel(n: usize, channel: &str) -> Incident {
    let mut i = high_error_rate(Stage::Received, "alert received");
    i.key = format!("{channel}-incident-{n}");
    i.channel = Some(channel.into());
    i
}

fn rolled_back(mut i: Incident) -> Incident {
    i.from_revision = Some(7);
    i.to_revision = Some(6);
    i.from_images = vec!["registry.example/shop/ecommerce:2.4.1".into()];
    i.to_images = vec!["registry.example/shop/ecommerce:2.4.0".into()];
    i
}

// ------------------------------------------------------------- transports

#[tokio::test(start_paused = true)]
async fn first_report_posts_and_later_reports_update_the_same_message() {
    let h = Harness::bot().await;
    let received = high_error_rate(Stage::Received, "alert received; deciding");
    h.report(&received).await;
    let post = &h.slack.wait_for(1).await[0];
    assert_eq!(post.path, "/api/chat.postMessage");
    assert_eq!(post.headers["authorization"], format!("Bearer {BOT_TOKEN}"));
    assert_eq!(
        post.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(post.body["channel"], "#rollbacks");
    assert!(post.header_text().contains("HighErrorRate — received"));
    h.delivered(1).await;

    let rolled = rolled_back(high_error_rate(Stage::RolledBack, "undo applied: 7 → 6"));
    h.report(&rolled).await;
    h.delivered(2).await;
    let mut healthy = rolled_back(high_error_rate(Stage::Healthy, "rollout finished"));
    healthy.time_to_rollback_secs = Some(41.3);
    h.report(&healthy).await;
    h.delivered(3).await;

    let requests = h.slack.requests();
    let methods: Vec<&str> = requests.iter().map(Recorded::method).collect();
    assert_eq!(methods, ["chat.postMessage", "chat.update", "chat.update"]);
    for update in &requests[1..] {
        // The channel ID and ts chat.postMessage answered, not the name.
        assert_eq!(update.body["channel"], "CROLLBACKS");
        assert_eq!(update.body["ts"], "1764000000.000001");
    }
    assert!(requests[2].header_text().contains("rolled back, healthy"));
    assert!(gap(&requests[0], &requests[1]) >= SECOND);
    let stored = h
        .journal
        .read(|c| {
            Ok::<_, JournalError>(c.query_row(
                "SELECT incident, channel, ts FROM slack_messages",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )?)
        })
        .await
        .unwrap();
    assert_eq!(
        stored,
        (
            received.key.clone(),
            "CROLLBACKS".to_string(),
            "1764000000.000001".to_string()
        )
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn later_reports_supersede_undelivered_ones_of_the_same_incident() {
    let h = Harness::bot().await;
    h.report(&high_error_rate(Stage::Received, "alert received"))
        .await;
    h.delivered(1).await;
    // Both within the channel's one-second spacing: only the latest goes.
    h.report(&high_error_rate(Stage::RollingBack, "applying the undo"))
        .await;
    h.report(&rolled_back(high_error_rate(
        Stage::RolledBack,
        "undo applied",
    )))
    .await;
    h.delivered(2).await;
    tokio::time::sleep(Duration::from_secs(30)).await;

    let requests = h.slack.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(requests[1]
        .header_text()
        .contains("HighErrorRate — rolled back"));
    let rows = h.outbox().await;
    let stages: Vec<(&str, bool, Option<&str>)> = rows
        .iter()
        .map(|r| (r.stage.as_str(), r.delivered, r.last_error.as_deref()))
        .collect();
    assert_eq!(
        stages,
        [
            ("received", true, None),
            ("rolling-back", true, Some("superseded by #3")),
            ("rolled-back", true, None),
        ]
    );
    assert_eq!(h.reporter.stats().superseded, 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn webhook_transport_posts_each_stage_change_as_a_new_message() {
    let slack = FakeSlack::start().await;
    let config = webhook(&slack);
    let h = Harness::start(slack, config, tempfile::tempdir().unwrap());
    h.report(&service_down(Stage::Received, "alert received"))
        .await;
    h.delivered(1).await;
    // Same stage, new words: a webhook cannot edit, so nothing is posted.
    h.report(&service_down(Stage::Received, "alert received again"))
        .await;
    h.report(&service_down(Stage::RollingBack, "applying the undo"))
        .await;
    h.delivered(2).await;
    tokio::time::sleep(Duration::from_secs(30)).await;

    let requests = h.slack.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for r in &requests {
        assert_eq!(r.path, "/services/T0FAKE/B0FAKE/hook-s3cr3t");
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.body.get("channel").is_none());
        assert!(r.body["text"].as_str().unwrap().contains("ServiceDown"));
    }
    assert!(requests[0]
        .header_text()
        .ends_with("ServiceDown — received"));
    assert!(requests[1]
        .header_text()
        .ends_with("ServiceDown — rolling back"));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn channel_override_posts_to_the_alerts_slack_channel() {
    let h = Harness::bot().await;
    let mut incident = service_down(Stage::Received, "alert received");
    incident.channel = Some("#checkout-oncall".into());
    h.report(&incident).await;
    assert_eq!(
        h.slack.wait_for(1).await[0].body["channel"],
        "#checkout-oncall"
    );
    h.delivered(1).await;
    h.stop().await;
}

// --------------------------------------------------------------- delivery

#[tokio::test(start_paused = true)]
async fn one_message_per_second_per_channel_and_channels_are_independent() {
    let h = Harness::bot().await;
    for n in 0..3 {
        h.report(&on_channel(n, "#a")).await;
    }
    for n in 0..2 {
        h.report(&on_channel(n, "#b")).await;
    }
    let requests = h.slack.wait_for(5).await;
    let on = |channel: &str| -> Vec<Recorded> {
        requests
            .iter()
            .filter(|r| r.body["channel"] == channel)
            .cloned()
            .collect()
    };
    let (a, b) = (on("#a"), on("#b"));
    assert_eq!((a.len(), b.len()), (3, 2));
    assert_about(gap(&a[0], &a[1]), SECOND);
    assert_about(gap(&a[1], &a[2]), SECOND);
    assert_about(gap(&b[0], &b[1]), SECOND);
    // #b does not queue behind #a: its first message goes out with #a's.
    assert!(gap(&a[0], &b[0]) < Duration::from_millis(100));
    // Incidents of one channel go out oldest first.
    for (n, request) in a.iter().enumerate() {
        let context = request.body["blocks"].as_array().unwrap().last().unwrap()["elements"][0]
            ["text"]
            .as_str()
            .unwrap();
        assert!(
            context.ends_with(&format!("`#a-incident-{n}`")),
            "{context}"
        );
    }
    h.delivered(5).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn http_429_is_honoured_with_its_retry_after() {
    let h = Harness::bot().await;
    h.slack.script([Answer::TooManyRequests { retry_after: 7 }]);
    h.report(&service_down(Stage::Received, "alert received"))
        .await;
    let requests = h.slack.wait_for(2).await;
    assert_about(gap(&requests[0], &requests[1]), Duration::from_secs(7));
    h.delivered(1).await;
    let row = &h.outbox().await[0];
    assert_eq!((row.attempts, row.delivered), (2, true));
    assert_eq!(h.reporter.stats().rate_limited, 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn slack_ratelimited_error_is_treated_like_429() {
    let h = Harness::bot().await;
    h.slack
        .script([Answer::RateLimitedError { retry_after: 3 }]);
    h.report(&service_down(Stage::Received, "alert received"))
        .await;
    let requests = h.slack.wait_for(2).await;
    assert_about(gap(&requests[0], &requests[1]), Duration::from_secs(3));
    h.delivered(1).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_with_exponential_backoff_then_delivered() {
    let h = Harness::bot().await;
    h.slack.script([
        Answer::Status(500),
        Answer::Status(502),
        Answer::Status(503),
    ]);
    h.report(&service_down(Stage::Received, "alert received"))
        .await;
    h.slack.wait_for(2).await;
    // The attempt count and the last error are kept in the outbox row.
    until_outbox(&h.journal, |rows| rows[0].attempts == 2).await;
    let row = &h.outbox().await[0];
    assert!(!row.delivered);
    assert_eq!(
        row.last_error.as_deref(),
        Some("chat.postMessage: HTTP 502: upstream connect error")
    );

    let requests = h.slack.wait_for(4).await;
    assert_about(gap(&requests[0], &requests[1]), Duration::from_secs(2));
    assert_about(gap(&requests[1], &requests[2]), Duration::from_secs(4));
    assert_about(gap(&requests[2], &requests[3]), Duration::from_secs(8));
    h.delivered(1).await;
    let row = &h.outbox().await[0];
    assert_eq!(
        (row.attempts, row.delivered, row.last_error.as_deref()),
        (4, true, None)
    );
    assert_eq!(h.reporter.stats().retried, 3);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unanswered_requests_time_out_and_are_retried() {
    let h = Harness::bot().await;
    h.slack.script([Answer::Hang]);
    h.report(&service_down(Stage::Received, "alert received"))
        .await;
    let requests = h.slack.wait_for(2).await;
    // 10 s request timeout, then the first backoff step.
    assert_about(gap(&requests[0], &requests[1]), Duration::from_secs(12));
    h.delivered(1).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn permanent_slack_error_is_surfaced_and_not_retried() {
    let logs = LogCapture::install();
    let h = Harness::bot().await;
    h.slack.script([Answer::Error("channel_not_found")]);
    let mut lost = service_down(Stage::Received, "alert received");
    lost.channel = Some("#no-such-channel".into());
    h.report(&lost).await;
    h.report(&high_error_rate(Stage::Received, "alert received"))
        .await;
    h.delivered(1).await;
    tokio::time::sleep(Duration::from_secs(600)).await;

    let requests = h.slack.requests();
    assert_eq!(requests.len(), 2, "not retried: {requests:#?}");
    assert_eq!(requests[0].body["channel"], "#no-such-channel");
    // The other incident, same channel pacing aside, was not held up.
    assert_eq!(requests[1].body["channel"], "#rollbacks");
    let rows = h.outbox().await;
    assert_eq!(rows[0].attempts, 1);
    assert!(rows[0].delivered, "closed");
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("chat.postMessage: channel_not_found")
    );
    assert_eq!(h.reporter.stats().failed, 1);
    let logged = logs.text();
    let line = logged
        .lines()
        .find(|l| l.contains("channel_not_found"))
        .unwrap_or_else(|| panic!("error not logged: {logged}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("Slack refused the report; not retrying"),
        "{line}"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn deleted_message_is_posted_anew() {
    let h = Harness::bot().await;
    h.report(&high_error_rate(Stage::Received, "alert received"))
        .await;
    h.delivered(1).await;
    h.slack.script([Answer::Error("message_not_found")]);
    h.report(&high_error_rate(Stage::Decided, "rolling back"))
        .await;
    let requests = h.slack.wait_for(3).await;
    let methods: Vec<&str> = requests.iter().map(Recorded::method).collect();
    assert_eq!(
        methods,
        ["chat.postMessage", "chat.update", "chat.postMessage"]
    );
    assert!(requests[2].header_text().contains("decided"));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn outage_then_recovery_delivers_every_incidents_latest_state() {
    let h = Harness::bot().await;
    h.slack.set_default(Answer::Status(503));
    let before = Instant::now();
    for stage in [Stage::Received, Stage::Decided, Stage::RolledBack] {
        h.report(&high_error_rate(stage, stage.label())).await;
    }
    for stage in [Stage::Received, Stage::Held] {
        h.report(&slow_checkout(stage, stage.label())).await;
    }
    h.report(&minor_ui_glitch(Stage::Notified, "investigate first"))
        .await;
    // Reporting never waited for Slack.
    assert!(before.elapsed() < SECOND);

    h.slack.wait_for(4).await;
    h.slack.set_default(Answer::Ok);
    h.delivered(3).await;
    tokio::time::sleep(Duration::from_secs(120)).await;

    let delivered: Vec<String> = h
        .slack
        .delivered()
        .iter()
        .map(Recorded::header_text)
        .collect();
    assert_eq!(
        delivered,
        [
            ":leftwards_arrow_with_hook: HighErrorRate — rolled back",
            ":hourglass_flowing_sand: SlowCheckout — holding before rollback",
            ":bell: MinorUIGlitch — notify only",
        ]
    );
    let open: Vec<OutboxRow> = h
        .outbox()
        .await
        .into_iter()
        .filter(|r| !r.delivered)
        .collect();
    assert!(open.is_empty(), "{open:#?}");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn restart_delivers_what_was_left_undelivered() {
    let h = Harness::bot().await;
    h.report(&high_error_rate(Stage::Received, "alert received"))
        .await;
    h.delivered(1).await;
    h.slack.set_default(Answer::Status(503));
    h.report(&rolled_back(high_error_rate(
        Stage::RolledBack,
        "undo applied",
    )))
    .await;
    h.report(&service_down(Stage::Received, "alert received"))
        .await;
    h.slack.wait_for(2).await;
    until_outbox(&h.journal, |rows| rows[1].attempts >= 1).await;
    let (slack, dir) = h.stop().await;

    // A new process: a new journal handle and reporter on the same file.
    slack.set_default(Answer::Ok);
    let sent_before = slack.requests().len();
    let config = bot(&slack);
    let h = Harness::start(slack, config, dir);
    h.delivered(2).await;
    let after: Vec<Recorded> = h.slack.requests()[sent_before..].to_vec();
    let summary: Vec<(&str, String)> = after
        .iter()
        .map(|r| (r.method(), r.header_text()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "chat.update",
                ":leftwards_arrow_with_hook: HighErrorRate — rolled back".to_string()
            ),
            (
                "chat.postMessage",
                ":inbox_tray: ServiceDown — received".to_string()
            ),
        ]
    );
    // The update edits the message posted before the restart.
    assert_eq!(after[0].body["ts"], "1764000000.000001");
    assert!(h.outbox().await.iter().all(|r| r.delivered));
    h.stop().await;
}

// ----------------------------------------------------------------- limits

#[tokio::test(start_paused = true)]
async fn messages_over_slacks_limits_are_truncated_with_the_cut_marked() {
    let h = Harness::bot().await;
    let mut big = rolled_back(high_error_rate(Stage::Healthy, &"d".repeat(10_000)));
    big.alertname = "VeryLongAlertName".repeat(20);
    big.summary = Some("s".repeat(5_000));
    big.notes = (1..=80)
        .map(|n| format!("note {n}: {}", "x".repeat(3_500)))
        .collect();
    h.report(&big).await;
    let body = &h.slack.wait_for(1).await[0].body;
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), MAX_BLOCKS);
    let header = blocks[0]["text"]["text"].as_str().unwrap();
    assert!(header.chars().count() <= MAX_HEADER_CHARS, "{header}");
    assert!(header.ends_with(&format!("{TRUNCATED} — rolled back, healthy")));
    for block in blocks {
        if let Some(text) = block["text"]["text"].as_str() {
            assert!(text.chars().count() <= MAX_SECTION_CHARS);
        }
    }
    let step = blocks[1]["text"]["text"].as_str().unwrap();
    assert!(step.contains(&format!("d{TRUNCATED}")), "{step}");
    assert_eq!(
        blocks[47]["text"]["text"],
        format!("{TRUNCATED} 37 more notes not shown")
    );
    assert!(blocks[48]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("|Alertmanager>"));
    assert!(body["text"].as_str().unwrap().chars().count() <= MAX_SECTION_CHARS);
    h.stop().await;
}

// ---------------------------------------------------------------- secrets

/// Collects everything logged on this thread (the tests' runtime is
/// single-threaded, so that is every task's log).
struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    fn install() -> LogCapture {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = BufferWriter(buffer.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        LogCapture {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

#[tokio::test(start_paused = true)]
async fn secrets_never_appear_in_logs_or_errors() {
    const HOOK_SECRET: &str = "hookSecretT0B0xyz123";
    let logs = LogCapture::install();

    // An incoming webhook nobody answers: connection refused, retried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let slack = FakeSlack::start().await;
    let unreachable = SlackConfig::Webhook {
        url: Secret::new(format!(
            "http://127.0.0.1:{port}/services/T0/B0/{HOOK_SECRET}"
        )),
    };
    assert!(!format!("{unreachable:?}").contains(HOOK_SECRET));
    let h = Harness::start(slack, unreachable, tempfile::tempdir().unwrap());
    h.report(&service_down(Stage::Received, "alert received"))
        .await;
    until_outbox(&h.journal, |rows| rows[0].attempts >= 2).await;
    let mut errors: Vec<String> = h
        .outbox()
        .await
        .into_iter()
        .filter_map(|r| r.last_error)
        .collect();
    let (slack, _) = h.stop().await;

    // A webhook that answers 500, then a permanent error.
    let config = SlackConfig::Webhook {
        url: Secret::new(slack.webhook_url(HOOK_SECRET)),
    };
    slack.script([Answer::Status(500), Answer::Error("no_service")]);
    let h = Harness::start(slack, config, tempfile::tempdir().unwrap());
    h.report(&service_down(Stage::Received, "alert received"))
        .await;
    until_outbox(&h.journal, |rows| rows[0].delivered).await;
    errors.extend(h.outbox().await.into_iter().filter_map(|r| r.last_error));
    let (slack, _) = h.stop().await;

    // A bot token Slack refuses, after a 503.
    let config = bot(&slack);
    assert!(!format!("{config:?}").contains(BOT_TOKEN));
    slack.script([Answer::Status(503), Answer::Error("invalid_auth")]);
    let h = Harness::start(slack, config, tempfile::tempdir().unwrap());
    h.report(&service_down(Stage::Received, "alert received"))
        .await;
    until_outbox(&h.journal, |rows| rows[0].delivered).await;
    errors.extend(h.outbox().await.into_iter().filter_map(|r| r.last_error));
    h.stop().await;

    let logged = logs.text();
    // The failures were logged and kept, with what went wrong...
    assert!(
        logged.contains("Connection refused") || logged.contains("connect"),
        "{logged}"
    );
    assert!(
        logged.contains("incoming webhook: HTTP 404: no_service"),
        "{logged}"
    );
    assert!(
        logged.contains("chat.postMessage: invalid_auth"),
        "{logged}"
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    // ...and never the webhook URL's secret or the token.
    for text in errors.iter().chain([&logged]) {
        assert!(!text.contains(HOOK_SECRET), "webhook secret leaked: {text}");
        assert!(!text.contains(BOT_TOKEN), "bot token leaked: {text}");
        assert!(!text.contains("/services/"), "webhook path leaked: {text}");
    }
}

// -------------------------------------------------------------- snapshots

/// The exact bodies Slack receives, compared as JSON with the reference
/// files in tests/fixtures/slack/.
#[tokio::test(start_paused = true)]
async fn slack_receives_exactly_the_reference_messages() {
    // Bot: the first report posts, a later one updates.
    let h = Harness::bot().await;
    h.report(&service_down(Stage::Received, "alert received; deciding"))
        .await;
    h.delivered(1).await;
    let mut healthy = rolled_back(high_error_rate(Stage::Received, "alert received"));
    h.report(&healthy).await;
    h.delivered(2).await;
    healthy.stage = Stage::Healthy;
    healthy.detail = "rollout finished: 3/3 replicas updated and available".into();
    healthy.time_to_rollback_secs = Some(41.3);
    healthy.notes = vec![
        "GitOps: Flux Kustomization flux-system/shop was suspended before the undo; Git still \
         declares revision 7 (registry.example/shop/ecommerce:2.4.1). Fix Git, then resume \
         with: flux resume kustomization shop -n flux-system"
            .into(),
    ];
    h.report(&healthy).await;
    h.delivered(3).await;
    let bot_requests = h.slack.requests();
    h.stop().await;

    // Webhook: a hold, a notification, a stalled rollout past its deadline.
    let slack = FakeSlack::start().await;
    let config = webhook(&slack);
    let h = Harness::start(slack, config, tempfile::tempdir().unwrap());
    h.report(&slow_checkout(
        Stage::Held,
        "holding 2 min: rolls back at 12:53:11 UTC if the alert still fires",
    ))
    .await;
    h.report(&minor_ui_glitch(
        Stage::Notified,
        "no rollback: the rule says investigate first",
    ))
    .await;
    let mut stalled = service_down(
        Stage::Stalled,
        "ProgressDeadlineExceeded: deployment \"checkout\" exceeded its progress deadline",
    );
    stalled.from_revision = Some(12);
    stalled.to_revision = Some(11);
    stalled.from_images = vec![
        "registry.example/shop/checkout:5.0.0".into(),
        "registry.example/envoy:1.31".into(),
    ];
    stalled.to_images = vec![
        "registry.example/shop/checkout:4.9.2".into(),
        "registry.example/envoy:1.31".into(),
    ];
    stalled.time_to_rollback_secs = Some(95.0);
    h.report(&stalled).await;
    h.delivered(3).await;
    let webhook_requests = h.slack.requests();
    h.stop().await;

    let cases = [
        ("post-service-down-received.json", &bot_requests[0]),
        ("update-high-error-rate-healthy.json", &bot_requests[2]),
        ("webhook-slow-checkout-held.json", &webhook_requests[0]),
        (
            "webhook-minor-ui-glitch-notified.json",
            &webhook_requests[1],
        ),
        ("webhook-service-down-stalled.json", &webhook_requests[2]),
    ];
    for (file, request) in cases {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/slack")
            .join(file);
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap();
        assert_eq!(
            request.body,
            expected,
            "{file} differs; Slack received:\n{}",
            serde_json::to_string_pretty(&request.body).unwrap()
        );
    }
}

#[test]
fn render_is_the_body_without_transport_fields() {
    let message = render(&service_down(Stage::Received, "alert received"));
    let keys: Vec<&String> = message.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["blocks", "text"]);
}

// ------------------------------------------------------------ app wiring

#[tokio::test]
async fn server_delivers_reports_through_its_own_loop() {
    let slack = FakeSlack::start().await;
    let config = bot(&slack);
    let server =
        common::TestServer::start_with(move |s| s.slack = config, JournalOptions::default()).await;
    server
        .state
        .reporter
        .report(&service_down(Stage::Received, "alert received"))
        .await
        .unwrap();
    let requests = slack.wait_for(1).await;
    assert_eq!(requests[0].path, "/api/chat.postMessage");
    server.stop().await;
}
