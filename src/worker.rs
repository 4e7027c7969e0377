//! Worker: takes journaled webhooks in order, decides each alert, records
//! the decision and the action, and marks the webhook processed, all in one
//! journal transaction.
//!
//! The worker reads its work from the journal, never from memory, so a
//! webhook acknowledged just before a crash is processed after the restart.
//! Until the undo engine lands, every action is recorded as what it would do
//! (dry-run).

use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use crate::app::AppState;
use crate::decide::{decide, Decision};
use crate::journal::{ActionRecord, AlertOutcome, JournalError, PendingWebhook};
use crate::metrics::DecisionLabels;
use crate::rules::DecisionKind;

/// Webhooks fetched from the journal per round trip.
const BATCH: usize = 64;
/// Pause after a journal error before trying again: long enough not to spin
/// on a locked or full disk, short enough to recover within a scrape.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The processing loop.
pub struct Worker {
    state: AppState,
}

impl Worker {
    /// A worker over the app's journal and rules.
    pub fn new(state: AppState) -> Worker {
        Worker { state }
    }

    /// Runs until `stop` turns true; finishes the webhook in hand first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.drain(&stop).await {
                Ok(0) => {
                    tokio::select! {
                        _ = self.state.work_ready.notified() => {}
                        _ = stop.changed() => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "worker cannot read or write the journal; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_AFTER) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    /// Processes one batch of pending webhooks; returns how many.
    async fn drain(&self, stop: &watch::Receiver<bool>) -> Result<usize, JournalError> {
        let pending = self.state.journal.pending(BATCH).await?;
        self.state
            .metrics
            .webhooks_pending
            .set(pending.len() as i64);
        let mut done = 0;
        for webhook in pending {
            if *stop.borrow() {
                break;
            }
            let outcomes = self.process(&webhook, self.state.clock.now());
            self.state.journal.complete(webhook.id, outcomes).await?;
            done += 1;
        }
        Ok(done)
    }

    /// Decides every alert of a webhook and plans its action.
    fn process(&self, webhook: &PendingWebhook, now: Timestamp) -> Vec<AlertOutcome> {
        let dry_run = webhook.dry_run || self.state.settings.dry_run;
        webhook
            .notification
            .alerts
            .iter()
            .enumerate()
            .map(|(index, alert)| {
                let decision = decide(&self.state.rules, alert, now);
                self.state
                    .metrics
                    .alerts
                    .get_or_create(&DecisionLabels {
                        decision: decision.kind.as_str().into(),
                        rule: decision.rule.clone().unwrap_or_else(|| "none".into()),
                    })
                    .inc();
                let actions = plan(&decision, dry_run, now);
                log_decision(webhook.id, alert.name(), &decision);
                AlertOutcome {
                    index,
                    decision,
                    actions,
                }
            })
            .collect()
    }
}

/// What the worker does about a decision. The undo engine is not part of
/// this build yet, so a rollback is recorded as the action it would take.
pub fn plan(decision: &Decision, dry_run: bool, now: Timestamp) -> Vec<ActionRecord> {
    let why_dry = if dry_run {
        "dry-run"
    } else {
        "dry-run: the undo engine is not part of this build yet"
    };
    let record = |action: &str, outcome: &str, detail: String| ActionRecord {
        action: action.into(),
        outcome: outcome.into(),
        detail,
        at: now,
    };
    match (decision.kind, &decision.target) {
        (DecisionKind::Rollback, Some(target)) => vec![record(
            "rollback",
            "dry-run",
            format!(
                "would roll back {target} to {} ({why_dry})",
                revision_text(target.to_revision)
            ),
        )],
        (DecisionKind::RollbackAfter, Some(target)) => {
            let until = decision
                .hold_until
                .map_or_else(|| "the hold ends".to_string(), |t| t.to_string());
            vec![record(
                "hold",
                "planned",
                format!(
                    "hold until {until}, then roll back {target} to {} if the alert still fires ({why_dry})",
                    revision_text(target.to_revision)
                ),
            )]
        }
        (DecisionKind::Notify, _)
        | (DecisionKind::Rollback | DecisionKind::RollbackAfter, None) => {
            vec![record(
                "notify",
                "planned",
                format!("report only: {}", decision.reason),
            )]
        }
        (DecisionKind::Ignore, _) => Vec::new(),
    }
}

fn revision_text(to_revision: Option<i64>) -> String {
    match to_revision {
        Some(n) => format!("revision {n}"),
        None => "the previous revision".into(),
    }
}

fn log_decision(webhook: i64, alertname: &str, d: &Decision) {
    let rule = d.rule.as_deref().unwrap_or("none");
    match d.kind {
        DecisionKind::Rollback | DecisionKind::RollbackAfter => tracing::info!(
            webhook, alertname, rule, decision = d.kind.as_str(), reason = %d.reason,
            "alert decided for rollback"
        ),
        DecisionKind::Notify => tracing::info!(
            webhook, alertname, rule, reason = %d.reason, "alert decided for notify"
        ),
        DecisionKind::Ignore => tracing::debug!(
            webhook, alertname, reason = %d.reason, "alert ignored"
        ),
    }
}
