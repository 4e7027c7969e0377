//! Journal: the durable record of everything rollbackd received and did.
//!
//! One SQLite file in WAL mode. Every webhook is written before it is
//! acknowledged: the raw body byte for byte (stored LZ4-compressed) plus
//! its group fields (receiver, group key, status, alert count); the worker
//! then writes each alert's parsed fields (name, namespace, severity,
//! status, fingerprint, episode start) with its decision and actions. The worker is fed from the
//! journal, so work accepted before a crash is picked up after a restart.
//!
//! Writes go through one writer thread that owns the write connection and
//! commits whatever is queued in one transaction (group commit): under load,
//! one fsync acknowledges many webhooks, so durability costs little
//! throughput. Reads use a separate connection; WAL lets them run beside the
//! writer.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::core::decide::Decision;
use crate::core::parse::{AlertStatus, Notification};

/// Why the journal could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite refused (locked, read-only, disk full, corrupt...).
    #[error("journal database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The transaction carrying this write could not be committed.
    #[error("journal commit failed: {0}")]
    Commit(String),
    /// The writer thread is gone (it only stops when the journal is dropped).
    #[error("journal writer is not running")]
    WriterGone,
    /// A stored row could not be decoded.
    #[error("journal row {id} is unreadable: {reason}")]
    Corrupt {
        /// Row id.
        id: i64,
        /// What was wrong.
        reason: String,
    },
    /// The file could not be opened or created.
    #[error("cannot open journal {path}: {reason}")]
    Open {
        /// Path of the journal file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Where a journaled webhook came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Posted by Alertmanager to `/webhook`.
    Alertmanager,
    /// Re-run by an operator through `/api/v1/replay/{id}`.
    Replay,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Replay => "replay",
        }
    }

    fn from_db(s: &str) -> Source {
        match s {
            "replay" => Source::Replay,
            _ => Source::Alertmanager,
        }
    }
}

/// A webhook to append.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Where it came from.
    pub source: Source,
    /// For a replay, the webhook it re-runs.
    pub replay_of: Option<i64>,
    /// Whether actions taken for it are dry-run only.
    pub dry_run: bool,
    /// The body exactly as received.
    pub raw: Vec<u8>,
    /// The group fields stored beside it.
    pub summary: WebhookSummary,
    /// When it arrived.
    pub received_at: Timestamp,
}

/// The group fields of a webhook that are stored beside its raw body. Only
/// these cross to the writer thread: the parsed notification stays (and is
/// freed) where it was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSummary {
    /// Alertmanager receiver.
    pub receiver: String,
    /// Alertmanager group key.
    pub group_key: String,
    /// Group status.
    pub status: AlertStatus,
    /// Number of alerts.
    pub alerts: usize,
}

impl From<Notification> for WebhookSummary {
    fn from(n: Notification) -> Self {
        WebhookSummary {
            alerts: n.alerts.len(),
            receiver: n.receiver,
            group_key: n.group_key,
            status: n.status,
        }
    }
}

/// A webhook as the writer thread stores it: the body is compressed on the
/// caller's task, so the writer (the one serial step of intake) only copies
/// it.
struct StoredWebhook {
    source: Source,
    replay_of: Option<i64>,
    dry_run: bool,
    /// The raw body in [`LZ4`].
    body: Vec<u8>,
    summary: WebhookSummary,
    received_at: Timestamp,
}

impl StoredWebhook {
    fn new(w: NewWebhook) -> StoredWebhook {
        StoredWebhook {
            body: lz4_flex::compress_prepend_size(&w.raw),
            source: w.source,
            replay_of: w.replay_of,
            dry_run: w.dry_run,
            summary: w.summary,
            received_at: w.received_at,
        }
    }
}

/// `webhooks.raw_encoding` of a body stored as received (written before
/// schema version 3).
const IDENTITY: &str = "identity";
/// `webhooks.raw_encoding` of a body stored as an LZ4 block behind its
/// length (4 bytes, little endian; `lz4_flex::compress_prepend_size`).
/// Alertmanager's JSON repeats label names and values across alerts: a
/// 3-alert body shrinks to half, a 1,000-alert group to about a tenth.
/// Fewer bytes to write and fsync before each acknowledgement (+15 %
/// acknowledged webhooks per second, bench/README.md) and a smaller
/// journal, for about 1 µs of compression per small body.
const LZ4: &str = "lz4";

/// The raw body of webhook `id` from its stored form.
fn stored_body(id: i64, encoding: &str, stored: Vec<u8>) -> Result<Vec<u8>, JournalError> {
    let corrupt = |reason: String| JournalError::Corrupt { id, reason };
    match encoding {
        IDENTITY => Ok(stored),
        LZ4 => {
            // LZ4 expands at most 255 times: a damaged length must not
            // make us allocate more than the block can hold.
            let claimed = stored
                .first_chunk::<4>()
                .map(|b| u32::from_le_bytes(*b) as usize)
                .ok_or_else(|| corrupt("stored body is shorter than its length".into()))?;
            if claimed > stored.len().saturating_mul(255) {
                return Err(corrupt(format!(
                    "stored body claims {claimed} bytes from {} compressed",
                    stored.len()
                )));
            }
            lz4_flex::decompress_size_prepended(&stored)
                .map_err(|e| corrupt(format!("stored body does not decompress: {e}")))
        }
        other => Err(corrupt(format!("unknown body encoding {other:?}"))),
    }
}

/// Webhooks that cannot be read back: id and reason.
type Unreadable = Vec<(i64, String)>;

