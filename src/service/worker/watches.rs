//! Watches: after a rollback, the rollout is followed in the background
//! until healthy, stalled or past the rule's deadline, and reported.

use std::time::Duration;

use crate::adapters::cluster::watch::{follow, FollowOutcome};
use crate::adapters::journal::ActionRecord;
use crate::adapters::metrics::RolloutOutcome;
use crate::adapters::report::{Incident, Stage};
use crate::core::decide::Target;

use super::Worker;

impl Worker {
    /// Follows the rollout in the background and journals how it ended; the
    /// worker goes on with the next webhook meanwhile.
    pub(super) fn spawn_watch(&self, job: WatchJob) {
        let WatchJob {
            webhook,
            index,
            target,
            deadline,
            incident,
        } = job;
        let state = self.state.clone();
        tokio::spawn(async move {
            let Ok(engine) = state.cluster.engine() else {
                return;
            };
            let started = tokio::time::Instant::now();
            let result = follow(
                engine.client(),
                target.kind,
                &target.namespace,
                &target.name,
                deadline,
            )
            .await;
            let (outcome, detail) = match result {
                Ok(FollowOutcome::Healthy { took, message }) => (
                    "healthy",
                    format!("{message} in {:.1}s", took.as_secs_f64()),
                ),
                Ok(FollowOutcome::Stalled { reason }) => ("stalled", reason),
                Ok(FollowOutcome::DeadlineMissed { last }) => (
                    "deadline-missed",
                    format!("not healthy within {}s; last: {last}", deadline.as_secs()),
                ),
                Err(e) => ("stalled", e.to_string()),
            };
            let verdict = RolloutOutcome::from_journal(outcome);
            state.metrics.rollout_ended(verdict, started.elapsed());
            tracing::info!(workload = %target, outcome, detail, "rollout followed");
            let record = ActionRecord {
                action: "watch".into(),
                outcome: outcome.into(),
                detail,
                at: state.clock.now(),
            };
            let stage = match outcome {
                "healthy" => Stage::Healthy,
                "deadline-missed" => Stage::DeadlineMissed,
                _ => Stage::Stalled,
            };
            let detail = record.detail.clone();
            if let Err(e) = state.journal.append_action(webhook, index, record).await {
                tracing::error!(error = %e, webhook, "could not journal the rollout's end");
            }
            if let Some(mut incident) = incident {
                incident.stage = stage;
                incident.detail = detail;
                let since_start = state.clock.now().duration_since(incident.starts_at);
                incident.time_to_rollback_secs = Some(since_start.as_secs_f64().max(0.0));
                state.metrics.time_to_rollback(
                    incident.rule.as_deref(),
                    since_start.as_secs_f64(),
                    verdict == RolloutOutcome::healthy,
                    incident.deadline_met(),
                );
                if let Err(e) = state.reporter.report(&incident).await {
                    tracing::error!(error = %e, "could not queue the Slack report");
                }
            }
        });
    }
}

/// A rollout to follow after its rollback is journaled.
pub(super) struct WatchJob {
    pub(super) webhook: i64,
    pub(super) index: usize,
    pub(super) target: Target,
    pub(super) deadline: Duration,
    /// The incident as reported at the rollback, to update at the end.
    pub(super) incident: Option<Incident>,
}
