//! Outbox: the journal's `outbox` and `slack_messages` tables.
//!
//! Every report is a row; a row is open while `delivered_at` is NULL. Only
//! the latest open row of an incident is sent; when it is closed (delivered
//! or given up), the incident's older open rows are closed as superseded.
//! `slack_messages` keeps, per incident, the channel ID and `ts` of the
//! message `chat.postMessage` created, so later reports update it.

use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension};

use crate::adapters::journal::{Journal, JournalError};

/// A report to queue.
pub(crate) struct NewRow {
    /// The incident (alert episode) key.
    pub incident: String,
    /// Destination channel (or the webhook marker).
    pub channel: String,
    /// Now.
    pub created_at: Timestamp,
    /// The incident's stage, as stored in the payload.
    pub stage: &'static str,
    /// `{"stage": ..., "body": <Block Kit message>}`.
    pub payload: String,
    /// Incoming webhook: a stage already posted is not posted again.
    pub stage_changes_only: bool,
}

/// An open row, without its payload.
#[derive(Debug, Clone)]
pub(crate) struct OpenRow {
    /// Row id.
    pub id: i64,
    /// Incident key.
    pub incident: String,
    /// Destination channel as queued.
    pub channel: String,
    /// When the last failed attempt asked to be retried.
    pub next_attempt_at: Option<Timestamp>,
}

/// What a send needs besides the row's metadata.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// The stage the payload reports.
    pub stage: String,
    /// The Block Kit body.
    pub body: serde_json::Value,
    /// Requests made for this row so far.
    pub attempts: i64,
    /// The incident's message, once posted: (channel ID, ts).
    pub message: Option<(String, String)>,
}

/// Runs `f` in the journal's next group commit, from a blocking thread.
/// The commit itself happens on the journal's writer thread; waiting for it
/// here rather than on the async runtime (as `Journal::read` does) also
/// keeps a paused test clock from treating the wait as idleness and jumping
/// ahead to the next timer.
pub(crate) async fn write<T, F>(journal: &Journal, f: F) -> Result<T, JournalError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
{
    let journal = journal.clone();
    tokio::task::spawn_blocking(move || futures::executor::block_on(journal.write(f)))
        .await
        .map_err(|_| JournalError::WriterGone)?
}

/// Queues a report; `false` when it would repeat what is already queued or
/// posted (identical payload, or with `stage_changes_only` the same stage
/// as the incident's latest delivered report).
pub(crate) fn insert(conn: &Connection, row: &NewRow) -> Result<bool, JournalError> {
    let latest: Option<(String, bool)> = conn
        .query_row(
            "SELECT payload, delivered_at IS NOT NULL FROM outbox
             WHERE incident = ?1 ORDER BY id DESC LIMIT 1",
            [&row.incident],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((payload, closed)) = latest {
        if payload == row.payload {
            return Ok(false);
        }
        if row.stage_changes_only && closed && stage_of(&payload) == Some(row.stage.to_string()) {
            return Ok(false);
        }
    }
    let now = row.created_at.to_string();
    conn.prepare_cached(
        "INSERT INTO outbox (incident, channel, created_at, payload, attempts, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, 0, ?3)",
    )?
    .execute(params![row.incident, row.channel, now, row.payload])?;
    Ok(true)
}

/// Every open row, oldest first.
pub(crate) fn open_rows(conn: &Connection) -> Result<Vec<OpenRow>, JournalError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, incident, channel, next_attempt_at FROM outbox
         WHERE delivered_at IS NULL ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(OpenRow {
                id: r.get(0)?,
                incident: r.get(1)?,
                channel: r.get(2)?,
                next_attempt_at: r.get::<_, String>(3)?.parse().ok(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// How many rows are open.
pub(crate) fn open_count(conn: &Connection) -> Result<usize, JournalError> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL",
        [],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// The payload, attempt count and the incident's posted message of row
/// `id`.
pub(crate) fn load(conn: &Connection, id: i64) -> Result<Loaded, JournalError> {
    let (incident, payload, attempts): (String, String, i64) = conn.query_row(
        "SELECT incident, payload, attempts FROM outbox WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut value: serde_json::Value =
        serde_json::from_str(&payload).map_err(|e| JournalError::Corrupt {
            id,
            reason: format!("outbox payload: {e}"),
        })?;
    let stage = value["stage"].as_str().unwrap_or("unknown").to_string();
    let body = value["body"].take();
    if !body.is_object() {
        return Err(JournalError::Corrupt {
            id,
            reason: "outbox payload has no message body".into(),
        });
    }
    let message = conn
        .query_row(
            "SELECT channel, ts FROM slack_messages WHERE incident = ?1
             ORDER BY rowid DESC LIMIT 1",
            [&incident],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(Loaded {
        stage,
        body,
        attempts,
        message,
    })
}

/// Closes row `id` as delivered (recording the message a post created) and
/// the incident's older open rows as superseded; returns how many those
/// were.
pub(crate) fn delivered(
    conn: &Connection,
    id: i64,
    at: Timestamp,
    posted: Option<(String, String)>,
) -> Result<usize, JournalError> {
    let incident = close(conn, id, at, None)?;
    if let Some((channel, ts)) = posted {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO slack_messages (incident, channel, ts) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![incident, channel, ts])?;
    }
    supersede(conn, id, &incident, at)
}

/// Closes row `id` as given up with `error`, and the incident's older open
/// rows as superseded; returns how many those were.
pub(crate) fn failed(
    conn: &Connection,
    id: i64,
    at: Timestamp,
    error: &str,
) -> Result<usize, JournalError> {
    let incident = close(conn, id, at, Some(error))?;
    supersede(conn, id, &incident, at)
}

/// Counts a failed attempt on row `id`, keeps its error, and records when
/// it is due again.
pub(crate) fn retry_later(
    conn: &Connection,
    id: i64,
    next_attempt_at: Timestamp,
    error: &str,
) -> Result<(), JournalError> {
    conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
         WHERE id = ?1",
    )?
    .execute(params![id, error, next_attempt_at.to_string()])?;
    Ok(())
}

/// Forgets the incident's posted message (deleted in Slack): the next
/// report posts a new one.
pub(crate) fn forget_message(conn: &Connection, id: i64) -> Result<(), JournalError> {
    conn.prepare_cached(
        "DELETE FROM slack_messages WHERE incident = (SELECT incident FROM outbox WHERE id = ?1)",
    )?
    .execute([id])?;
    Ok(())
}

fn close(
    conn: &Connection,
    id: i64,
    at: Timestamp,
    error: Option<&str>,
) -> Result<String, JournalError> {
    let incident = conn
        .prepare_cached(
            "UPDATE outbox SET attempts = attempts + 1, delivered_at = ?2, last_error = ?3
             WHERE id = ?1 RETURNING incident",
        )?
        .query_row(params![id, at.to_string(), error], |r| r.get(0))?;
    Ok(incident)
}

fn supersede(
    conn: &Connection,
    id: i64,
    incident: &str,
    at: Timestamp,
) -> Result<usize, JournalError> {
    let n = conn
        .prepare_cached(
            "UPDATE outbox SET delivered_at = ?3, last_error = 'superseded by #' || ?2
             WHERE incident = ?1 AND id < ?2 AND delivered_at IS NULL",
        )?
        .execute(params![incident, id, at.to_string()])?;
    Ok(n)
}

fn stage_of(payload: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(payload).ok()?;
    value["stage"].as_str().map(str::to_string)
}