/// Webhooks pending, read as [`Journal::pending`] says, and those among
/// them that cannot be read back.
fn read_pending(
    conn: &Connection,
    limit: usize,
    max_alerts: usize,
) -> Result<(Vec<PendingWebhook>, Unreadable), JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, dry_run, raw, source, alert_count, raw_encoding FROM webhooks
         WHERE processed_at IS NULL ORDER BY id LIMIT ?1",
    )?;
    let mut rows = stmt.query([limit as i64])?;
    let mut batch = Vec::new();
    let mut unreadable = Vec::new();
    let mut alerts = 0;
    while let Some(r) = rows.next()? {
        let count = usize::try_from(r.get::<_, i64>(4)?).unwrap_or(0);
        if !batch.is_empty() && alerts + count > max_alerts {
            break;
        }
        let id: i64 = r.get(0)?;
        let (raw, notification) = match read_back(id, &r.get::<_, String>(5)?, r.get(2)?) {
            Ok(read) => read,
            Err(JournalError::Corrupt { reason, .. }) => {
                unreadable.push((id, reason));
                continue;
            }
            Err(e) => return Err(e),
        };
        alerts += count;
        batch.push(PendingWebhook {
            id,
            source: Source::from_db(&r.get::<_, String>(3)?),
            dry_run: r.get(1)?,
            notification,
            raw,
        });
    }
    Ok((batch, unreadable))
}

/// Ends an unreadable webhook: processed, with why it was not.
fn set_aside_unreadable(conn: &Connection, id: i64, reason: &str) -> Result<(), JournalError> {
    conn.prepare_cached(
        "UPDATE webhooks SET processed_at = ?2, unreadable = ?3
         WHERE id = ?1 AND processed_at IS NULL",
    )?
    .execute(params![id, Timestamp::now().to_string(), reason])?;
    Ok(())
}

/// One action the worker took (or would take) for an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    /// What was attempted: `rollback`, `hold`, `notify`, `none`.
    pub action: String,
    /// How it ended: `dry-run`, `planned`, `skipped`, ...
    pub outcome: String,
    /// Human detail for reports.
    pub detail: String,
    /// When it was recorded.
    pub at: Timestamp,
}

/// The worker's result for one alert of a webhook.
#[derive(Debug, Clone)]
pub struct AlertOutcome {
    /// Position of the alert in the webhook's `alerts`.
    pub index: usize,
    /// The decision.
    pub decision: Decision,
    /// What was done about it.
    pub actions: Vec<ActionRecord>,
}

/// A webhook the worker has not processed yet.
#[derive(Debug, Clone)]
pub struct PendingWebhook {
    /// Journal id.
    pub id: i64,
    /// Where it came from (an operator's replay skips the rate limits).
    pub source: Source,
    /// Dry-run only.
    pub dry_run: bool,
    /// Parsed form.
    pub notification: Notification,
    /// The body as received (what a follower hands to the leader).
    pub raw: Vec<u8>,
}

/// A hold to start.
#[derive(Debug, Clone)]
pub struct NewHold {
    /// The alert episode (fingerprint@startsAt).
    pub episode: String,
    /// The webhook that started it.
    pub webhook_id: i64,
    /// The alert's position in that webhook.
    pub index: usize,
    /// When to roll back if the alert still fires.
    pub due_at: Timestamp,
    /// The decision (rule, target, deadline).
    pub decision: Decision,
    /// Dry-run only.
    pub dry_run: bool,
    /// Now.
    pub now: Timestamp,
}

/// What [`Journal::hold_start`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldStart {
    /// A new hold.
    Started,
    /// The episode already has a hold, in this state.
    Exists {
        /// `waiting`, `cancelled` or `done`.
        state: String,
        /// Its due time.
        due_at: Timestamp,
    },
}

/// A journaled hold.
#[derive(Debug, Clone)]
pub struct Hold {
    /// Row id.
    pub id: i64,
    /// The alert episode.
    pub episode: String,
    /// The webhook that started it.
    pub webhook_id: i64,
    /// The alert's position in that webhook.
    pub index: usize,
    /// When it is due.
    pub due_at: Timestamp,
    /// The decision it carries.
    pub decision: Decision,
    /// Dry-run only.
    pub dry_run: bool,
}

/// Filters and page for listing events.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only webhooks with an alert of this name.
    pub alertname: Option<String>,
    /// Only webhooks with an alert in this namespace.
    pub namespace: Option<String>,
    /// Only webhooks with an alert decided so (`rollback`, ...).
    pub decision: Option<String>,
    /// Only ids below this one (the cursor of the previous page).
    pub before: Option<i64>,
    /// Page size.
    pub limit: usize,
}

/// A webhook as the events API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Journal id.
    pub id: i64,
    /// When it arrived.
    pub received_at: String,
    /// Where it came from.
    pub source: Source,
    /// The webhook a replay re-ran.
    pub replay_of: Option<i64>,
    /// Dry-run only.
    pub dry_run: bool,
    /// Alertmanager receiver.
    pub receiver: String,
    /// Alertmanager group key.
    pub group_key: String,
    /// Group status.
    pub status: AlertStatus,
    /// When the worker finished with it; `null` while pending.
    pub processed_at: Option<String>,
    /// Why its stored body could not be read back (it was set aside, not
    /// processed, and its alerts and payload are unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// Its alerts with their decisions and actions.
    pub alerts: Vec<EventAlert>,
    /// Replays of this webhook (detail view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replays: Option<Vec<i64>>,
    /// The body as received (detail view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

/// One alert inside an [`Event`].
#[derive(Debug, Clone, Serialize)]
pub struct EventAlert {
    /// Position in the webhook.
    pub index: usize,
    /// `alertname` label.
    pub alertname: String,
    /// `namespace` label, if any.
    pub namespace: Option<String>,
    /// `severity` label, if any.
    pub severity: Option<String>,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Alertmanager fingerprint.
    pub fingerprint: String,
    /// Episode start.
    pub starts_at: String,
    /// The decision, once made.
    pub decision: Option<Decision>,
    /// Actions, in order.
    pub actions: Vec<ActionRecord>,
}

