//! Metrics: one Prometheus registry, names prefixed `rollbackd_`, labels
//! from closed enums or the configured rule names (never raw error text).
//!
//! Every stage has its families, in the order data flows:
//!
//! | stage | family | type | labels |
//! |---|---|---|---|
//! | webhook | `rollbackd_webhooks_total` | counter | `outcome`, `code` |
//! | http | `rollbackd_auth_failures_total` | counter | `api`, `reason` |
//! | journal | `rollbackd_journal_write_seconds`, `rollbackd_journal_batch_size` | histogram | |
//! | journal | `rollbackd_webhooks_pending`, `rollbackd_holds_pending` | gauge | |
//! | decide | `rollbackd_alerts_total` | counter | `decision`, `rule` |
//! | guard | `rollbackd_guard_refusals_total` | counter | `reason` |
//! | guard | `rollbackd_breaker_openings_total` | counter | |
//! | undo | `rollbackd_rollbacks_total` | counter | `outcome` |
//! | undo | `rollbackd_time_to_patch_seconds` | histogram | `rule` |
//! | watch | `rollbackd_rollout_duration_seconds` | histogram | `outcome` |
//! | watch | `rollbackd_time_to_rollback_seconds` | histogram | `rule` |
//! | watch | `rollbackd_rollback_deadline_misses_total` | counter | `rule` |
//! | report | `rollbackd_slack_reports_queued_total` | counter | |
//! | report | `rollbackd_slack_deliveries_total` | counter | `outcome` |
//! | report | `rollbackd_slack_retries_total` | counter | `reason` |
//! | report | `rollbackd_slack_reports_pending` | gauge | |
//! | lease | `rollbackd_leader` | gauge | |
//!
//! A rule's deadline is the time to roll back, from the alert's `startsAt`
//! to a healthy rollout (`rules/default.yaml`). Reports say whether it was
//! met; `rollbackd_rollback_deadline_misses_total` counts the same misses.
//! The "time to rollback" buckets include the default matrix's deadlines
//! (30 s, 1 min, 5 min, 30 min), so `le` buckets read as "within deadline".
//!
//! `GET /metrics` speaks both exposition formats: OpenMetrics 1.0 to a
//! scraper that asks for it (Prometheus does), the classic text format
//! 0.0.4 otherwise (`curl`, `promtool check metrics`). See [`Format`].

use std::time::Duration;

use jiff::Timestamp;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// How a `POST /webhook` ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum WebhookOutcome {
    /// Journaled and acknowledged.
    accepted,
    /// Bad or missing credentials.
    unauthorized,
    /// Not `application/json`.
    unsupported_media_type,
    /// Over the body limit.
    too_large,
    /// Not JSON.
    malformed,
    /// JSON but not a valid notification.
    invalid,
    /// Journal could not take the write.
    journal_unavailable,
}

/// How a rollback attempt ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RollbackOutcome {
    /// Patched.
    rolled_back,
    /// Server-side dry-run accepted.
    dry_run,
    /// Target revision already live.
    skipped,
    /// This episode's marker found on the workload.
    already_rolled_back,
    /// Rolled back recently for another alert.
    cooling_down,
    /// The workload changed between read and patch.
    newer_deploy,
    /// Held back by the guard (namespace, change correlation, GitOps,
    /// rate limit, breaker).
    refused,
    /// Refused or failed (API error, no history, paused, no cluster).
    failed,
}

impl RollbackOutcome {
    /// The label value, also used in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackOutcome::rolled_back => "rolled-back",
            RollbackOutcome::dry_run => "dry-run",
            RollbackOutcome::skipped => "skipped",
            RollbackOutcome::already_rolled_back => "already-rolled-back",
            RollbackOutcome::cooling_down => "cooling-down",
            RollbackOutcome::newer_deploy => "newer-deploy",
            RollbackOutcome::refused => "refused",
            RollbackOutcome::failed => "failed",
        }
    }
}

