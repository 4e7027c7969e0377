//! API: the router, the operator endpoints, and the one place where errors
//! become HTTP responses.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::adapters::journal::{Event, EventQuery, JournalError};
use crate::adapters::metrics::{Format, WebhookOutcome};
use crate::core::parse::ParseError;
use crate::service::http::webhook::{check_operator_auth, receive};
use crate::service::replay::{replay, ReplayReceipt};
use crate::service::state::AppState;

/// Every way a request can fail, with the status and JSON body it gets.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong credentials.
    #[error("{}", if *missing { "credentials required" } else { "invalid credentials" })]
    Unauthorized {
        /// The `WWW-Authenticate` value.
        challenge: String,
        /// No `Authorization` header at all.
        missing: bool,
    },
    /// The operator API needs a token and none is configured.
    #[error("the operator API is disabled: set ROLLBACKD_OPERATOR_TOKEN[_FILE]")]
    OperatorApiDisabled,
    /// Not JSON by content type.
    #[error("content type must be application/json, got {}", found.as_deref().unwrap_or("none"))]
    UnsupportedMediaType {
        /// What the request declared.
        found: Option<String>,
    },
    /// Body over the limit.
    #[error("body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body is not a valid notification.
    #[error(transparent)]
    Payload(#[from] ParseError),
    /// The journal could not take or give the data.
    #[error("{}", journal_message(.0))]
    Journal(JournalError),
    /// No such event.
    #[error("event {0} not found")]
    NotFound(i64),
    /// A bad query parameter.
    #[error("{0}")]
    BadQuery(String),
}

