//! Intake writes and the worker's queue: webhooks appended before the
//! acknowledgement (bodies LZ4-compressed), read back pending in order, and
//! set aside when unreadable.

use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::core::parse::{AlertStatus, Notification};

use super::{Journal, JournalError, Write};

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
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Replay => "replay",
        }
    }

    pub(super) fn from_db(s: &str) -> Source {
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
pub(super) struct StoredWebhook {
    source: Source,
    replay_of: Option<i64>,
    dry_run: bool,
    /// The raw body in [`LZ4`].
    body: Vec<u8>,
    summary: WebhookSummary,
    received_at: Timestamp,
}

impl StoredWebhook {
    pub(super) fn new(w: NewWebhook) -> StoredWebhook {
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

pub(super) fn append_webhook(conn: &Connection, w: &StoredWebhook) -> Result<i64, JournalError> {
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

/// The raw body of webhook `id` and its parsed form, from the stored body.
/// The raw body is what is stored (the parse is deterministic, and one copy
/// keeps the acknowledgement path to one small insert); it parsed when it
/// was accepted.
pub(super) fn read_back(
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

impl Journal {
    /// Durably appends a webhook; returns its id once committed.
    pub async fn append(&self, webhook: NewWebhook) -> Result<i64, JournalError> {
        let (tx, rx) = oneshot::channel();
        let stored = Box::new(StoredWebhook::new(webhook));
        self.writer
            .send(Write::Append(stored, tx))
            .map_err(|_| JournalError::WriterGone)?;
        rx.await.map_err(|_| JournalError::WriterGone)?
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
}
