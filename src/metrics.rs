//! Metrics: one Prometheus registry, names prefixed `rollbackd_`, labels
//! from closed enums (never raw error text).

use std::time::Duration;

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

/// Labels of `rollbackd_alerts_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `rollback`, `rollback-after`, `notify`, `ignore`.
    pub decision: String,
    /// The rule's name (a configured, closed set) or `none`.
    pub rule: String,
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
    /// Rollback attempts by outcome.
    pub rollbacks: Family<RollbackLabels, Counter>,
    /// Guard refusals by reason.
    pub guard_refusals: Family<RefusalLabels, Counter>,
    /// Times the cluster-wide breaker opened.
    pub breaker_opened: Counter,
}

/// Labels of `rollbackd_guard_refusals_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `Refusal::label()`: a closed set.
    pub reason: &'static str,
}

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
        Metrics {
            breaker_opened,
            guard_refusals,
            rollbacks,
            registry,
            webhooks,
            alerts,
            journal_write_seconds,
            journal_batch_size,
            webhooks_pending,
        }
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

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
