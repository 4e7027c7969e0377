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

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

mod events;
mod holds;
mod intake;
pub mod outbox;
mod outcomes;
mod schema;
#[cfg(test)]
mod tests;

pub use events::{Event, EventAlert, EventQuery};
pub use holds::{Hold, HoldStart, NewHold};
use intake::{append_webhook, StoredWebhook};
pub use intake::{NewWebhook, PendingWebhook, Source, WebhookSummary};
use outcomes::{complete_webhook, insert_action};
pub use outcomes::{ActionRecord, AlertOutcome};
use schema::{configure, migrate};

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
        owner_only(path).map_err(|e| open_err(&e))?;
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

    /// Checks that the journal can take a write right now (for `/readyz`).
    pub async fn probe_writable(&self) -> Result<(), JournalError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Write::Probe(tx))
            .map_err(|_| JournalError::WriterGone)?;
        rx.await.map_err(|_| JournalError::WriterGone)?
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

/// The journal holds every alert's labels and annotations: readable by its
/// owner only. A new file is created 0600 before SQLite opens it (SQLite
/// gives `-wal` and `-shm` the database file's mode); an existing file, or
/// its `-wal`/`-shm`, readable by others is narrowed to 0600.
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::metadata(&file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                tracing::warn!(file = %file.display(), mode = format!("{:o}", m.permissions().mode() & 0o777), "journal file readable by others: narrowed to 0600");
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
