//! Delivery: drains the outbox into Slack.
//!
//! Each round reads the open rows, takes the latest of each incident (older
//! ones are superseded: Slack gets the incident's current state), oldest
//! incident first, and starts a request for every channel that is free and
//! due: at most one request in flight per channel and per incident, at most
//! one a second per channel. Channels are independent: a slow or failing
//! one does not hold the others. After a failure the channel waits: as long
//! as a 429 or `ratelimited` answer asks, else an exponential backoff
//! (2 s, 4 s ... capped at 60 s) that a success resets. Retries go on until
//! Slack takes the message; only a permanent error gives a report up.
//!
//! Pacing lives in memory, on tokio's clock (so tests run it on a paused
//! one); the outbox keeps `attempts`, `last_error` and `next_attempt_at`, so
//! after a restart waits already asked for are still honoured.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::slack::Outcome;
use super::{Shared, Stats};
use crate::adapters::journal::outbox::{self, Loaded, OpenRow};
use crate::adapters::journal::JournalError;

/// Slack allows about one message a second per channel
/// (`chat.postMessage`, incoming webhooks alike); updates count too.
const MIN_SPACING: Duration = Duration::from_secs(1);
/// First wait after a failed attempt; doubles with each further failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// Longest wait between attempts: during an outage each channel tries once
/// a minute, so reports arrive within a minute of Slack's return.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest wait a restart takes over from the outbox (a `Retry-After`, which
/// Slack keeps far shorter; more would be a clock that jumped).
const MAX_INHERITED_WAIT: Duration = Duration::from_secs(3600);
/// Pause after a journal error: long enough not to spin on a locked disk,
/// short enough to recover quickly.
const JOURNAL_RETRY: Duration = Duration::from_secs(1);

/// The wait after `failures` consecutive failures on a channel.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// A channel's pacing.
#[derive(Debug, Default)]
struct Pace {
    /// No request before this.
    next_allowed: Option<Instant>,
    /// Consecutive failed attempts (backoff).
    failures: u32,
}

/// One finished request.
struct Attempt {
    row: i64,
    incident: String,
    channel: String,
    stage: String,
    /// Requests made for the row, this one included.
    attempts: i64,
    outcome: Outcome,
}

enum Event {
    Stop,
    Round,
    Finished(Attempt),
}

struct Delivery {
    shared: Arc<Shared>,
    pace: HashMap<String, Pace>,
    busy_channels: HashSet<String>,
    busy_incidents: HashSet<String>,
    in_flight: FuturesUnordered<BoxFuture<'static, Attempt>>,
    started: bool,
}

/// Runs until `stop` turns true, then finishes the requests in flight.
pub(super) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut delivery = Delivery {
        shared,
        pace: HashMap::new(),
        busy_channels: HashSet::new(),
        busy_incidents: HashSet::new(),
        in_flight: FuturesUnordered::new(),
        started: false,
    };
    loop {
        if *stop.borrow() {
            break;
        }
        let wake_at = delivery.round().await;
        let timer = async move {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let in_flight = !delivery.in_flight.is_empty();
        let event = tokio::select! {
            changed = stop.changed() => match changed {
                Ok(()) => Event::Round,
                Err(_) => Event::Stop,
            },
            _ = delivery.shared.wake.notified() => Event::Round,
            Some(attempt) = delivery.in_flight.next(), if in_flight => Event::Finished(attempt),
            _ = timer => Event::Round,
        };
        match event {
            Event::Stop => break,
            Event::Round => {}
            Event::Finished(attempt) => delivery.record(attempt).await,
        }
    }
    while let Some(attempt) = delivery.in_flight.next().await {
        delivery.record(attempt).await;
    }
}