/// Journal tunables.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// How long a write waits for a lock held by another process before it
    /// fails. Long enough to ride out a checkpoint or a backup, short enough
    /// that Alertmanager (10 s timeout) gets a 503 and retries.
    pub busy_timeout: Duration,
    /// Most writes committed in one transaction. Bounds the latency a large
    /// batch adds to its first request.
    pub max_batch: usize,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            busy_timeout: Duration::from_secs(2),
            max_batch: 256,
        }
    }
}

/// Hooks the journal reports to (metrics), kept as plain callbacks so the
/// journal does not depend on the metrics module.
pub type CommitObserver = Arc<dyn Fn(Duration, usize) + Send + Sync>;

/// Handle to the journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    writer: mpsc::Sender<Write>,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// Schema migrations, applied in order; `PRAGMA user_version` counts them.
const MIGRATIONS: &[&str] = &[
    // 1: webhooks, alerts, actions.
    "CREATE TABLE webhooks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at TEXT NOT NULL,
        source TEXT NOT NULL,
        replay_of INTEGER REFERENCES webhooks(id),
        dry_run INTEGER NOT NULL,
        raw BLOB NOT NULL,
        receiver TEXT NOT NULL,
        group_key TEXT NOT NULL,
        status TEXT NOT NULL,
        alert_count INTEGER NOT NULL,
        processed_at TEXT
    );
    CREATE INDEX webhooks_pending ON webhooks(id) WHERE processed_at IS NULL;
    CREATE INDEX webhooks_replay_of ON webhooks(replay_of) WHERE replay_of IS NOT NULL;
    CREATE TABLE alerts (
        webhook_id INTEGER NOT NULL REFERENCES webhooks(id),
        idx INTEGER NOT NULL,
        alertname TEXT NOT NULL,
        namespace TEXT,
        severity TEXT,
        status TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        decision TEXT,
        decision_json TEXT,
        decided_at TEXT,
        PRIMARY KEY (webhook_id, idx)
    );
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        webhook_id INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        at TEXT NOT NULL,
        action TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL,
        FOREIGN KEY (webhook_id, idx) REFERENCES alerts(webhook_id, idx)
    );
    CREATE INDEX actions_alert ON actions(webhook_id, idx);",
    // 2: holds (rollback-after) and the report outbox.
    "CREATE TABLE holds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        episode TEXT NOT NULL UNIQUE,
        webhook_id INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        due_at TEXT NOT NULL,
        state TEXT NOT NULL,
        decision_json TEXT NOT NULL,
        dry_run INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX holds_due ON holds(due_at) WHERE state = 'waiting';
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident TEXT NOT NULL,
        channel TEXT NOT NULL,
        created_at TEXT NOT NULL,
        payload TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        delivered_at TEXT,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox(next_attempt_at) WHERE delivered_at IS NULL;
    CREATE TABLE slack_messages (
        incident TEXT NOT NULL,
        channel TEXT NOT NULL,
        ts TEXT NOT NULL,
        PRIMARY KEY (incident, channel)
    );",
    // 3: bodies compressed from now on (older rows stay as they were); why
    // a webhook that could not be read back was set aside.
    "ALTER TABLE webhooks ADD COLUMN raw_encoding TEXT NOT NULL DEFAULT 'identity';
    ALTER TABLE webhooks ADD COLUMN unreadable TEXT;",
];

/// Work waiting in the journal (`Journal::depth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalDepth {
    /// Webhooks journaled and not yet processed.
    pub webhooks: usize,
    /// `rollback-after` holds waiting for their time.
    pub holds: usize,
}

/// A write another module defines (holds, the report outbox): it runs on
/// the writer thread inside the group-commit transaction, and its result is
/// delivered only once that transaction is committed.
trait Job: Send {
    fn apply(&mut self, conn: &Connection) -> Result<(), JournalError>;
    fn succeed(self: Box<Self>);
    fn fail(self: Box<Self>, e: JournalError);
}

