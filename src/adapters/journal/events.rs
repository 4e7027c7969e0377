//! Event queries: the history the operator API shows.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::core::decide::Decision;
use crate::core::parse::AlertStatus;

use super::intake::{read_back, Source};
use super::outcomes::ActionRecord;
use super::{Journal, JournalError};

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

impl Journal {
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
}
