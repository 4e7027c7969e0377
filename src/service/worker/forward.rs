//! Leadership and forwarding: a follower hands each webhook it accepted to
//! the leader (the same body and credentials, acknowledged once the leader
//! journaled it) and journals where it went.

use jiff::Timestamp;
use tokio::sync::watch;

use crate::adapters::journal::{ActionRecord, AlertOutcome, Source};
use crate::adapters::lease::Peer;
use crate::core::decide::decide;

use super::{Stall, Worker, BATCH, BATCH_ALERTS};

impl Worker {
    /// A follower's round: hands every waiting hold, then every webhook
    /// Alertmanager sent here, to the leader, journaling where each went.
    /// An operator's replay is processed here: it spends no budget.
    pub(super) async fn hand_over(&self, stop: &watch::Receiver<bool>) -> Result<usize, Stall> {
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

    /// Posts `raw` to the leader's `/webhook` with this replica's webhook
    /// credentials; returns the leader's journal id once it journaled it.
    pub(super) async fn forward(&self, peer: &Peer, raw: Vec<u8>) -> Result<i64, String> {
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
}

/// The header a follower marks a handed-over webhook with (its holder name).
pub const FORWARDED_BY: &str = "x-rollbackd-forwarded-by";