struct TypedJob<T, F> {
    f: Option<F>,
    out: Option<T>,
    reply: oneshot::Sender<Result<T, JournalError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, JournalError> + Send,
{
    fn apply(&mut self, conn: &Connection) -> Result<(), JournalError> {
        let f = self.f.take().expect("a job is applied once");
        self.out = Some(f(conn)?);
        Ok(())
    }

    fn succeed(self: Box<Self>) {
        if let Some(out) = self.out {
            let _ = self.reply.send(Ok(out));
        }
    }

    fn fail(self: Box<Self>, e: JournalError) {
        let _ = self.reply.send(Err(e));
    }
}

enum Write {
    Job(Box<dyn Job>),
    Append(
        Box<StoredWebhook>,
        oneshot::Sender<Result<i64, JournalError>>,
    ),
    Complete(
        Box<PendingWebhook>,
        Vec<AlertOutcome>,
        oneshot::Sender<Result<(), JournalError>>,
    ),
    Action(
        i64,
        usize,
        ActionRecord,
        oneshot::Sender<Result<(), JournalError>>,
    ),
    Probe(oneshot::Sender<Result<(), JournalError>>),
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` and migrates it.
    pub fn open(
        path: &Path,
        options: JournalOptions,
        on_commit: Option<CommitObserver>,
    ) -> Result<Journal, JournalError> {
        let open_err = |e: &dyn std::fmt::Display| JournalError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut conn = Connection::open(path).map_err(|e| open_err(&e))?;
        configure(&conn, options.busy_timeout).map_err(|e| open_err(&e))?;
        migrate(&mut conn).map_err(|e| open_err(&e))?;
        let reader = Connection::open(path).map_err(|e| open_err(&e))?;
        configure(&reader, options.busy_timeout).map_err(|e| open_err(&e))?;

        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || run_writer(conn, rx, options.max_batch, on_commit))
            .map_err(|e| open_err(&e))?;
        Ok(Journal {
            writer: tx,
            reader: Arc::new(Mutex::new(reader)),
            path: path.to_path_buf(),
        })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Durably appends a webhook; returns its id once committed.
    pub async fn append(&self, webhook: NewWebhook) -> Result<i64, JournalError> {
        let (tx, rx) = oneshot::channel();
        let stored = Box::new(StoredWebhook::new(webhook));
        self.writer
            .send(Write::Append(stored, tx))
            .map_err(|_| JournalError::WriterGone)?;
        rx.await.map_err(|_| JournalError::WriterGone)?
    }

    /// Records the worker's outcomes and marks the webhook processed, in one
    /// transaction: after a crash a webhook is either fully recorded or
    /// pending again.
    pub async fn complete(
        &self,
        webhook: PendingWebhook,
        outcomes: Vec<AlertOutcome>,
    ) -> Result<(), JournalError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Write::Complete(Box::new(webhook), outcomes, tx))
            .map_err(|_| JournalError::WriterGone)?;
        rx.await.map_err(|_| JournalError::WriterGone)?
    }

    /// Records one more action for alert `index` of webhook `id` (the end of
    /// a rollout, followed after the webhook was processed).
    pub async fn append_action(
        &self,
        id: i64,
        index: usize,
        action: ActionRecord,
    ) -> Result<(), JournalError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Write::Action(id, index, action, tx))
            .map_err(|_| JournalError::WriterGone)?;
        rx.await.map_err(|_| JournalError::WriterGone)?
    }

    /// Checks that the journal can take a write right now (for `/readyz`).
    pub async fn probe_writable(&self) -> Result<(), JournalError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Write::Probe(tx))
            .map_err(|_| JournalError::WriterGone)?;
        rx.await.map_err(|_| JournalError::WriterGone)?
    }

    /// Starts holding `episode` until `due_at` (a `rollback-after`), unless
    /// a hold for that episode exists already (a re-sent alert keeps the
    /// first one's due time).
    pub async fn hold_start(&self, hold: NewHold) -> Result<HoldStart, JournalError> {
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO holds (episode, webhook_id, idx, due_at, state, decision_json, dry_run, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 'waiting', ?5, ?6, ?7)",
                )?
                .execute(params![
                    hold.episode,
                    hold.webhook_id,
                    hold.index as i64,
                    sortable(hold.due_at),
                    serde_json::to_string(&hold.decision).expect("decision serializes"),
                    hold.dry_run,
                    hold.now.to_string(),
                ])?;
            if inserted == 1 {
                return Ok(HoldStart::Started);
            }
            let (state, due_at): (String, String) = conn.query_row(
                "SELECT state, due_at FROM holds WHERE episode = ?1",
                [&hold.episode],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(HoldStart::Exists {
                state,
                due_at: due_at.parse().unwrap_or(hold.due_at),
            })
        })
        .await
    }

    /// Cancels the waiting hold of `episode` (its alert resolved); returns
    /// it if there was one.
    pub async fn hold_cancel(
        &self,
        episode: String,
        now: Timestamp,
    ) -> Result<Option<Hold>, JournalError> {
        self.write(move |conn| {
            let hold =
                select_holds(conn, "WHERE episode = ?1 AND state = 'waiting'", &episode)?.pop();
            if let Some(h) = &hold {
                set_hold_state(conn, h.id, "cancelled", now)?;
            }
            Ok(hold)
        })
        .await
    }

    /// Waiting holds whose time has come, oldest first.
    pub async fn holds_due(&self, now: Timestamp) -> Result<Vec<Hold>, JournalError> {
        let now = sortable(now);
        self.read(move |conn| {
            select_holds(
                conn,
                "WHERE state = 'waiting' AND due_at <= ?1 ORDER BY due_at",
                &now,
            )
        })
        .await
    }

    /// When the next waiting hold is due.
    pub async fn next_hold_due(&self) -> Result<Option<Timestamp>, JournalError> {
        self.read(|conn| {
            let due: Option<String> = conn.query_row(
                "SELECT MIN(due_at) FROM holds WHERE state = 'waiting'",
                [],
                |r| r.get(0),
            )?;
            Ok(due.and_then(|d| d.parse().ok()))
        })
        .await
    }

    /// Ends a hold (`done` once acted on).
    pub async fn hold_finish(
        &self,
        id: i64,
        state: &'static str,
        now: Timestamp,
    ) -> Result<(), JournalError> {
        self.write(move |conn| set_hold_state(conn, id, state, now))
            .await
    }

    /// How many webhooks wait for the worker (the partial index makes this
    /// a count of the waiting ones only).
    pub async fn pending_count(&self) -> Result<usize, JournalError> {
        self.read(|conn| {
            let n: i64 = conn.query_row(
                "SELECT COUNT(*) FROM webhooks WHERE processed_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            Ok(n as usize)
        })
        .await
    }

    /// How much work waits in the journal: webhooks not processed yet and
    /// holds not ended (both counted through their partial indexes).
    pub async fn depth(&self) -> Result<JournalDepth, JournalError> {
        self.read(|conn| {
            let (webhooks, holds): (i64, i64) = conn.query_row(
                "SELECT (SELECT COUNT(*) FROM webhooks WHERE processed_at IS NULL),
                        (SELECT COUNT(*) FROM holds WHERE state = 'waiting')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(JournalDepth {
                webhooks: webhooks as usize,
                holds: holds as usize,
            })
        })
        .await
    }

    /// Webhooks not processed yet, oldest first: at most `limit`, and no
    /// more than `max_alerts` alerts in all (but always the oldest one), so
    /// a batch of large groups does not hold them all parsed at once.
    ///
    /// A webhook whose stored body cannot be read back (damaged on disk or
    /// by hand) is set aside instead of stopping the worker on it forever:
    /// it is journaled as processed with the reason (`unreadable`, shown by
    /// the events API), logged at ERROR, and the webhooks after it go on.
    pub async fn pending(
        &self,
        limit: usize,
        max_alerts: usize,
    ) -> Result<Vec<PendingWebhook>, JournalError> {
        loop {
            let (batch, unreadable) = self
                .read(move |conn| read_pending(conn, limit, max_alerts))
                .await?;
            let set_aside = !unreadable.is_empty();
            for (id, reason) in unreadable {
                tracing::error!(id, %reason, "journaled webhook cannot be read back; set aside, not processed");
                self.write(move |conn| set_aside_unreadable(conn, id, &reason))
                    .await?;
            }
            // A batch of only unreadable webhooks: look again for the rest.
            if !batch.is_empty() || !set_aside {
                return Ok(batch);
            }
        }
    }

    /// The raw body and parsed form of a webhook, for replay.
    pub async fn webhook(&self, id: i64) -> Result<Option<(Vec<u8>, Notification)>, JournalError> {
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT raw, raw_encoding FROM webhooks WHERE id = ?1",
                    [id],
                    |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()?;
            let Some((stored, encoding)) = row else {
                return Ok(None);
            };
            read_back(id, &encoding, stored).map(Some)
        })
        .await
    }

    /// Lists events newest first, filtered; returns the page and whether
    /// older events remain.
    pub async fn events(&self, q: EventQuery) -> Result<(Vec<Event>, bool), JournalError> {
        self.read(move |conn| {
            let mut sql = String::from("SELECT id FROM webhooks w WHERE 1=1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(before) = q.before {
                sql.push_str(" AND w.id < ?");
                args.push(before.into());
            }
            for (column, value) in [
                ("alertname", &q.alertname),
                ("namespace", &q.namespace),
                ("decision", &q.decision),
            ] {
                if let Some(v) = value {
                    sql.push_str(&format!(
                        " AND EXISTS (SELECT 1 FROM alerts a WHERE a.webhook_id = w.id AND a.{column} = ?)"
                    ));
                    args.push(v.clone().into());
                }
            }
            sql.push_str(" ORDER BY w.id DESC LIMIT ?");
            args.push(((q.limit + 1) as i64).into());
            let mut stmt = conn.prepare(&sql)?;
            let mut ids = stmt
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, i64>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let more = ids.len() > q.limit;
            ids.truncate(q.limit);
            let events = ids
                .into_iter()
                .map(|id| load_event(conn, id, false).map(|e| e.expect("listed id exists")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((events, more))
        })
        .await
    }

    /// One event with its payload and replays.
    pub async fn event(&self, id: i64) -> Result<Option<Event>, JournalError> {
        self.read(move |conn| load_event(conn, id, true)).await
    }

    /// Runs `f` on the writer thread inside the next group-commit
    /// transaction (in a savepoint of its own); returns its result once
    /// committed. For stages that keep their own tables (holds, outbox).
    pub async fn write<T, F>(&self, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = TypedJob {
            f: Some(f),
            out: None,
            reply: tx,
        };
        self.writer
            .send(Write::Job(Box::new(job)))
            .map_err(|_| JournalError::WriterGone)?;
        rx.await.map_err(|_| JournalError::WriterGone)?
    }

    /// Runs `f` on the read connection (WAL: beside the writer).
    pub async fn read<T, F>(&self, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            f(&conn)
        })
        .await
        .map_err(|_| JournalError::WriterGone)?
    }
}

fn configure(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk before the webhook is acknowledged, even if
    // the machine (not only the process) fails right after.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal schema version {version} is newer than this rollbackd ({}); refusing to touch it",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

fn run_writer(
    mut conn: Connection,
    rx: mpsc::Receiver<Write>,
    max_batch: usize,
    on_commit: Option<CommitObserver>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let size = batch.len();
        commit_batch(&mut conn, batch);
        if let Some(observe) = &on_commit {
            observe(started.elapsed(), size);
        }
    }
}

/// Applies a batch in one transaction. If the transaction fails as a whole,
/// every write in it fails: none of them was acknowledged.
fn commit_batch(conn: &mut Connection, batch: Vec<Write>) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch, &e),
    };
    // Each write runs inside a savepoint so one bad write does not fail its
    // neighbours; its result is delivered only after the commit.
    let mut results: Vec<(Write, Result<i64, JournalError>)> = Vec::with_capacity(batch.len());
    let mut tx = tx;
    for mut write in batch {
        let result = if matches!(write, Write::Append(..)) {
            // One INSERT: SQLite undoes a failed statement by itself, so the
            // hot path needs no savepoint of its own.
            apply(&tx, &mut write)
        } else {
            match tx.savepoint() {
                Ok(sp) => match apply(&sp, &mut write) {
                    Ok(v) => sp.commit().map(|_| v).map_err(JournalError::from),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e.into()),
            }
        };
        results.push((write, result));
    }
    if let Err(e) = tx.commit() {
        let writes = results.into_iter().map(|(w, _)| w).collect();
        return fail_all(writes, &e);
    }
    for (write, result) in results {
        deliver(write, result);
    }
}

fn apply(conn: &Connection, write: &mut Write) -> Result<i64, JournalError> {
    match write {
        Write::Job(job) => job.apply(conn).map(|_| 0),
        Write::Append(w, _) => append_webhook(conn, w),
        Write::Complete(w, outcomes, _) => {
            complete_webhook(conn, w.id, &w.notification, outcomes).map(|_| w.id)
        }
        Write::Action(id, index, action, _) => {
            insert_action(conn, *id, *index, action)?;
            Ok(*id)
        }
        Write::Probe(_) => {
            conn.execute_batch("CREATE TEMP TABLE IF NOT EXISTS probe(x); DELETE FROM probe;")?;
            Ok(0)
        }
    }
}

fn append_webhook(conn: &Connection, w: &StoredWebhook) -> Result<i64, JournalError> {
    let n = &w.summary;
    conn.prepare_cached(
        "INSERT INTO webhooks (received_at, source, replay_of, dry_run, raw, raw_encoding,
                               receiver, group_key, status, alert_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        w.received_at.to_string(),
        w.source.as_str(),
        w.replay_of,
        w.dry_run,
        w.body,
        LZ4,
        n.receiver,
        n.group_key,
        n.status.as_str(),
        n.alerts as i64,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Writes each alert with its decision and actions. Alert rows are written
/// here rather than at intake: the acknowledgement path stays one insert.
fn complete_webhook(
    conn: &Connection,
    id: i64,
    notification: &Notification,
    outcomes: &[AlertOutcome],
) -> Result<(), JournalError> {
    let now = Timestamp::now().to_string();
    let mut insert = conn.prepare_cached(
        "INSERT INTO alerts (webhook_id, idx, alertname, namespace, severity, status, fingerprint,
                             starts_at, decision, decision_json, decided_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for o in outcomes {
        let a = notification
            .alerts
            .get(o.index)
            .ok_or_else(|| JournalError::Corrupt {
                id,
                reason: format!("no alert #{}", o.index),
            })?;
        let json = serde_json::to_string(&o.decision).expect("decision serializes");
        insert.execute(params![
            id,
            o.index as i64,
            a.name(),
            a.labels.get("namespace"),
            a.labels.get("severity"),
            a.status.as_str(),
            a.fingerprint,
            a.starts_at.to_string(),
            o.decision.kind.as_str(),
            json,
            now
        ])?;
        for action in &o.actions {
            insert_action(conn, id, o.index, action)?;
        }
    }
    let changed = conn
        .prepare_cached(
            "UPDATE webhooks SET processed_at = ?2 WHERE id = ?1 AND processed_at IS NULL",
        )?
        .execute(params![id, now])?;
    if changed == 0 {
        return Err(JournalError::Corrupt {
            id,
            reason: "webhook missing or already processed".into(),
        });
    }
    Ok(())
}

/// A timestamp whose text sorts as the time does (fixed nanosecond width),
/// for comparisons in SQL.
fn sortable(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

fn select_holds(conn: &Connection, filter: &str, arg: &str) -> Result<Vec<Hold>, JournalError> {
    let sql = format!(
        "SELECT id, episode, webhook_id, idx, due_at, decision_json, dry_run FROM holds {filter}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([arg], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, bool>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(id, episode, webhook_id, idx, due_at, decision, dry_run)| {
                let corrupt = |reason: String| JournalError::Corrupt { id, reason };
                Ok(Hold {
                    id,
                    episode,
                    webhook_id,
                    index: idx as usize,
                    due_at: due_at
                        .parse()
                        .map_err(|e: jiff::Error| corrupt(e.to_string()))?,
                    decision: serde_json::from_str(&decision)
                        .map_err(|e| corrupt(e.to_string()))?,
                    dry_run,
                })
            },
        )
        .collect()
}

fn set_hold_state(
    conn: &Connection,
    id: i64,
    state: &str,
    now: Timestamp,
) -> Result<(), JournalError> {
    conn.prepare_cached("UPDATE holds SET state = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, state, now.to_string()])?;
    Ok(())
}

fn insert_action(
    conn: &Connection,
    id: i64,
    index: usize,
    a: &ActionRecord,
) -> Result<(), JournalError> {
    conn.prepare_cached(
        "INSERT INTO actions (webhook_id, idx, at, action, outcome, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id,
        index as i64,
        a.at.to_string(),
        a.action,
        a.outcome,
        a.detail
    ])?;
    Ok(())
}

fn deliver(write: Write, result: Result<i64, JournalError>) {
    // A caller that stopped waiting (request cancelled) is not an error.
    match write {
        Write::Job(job) => match result {
            Ok(_) => job.succeed(),
            Err(e) => job.fail(e),
        },
        Write::Append(_, reply) => {
            let _ = reply.send(result);
        }
        Write::Complete(_, _, reply) | Write::Action(_, _, _, reply) | Write::Probe(reply) => {
            let _ = reply.send(result.map(|_| ()));
        }
    }
}

fn fail_all(batch: Vec<Write>, e: &rusqlite::Error) {
    tracing::error!(error = %e, writes = batch.len(), "journal commit failed");
    for write in batch {
        deliver(write, Err(JournalError::Commit(e.to_string())));
    }
}

/// The raw body of webhook `id` and its parsed form, from the stored body.
/// The raw body is what is stored (the parse is deterministic, and one copy
/// keeps the acknowledgement path to one small insert); it parsed when it
/// was accepted.
fn read_back(
    id: i64,
    encoding: &str,
    stored: Vec<u8>,
) -> Result<(Vec<u8>, Notification), JournalError> {
    let raw = stored_body(id, encoding, stored)?;
    let n = crate::core::parse::parse_notification(&raw).map_err(|e| JournalError::Corrupt {
        id,
        reason: e.to_string(),
    })?;
    Ok((raw, n))
}

/// A `webhooks` row as [`load_event`] reads it.
struct StoredEvent {
    received_at: String,
    source: String,
    replay_of: Option<i64>,
    dry_run: bool,
    processed_at: Option<String>,
    stored: Vec<u8>,
    encoding: String,
    receiver: String,
    group_key: String,
    status: String,
    unreadable: Option<String>,
}

fn load_event(conn: &Connection, id: i64, detail: bool) -> Result<Option<Event>, JournalError> {
    let row = conn
        .prepare_cached(
            "SELECT received_at, source, replay_of, dry_run, processed_at, raw, raw_encoding,
                    receiver, group_key, status, unreadable
             FROM webhooks WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(StoredEvent {
                received_at: r.get(0)?,
                source: r.get(1)?,
                replay_of: r.get(2)?,
                dry_run: r.get(3)?,
                processed_at: r.get(4)?,
                stored: r.get(5)?,
                encoding: r.get(6)?,
                receiver: r.get(7)?,
                group_key: r.get(8)?,
                status: r.get(9)?,
                unreadable: r.get(10)?,
            })
        })
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (raw, n) = match read_back(id, &row.encoding, row.stored) {
        Ok((raw, n)) => (raw, n),
        // Shown from the group fields stored beside it, with the reason,
        // so one damaged row does not hide the others.
        Err(JournalError::Corrupt { reason, .. }) => {
            return Ok(Some(Event {
                id,
                received_at: row.received_at,
                source: Source::from_db(&row.source),
                replay_of: row.replay_of,
                dry_run: row.dry_run,
                receiver: row.receiver,
                group_key: row.group_key,
                status: match row.status.as_str() {
                    "resolved" => AlertStatus::Resolved,
                    _ => AlertStatus::Firing,
                },
                processed_at: row.processed_at,
                unreadable: Some(row.unreadable.unwrap_or(reason)),
                alerts: Vec::new(),
                replays: None,
                payload: None,
            }));
        }
        Err(e) => return Err(e),
    };

    let mut decisions = conn.prepare_cached(
        "SELECT idx, decision_json FROM alerts WHERE webhook_id = ?1 ORDER BY idx",
    )?;
    let decisions: Vec<(usize, Option<String>)> = decisions
        .query_map([id], |r| Ok((r.get::<_, i64>(0)? as usize, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut actions = conn.prepare_cached(
        "SELECT idx, at, action, outcome, detail FROM actions WHERE webhook_id = ?1 ORDER BY id",
    )?;
    let actions: Vec<(usize, ActionRecord)> = actions
        .query_map([id], |r| {
            let at: String = r.get(1)?;
            Ok((
                r.get::<_, i64>(0)? as usize,
                ActionRecord {
                    at: at.parse().unwrap_or(Timestamp::UNIX_EPOCH),
                    action: r.get(2)?,
                    outcome: r.get(3)?,
                    detail: r.get(4)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;

    let alerts = n
        .alerts
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let decision = decisions
                .iter()
                .find(|(i, _)| *i == index)
                .and_then(|(_, d)| d.as_deref())
                .map(serde_json::from_str::<Decision>)
                .transpose()
                .map_err(|e| JournalError::Corrupt {
                    id,
                    reason: e.to_string(),
                })?;
            Ok(EventAlert {
                index,
                alertname: a.name().to_string(),
                namespace: a.labels.get("namespace").cloned(),
                severity: a.labels.get("severity").cloned(),
                status: a.status,
                fingerprint: a.fingerprint.clone(),
                starts_at: a.starts_at.to_string(),
                decision,
                actions: actions
                    .iter()
                    .filter(|(i, _)| *i == index)
                    .map(|(_, a)| a.clone())
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, JournalError>>()?;

    let (replays, payload) = if detail {
        let mut stmt =
            conn.prepare_cached("SELECT id FROM webhooks WHERE replay_of = ?1 ORDER BY id")?;
        let replays = stmt
            .query_map([id], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        // The raw body was valid JSON when accepted.
        let payload = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
        (Some(replays), Some(payload))
    } else {
        (None, None)
    };

    Ok(Some(Event {
        id,
        received_at: row.received_at,
        source: Source::from_db(&row.source),
        replay_of: row.replay_of,
        dry_run: row.dry_run,
        receiver: n.receiver,
        group_key: n.group_key,
        status: n.status,
        processed_at: row.processed_at,
        unreadable: row.unreadable,
        alerts,
        replays,
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::parse::parse_notification;

    const FIRING: &[u8] = include_bytes!("../tests/fixtures/alertmanager-0.25-firing-group.json");

    fn webhook() -> NewWebhook {
        NewWebhook {
            source: Source::Alertmanager,
            replay_of: None,
            dry_run: true,
            raw: FIRING.to_vec(),
            summary: parse_notification(FIRING).unwrap().into(),
            received_at: "2026-11-22T12:50:42Z".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn appended_webhook_survives_reopen_and_is_pending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let id = {
            let j = Journal::open(&path, JournalOptions::default(), None).unwrap();
            j.append(webhook()).await.unwrap()
        };
        let j = Journal::open(&path, JournalOptions::default(), None).unwrap();
        let pending = j.pending(10, 1000).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].id, id);
        assert_eq!(pending[0].notification.alerts.len(), 4);
        let (raw, _) = j.webhook(id).await.unwrap().unwrap();
        assert_eq!(raw, FIRING, "raw body kept byte for byte");
    }

    #[tokio::test]
    async fn bodies_are_stored_compressed_and_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let j = Journal::open(&path, JournalOptions::default(), None).unwrap();
        let id = j.append(webhook()).await.unwrap();
        let (stored, encoding): (Vec<u8>, String) = Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT raw, raw_encoding FROM webhooks WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(encoding, "lz4");
        assert!(
            stored.len() * 2 < FIRING.len(),
            "{} bytes stored for a {}-byte body",
            stored.len(),
            FIRING.len()
        );
        assert_eq!(j.webhook(id).await.unwrap().unwrap().0, FIRING);
        assert_eq!(j.pending(1, 100).await.unwrap()[0].raw, FIRING);
        let event = j.event(id).await.unwrap().unwrap();
        assert_eq!(
            event.payload.unwrap(),
            serde_json::from_slice::<serde_json::Value>(FIRING).unwrap()
        );
    }

    #[tokio::test]
    async fn bodies_journaled_before_compression_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        {
            // A journal at schema version 2, as the previous release left it.
            let mut conn = Connection::open(&path).unwrap();
            for (i, sql) in MIGRATIONS[..2].iter().enumerate() {
                let tx = conn.transaction().unwrap();
                tx.execute_batch(sql).unwrap();
                tx.pragma_update(None, "user_version", (i + 1) as i64)
                    .unwrap();
                tx.commit().unwrap();
            }
            conn.execute(
                "INSERT INTO webhooks (received_at, source, dry_run, raw, receiver,
                                       group_key, status, alert_count)
                 VALUES ('2026-11-22T12:50:42Z', 'alertmanager', 1, ?1, 'r', '{}', 'firing', 4)",
                [FIRING],
            )
            .unwrap();
        }
        let j = Journal::open(&path, JournalOptions::default(), None).unwrap();
        assert_eq!(j.webhook(1).await.unwrap().unwrap().0, FIRING);
        let pending = j.pending(10, 100).await.unwrap();
        assert_eq!(pending[0].raw, FIRING);
        assert_eq!(pending[0].notification.alerts.len(), 4);
        // New bodies are compressed beside the old ones.
        let id = j.append(webhook()).await.unwrap();
        assert_eq!(j.webhook(id).await.unwrap().unwrap().0, FIRING);
    }

    #[tokio::test]
    async fn a_damaged_stored_body_is_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let j = Journal::open(&path, JournalOptions::default(), None).unwrap();
        let id = j.append(webhook()).await.unwrap();
        let damage = |raw: &[u8], encoding: &str| {
            Connection::open(&path)
                .unwrap()
                .execute(
                    "UPDATE webhooks SET raw = ?2, raw_encoding = ?3 WHERE id = ?1",
                    params![id, raw, encoding],
                )
                .unwrap();
        };
        let mut truncated = lz4_flex::compress_prepend_size(FIRING);
        truncated.truncate(truncated.len() / 2);
        let mut huge = lz4_flex::compress_prepend_size(FIRING);
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        for (raw, encoding, reason) in [
            (&truncated[..], "lz4", "stored body does not decompress"),
            (&huge[..], "lz4", "stored body claims 4294967295 bytes from"),
            (&[1, 2][..], "lz4", "stored body is shorter than its length"),
            (FIRING, "gzip", "unknown body encoding \"gzip\""),
        ] {
            damage(raw, encoding);
            let err = j.webhook(id).await.unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("journal row {id} is unreadable: {reason}")),
                "{encoding}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn unreadable_webhooks_are_set_aside_and_the_next_ones_come() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let j = Journal::open(&path, JournalOptions::default(), None).unwrap();
        for _ in 0..4 {
            j.append(webhook()).await.unwrap();
        }
        // A whole batch's worth of damage (1 and 2), then a good one.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "UPDATE webhooks SET raw_encoding = 'zstd' WHERE id IN (1, 2);
                 UPDATE webhooks SET raw = X'00' WHERE id = 4;",
            )
            .unwrap();
        let ids = |b: Vec<PendingWebhook>| b.iter().map(|w| w.id).collect::<Vec<_>>();
        // 1 and 2 fill the first read; the next one brings 3 and 4.
        assert_eq!(ids(j.pending(2, 100).await.unwrap()), [3]);
        assert_eq!(j.pending_count().await.unwrap(), 1, "only 3 still waits");
        let event = j.event(1).await.unwrap().unwrap();
        assert_eq!(
            event.unreadable.as_deref(),
            Some("unknown body encoding \"zstd\"")
        );
        assert!(event.processed_at.is_some() && event.alerts.is_empty());
        assert_eq!(
            j.event(4).await.unwrap().unwrap().unreadable.as_deref(),
            Some("stored body is shorter than its length")
        );
        assert!(j.event(3).await.unwrap().unwrap().unreadable.is_none());
    }

    #[tokio::test]
    async fn a_batch_of_pending_webhooks_is_bounded_by_its_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db"), JournalOptions::default(), None).unwrap();
        for _ in 0..5 {
            j.append(webhook()).await.unwrap(); // 4 alerts each
        }
        let ids = |b: Vec<PendingWebhook>| b.iter().map(|w| w.id).collect::<Vec<_>>();
        assert_eq!(ids(j.pending(10, 12).await.unwrap()), [1, 2, 3]);
        assert_eq!(ids(j.pending(10, 13).await.unwrap()), [1, 2, 3]);
        assert_eq!(ids(j.pending(2, 100).await.unwrap()), [1, 2]);
        // The oldest always comes, even alone over the bound.
        assert_eq!(ids(j.pending(10, 1).await.unwrap()), [1]);
    }

    #[test]
    fn queued_appends_are_committed_together_and_all_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let mut conn = Connection::open(&path).unwrap();
        configure(&conn, Duration::from_secs(1)).unwrap();
        migrate(&mut conn).unwrap();
        // 200 writes queued before the writer runs, as under a burst.
        let (tx, rx) = mpsc::channel();
        let replies: Vec<_> = (0..200)
            .map(|_| {
                let (reply, wait) = oneshot::channel();
                tx.send(Write::Append(
                    Box::new(StoredWebhook::new(webhook())),
                    reply,
                ))
                .unwrap();
                wait
            })
            .collect();
        drop(tx);
        let commits = Arc::new(Mutex::new(Vec::new()));
        let seen = commits.clone();
        let observer: CommitObserver = Arc::new(move |_, n| seen.lock().unwrap().push(n));
        run_writer(conn, rx, 128, Some(observer));
        assert_eq!(
            *commits.lock().unwrap(),
            vec![128, 72],
            "two transactions, bounded by max_batch"
        );
        let ids: Vec<i64> = replies
            .into_iter()
            .map(|r| r.blocking_recv().unwrap().unwrap())
            .collect();
        assert_eq!(ids, (1..=200).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn locked_database_fails_the_write_instead_of_acknowledging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let options = JournalOptions {
            busy_timeout: Duration::from_millis(20),
            ..Default::default()
        };
        let j = Journal::open(&path, options, None).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let err = j.append(webhook()).await.unwrap_err();
        assert!(err.to_string().contains("database is locked"), "{err}");
        assert!(j.probe_writable().await.is_err());
        other.execute_batch("ROLLBACK").unwrap();
        assert!(
            j.pending(10, 1000).await.unwrap().is_empty(),
            "nothing half-written"
        );
        j.append(webhook()).await.unwrap();
    }

    #[tokio::test]
    async fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Journal::open(&path, JournalOptions::default(), None)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("schema version 99 is newer"),
            "{err}"
        );
    }
}
