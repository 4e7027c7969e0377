//! The pipeline for one alert: decide, guard, undo, and the report of each
//! step, journaled as the alert's outcome.

use std::time::Duration;

use jiff::Timestamp;

use crate::adapters::cluster::undo::{
    Cooldown, DryRun, Prepared, RollbackReport, UndoOutcome, UndoRequest,
};
use crate::adapters::journal::{ActionRecord, AlertOutcome, JournalError, PendingWebhook, Source};
use crate::adapters::metrics::{DecisionLabels, RollbackOutcome};
use crate::adapters::report::{Incident, Stage};
use crate::core::decide::{decide, Decision, Target};
use crate::core::guard::{gitops_owner, GitOpsOwner, GitOpsPolicy, Refusal};
use crate::core::parse::{Alert, AlertStatus};
use crate::core::rules::DecisionKind;

use super::watches::WatchJob;
use super::Worker;

impl Worker {
    /// Decides every alert of a webhook and acts on it; returns the
    /// outcomes and the rollouts to follow once they are journaled.
    pub(super) async fn process(
        &self,
        webhook: &PendingWebhook,
        now: Timestamp,
    ) -> Result<(Vec<AlertOutcome>, Vec<WatchJob>), JournalError> {
        let dry_run = webhook.dry_run || self.state.settings.dry_run;
        let mut outcomes = Vec::with_capacity(webhook.notification.alerts.len());
        let mut watches = Vec::new();
        for (index, alert) in webhook.notification.alerts.iter().enumerate() {
            let decision = decide(&self.state.rules, alert, now);
            self.state
                .metrics
                .alerts
                .get_or_create(&DecisionLabels {
                    decision: decision.kind.as_str().into(),
                    rule: decision.rule.clone().unwrap_or_else(|| "none".into()),
                })
                .inc();
            log_decision(webhook.id, alert.name(), &decision);
            let mut rollback_report = None;
            let mut suspended_note = None;
            let mut cancelled_decision = None;
            let actions = match (decision.kind, &decision.target) {
                (DecisionKind::Rollback, Some(target)) => {
                    let rollback = self
                        .rollback(webhook.source, alert, &decision, target, dry_run, now)
                        .await;
                    if let Some(deadline) = rollback.follow {
                        watches.push(WatchJob {
                            webhook: webhook.id,
                            index,
                            target: target.clone(),
                            deadline,
                            incident: None,
                        });
                    }
                    rollback_report = rollback.report;
                    suspended_note = rollback.note;
                    vec![rollback.record]
                }
                (DecisionKind::RollbackAfter, Some(_)) => {
                    vec![
                        self.start_hold(webhook, index, alert, &decision, dry_run, now)
                            .await?,
                    ]
                }
                _ if alert.status == AlertStatus::Resolved => {
                    match self.cancel_hold(alert, now).await? {
                        Some((record, held)) => {
                            cancelled_decision = Some(held);
                            vec![record]
                        }
                        None => Vec::new(),
                    }
                }
                _ => plan(&decision, now),
            };
            if let Some(stage) = stage_of(&actions) {
                let mut incident = self.incident(
                    &webhook.notification.external_url,
                    alert,
                    cancelled_decision.as_ref().unwrap_or(&decision),
                    stage,
                    actions.last().map(|a| a.detail.clone()).unwrap_or_default(),
                );
                if let Some(r) = &rollback_report {
                    fill(&mut incident, r, suspended_note.clone());
                }
                if let Some(job) = watches
                    .last_mut()
                    .filter(|j| j.webhook == webhook.id && j.index == index)
                {
                    job.incident = Some(incident.clone());
                }
                self.tell(&incident).await;
            }
            outcomes.push(AlertOutcome {
                index,
                decision,
                actions,
            });
        }
        let not_done = outcomes
            .iter()
            .flat_map(|o| &o.actions)
            .filter(|a| a.action == "rollback" && a.outcome == "failed")
            .count();
        if let (true, Err(why)) = (not_done > 0, self.state.cluster.engine()) {
            tracing::error!(
                webhook = webhook.id,
                rollbacks = not_done,
                reason = why,
                "rollbacks not done: no cluster"
            );
        }
        Ok((outcomes, watches))
    }