/// How following a rollout after a rollback ended (the watch's verdict).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RolloutOutcome {
    /// Complete, as `kubectl rollout status` would say.
    healthy,
    /// Cannot finish by itself (`ProgressDeadlineExceeded`, workload gone).
    stalled,
    /// Not complete within the rule's deadline.
    deadline_missed,
}

impl RolloutOutcome {
    /// From the outcome the worker journals for a `watch` action
    /// (`healthy`, `stalled`, `deadline-missed`); anything else is a stall.
    pub fn from_journal(outcome: &str) -> RolloutOutcome {
        match outcome {
            "healthy" => RolloutOutcome::healthy,
            "deadline-missed" => RolloutOutcome::deadline_missed,
            _ => RolloutOutcome::stalled,
        }
    }
}

/// How a report left the Slack outbox.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum SlackDeliveryOutcome {
    /// Slack took it (posted or updated).
    delivered,
    /// A later report of the same incident was delivered first.
    superseded,
    /// Given up: a permanent Slack error, or an unreadable outbox row.
    failed,
}

/// Why a Slack request is retried.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum SlackRetryReason {
    /// HTTP 429 or `ratelimited`: retried after `Retry-After`.
    rate_limited,
    /// 5xx, timeout, connection error: retried with backoff.
    transient,
    /// The incident's message was deleted in Slack: posted anew.
    message_gone,
}

/// Labels of `rollbackd_rollbacks_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RollbackLabels {
    /// How it ended.
    pub outcome: RollbackOutcome,
}

/// Labels of `rollbackd_webhooks_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// How it ended.
    pub outcome: WebhookOutcome,
    /// The HTTP status code sent.
    pub code: u16,
}

/// Which credential a request failed to present.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum AuthApi {
    /// `POST /webhook` (Alertmanager's credentials).
    webhook,
    /// The operator API (`/api/v1/...`, the operator token).
    operator,
}

/// Labels of `rollbackd_auth_failures_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// The API asked.
    pub api: AuthApi,
    /// `missing` (no `Authorization` header) or `wrong`.
    pub reason: &'static str,
}

/// Labels of `rollbackd_alerts_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `rollback`, `rollback-after`, `notify`, `ignore`.
    pub decision: String,
    /// The rule's name (a configured, closed set) or `none`.
    pub rule: String,
}

/// Labels of `rollbackd_guard_refusals_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `Refusal::label()`: a closed set.
    pub reason: &'static str,
}

/// Labels of the per-rule timing families.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The rule's name (a configured, closed set) or `none`.
    pub rule: String,
}

impl RuleLabels {
    fn of(rule: Option<&str>) -> RuleLabels {
        RuleLabels {
            rule: rule.unwrap_or("none").to_string(),
        }
    }
}

/// Labels of `rollbackd_rollout_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutLabels {
    /// How the rollout ended.
    pub outcome: RolloutOutcome,
}

/// Labels of `rollbackd_slack_deliveries_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlackDeliveryLabels {
    /// How the report left the outbox.
    pub outcome: SlackDeliveryOutcome,
}

/// Labels of `rollbackd_slack_retries_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlackRetryLabels {
    /// Why.
    pub reason: SlackRetryReason,
}

/// The Slack counters, one handle per series, for the report module to
/// count with. [`Default`] gives counters outside any registry (a reporter
/// built without metrics, in tests).
#[derive(Debug, Clone, Default)]
pub struct SlackCounters {
    /// Reports written to the outbox.
    pub queued: Counter,
    /// Reports Slack took.
    pub delivered: Counter,
    /// Reports closed because a later one of the same incident went out.
    pub superseded: Counter,
    /// Reports given up.
    pub failed: Counter,
    /// Requests rate limited, to be retried.
    pub rate_limited: Counter,
    /// Requests failed (5xx, timeout, connection), to be retried.
    pub transient: Counter,
    /// Updates of a deleted message, to be posted anew.
    pub message_gone: Counter,
}

