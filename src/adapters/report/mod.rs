//! Report: tells Slack about every step of an incident, from the alert to a
//! healthy (or stalled) rollout, one message per alert episode.
//!
//! ```text
//! worker --report(&Incident)--> render --> outbox row (journal) --wake--> delivery loop --> Slack
//!         never waits for Slack   Block Kit   durable, before Ok(())        per channel: 1 msg/s,
//!                                                                         429 Retry-After, backoff
//! ```
//!
//! - [`render`](fn@render): an [`Incident`] into the Block Kit body Slack
//!   receives, within Slack's limits (50 blocks, 3000 characters a section,
//!   150 a header), truncation marked.
//! - `outbox`: the journal's `outbox` and `slack_messages` tables. A row is
//!   open while `delivered_at` is NULL. A closed row with `last_error` NULL
//!   was delivered; with `last_error` set it was given up (a permanent Slack
//!   error) or superseded by a later report of the same incident (`superseded
//!   by #N`). `attempts` counts the requests made for it.
//! - `slack`: the two transports (incoming webhook; bot token with
//!   `chat.postMessage` then `chat.update` of the same message) and how
//!   Slack's answers are classified: delivered, rate limited, worth a retry,
//!   or permanent.
//! - `delivery`: the loop that drains the outbox: the latest report of each
//!   incident wins, at most one request a second per channel, 429s honoured,
//!   other failures retried with capped exponential backoff, forever: a
//!   Slack outage delays reports, never loses them, including across a
//!   restart.
//!
//! Secrets (the webhook URL, the bot token) never reach a log line, an error
//! message or the outbox: errors are stripped of URLs and redacted.

use std::sync::Arc;

use jiff::Timestamp;
use prometheus_client::metrics::counter::Counter;
use serde_json::json;
use tokio::sync::{watch, Notify};

use crate::adapters::journal::outbox;
use crate::adapters::journal::{Journal, JournalError};
use crate::adapters::metrics::SlackCounters;
use crate::core::clock::Clock;
use crate::core::decide::{Decision, Target};
use crate::core::parse::{Alert, AlertStatus, LabelSet};
use crate::core::rules::DecisionKind;
use crate::core::secret::Secret;

mod delivery;
mod render;
mod slack;

pub use render::{
    render, silence_url, MAX_BLOCKS, MAX_FIELD_CHARS, MAX_HEADER_CHARS, MAX_SECTION_CHARS,
    TRUNCATED,
};

/// Slack's Web API, where `chat.postMessage` and `chat.update` live.
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";

/// The alert annotation that sends an incident's messages to another
/// channel than the configured one (bot token only).
pub const CHANNEL_ANNOTATION: &str = "slack_channel";

/// Where an incident stands; each report carries the latest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The alert arrived and was journaled.
    Received,
    /// A rule matched and decided.
    Decided,
    /// `rollback-after`: holding, to roll back if the alert still fires.
    Held,
    /// The hold was cancelled (the alert resolved in time).
    Cancelled,
    /// The undo is being applied.
    RollingBack,
    /// The undo was applied; the rollout starts.
    RolledBack,
    /// The rollout is progressing.
    Rolling,
    /// The rollout finished; the workload is healthy.
    Healthy,
    /// The rollout stopped progressing (`ProgressDeadlineExceeded`).
    Stalled,
    /// The rollout did not finish within the rule's deadline.
    DeadlineMissed,
    /// A guard refused the rollback (limit, cooldown, GitOps, protected
    /// namespace, newer deploy...).
    Refused,
    /// The rollback failed (API error, no history, no cluster...).
    Failed,
    /// Reported only (`notify`), no action taken.
    Notified,
}

impl Stage {
    /// Every stage, in the order an incident moves through them.
    pub const ALL: [Stage; 13] = [
        Stage::Received,
        Stage::Decided,
        Stage::Held,
        Stage::Cancelled,
        Stage::RollingBack,
        Stage::RolledBack,
        Stage::Rolling,
        Stage::Healthy,
        Stage::Stalled,
        Stage::DeadlineMissed,
        Stage::Refused,
        Stage::Failed,
        Stage::Notified,
    ];

