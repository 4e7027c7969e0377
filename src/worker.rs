//! Worker: takes journaled webhooks in order, decides each alert, records
//! the decision and the action, and marks the webhook processed, all in one
//! journal transaction.
//!
//! The worker reads its work from the journal, never from memory, so a
//! webhook acknowledged just before a crash is processed after the restart.
//! A `rollback` decision goes to the undo engine (server-side dry-run when
//! dry-run is on), and the rollout is then followed in the background.

use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use crate::app::AppState;
use crate::decide::{decide, Decision, Target};
use crate::guard::{gitops_owner, GitOpsOwner, GitOpsPolicy, Refusal};
use crate::journal::{
    ActionRecord, AlertOutcome, Hold, HoldStart, JournalError, NewHold, PendingWebhook, Source,
};
use crate::leader::Peer;
use crate::metrics::{DecisionLabels, RollbackOutcome, RolloutOutcome};
use crate::parse::{Alert, AlertStatus};
use crate::report::{Incident, Stage};
use crate::rules::DecisionKind;
use crate::undo::{Cooldown, DryRun, Prepared, RollbackReport, UndoOutcome, UndoRequest};
use crate::watch::{follow, FollowOutcome};

/// Webhooks fetched from the journal per round trip.
const BATCH: usize = 64;
/// Alerts per round trip at most: a batch is held parsed until its results
/// are journaled, so large groups come fewer at a time (memory stays flat
/// whatever the group size; `bench/README.md`, RSS).
const BATCH_ALERTS: usize = 1000;
/// Pause after a journal error before trying again: long enough not to spin
/// on a locked or full disk, short enough to recover within a scrape.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a follower waits for the leader to journal a webhook it hands
/// over: Alertmanager's own default timeout for a notification.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The header a follower marks a handed-over webhook with (its holder name).
pub const FORWARDED_BY: &str = "x-rollbackd-forwarded-by";

/// Why a round stopped short; retried after [`RETRY_AFTER`].
#[derive(Debug, thiserror::Error)]
enum Stall {
    /// The journal failed.
    #[error("cannot read or write the journal: {0}")]
    Journal(#[from] JournalError),
    /// A follower found no leader to hand work to.
    #[error("cannot hand work to the leader: {0}")]
    NoLeader(String),
}

/// The processing loop.
pub struct Worker {
    state: AppState,
    /// Hands webhooks to the leader.
    http: reqwest::Client,
}

impl Worker {
    /// A worker over the app's journal and rules.
    pub fn new(state: AppState) -> Worker {
        let http = reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .build()
            .expect("a client without custom TLS settings builds");
        Worker { state, http }
    }

