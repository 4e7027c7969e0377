//! Worker: takes journaled webhooks in order, decides each alert, records
//! the decision and the action, and marks the webhook processed, all in one
//! journal transaction.
//!
//! The worker reads its work from the journal, never from memory, so a
//! webhook acknowledged just before a crash is processed after the restart.
//! A `rollback` decision goes to the undo engine (server-side dry-run when
//! dry-run is on), and the rollout is then followed in the background.
//!
//! By concern: `pipeline` (one alert: decide, guard, undo, report), `holds`
//! (`rollback-after`), `watches` (rollouts followed in the background) and
//! `forward` (a follower hands work to the leader).

use std::time::Duration;

use tokio::sync::watch;

use crate::adapters::journal::JournalError;
use crate::adapters::report::{Incident, Stage};
use crate::core::decide::Decision;
use crate::core::parse::Alert;
use crate::service::state::AppState;

mod forward;
mod holds;
mod pipeline;
mod watches;

pub use forward::FORWARDED_BY;
pub use pipeline::plan;

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

    /// The incident Slack is told about. Its channel: the alert's
    /// `slack_channel` annotation when it names an allowed channel, else
    /// its rule's, else the default.
    fn incident(
        &self,
        external_url: &str,
        alert: &Alert,
        decision: &Decision,
        stage: Stage,
        detail: String,
    ) -> Incident {
        let mut incident = Incident::new(external_url, alert, decision, stage, detail);
        if let Some(asked) = incident.channel.take() {
            // The annotation comes from whoever writes alert rules: only
            // channels the operator allowed.
            if self.state.settings.slack_allowed_channels.contains(&asked) {
                incident.channel = Some(asked);
            } else {
                incident.notes.push(format!(
                    "slack_channel {asked:?} is not an allowed channel (ROLLBACKD_SLACK_ALLOWED_CHANNELS): posted to the rule's or the default channel"
                ));
            }
        }
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
}

/// Sleeps for `d`, or forever when there is nothing to wait for.
async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