    /// The name used in the outbox, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Decided => "decided",
            Stage::Held => "held",
            Stage::Cancelled => "cancelled",
            Stage::RollingBack => "rolling-back",
            Stage::RolledBack => "rolled-back",
            Stage::Rolling => "rolling",
            Stage::Healthy => "healthy",
            Stage::Stalled => "stalled",
            Stage::DeadlineMissed => "deadline-missed",
            Stage::Refused => "refused",
            Stage::Failed => "failed",
            Stage::Notified => "notified",
        }
    }

    /// How a message says it, after the alert's name.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Decided => "decided",
            Stage::Held => "holding before rollback",
            Stage::Cancelled => "rollback cancelled",
            Stage::RollingBack => "rolling back",
            Stage::RolledBack => "rolled back",
            Stage::Rolling => "rollout in progress",
            Stage::Healthy => "rolled back, healthy",
            Stage::Stalled => "rollout stalled",
            Stage::DeadlineMissed => "deadline missed",
            Stage::Refused => "rollback refused",
            Stage::Failed => "rollback failed",
            Stage::Notified => "notify only",
        }
    }

    /// The Slack emoji leading the message: Block Kit has no colour, so the
    /// emoji carries it (green done, red failed, yellow waiting or warning).
    pub fn emoji(self) -> &'static str {
        match self {
            Stage::Received => ":inbox_tray:",
            Stage::Decided => ":clipboard:",
            Stage::Held => ":hourglass_flowing_sand:",
            Stage::Cancelled => ":large_green_circle:",
            Stage::RollingBack => ":rewind:",
            Stage::RolledBack => ":leftwards_arrow_with_hook:",
            Stage::Rolling => ":arrows_counterclockwise:",
            Stage::Healthy => ":white_check_mark:",
            Stage::Stalled => ":warning:",
            Stage::DeadlineMissed => ":alarm_clock:",
            Stage::Refused => ":no_entry:",
            Stage::Failed => ":x:",
            Stage::Notified => ":bell:",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a message says about one alert episode, at its latest step.
/// One Slack message per `key`; each report replaces the previous state.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// The alert episode, `fingerprint@startsAt`: one Slack message each.
    pub key: String,
    /// `alertname` label.
    pub alertname: String,
    /// `severity` label.
    pub severity: Option<String>,
    /// Whether the alert still fires.
    pub alert_status: AlertStatus,
    /// `summary` annotation (else `description`).
    pub summary: Option<String>,
    /// The alert's labels, for the silence link.
    pub labels: LabelSet,
    /// The rule that matched.
    pub rule: Option<String>,
    /// What the rule decided.
    pub decision: DecisionKind,
    /// Why, in one sentence.
    pub reason: String,
    /// The workload, when known.
    pub target: Option<Target>,
    /// The latest step.
    pub stage: Stage,
    /// The latest step in human words.
    pub detail: String,
    /// Revision before the rollback.
    pub from_revision: Option<i64>,
    /// Revision rolled back to.
    pub to_revision: Option<i64>,
    /// Container images before the rollback.
    pub from_images: Vec<String>,
    /// Container images after the rollback.
    pub to_images: Vec<String>,
    /// The rule's deadline, in seconds.
    pub deadline_secs: Option<u64>,
    /// From the alert's start to a healthy rollout, in seconds.
    pub time_to_rollback_secs: Option<f64>,
    /// When the alert started firing.
    pub starts_at: Timestamp,
    /// The alert's link to Prometheus.
    pub generator_url: String,
    /// Alertmanager's own URL.
    pub external_url: String,
    /// Channel override (annotation `slack_channel`, or the rule's).
    pub channel: Option<String>,
    /// Extra lines for on-call (e.g. how to resume GitOps reconciliation).
    pub notes: Vec<String>,
}

impl Incident {
    /// An incident for `alert` as decided, at `stage`; revisions, images,
    /// time to rollback and notes are the caller's to fill in later.
    pub fn new(
        external_url: &str,
        alert: &Alert,
        decision: &Decision,
        stage: Stage,
        detail: impl Into<String>,
    ) -> Incident {
        Incident {
            key: alert.episode_key(),
            alertname: alert.name().to_string(),
            severity: alert.labels.get("severity").cloned(),
            alert_status: alert.status,
            summary: alert
                .annotations
                .get("summary")
                .or_else(|| alert.annotations.get("description"))
                .cloned(),
            labels: alert.labels.clone(),
            rule: decision.rule.clone(),
            decision: decision.kind,
            reason: decision.reason.clone(),
            target: decision.target.clone(),
            stage,
            detail: detail.into(),
            from_revision: None,
            to_revision: None,
            from_images: Vec::new(),
            to_images: Vec::new(),
            deadline_secs: decision.deadline_secs,
            time_to_rollback_secs: None,
            starts_at: alert.starts_at,
            generator_url: alert.generator_url.clone(),
            external_url: external_url.to_string(),
            channel: alert.annotations.get(CHANNEL_ANNOTATION).cloned(),
            notes: Vec::new(),
        }
    }

    /// Whether the rollback met its rule's deadline, once known: the
    /// deadline is the time from the alert's start to a healthy rollout, so
    /// a rollout that ended any other way (stalled, not done in time) missed
    /// it, however soon it ended. `None` before the rollout's end or without
    /// a deadline. The metrics count the same misses.
    pub fn deadline_met(&self) -> Option<bool> {
        let took = self.time_to_rollback_secs?;
        let deadline = self.deadline_secs?;
        Some(self.stage == Stage::Healthy && took <= deadline as f64)
    }
}