/// A damaged row says so itself; anything else is the journal being
/// unavailable.
fn journal_message(e: &JournalError) -> String {
    match e {
        JournalError::Corrupt { .. } => e.to_string(),
        _ => format!("journal unavailable: {e}"),
    }
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::OperatorApiDisabled => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Payload(ParseError::Malformed { .. }) => StatusCode::BAD_REQUEST,
            ApiError::Payload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            // Asking again will not help: the row itself is damaged.
            ApiError::Journal(JournalError::Corrupt { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Journal(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable machine-readable code for the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::OperatorApiDisabled => "operator_api_disabled",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::Payload(ParseError::Malformed { .. }) => "malformed_json",
            ApiError::Payload(ParseError::UnsupportedVersion { .. }) => "unsupported_version",
            ApiError::Payload(ParseError::Invalid(_)) => "invalid_payload",
            ApiError::Journal(JournalError::Corrupt { .. }) => "journal_row_unreadable",
            ApiError::Journal(_) => "journal_unavailable",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadQuery(_) => "bad_query",
        }
    }

    /// The webhook metric outcome this error counts as.
    pub fn webhook_outcome(&self) -> WebhookOutcome {
        match self {
            ApiError::Unauthorized { .. } | ApiError::OperatorApiDisabled => {
                WebhookOutcome::unauthorized
            }
            ApiError::UnsupportedMediaType { .. } => WebhookOutcome::unsupported_media_type,
            ApiError::TooLarge { .. } => WebhookOutcome::too_large,
            ApiError::Payload(ParseError::Malformed { .. }) => WebhookOutcome::malformed,
            ApiError::Payload(_) | ApiError::BadQuery(_) | ApiError::NotFound(_) => {
                WebhookOutcome::invalid
            }
            ApiError::Journal(_) => WebhookOutcome::journal_unavailable,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        if let ApiError::Payload(ParseError::Malformed { line, column, .. }) = &self {
            body["line"] = json!(line);
            body["column"] = json!(column);
        }
        if let ApiError::Journal(e) = &self {
            tracing::error!(error = %e, status = status.as_u16(), "journal error");
        }
        let mut response = (status, Json(body)).into_response();
        if let ApiError::Unauthorized { challenge, .. } = &self {
            if let Ok(v) = HeaderValue::from_str(challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Alertmanager ignores it, but people and proxies read it.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// All routes. The state is shared behind one `Arc`: each request clones
/// a pointer, not the dozen handles inside.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/webhook", post(receive))
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/events/{id}", get(get_event))
        .route("/api/v1/replay/{id}", post(replay_event))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(state))
}

/// Largest page of `/api/v1/events`.
const MAX_PAGE: usize = 500;
/// Page size when `limit` is not given.
const DEFAULT_PAGE: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsParams {
    alertname: Option<String>,
    namespace: Option<String>,
    decision: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct EventsPage {
    events: Vec<Event>,
    /// Pass as `before` to get the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

async fn list_events(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Result<Query<EventsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventsPage>, ApiError> {
    check_operator_auth(&app, &headers)?;
    let Query(p) = params.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::BadQuery(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    if let Some(d) = &p.decision {
        if !["rollback", "rollback-after", "notify", "ignore"].contains(&d.as_str()) {
            return Err(ApiError::BadQuery(format!(
                "unknown decision {d:?}: expected rollback, rollback-after, notify or ignore"
            )));
        }
    }
    let (events, more) = app
        .journal
        .events(EventQuery {
            alertname: p.alertname,
            namespace: p.namespace,
            decision: p.decision,
            before: p.before,
            limit,
        })
        .await
        .map_err(ApiError::Journal)?;
    let next_before = if more {
        events.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(EventsPage {
        events,
        next_before,
    }))
}

async fn get_event(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Event>, ApiError> {
    check_operator_auth(&app, &headers)?;
    let id = parse_id(&id)?;
    app.journal
        .event(id)
        .await
        .map_err(ApiError::Journal)?
        .map(Json)
        .ok_or(ApiError::NotFound(id))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayParams {
    dry_run: Option<bool>,
}

async fn replay_event(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: Result<Query<ReplayParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ReplayReceipt>, ApiError> {
    check_operator_auth(&app, &headers)?;
    let id = parse_id(&id)?;
    let Query(p) = params.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let receipt = replay(&app, id, p.dry_run.unwrap_or(true)).await?;
    Ok(Json(receipt))
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::BadQuery(format!("event id must be a positive integer, got {id:?}"))
    })
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// How long `/readyz` waits for the API server: below a kubelet probe's
/// default 1 s timeout, so a slow API server shows as "unreachable" in the
/// body instead of failing the probe.
const CLUSTER_PROBE: std::time::Duration = std::time::Duration::from_millis(800);

/// What `/readyz` and the start-up log say without `--cluster-name`.
pub const NO_CLUSTER_CHECK: &str =
    "off: alerts are not checked against a cluster name (set ROLLBACKD_CLUSTER_NAME)";

/// Ready when the journal takes writes and the rules are loaded.
///
/// The probe needs no credentials, so it says only what a probe needs:
/// `reachable`, `unreachable`, `writable`. The details (the API server's
/// version and error text, the journal's error, the cluster name) go to
/// callers that present the operator token.
async fn readyz(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let operator = check_operator_auth(&app, &headers).is_ok();
    let journal = app.journal.probe_writable().await;
    let rules = app.rules.rules.len();
    // The cluster is reported, not required: without it rollbackd still
    // journals (and answers Alertmanager), and rollbacks wait for a replay.
    let (cluster, cluster_detail) = match app.cluster.engine() {
        Ok(engine) => {
            match tokio::time::timeout(CLUSTER_PROBE, engine.client().apiserver_version()).await {
                Ok(Ok(v)) => (
                    "reachable",
                    format!("reachable (Kubernetes {})", v.git_version),
                ),
                Ok(Err(e)) => ("unreachable", format!("unreachable: {e}")),
                Err(_) => (
                    "unreachable",
                    format!("unreachable: no answer within {}s", CLUSTER_PROBE.as_secs()),
                ),
            }
        }
        Err(why) => ("unavailable", format!("unavailable: {why}")),
    };
    let journal_check = match (&journal, operator) {
        (Ok(()), _) => "writable".to_string(),
        (Err(e), true) => e.to_string(),
        (Err(_), false) => "not writable".to_string(),
    };
    let ready = journal.is_ok() && rules > 0;
    let body = json!({
        "ready": ready,
        "checks": {
            "journal": journal_check,
            "rules": format!("{rules} rules loaded"),
            "cluster": if operator { cluster_detail } else { cluster.to_string() },
        },
        "dry_run": app.settings.dry_run,
        // Which cluster alerts must be for (to the operator); whether they
        // are checked at all, said plainly to anyone.
        "cluster_name": match (&app.settings.cluster_name, operator) {
            (Some(name), true) => json!(name),
            _ => json!(null),
        },
        "cluster_check": match &app.settings.cluster_name {
            Some(_) => format!(
                "on: alerts whose {} label names another cluster are refused",
                app.rules.guard.cluster_label
            ),
            None => NO_CLUSTER_CHECK.to_string(),
        },
        "worker": if app.settings.intake_only { "off (intake only)" } else { "running" },
        // Every role is ready: a follower journals webhooks and hands
        // them to the leader.
        "role": app.leadership.role().as_str(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: OpenMetrics when the scraper asks for it (Prometheus
/// does), the classic text format otherwise. The depth gauges are read from
/// the journal first, so they are exact at every scrape, with or without a
/// worker running.
async fn metrics(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let depth = app.journal.depth().await;
    let slack = app.reporter.pending().await;
    match (depth, slack) {
        (Ok(depth), Ok(slack)) => app.metrics.set_depth(depth.webhooks, depth.holds, slack),
        // The last values stay; the scrape still answers.
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot read the journal's depth for /metrics")
        }
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "Accept"),
        ],
        app.metrics.encode(format),
    )
        .into_response()
}