impl Delivery {
    /// Starts every request that is due; returns when the next one will be.
    async fn round(&mut self) -> Option<Instant> {
        let rows = match self.shared.journal.read(outbox::open_rows).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the Slack outbox; retrying");
                return Some(Instant::now() + JOURNAL_RETRY);
            }
        };
        let now = Instant::now();
        // The latest row of each incident, incidents in the order of their
        // oldest open row.
        let mut order = Vec::new();
        let mut latest: HashMap<String, OpenRow> = HashMap::new();
        for row in rows {
            if !latest.contains_key(&row.incident) {
                order.push(row.incident.clone());
            }
            latest.insert(row.incident.clone(), row);
        }
        if !self.started {
            self.started = true;
            self.inherit_waits(latest.values(), now);
        }
        let mut wake_at: Option<Instant> = None;
        let mut earliest = |at: Instant| {
            wake_at = Some(wake_at.map_or(at, |w: Instant| w.min(at)));
        };
        for incident in order {
            if self.busy_incidents.contains(&incident) {
                continue;
            }
            let row = latest
                .remove(&incident)
                .expect("every ordered incident has a row");
            let channel = self.slack().destination(&row.channel).to_string();
            if self.busy_channels.contains(&channel) {
                continue;
            }
            let due = self
                .pace
                .get(&channel)
                .and_then(|p| p.next_allowed)
                .unwrap_or(now);
            if due > now {
                earliest(due);
                continue;
            }
            let id = row.id;
            match self.shared.journal.read(move |c| outbox::load(c, id)).await {
                Ok(loaded) => self.start(row, channel, loaded, now),
                Err(JournalError::Corrupt { reason, .. }) => {
                    self.give_up_unreadable(id, reason).await
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the Slack outbox; retrying");
                    earliest(now + JOURNAL_RETRY);
                }
            }
        }
        wake_at
    }

    fn slack(&self) -> &super::slack::SlackClient {
        self.shared
            .slack
            .as_ref()
            .expect("delivery runs only with Slack configured")
    }

    /// After a restart: waits the outbox recorded (backoff, Retry-After)
    /// still hold.
    fn inherit_waits<'a>(&mut self, rows: impl Iterator<Item = &'a OpenRow>, now: Instant) {
        let wall = self.shared.clock.now();
        for row in rows {
            let Some(next) = row.next_attempt_at else {
                continue;
            };
            let Ok(wait) = Duration::try_from(wall.duration_until(next)) else {
                continue;
            };
            let channel = self.slack().destination(&row.channel).to_string();
            let at = now + wait.min(MAX_INHERITED_WAIT);
            let pace = self.pace.entry(channel).or_default();
            pace.next_allowed = Some(pace.next_allowed.map_or(at, |n| n.max(at)));
        }
    }

    fn start(&mut self, row: OpenRow, channel: String, loaded: Loaded, now: Instant) {
        self.busy_channels.insert(channel.clone());
        self.busy_incidents.insert(row.incident.clone());
        self.pace.entry(channel.clone()).or_default().next_allowed = Some(now + MIN_SPACING);
        let shared = self.shared.clone();
        self.in_flight.push(Box::pin(async move {
            let slack = shared
                .slack
                .as_ref()
                .expect("delivery runs only with Slack configured");
            let outcome = slack
                .send(&channel, &loaded.body, loaded.message.as_ref())
                .await;
            Attempt {
                row: row.id,
                incident: row.incident,
                channel,
                stage: loaded.stage,
                attempts: loaded.attempts + 1,
                outcome,
            }
        }));
    }

    /// Journals how a request ended and paces its channel accordingly.
    async fn record(&mut self, attempt: Attempt) {
        let Attempt {
            row,
            incident,
            channel,
            stage,
            attempts,
            outcome,
        } = attempt;
        self.busy_channels.remove(&channel);
        self.busy_incidents.remove(&incident);
        let now = Instant::now();
        let wall = self.shared.clock.now();
        let stats = &self.shared.stats;
        let pace = self.pace.entry(channel.clone()).or_default();
        let wait_at_least = |pace: &mut Pace, wait: Duration| {
            let at = now + wait;
            pace.next_allowed = Some(pace.next_allowed.map_or(at, |n| n.max(at)));
        };
        let written = match outcome {
            Outcome::Delivered { posted } => {
                if pace.failures > 0 {
                    tracing::info!(
                        channel = %channel,
                        failed_attempts = pace.failures,
                        "Slack takes messages again"
                    );
                }
                pace.failures = 0;
                let result = outbox::write(&self.shared.journal, move |c| {
                    outbox::delivered(c, row, wall, posted)
                })
                .await;
                if let Ok(superseded) = result {
                    Stats::add(&stats.delivered, 1);
                    Stats::add(&stats.superseded, superseded as u64);
                    tracing::debug!(
                        incident = %incident,
                        channel = %channel,
                        stage = %stage,
                        attempts,
                        superseded,
                        "report delivered to Slack"
                    );
                }
                result.map(|_| ())
            }
            Outcome::RateLimited { retry_after, error } => {
                let wait = retry_after.unwrap_or_else(|| backoff(pace.failures + 1));
                wait_at_least(pace, wait);
                Stats::add(&stats.rate_limited, 1);
                tracing::warn!(
                    incident = %incident,
                    channel = %channel,
                    stage = %stage,
                    attempts,
                    retry_in_secs = wait.as_secs(),
                    error = %error,
                    "Slack rate limited the report; waiting as asked"
                );
                let next = wall.checked_add(wait).unwrap_or(wall);
                outbox::write(&self.shared.journal, move |c| {
                    outbox::retry_later(c, row, next, &error)
                })
                .await
            }
            Outcome::Retry { error } => {
                pace.failures += 1;
                let wait = backoff(pace.failures);
                wait_at_least(pace, wait);
                Stats::add(&stats.transient, 1);
                tracing::warn!(
                    incident = %incident,
                    channel = %channel,
                    stage = %stage,
                    attempts,
                    retry_in_secs = wait.as_secs(),
                    error = %error,
                    "Slack delivery failed; will retry"
                );
                let next = wall.checked_add(wait).unwrap_or(wall);
                outbox::write(&self.shared.journal, move |c| {
                    outbox::retry_later(c, row, next, &error)
                })
                .await
            }
            Outcome::MessageGone { error } => {
                Stats::add(&stats.message_gone, 1);
                tracing::warn!(
                    incident = %incident,
                    channel = %channel,
                    error = %error,
                    "the incident's Slack message is gone; posting a new one"
                );
                outbox::write(&self.shared.journal, move |c| {
                    outbox::forget_message(c, row)?;
                    outbox::retry_later(c, row, wall, &error)
                })
                .await
            }
            Outcome::Permanent { error } => {
                tracing::error!(
                    incident = %incident,
                    channel = %channel,
                    stage = %stage,
                    attempts,
                    error = %error,
                    "Slack refused the report; not retrying"
                );
                let result = outbox::write(&self.shared.journal, move |c| {
                    outbox::failed(c, row, wall, &error)
                })
                .await;
                if let Ok(superseded) = result {
                    Stats::add(&stats.failed, 1);
                    Stats::add(&stats.superseded, superseded as u64);
                }
                result.map(|_| ())
            }
        };
        if let Err(e) = written {
            tracing::error!(
                incident = %incident,
                error = %e,
                "cannot record a Slack delivery attempt in the outbox"
            );
        }
    }

    /// A row whose payload cannot be read would be retried forever: close it.
    async fn give_up_unreadable(&mut self, id: i64, reason: String) {
        tracing::error!(row = id, reason = %reason, "unreadable Slack outbox row; giving it up");
        let wall = self.shared.clock.now();
        let error = format!("unreadable: {reason}");
        let closed = outbox::write(&self.shared.journal, move |c| {
            outbox::failed(c, id, wall, &error)
        })
        .await;
        match closed {
            Ok(superseded) => {
                Stats::add(&self.shared.stats.failed, 1);
                Stats::add(&self.shared.stats.superseded, superseded as u64);
            }
            Err(e) => {
                tracing::error!(row = id, error = %e, "cannot close an unreadable Slack outbox row")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_two_seconds_up_to_a_minute() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
