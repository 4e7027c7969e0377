//! Worker outcomes: each alert's parsed fields, decision and actions,
//! written when the worker completes a webhook.

use jiff::Timestamp;
use rusqlite::{params, Connection};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::core::decide::Decision;
use crate::core::parse::Notification;

use super::intake::PendingWebhook;
use super::{Journal, JournalError, Write};

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

/// Writes each alert with its decision and actions. Alert rows are written
/// here rather than at intake: the acknowledgement path stays one insert.
pub(super) fn complete_webhook(
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

pub(super) fn insert_action(
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

impl Journal {
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
}
