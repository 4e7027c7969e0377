//! Holds: `rollback-after` waits, journaled so they survive a restart.

use jiff::Timestamp;
use rusqlite::{params, Connection};

use crate::core::decide::Decision;

use super::{Journal, JournalError};

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

impl Journal {
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
}