    /// Rolls the target back through the undo engine.
    pub(super) async fn rollback(
        &self,
        source: Source,
        alert: &Alert,
        decision: &Decision,
        target: &Target,
        dry_run: bool,
        now: Timestamp,
    ) -> Rollback {
        let record = |outcome: RollbackOutcome, detail: String| {
            self.state.metrics.rollback(outcome);
            ActionRecord {
                action: "rollback".into(),
                outcome: outcome.as_str().into(),
                detail,
                at: now,
            }
        };
        let guard = &self.state.guard;
        let refused = |refusal: Refusal| {
            self.state.metrics.guard_refusal(refusal.label());
            match &refusal {
                Refusal::BreakerOpen { first: true, .. } => {
                    self.state.metrics.breaker_opened.inc();
                    tracing::error!(workload = %target, reason = %refusal, "breaker open: rollbacks held back")
                }
                _ => {
                    tracing::warn!(workload = %target, reason = %refusal, "rollback refused by the guard")
                }
            }
            Rollback {
                record: record(RollbackOutcome::refused, format!("{target}: {refusal}")),
                follow: None,
                report: None,
                note: None,
            }
        };
        if let Err(refusal) = guard
            .check_cluster(self.state.settings.cluster_name.as_deref(), &alert.labels)
            .and_then(|()| guard.check_namespace(&target.namespace))
        {
            return refused(refusal);
        }
        let engine = match self.state.cluster.engine() {
            Ok(engine) => engine,
            Err(why) => {
                // Logged once per webhook by the caller: a storm without a
                // cluster would otherwise print one identical line per alert.
                return Rollback {
                    record: record(
                        RollbackOutcome::failed,
                        format!("not rolled back: {why}; replay this webhook once the cluster is reachable"),
                    ),
                    follow: None,
                    report: None,
                    note: None,
                };
            }
        };
        let rule = decision.rule.as_deref().unwrap_or("-");
        let request = UndoRequest {
            kind: target.kind,
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            to_revision: target.to_revision,
            episode: Some(alert.episode_key()),
            reason: format!(
                "rollbackd: alert {} ({}) matched rule {rule}",
                alert.name(),
                alert
                    .labels
                    .get("severity")
                    .map_or("no severity", String::as_str)
            ),
            dry_run: if dry_run {
                DryRun::Server
            } else {
                DryRun::None
            },
            cooldown: Some(Cooldown {
                now,
                period: guard.config.cooldown,
            }),
        };
        // Read and plan first: a re-sent alert stops here at the episode
        // marker without spending any budget.
        let mut suspended: Option<GitOpsOwner> = None;
        let result = match engine.prepare(&request).await {
            Ok(Prepared::Done(outcome)) => Ok(outcome),
            Err(e) => Err(e),
            Ok(Prepared::Ready(plan)) => {
                let gitops = gitops_owner(&plan.workload);
                let policy = self
                    .state
                    .rules
                    .named(decision.rule.as_deref())
                    .and_then(|r| r.gitops)
                    .unwrap_or(guard.config.gitops);
                let check = guard
                    .check_change(alert.starts_at, plan.current_since)
                    .and_then(|()| match (&gitops, policy) {
                        (Some(owner @ GitOpsOwner::ArgoCd { .. }), _)
                        | (Some(owner), GitOpsPolicy::Refuse) => {
                            Err(Refusal::GitOps(owner.clone()))
                        }
                        _ => Ok(()),
                    })
                    .and_then(|()| match source {
                        // An operator's replay is a deliberate act, as a
                        // `kubectl rollout undo` by hand would be: the
                        // automatic budgets do not apply to it.
                        Source::Replay => Ok(()),
                        Source::Alertmanager => guard.take_budget(target),
                    });
                if let Err(refusal) = check {
                    if request.dry_run == DryRun::None {
                        // A failure is logged there; the refusal is the news.
                        let _ = engine
                            .record_event(
                                &request,
                                "Warning",
                                "RollbackRefused",
                                &format!("{refusal}: {}", request.reason),
                            )
                            .await;
                    }
                    return refused(refusal);
                }
                if let Some(owner) = gitops {
                    // Only Flux reaches here (policy suspend).
                    if let Err(e) = engine.suspend_flux(&owner, request.dry_run).await {
                        tracing::error!(workload = %target, owner = %owner, error = %e, "could not suspend GitOps reconciliation");
                        return Rollback {
                            record: record(
                                RollbackOutcome::failed,
                                format!(
                                    "{target}: not rolled back: suspending {owner} failed: {e}"
                                ),
                            ),
                            follow: None,
                            report: None,
                            note: None,
                        };
                    }
                    suspended = Some(owner);
                }
                if let Some(owner) = &suspended {
                    tracing::warn!(workload = %target, owner = %owner, "GitOps reconciliation suspended; Git still declares the bad revision");
                }
                engine.apply(&request, *plan).await
            }
        };
        let event_failed = engine.record_outcome(&request, &result).await;
        let deadline = Duration::from_secs(decision.deadline_secs.unwrap_or(0).max(1));
        let mut rollback = match result {
            Ok(UndoOutcome::RolledBack(r)) => {
                tracing::info!(workload = %target, from = r.from_revision, to = r.to_revision, rule, "rolled back");
                self.state.metrics.time_to_patch(
                    decision.rule.as_deref(),
                    alert.starts_at,
                    self.state.clock.now(),
                );
                Rollback {
                    record: record(
                        RollbackOutcome::rolled_back,
                        format!(
                            "{}{}",
                            describe(target, &r),
                            suspension_note(suspended.as_ref())
                        ),
                    ),
                    follow: Some(deadline),
                    report: Some(r.clone()),
                    note: suspended.as_ref().map(|o| {
                        suspension_note(Some(o))
                            .trim_start_matches("; ")
                            .to_string()
                    }),
                }
            }
            Ok(UndoOutcome::DryRun(r)) => Rollback {
                record: record(
                    RollbackOutcome::dry_run,
                    format!(
                        "dry-run (accepted by the API server): would have {}{}",
                        describe(target, &r),
                        suspension_note(suspended.as_ref())
                    ),
                ),
                follow: None,
                report: Some(r.clone()),
                note: None,
            },
            Ok(other) => {
                let outcome = match other {
                    UndoOutcome::Skipped { .. } => RollbackOutcome::skipped,
                    UndoOutcome::AlreadyRolledBack { .. } => RollbackOutcome::already_rolled_back,
                    UndoOutcome::CoolingDown { .. } => RollbackOutcome::cooling_down,
                    _ => RollbackOutcome::newer_deploy,
                };
                tracing::warn!(workload = %target, outcome = outcome.as_str(), "rollback not done");
                Rollback {
                    record: record(
                        outcome,
                        format!(
                            "{target}: {}{}",
                            other.kubectl_message(),
                            left_suspended(suspended.as_ref())
                        ),
                    ),
                    follow: None,
                    report: None,
                    note: None,
                }
            }
            Err(e) => {
                tracing::error!(workload = %target, error = %e, "rollback failed");
                Rollback {
                    record: record(
                        RollbackOutcome::failed,
                        format!("{target}: {e}{}", left_suspended(suspended.as_ref())),
                    ),
                    follow: None,
                    report: None,
                    note: None,
                }
            }
        };
        if let Some(why) = event_failed {
            rollback
                .record
                .detail
                .push_str(&format!("; Kubernetes Event not recorded: {why}"));
        }
        rollback
    }
}

