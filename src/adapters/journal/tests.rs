//! The journal's tests: durability, compression, group commit, holds.

use super::schema::MIGRATIONS;
use super::*;
use crate::core::parse::parse_notification;
use rusqlite::params;

const FIRING: &[u8] = include_bytes!("../../../tests/fixtures/alertmanager-0.25-firing-group.json");

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

#[tokio::test]
async fn journal_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mode = |suffix: &str| {
        let file = format!("{}{suffix}", path.display());
        std::fs::metadata(file).unwrap().permissions().mode() & 0o777
    };
    {
        let j = Journal::open(&path, JournalOptions::default(), None).unwrap();
        j.append(webhook()).await.unwrap();
        // The process umask (022 here) would have made them 0644.
        for suffix in ["", "-wal", "-shm"] {
            assert_eq!(mode(suffix), 0o600, "j.db{suffix}");
        }
    }
    // A journal from before (0644) is narrowed when opened.
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        if std::path::Path::new(&file).exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let j = Journal::open(&path, JournalOptions::default(), None).unwrap();
    j.append(webhook()).await.unwrap();
    assert_eq!(mode(""), 0o600);
    assert_eq!(mode("-wal"), 0o600);
}
