//! Replay: re-runs a journaled webhook through the pipeline as if it had
//! just arrived. The replay is journaled itself, linked to the original, and
//! dry-run unless the operator asks otherwise.

use serde::Serialize;

use crate::adapters::journal::{NewWebhook, Source};
use crate::service::http::api::ApiError;
use crate::service::state::AppState;

/// The answer to a replay request.
#[derive(Debug, Serialize)]
pub struct ReplayReceipt {
    /// Always `accepted`.
    pub status: &'static str,
    /// Journal id of the replay; `GET /api/v1/events/{id}` shows its outcome.
    pub id: i64,
    /// The webhook replayed.
    pub replay_of: i64,
    /// Whether the replay only records what it would do.
    pub dry_run: bool,
    /// Alerts in the webhook.
    pub alerts: usize,
}

/// Journals a copy of webhook `id` for the worker. A global `--dry-run`
/// wins over `dry_run = false`.
pub async fn replay(app: &AppState, id: i64, dry_run: bool) -> Result<ReplayReceipt, ApiError> {
    let (raw, notification) = app
        .journal
        .webhook(id)
        .await
        .map_err(ApiError::Journal)?
        .ok_or(ApiError::NotFound(id))?;
    let dry_run = dry_run || app.settings.dry_run;
    let alerts = notification.alerts.len();
    let new_id = app
        .journal
        .append(NewWebhook {
            source: Source::Replay,
            replay_of: Some(id),
            dry_run,
            raw,
            summary: notification.into(),
            received_at: app.clock.now(),
        })
        .await
        .map_err(ApiError::Journal)?;
    app.wake_worker();
    tracing::info!(
        replay_of = id,
        id = new_id,
        dry_run,
        "webhook replayed by operator"
    );
    Ok(ReplayReceipt {
        status: "accepted",
        id: new_id,
        replay_of: id,
        dry_run,
        alerts,
    })
}