/// How rollbackd reaches Slack.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SlackConfig {
    /// No Slack: reports are dropped (the journal keeps the history).
    #[default]
    Disabled,
    /// An incoming webhook: each stage change is a new message (a webhook
    /// cannot update one); it posts to its own channel.
    Webhook {
        /// The webhook URL (itself the credential).
        url: Secret,
    },
    /// A bot token: `chat.postMessage` for an incident's first report, then
    /// `chat.update` of that message.
    Bot {
        /// `xoxb-...`.
        token: Secret,
        /// Default channel (name or ID); an incident may override it.
        channel: String,
        /// The Web API base URL, [`DEFAULT_SLACK_API_URL`] outside tests.
        api_url: String,
    },
}

/// Delivery counts since start (the same counters `/metrics` exports as
/// `rollbackd_slack_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Reports written to the outbox.
    pub queued: u64,
    /// Messages Slack accepted (posted or updated).
    pub delivered: u64,
    /// Reports replaced by a later one of the same incident before delivery.
    pub superseded: u64,
    /// Reports given up on a permanent Slack error.
    pub failed: u64,
    /// Attempts that failed and will be retried (5xx, timeout, connection).
    pub retried: u64,
    /// Attempts Slack rate limited (429 or `ratelimited`).
    pub rate_limited: u64,
}

/// The counters delivery counts with: the metrics' own series when the
/// reporter was built with them.
struct Stats(SlackCounters);

impl Stats {
    fn add(counter: &Counter, n: u64) {
        counter.inc_by(n);
    }

    fn snapshot(&self) -> DeliveryStats {
        let c = &self.0;
        DeliveryStats {
            queued: c.queued.get(),
            delivered: c.delivered.get(),
            superseded: c.superseded.get(),
            failed: c.failed.get(),
            retried: c.transient.get(),
            rate_limited: c.rate_limited.get(),
        }
    }
}

impl std::ops::Deref for Stats {
    type Target = SlackCounters;

    fn deref(&self) -> &SlackCounters {
        &self.0
    }
}

struct Shared {
    slack: Option<slack::SlackClient>,
    journal: Journal,
    clock: Arc<dyn Clock>,
    wake: Notify,
    stats: Stats,
}

/// Reports incidents to Slack through the journal's outbox. Cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    shared: Arc<Shared>,
}

impl Reporter {
    /// A reporter for `config`, keeping its outbox in `journal`, counting
    /// on counters of its own.
    pub fn new(config: SlackConfig, journal: Journal, clock: Arc<dyn Clock>) -> Reporter {
        Reporter::with_metrics(config, journal, clock, SlackCounters::default())
    }

    /// A reporter that counts on `counters` (the metrics' Slack series).
    pub fn with_metrics(
        config: SlackConfig,
        journal: Journal,
        clock: Arc<dyn Clock>,
        counters: SlackCounters,
    ) -> Reporter {
        Reporter {
            shared: Arc::new(Shared {
                slack: slack::SlackClient::new(config),
                journal,
                clock,
                wake: Notify::new(),
                stats: Stats(counters),
            }),
        }
    }

    /// Whether Slack is configured at all.
    pub fn is_enabled(&self) -> bool {
        self.shared.slack.is_some()
    }

    /// Delivery counts since this reporter was built.
    pub fn stats(&self) -> DeliveryStats {
        self.shared.stats.snapshot()
    }

    /// Reports in the outbox not yet closed (delivered, superseded or given
    /// up): what a Slack outage holds back.
    pub async fn pending(&self) -> Result<usize, JournalError> {
        self.shared.journal.read(outbox::open_count).await
    }

    /// Records `incident`'s latest state in the outbox (durably: `Ok` means
    /// committed) and wakes delivery. Never waits for Slack. A report
    /// identical to the incident's previous one is not queued again; with an
    /// incoming webhook, neither is one whose stage has already been posted
    /// (a webhook cannot update a message, so only stage changes are
    /// posted). With Slack disabled, does nothing.
    pub async fn report(&self, incident: &Incident) -> Result<(), JournalError> {
        let Some(slack) = &self.shared.slack else {
            return Ok(());
        };
        let payload = json!({
            "stage": incident.stage.as_str(),
            "body": render(incident),
        })
        .to_string();
        let row = outbox::NewRow {
            incident: incident.key.clone(),
            channel: slack.channel_for(incident.channel.as_deref()),
            created_at: self.shared.clock.now(),
            stage: incident.stage.as_str(),
            payload,
            stage_changes_only: slack.posts_stage_changes_only(),
        };
        let queued =
            outbox::write(&self.shared.journal, move |conn| outbox::insert(conn, &row)).await?;
        if queued {
            Stats::add(&self.shared.stats.queued, 1);
            self.shared.wake.notify_one();
        } else {
            tracing::debug!(
                incident = %incident.key,
                stage = incident.stage.as_str(),
                "report unchanged; not queued again"
            );
        }
        Ok(())
    }

    /// The delivery loop: drains the outbox into Slack until `stop` turns
    /// true, then finishes the requests in flight (each bounded by the
    /// request timeout). Undelivered reports found in the journal at start
    /// are delivered first. Returns at once when Slack is disabled.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        if self.shared.slack.is_none() {
            return;
        }
        delivery::run(self.shared, stop).await;
    }
}
