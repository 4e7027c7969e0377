//! The journal's schema: its migrations, applied in order at open
//! (`PRAGMA user_version` counts them), and the connection settings.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

/// Schema migrations, applied in order; `PRAGMA user_version` counts them.
pub(super) const MIGRATIONS: &[&str] = &[
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

pub(super) fn configure(conn: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk before the webhook is acknowledged, even if
    // the machine (not only the process) fails right after.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
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