/// The Slack stage an alert's latest action puts its incident in; `None`
/// when there is nothing new to say (a re-sent alert).
pub(super) fn stage_of(actions: &[ActionRecord]) -> Option<Stage> {
    let last = actions.last()?;
    Some(match (last.action.as_str(), last.outcome.as_str()) {
        ("rollback", "rolled-back") => Stage::RolledBack,
        ("rollback", "dry-run" | "skipped") => Stage::Decided,
        ("rollback", "refused" | "cooling-down" | "newer-deploy") => Stage::Refused,
        ("rollback", "failed") => Stage::Failed,
        ("hold", "waiting") if last.detail.starts_with("holding until") => Stage::Held,
        ("hold", "cancelled") => Stage::Cancelled,
        ("notify", _) => Stage::Notified,
        _ => return None,
    })
}

/// Revisions and images of a rollback, and the note, on the incident.
pub(super) fn fill(incident: &mut Incident, r: &RollbackReport, note: Option<String>) {
    incident.from_revision = Some(r.from_revision);
    incident.to_revision = Some(r.to_revision);
    incident.from_images = r.from_images.clone();
    incident.to_images = r.to_images.clone();
    incident.notes.extend(note);
}

/// The result of one rollback attempt.
pub(super) struct Rollback {
    pub(super) record: ActionRecord,
    /// Follow the rollout for this long (only after a real patch).
    pub(super) follow: Option<Duration>,
    /// From/to revisions and images, when the engine got that far.
    pub(super) report: Option<RollbackReport>,
    /// What on-call must know (a suspended GitOps tool).
    pub(super) note: Option<String>,
}

/// What on-call must know after a rollback under a suspended GitOps tool.
fn suspension_note(owner: Option<&GitOpsOwner>) -> String {
    match owner {
        None => String::new(),
        Some(owner) => format!(
            "; {owner} suspended: Git still declares the bad revision; revert it in Git, then resume with `{}`",
            owner.resume_hint().unwrap_or_default()
        ),
    }
}

/// What on-call must know when the GitOps tool was suspended for a
/// rollback that then did not happen: it stays suspended.
fn left_suspended(owner: Option<&GitOpsOwner>) -> String {
    match owner {
        None => String::new(),
        Some(owner) => format!(
            "; {owner} was suspended first and stays suspended: resume it with `{}`",
            owner.resume_hint().unwrap_or_default()
        ),
    }
}

fn describe(target: &Target, r: &RollbackReport) -> String {
    format!(
        "rolled back {target} from revision {} ({}) to revision {} ({})",
        r.from_revision,
        r.from_images.join(", "),
        r.to_revision,
        r.to_images.join(", ")
    )
}

/// What the worker records for a decision it does not act on in the
/// cluster: a notification (Slack tells it), or nothing for `ignore`.
pub fn plan(decision: &Decision, now: Timestamp) -> Vec<ActionRecord> {
    match decision.kind {
        DecisionKind::Ignore => Vec::new(),
        _ => vec![ActionRecord {
            action: "notify".into(),
            outcome: "planned".into(),
            detail: format!("report only: {}", decision.reason),
            at: now,
        }],
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
