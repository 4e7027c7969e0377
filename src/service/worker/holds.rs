//! Holds: `rollback-after` decisions wait in the journal; when one comes
//! due and its alert still fires, the worker acts on it, else cancels it.

use jiff::Timestamp;
use tokio::sync::watch;

use crate::adapters::journal::{
    ActionRecord, Hold, HoldStart, JournalError, NewHold, PendingWebhook, Source,
};
use crate::core::decide::Decision;
use crate::core::parse::Alert;

use super::pipeline::{fill, stage_of};
use super::watches::WatchJob;
use super::Worker;

impl Worker {
    /// Ends a hold in `state`, journaling why against its alert.
    pub(super) async fn end_hold(
        &self,
        hold: &Hold,
        state: &'static str,
        detail: String,
        now: Timestamp,
    ) -> Result<(), JournalError> {
        let record = ActionRecord {
            action: "hold".into(),
            outcome: state.into(),
            detail,
            at: now,
        };
        self.state
            .journal
            .append_action(hold.webhook_id, hold.index, record)
            .await?;
        self.state.journal.hold_finish(hold.id, state, now).await
    }

    /// Rolls back for every hold whose time has come (its alert did not
    /// resolve meanwhile), through the same guard as an immediate rollback.
    pub(super) async fn act_on_due_holds(
        &self,
        stop: &watch::Receiver<bool>,
    ) -> Result<usize, JournalError> {
        let now = self.state.clock.now();
        let due = self.state.journal.holds_due(now).await?;
        let count = due.len();
        for hold in due {
            if *stop.borrow() {
                break;
            }
            let Some((_, notification)) = self.state.journal.webhook(hold.webhook_id).await? else {
                self.state.journal.hold_finish(hold.id, "lost", now).await?;
                continue;
            };
            let (Some(alert), Some(target)) = (
                notification.alerts.get(hold.index),
                hold.decision.target.clone(),
            ) else {
                self.state.journal.hold_finish(hold.id, "lost", now).await?;
                continue;
            };
            let dry_run = hold.dry_run || self.state.settings.dry_run;
            tracing::info!(workload = %target, episode = %hold.episode, "hold ended with the alert still firing: rolling back");
            let rollback = self
                .rollback(
                    Source::Alertmanager,
                    alert,
                    &hold.decision,
                    &target,
                    dry_run,
                    now,
                )
                .await;
            let mut record = rollback.record;
            record.detail = format!("hold ended, alert still firing: {}", record.detail);
            let incident = stage_of(std::slice::from_ref(&record)).map(|stage| {
                let mut incident = self.incident(
                    &notification.external_url,
                    alert,
                    &hold.decision,
                    stage,
                    record.detail.clone(),
                );
                if let Some(r) = &rollback.report {
                    fill(&mut incident, r, rollback.note.clone());
                }
                incident
            });
            self.state
                .journal
                .append_action(hold.webhook_id, hold.index, record)
                .await?;
            self.state.journal.hold_finish(hold.id, "done", now).await?;
            if let Some(incident) = &incident {
                self.tell(incident).await;
            }
            if let Some(deadline) = rollback.follow {
                self.spawn_watch(WatchJob {
                    webhook: hold.webhook_id,
                    index: hold.index,
                    target,
                    deadline,
                    incident,
                });
            }
        }
        Ok(count)
    }

    /// Starts holding a `rollback-after` alert (or notes the hold a re-sent
    /// alert already has).
    pub(super) async fn start_hold(
        &self,
        webhook: &PendingWebhook,
        index: usize,
        alert: &Alert,
        decision: &Decision,
        dry_run: bool,
        now: Timestamp,
    ) -> Result<ActionRecord, JournalError> {
        let due_at = decision.hold_until.unwrap_or(now);
        let start = self
            .state
            .journal
            .hold_start(NewHold {
                episode: alert.episode_key(),
                webhook_id: webhook.id,
                index,
                due_at,
                decision: decision.clone(),
                dry_run,
                now,
            })
            .await?;
        let target = decision
            .target
            .as_ref()
            .map_or(String::new(), ToString::to_string);
        let (outcome, detail) = match start {
            HoldStart::Started => (
                "waiting",
                format!(
                    "holding until {due_at}: {target} is rolled back then if the alert still fires"
                ),
            ),
            HoldStart::Exists { state, due_at } => (
                "waiting",
                format!("this alert's hold (until {due_at}) is already {state}"),
            ),
        };
        Ok(ActionRecord {
            action: "hold".into(),
            outcome: outcome.into(),
            detail,
            at: now,
        })
    }

    /// A resolved alert cancels its episode's hold, if one waits.
    pub(super) async fn cancel_hold(
        &self,
        alert: &Alert,
        now: Timestamp,
    ) -> Result<Option<(ActionRecord, Decision)>, JournalError> {
        let Some(hold) = self
            .state
            .journal
            .hold_cancel(alert.episode_key(), now)
            .await?
        else {
            return Ok(None);
        };
        tracing::info!(episode = %hold.episode, "alert resolved during its hold: no rollback");
        let record = ActionRecord {
            action: "hold".into(),
            outcome: "cancelled".into(),
            detail: format!(
                "alert resolved before the hold ended ({}): no rollback",
                hold.due_at
            ),
            at: now,
        };
        Ok(Some((record, hold.decision)))
    }
}