/// A histogram family labelled by rule.
type RuleHistograms = Family<RuleLabels, Histogram, fn() -> Histogram>;

/// Seconds from an alert's start: 1 s .. 1 h. The default matrix's
/// deadlines (30 s, 1 min, 5 min, 30 min) are bounds, so a bucket reads as
/// "within the deadline"; Alertmanager's `group_wait` (30 s by default)
/// alone puts most rollbacks past 15 s.
const SINCE_ALERT_BUCKETS: [f64; 16] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
    3600.0,
];

fn since_alert_histogram() -> Histogram {
    Histogram::new(SINCE_ALERT_BUCKETS)
}

/// Seconds a rollout takes after the patch: a few pods in seconds to a big
/// StatefulSet in half an hour (its rule's deadline bounds the watch).
const ROLLOUT_BUCKETS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
];

fn rollout_histogram() -> Histogram {
    Histogram::new(ROLLOUT_BUCKETS)
}

/// Every metric rollbackd exports.
pub struct Metrics {
    registry: Registry,
    /// Webhooks by outcome and status code.
    pub webhooks: Family<WebhookLabels, Counter>,
    /// Alerts by decision and rule.
    pub alerts: Family<DecisionLabels, Counter>,
    /// Time to commit one journal batch.
    pub journal_write_seconds: Histogram,
    /// Writes per journal commit (group commit at work).
    pub journal_batch_size: Histogram,
    /// Webhooks journaled and not yet processed.
    pub webhooks_pending: Gauge,
    /// `rollback-after` holds waiting for their time.
    pub holds_pending: Gauge,
    /// Rollback attempts by outcome.
    pub rollbacks: Family<RollbackLabels, Counter>,
    /// Guard refusals by reason.
    pub guard_refusals: Family<RefusalLabels, Counter>,
    /// Times the cluster-wide breaker opened.
    pub breaker_opened: Counter,
    /// Seconds from the alert's start to the rollback's patch, by rule.
    pub time_to_patch_seconds: RuleHistograms,
    /// Seconds from the alert's start to a healthy rollout, by rule.
    pub time_to_rollback_seconds: RuleHistograms,
    /// Rollbacks not healthy within their rule's deadline, by rule.
    pub deadline_misses: Family<RuleLabels, Counter>,
    /// Seconds from the patch to the rollout's end, by outcome.
    pub rollout_duration_seconds: Family<RolloutLabels, Histogram, fn() -> Histogram>,
    /// The Slack delivery counters.
    pub slack: SlackCounters,
    /// Reports in the Slack outbox not yet closed.
    pub slack_reports_pending: Gauge,
    /// 1 while this replica holds the Lease.
    pub leader: Gauge,
    /// Requests refused for their credentials, by API and reason.
    pub auth_failures: Family<AuthLabels, Counter>,
    /// When an authentication failure was last logged, per API (the WARN
    /// is rate-limited: a scanner must not flood the log).
    auth_logged: std::sync::Mutex<[Option<std::time::Instant>; 2]>,
}

/// At most one authentication-failure WARN per API this often; the counter
/// has every one.
const AUTH_LOG_EVERY: Duration = Duration::from_secs(10);