    /// Runs until `stop` turns true; finishes the webhook in hand first.
    /// The leader (or the only replica) processes; a follower hands its
    /// webhooks and holds to the leader.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut leadership = self.state.leadership.clone();
        loop {
            if *stop.borrow() {
                return;
            }
            let role = leadership.role();
            let round = if role.processes() {
                self.drain(&stop).await.map_err(Stall::Journal)
            } else {
                self.hand_over(&stop).await
            };
            match round {
                Ok(0) => {
                    // Idle until new work, a change of role, or the next
                    // hold (which only the processing replica runs).
                    let next_hold = match role.processes() {
                        true => self.state.journal.next_hold_due().await.ok().flatten(),
                        false => None,
                    };
                    let until_hold = next_hold.map(|due| {
                        let wait = due.duration_since(self.state.clock.now());
                        Duration::try_from(wait).unwrap_or(Duration::ZERO)
                    });
                    tokio::select! {
                        _ = self.state.work_ready.notified() => {}
                        _ = stop.changed() => {}
                        _ = leadership.changed() => {}
                        _ = sleep_or_forever(until_hold) => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    match &e {
                        Stall::Journal(_) => {
                            tracing::error!(error = %e, "worker stalled; retrying")
                        }
                        Stall::NoLeader(_) => {
                            tracing::warn!(error = %e, "webhooks wait in the journal; retrying")
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_AFTER) => {}
                        _ = leadership.changed() => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    /// A follower's round: hands every waiting hold, then every webhook
    /// Alertmanager sent here, to the leader, journaling where each went.
    /// An operator's replay is processed here: it spends no budget.
    async fn hand_over(&self, stop: &watch::Receiver<bool>) -> Result<usize, Stall> {
        let holds = self.state.journal.holds_due(Timestamp::MAX).await?;
        let pending = self.state.journal.pending(BATCH, BATCH_ALERTS).await?;
        if holds.is_empty() && pending.is_empty() {
            return Ok(0);
        }
        let leader = self
            .state
            .leadership
            .leader()
            .await
            .map_err(|e| Stall::NoLeader(format!("cannot read the Lease: {e}")))?;
        let leader = leader.ok_or("no other replica holds the Lease yet");
        let mut done = 0;
        let mut sent = std::collections::HashMap::new();
        for hold in holds {
            if *stop.borrow() {
                return Ok(done);
            }
            let now = self.state.clock.now();
            if hold.dry_run {
                // Handed over, a dry-run replay's hold would become a real
                // one at the leader: dropped instead, and said so.
                let why = "dry-run hold dropped: this replica no longer leads".to_string();
                self.end_hold(&hold, "dropped", why, now).await?;
                done += 1;
                continue;
            }
            let peer = leader
                .as_ref()
                .map_err(|why| Stall::NoLeader(why.to_string()))?;
            let their_id = match sent.get(&hold.webhook_id) {
                Some(id) => *id,
                None => {
                    let Some((raw, _)) = self.state.journal.webhook(hold.webhook_id).await? else {
                        self.state.journal.hold_finish(hold.id, "lost", now).await?;
                        continue;
                    };
                    let id = self.forward(peer, raw).await.map_err(Stall::NoLeader)?;
                    sent.insert(hold.webhook_id, id);
                    id
                }
            };
            tracing::info!(episode = %hold.episode, leader = %peer.identity, "hold handed to the leader");
            let why = format!(
                "this replica no longer leads: handed to the leader {} (its webhook {their_id}), which holds the alert anew",
                peer.identity
            );
            self.end_hold(&hold, "handed-over", why, now).await?;
            done += 1;
        }
        for webhook in pending {
            if *stop.borrow() {
                break;
            }
            let now = self.state.clock.now();
            if webhook.source == Source::Replay {
                let (outcomes, follow) = self.process(&webhook, now).await?;
                self.state.journal.complete(webhook, outcomes).await?;
                for watch in follow {
                    self.spawn_watch(watch);
                }
                done += 1;
                continue;
            }
            let peer = leader
                .as_ref()
                .map_err(|why| Stall::NoLeader(why.to_string()))?;
            let their_id = self
                .forward(peer, webhook.raw.clone())
                .await
                .map_err(Stall::NoLeader)?;
            let outcomes = webhook
                .notification
                .alerts
                .iter()
                .enumerate()
                .map(|(index, alert)| AlertOutcome {
                    index,
                    decision: decide(&self.state.rules, alert, now),
                    actions: vec![ActionRecord {
                        action: "forward".into(),
                        outcome: "forwarded".into(),
                        detail: format!(
                            "handed to the leader {} at {} (its webhook {their_id})",
                            peer.identity, peer.address
                        ),
                        at: now,
                    }],
                })
                .collect();
            tracing::info!(webhook = webhook.id, leader = %peer.identity, their_id, "webhook handed to the leader");
            self.state.journal.complete(webhook, outcomes).await?;
            done += 1;
        }
        let waiting = self.state.journal.pending_count().await?;
        self.state.metrics.webhooks_pending.set(waiting as i64);
        Ok(done)
    }

    /// Ends a hold in `state`, journaling why against its alert.
    async fn end_hold(
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

    /// Posts `raw` to the leader's `/webhook` with this replica's webhook
    /// credentials; returns the leader's journal id once it journaled it.
    async fn forward(&self, peer: &Peer, raw: Vec<u8>) -> Result<i64, String> {
        let url = format!("http://{}/webhook", peer.address);
        let mut request = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(raw);
        if let Some(me) = self.state.leadership.me() {
            request = request.header(FORWARDED_BY, me.holder());
        }
        let auth = &self.state.settings.webhook_auth;
        if let Some(token) = &auth.bearer {
            request = request.bearer_auth(token.expose());
        } else if let Some((user, password)) = &auth.basic {
            request = request.basic_auth(user, Some(password.expose()));
        }
        let leader = &peer.identity;
        let response = request
            .send()
            .await
            .map_err(|e| format!("the leader {leader} at {url} did not answer: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(format!(
                "the leader {leader} refused the webhook: {status}: {}",
                body.trim()
            ));
        }
        let receipt: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("the leader {leader} answered with no receipt: {e}"))?;
        receipt["id"]
            .as_i64()
            .ok_or_else(|| format!("the leader {leader} answered with no journal id: {receipt}"))
    }

    /// Processes one batch of pending webhooks; returns how many.
    async fn drain(&self, stop: &watch::Receiver<bool>) -> Result<usize, JournalError> {
        let pending = self.state.journal.pending(BATCH, BATCH_ALERTS).await?;
        // Process the batch in order, then journal every result at once: the
        // completions share one transaction (one fsync) instead of one each.
        let mut completions = Vec::with_capacity(pending.len());
        let mut watches = Vec::new();
        for webhook in pending {
            if *stop.borrow() {
                break;
            }
            let (outcomes, follow) = self.process(&webhook, self.state.clock.now()).await?;
            watches.extend(follow);
            completions.push(self.state.journal.complete(webhook, outcomes));
        }
        let done = completions.len();
        for result in futures::future::join_all(completions).await {
            result?;
        }
        // Only now: a watch journals its end against the alert's row.
        for watch in watches {
            self.spawn_watch(watch);
        }
        let holds = self.act_on_due_holds(stop).await?;
        if done > 0 {
            // The backlog left after this batch.
            let waiting = self.state.journal.pending_count().await?;
            self.state.metrics.webhooks_pending.set(waiting as i64);
        }
        if done + holds > 0 {
            // Keeps the keyed limiters' memory bounded in a storm.
            self.state.guard.forget_idle();
        }
        Ok(done + holds)
    }

    /// Rolls back for every hold whose time has come (its alert did not
    /// resolve meanwhile), through the same guard as an immediate rollback.
    async fn act_on_due_holds(&self, stop: &watch::Receiver<bool>) -> Result<usize, JournalError> {
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

    /// The incident Slack is told about. Its channel: the alert's
    /// `slack_channel` annotation, else its rule's, else the default.
    fn incident(
        &self,
        external_url: &str,
        alert: &Alert,
        decision: &Decision,
        stage: Stage,
        detail: String,
    ) -> Incident {
        let mut incident = Incident::new(external_url, alert, decision, stage, detail);
        if incident.channel.is_none() {
            incident.channel = self
                .state
                .rules
                .named(decision.rule.as_deref())
                .and_then(|r| r.slack_channel.clone());
        }
        incident
    }

    /// Queues a Slack report; a failure is logged, never in the way of a
    /// rollback.
    async fn tell(&self, incident: &Incident) {
        if let Err(e) = self.state.reporter.report(incident).await {
            tracing::error!(error = %e, incident = %incident.key, "could not queue the Slack report");
        }
    }

    /// Starts holding a `rollback-after` alert (or notes the hold a re-sent
    /// alert already has).
    async fn start_hold(
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
    async fn cancel_hold(
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

    /// Decides every alert of a webhook and acts on it; returns the
    /// outcomes and the rollouts to follow once they are journaled.
    async fn process(
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
    async fn rollback(
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

    /// Follows the rollout in the background and journals how it ended; the
    /// worker goes on with the next webhook meanwhile.
    fn spawn_watch(&self, job: WatchJob) {
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

/// The Slack stage an alert's latest action puts its incident in; `None`
/// when there is nothing new to say (a re-sent alert).
fn stage_of(actions: &[ActionRecord]) -> Option<Stage> {
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
fn fill(incident: &mut Incident, r: &RollbackReport, note: Option<String>) {
    incident.from_revision = Some(r.from_revision);
    incident.to_revision = Some(r.to_revision);
    incident.from_images = r.from_images.clone();
    incident.to_images = r.to_images.clone();
    incident.notes.extend(note);
}

/// Sleeps for `d`, or forever when there is nothing to wait for.
async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// A rollout to follow after its rollback is journaled.
struct WatchJob {
    webhook: i64,
    index: usize,
    target: Target,
    deadline: Duration,
    /// The incident as reported at the rollback, to update at the end.
    incident: Option<Incident>,
}

/// The result of one rollback attempt.
struct Rollback {
    record: ActionRecord,
    /// Follow the rollout for this long (only after a real patch).
    follow: Option<Duration>,
    /// From/to revisions and images, when the engine got that far.
    report: Option<RollbackReport>,
    /// What on-call must know (a suspended GitOps tool).
    note: Option<String>,
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