impl Metrics {
    /// Builds the registry with every family registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rollbackd");
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhooks",
            "Webhooks received, by outcome and HTTP status code",
            webhooks.clone(),
        );
        let alerts = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "alerts",
            "Alerts decided, by decision and rule",
            alerts.clone(),
        );
        // 100 µs .. ~3 s: an fsync on a fast disk to a stalled one.
        let journal_write_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "journal_write_seconds",
            "Time to commit one journal transaction",
            journal_write_seconds.clone(),
        );
        // 1 .. 512 writes: the writer's batch limit is 256.
        let journal_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "journal_batch_size",
            "Writes committed per journal transaction",
            journal_batch_size.clone(),
        );
        let webhooks_pending = Gauge::default();
        registry.register(
            "webhooks_pending",
            "Webhooks journaled and not yet processed",
            webhooks_pending.clone(),
        );
        let holds_pending = Gauge::default();
        registry.register(
            "holds_pending",
            "Alerts held by a rollback-after rule, waiting for the hold to end",
            holds_pending.clone(),
        );
        let rollbacks = Family::<RollbackLabels, Counter>::default();
        registry.register(
            "rollbacks",
            "Rollback attempts, by outcome",
            rollbacks.clone(),
        );
        let guard_refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "guard_refusals",
            "Rollbacks held back by the guard, by reason",
            guard_refusals.clone(),
        );
        let breaker_opened = Counter::default();
        registry.register(
            "breaker_openings",
            "Times the cluster-wide rollback budget ran out and the breaker opened",
            breaker_opened.clone(),
        );
        let time_to_patch_seconds: RuleHistograms =
            Family::new_with_constructor(since_alert_histogram);
        registry.register(
            "time_to_patch_seconds",
            "Seconds from the alert's startsAt to the rollback's patch accepted by the API server, by rule",
            time_to_patch_seconds.clone(),
        );
        let time_to_rollback_seconds: RuleHistograms =
            Family::new_with_constructor(since_alert_histogram);
        registry.register(
            "time_to_rollback_seconds",
            "Seconds from the alert's startsAt to a healthy rollout after the rollback, by rule (the rule's deadline bounds this)",
            time_to_rollback_seconds.clone(),
        );
        let deadline_misses = Family::<RuleLabels, Counter>::default();
        registry.register(
            "rollback_deadline_misses",
            "Rollbacks whose rollout was not healthy within the rule's deadline of the alert's startsAt, by rule",
            deadline_misses.clone(),
        );
        let rollout_duration_seconds =
            Family::<RolloutLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                rollout_histogram,
            );
        registry.register(
            "rollout_duration_seconds",
            "Seconds from the rollback's patch to the end of its rollout, by outcome",
            rollout_duration_seconds.clone(),
        );
        let slack_queued = Counter::default();
        registry.register(
            "slack_reports_queued",
            "Reports queued for Slack in the durable outbox",
            slack_queued.clone(),
        );
        let deliveries = Family::<SlackDeliveryLabels, Counter>::default();
        registry.register(
            "slack_deliveries",
            "Reports leaving the Slack outbox, by outcome: delivered, superseded by a later report of the same incident, or failed (not retried)",
            deliveries.clone(),
        );
        let retries = Family::<SlackRetryLabels, Counter>::default();
        registry.register(
            "slack_retries",
            "Slack requests that failed and will be retried, by reason",
            retries.clone(),
        );
        // Every series exists from the start, so rate() and absence alerts
        // work before the first failure.
        let delivery = |outcome| {
            deliveries
                .get_or_create(&SlackDeliveryLabels { outcome })
                .clone()
        };
        let retry = |reason| retries.get_or_create(&SlackRetryLabels { reason }).clone();
        let slack = SlackCounters {
            queued: slack_queued,
            delivered: delivery(SlackDeliveryOutcome::delivered),
            superseded: delivery(SlackDeliveryOutcome::superseded),
            failed: delivery(SlackDeliveryOutcome::failed),
            rate_limited: retry(SlackRetryReason::rate_limited),
            transient: retry(SlackRetryReason::transient),
            message_gone: retry(SlackRetryReason::message_gone),
        };
        let slack_reports_pending = Gauge::default();
        registry.register(
            "slack_reports_pending",
            "Reports in the Slack outbox not yet delivered, superseded or given up",
            slack_reports_pending.clone(),
        );
        let auth_failures = Family::<AuthLabels, Counter>::default();
        registry.register(
            "auth_failures",
            "Requests refused for missing or wrong credentials, by API",
            auth_failures.clone(),
        );
        let leader = Gauge::default();
        // A single replica is its own leader; with leader election, the
        // elector sets it (set_leader) as it gains or loses the Lease.
        leader.set(1);
        registry.register(
            "leader",
            "1 while this replica is the leader (holds the Lease; a single replica always is), 0 on a standby",
            leader.clone(),
        );
        Metrics {
            registry,
            webhooks,
            alerts,
            journal_write_seconds,
            journal_batch_size,
            webhooks_pending,
            holds_pending,
            rollbacks,
            guard_refusals,
            breaker_opened,
            time_to_patch_seconds,
            time_to_rollback_seconds,
            deadline_misses,
            rollout_duration_seconds,
            slack,
            slack_reports_pending,
            leader,
            auth_failures,
            auth_logged: std::sync::Mutex::new([None, None]),
        }
    }

    /// Counts a request refused for its credentials; true when it should
    /// be logged (the first in [`AUTH_LOG_EVERY`] for that API).
    pub fn auth_failure(&self, api: AuthApi, missing: bool) -> bool {
        let reason = if missing { "missing" } else { "wrong" };
        self.auth_failures
            .get_or_create(&AuthLabels { api, reason })
            .inc();
        let mut logged = self.auth_logged.lock().unwrap_or_else(|p| p.into_inner());
        let last = &mut logged[api as usize];
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < AUTH_LOG_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Counts one webhook answer.
    pub fn webhook(&self, outcome: WebhookOutcome, code: u16) {
        self.webhooks
            .get_or_create(&WebhookLabels { outcome, code })
            .inc();
    }

    /// Counts one guard refusal.
    pub fn guard_refusal(&self, reason: &'static str) {
        self.guard_refusals
            .get_or_create(&RefusalLabels { reason })
            .inc();
    }

    /// Counts one rollback attempt.
    pub fn rollback(&self, outcome: RollbackOutcome) {
        self.rollbacks
            .get_or_create(&RollbackLabels { outcome })
            .inc();
    }

    /// Records one journal commit.
    pub fn journal_commit(&self, took: Duration, writes: usize) {
        self.journal_write_seconds.observe(took.as_secs_f64());
        self.journal_batch_size.observe(writes as f64);
    }

    /// Records a rollback patched at `patched_at` for an alert that started
    /// at `starts_at` (0 when the alert claims to start later: clock skew).
    pub fn time_to_patch(&self, rule: Option<&str>, starts_at: Timestamp, patched_at: Timestamp) {
        let secs = patched_at.duration_since(starts_at).as_secs_f64().max(0.0);
        self.time_to_patch_seconds
            .get_or_create(&RuleLabels::of(rule))
            .observe(secs);
    }

    /// Records how the rollout after a rollback ended, `took` after the
    /// patch.
    pub fn rollout_ended(&self, outcome: RolloutOutcome, took: Duration) {
        self.rollout_duration_seconds
            .get_or_create(&RolloutLabels { outcome })
            .observe(took.as_secs_f64());
    }

    /// Judges a followed rollback against its rule's deadline, `secs` after
    /// the alert's start: the time to rollback is observed when the rollout
    /// is `healthy`; a miss (`met == Some(false)`, as the report says) is
    /// counted. The rule's miss series exists from its first rollback on.
    pub fn time_to_rollback(
        &self,
        rule: Option<&str>,
        secs: f64,
        healthy: bool,
        met: Option<bool>,
    ) {
        let labels = RuleLabels::of(rule);
        if healthy {
            self.time_to_rollback_seconds
                .get_or_create(&labels)
                .observe(secs.max(0.0));
        }
        let misses = self.deadline_misses.get_or_create(&labels);
        if met == Some(false) {
            misses.inc();
        }
    }

    /// Sets the leader gauge: `true` while this replica holds the Lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Sets the depth gauges read from the journal at scrape time.
    pub fn set_depth(&self, webhooks: usize, holds: usize, slack_reports: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.webhooks_pending.set(gauge(webhooks));
        self.holds_pending.set(gauge(holds));
        self.slack_reports_pending.set(gauge(slack_reports));
    }

    /// Every family in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::new();
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
        }
        .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The exposition formats `GET /metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0: counters' `TYPE` names the family without `_total`,
    /// ends with `# EOF`. What Prometheus asks for first.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4: what `promtool check
    /// metrics` parses, and what `curl` gets.
    Text,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a quality at least that of the
    /// best of `text/plain`, `text/*` or `*/*`; the classic text format
    /// otherwise (no header, a browser, anything unknown). Prometheus
    /// (`application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`)
    /// gets OpenMetrics.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut open_metrics, mut text) = (0.0_f32, 0.0_f32);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let quality = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())
                .filter(|q| q.is_finite())
                .unwrap_or(0.0);
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                open_metrics = open_metrics.max(quality);
            } else if ["text/plain", "text/*", "*/*"]
                .iter()
                .any(|m| media.eq_ignore_ascii_case(m))
            {
                text = text.max(quality);
            }
        }
        if open_metrics > 0.0 && open_metrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus 2.42's scrape `Accept` header.
    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// Prometheus 3's, with its default scrape protocols.
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

    #[test]
    fn openmetrics_only_for_a_scraper_that_prefers_it() {
        use Format::*;
        let cases = [
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Text),
            (Some("text/plain"), Text),
            (Some("text/html,application/xhtml+xml,*/*;q=0.8"), Text),
            (Some("application/json"), Text),
            (Some(PROMETHEUS_2), OpenMetrics),
            (Some(PROMETHEUS_3), OpenMetrics),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("Application/OpenMetrics-Text; Version=1.0.0"),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text;q=0.5, text/plain"), Text),
            (Some("application/openmetrics-text;q=0, */*"), Text),
            (Some("application/openmetrics-text;q=0"), Text),
            (Some("application/openmetrics-text;q=oops"), Text),
            (
                Some("application/openmetrics-text, text/plain"),
                OpenMetrics,
            ),
            (
                Some("text/plain;q=0.1, application/openmetrics-text;q=0.2"),
                OpenMetrics,
            ),
        ];
        for (accept, expected) in cases {
            assert_eq!(Format::negotiate(accept), expected, "Accept: {accept:?}");
        }
    }

    #[test]
    fn classic_text_names_the_total_series_and_openmetrics_the_family() {
        let m = Metrics::new();
        m.rollback(RollbackOutcome::rolled_back);
        let text = m.encode(Format::Text);
        assert!(
            text.contains(
                "# HELP rollbackd_rollbacks_total Rollback attempts, by outcome.\n\
                 # TYPE rollbackd_rollbacks_total counter\n\
                 rollbackd_rollbacks_total{outcome=\"rolled_back\"} 1\n"
            ),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        let open_metrics = m.encode(Format::OpenMetrics);
        assert!(
            open_metrics.contains(
                "# TYPE rollbackd_rollbacks counter\n\
                 rollbackd_rollbacks_total{outcome=\"rolled_back\"} 1\n"
            ),
            "{open_metrics}"
        );
        assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");
    }

    #[test]
    fn a_single_replica_is_its_own_leader_until_an_election_says_otherwise() {
        let m = Metrics::new();
        assert!(m.encode(Format::Text).contains("\nrollbackd_leader 1\n"));
        m.set_leader(false);
        assert!(m.encode(Format::Text).contains("\nrollbackd_leader 0\n"));
        m.set_leader(true);
        assert!(m.encode(Format::Text).contains("\nrollbackd_leader 1\n"));
    }

    #[test]
    fn slack_series_exist_from_the_start() {
        let text = Metrics::new().encode(Format::Text);
        for series in [
            "rollbackd_slack_reports_queued_total 0",
            "rollbackd_slack_deliveries_total{outcome=\"delivered\"} 0",
            "rollbackd_slack_deliveries_total{outcome=\"superseded\"} 0",
            "rollbackd_slack_deliveries_total{outcome=\"failed\"} 0",
            "rollbackd_slack_retries_total{reason=\"rate_limited\"} 0",
            "rollbackd_slack_retries_total{reason=\"transient\"} 0",
            "rollbackd_slack_retries_total{reason=\"message_gone\"} 0",
        ] {
            assert!(
                text.contains(&format!("\n{series}\n")),
                "{series} in\n{text}"
            );
        }
    }

    #[test]
    fn time_to_rollback_counts_healthy_rollouts_and_every_miss() {
        let m = Metrics::new();
        m.time_to_rollback(Some("service-down"), 12.0, true, Some(true));
        m.time_to_rollback(Some("service-down"), 95.0, true, Some(false));
        // Stalled after 10 s: no time to rollback, but a miss.
        m.time_to_rollback(Some("service-down"), 10.0, false, Some(false));
        m.time_to_rollback(Some("minor-bug"), 5.0, true, Some(true));
        let text = m.encode(Format::Text);
        for line in [
            "rollbackd_time_to_rollback_seconds_bucket{rule=\"service-down\",le=\"30\"} 1",
            "rollbackd_time_to_rollback_seconds_bucket{rule=\"service-down\",le=\"120\"} 2",
            "rollbackd_time_to_rollback_seconds_count{rule=\"service-down\"} 2",
            "rollbackd_time_to_rollback_seconds_sum{rule=\"service-down\"} 107.0",
            "rollbackd_rollback_deadline_misses_total{rule=\"service-down\"} 2",
            "rollbackd_rollback_deadline_misses_total{rule=\"minor-bug\"} 0",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line} in\n{text}");
        }
    }

    #[test]
    fn time_to_patch_is_from_the_alerts_start_and_never_negative() {
        let m = Metrics::new();
        let start: Timestamp = "2026-11-22T12:50:41Z".parse().unwrap();
        m.time_to_patch(
            Some("high-error-rate"),
            start,
            "2026-11-22T12:51:26Z".parse().unwrap(),
        );
        // An alert "starting" after the patch (a skewed clock) counts as 0.
        m.time_to_patch(None, start, "2026-11-22T12:50:00Z".parse().unwrap());
        let text = m.encode(Format::Text);
        for line in [
            "rollbackd_time_to_patch_seconds_sum{rule=\"high-error-rate\"} 45.0",
            "rollbackd_time_to_patch_seconds_bucket{rule=\"high-error-rate\",le=\"30\"} 0",
            "rollbackd_time_to_patch_seconds_bucket{rule=\"high-error-rate\",le=\"45\"} 1",
            "rollbackd_time_to_patch_seconds_sum{rule=\"none\"} 0.0",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line} in\n{text}");
        }
    }

    #[test]
    fn rollout_outcomes_come_from_the_journaled_watch_outcome() {
        assert_eq!(
            RolloutOutcome::from_journal("healthy"),
            RolloutOutcome::healthy
        );
        assert_eq!(
            RolloutOutcome::from_journal("deadline-missed"),
            RolloutOutcome::deadline_missed
        );
        assert_eq!(
            RolloutOutcome::from_journal("stalled"),
            RolloutOutcome::stalled
        );
        let m = Metrics::new();
        m.rollout_ended(RolloutOutcome::deadline_missed, Duration::from_secs(30));
        let text = m.encode(Format::Text);
        assert!(
            text.contains(
                "\nrollbackd_rollout_duration_seconds_count{outcome=\"deadline_missed\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn depth_gauges_take_the_journals_counts() {
        let m = Metrics::new();
        m.set_depth(3, 2, 7);
        let text = m.encode(Format::Text);
        for line in [
            "rollbackd_webhooks_pending 3",
            "rollbackd_holds_pending 2",
            "rollbackd_slack_reports_pending 7",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line} in\n{text}");
        }
    }
}
