//! Webhook: `POST /webhook`, the door Alertmanager knocks on.
//!
//! Checks, in order: credentials (401), content type (415), size (413),
//! payload (400 / 422); then journals the webhook durably and only then
//! answers 200 with a receipt. A journal failure is a 503, so Alertmanager
//! retries. Nothing from a rejected request is acted on.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::Json;
use base64::Engine;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::adapters::journal::{JournalError, NewWebhook, Source, WebhookSummary};
use crate::adapters::metrics::{AuthApi, WebhookOutcome};
use crate::core::parse::parse_notification;
use crate::service::config::WebhookAuth;
use crate::service::http::api::ApiError;
use crate::service::state::AppState;

/// The answer to an accepted webhook.
#[derive(Debug, Serialize)]
pub struct Receipt {
    /// Always `accepted`.
    pub status: &'static str,
    /// Journal id; `GET /api/v1/events/{id}` shows what became of it.
    pub id: i64,
    /// Alerts in the webhook.
    pub alerts: usize,
}

/// `POST /webhook`.
pub async fn receive(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Receipt>, ApiError> {
    let result = accept(&app, &headers, body).await;
    let (outcome, code) = match &result {
        Ok(_) => (WebhookOutcome::accepted, 200),
        Err(e) => (e.webhook_outcome(), e.status().as_u16()),
    };
    app.metrics.webhook(outcome, code);
    if let Err(ApiError::Unauthorized { missing, .. }) = &result {
        auth_failed(app.as_ref(), AuthApi::webhook, *missing, &headers);
    }
    result.map(Json)
}

async fn accept(app: &AppState, headers: &HeaderMap, body: Body) -> Result<Receipt, ApiError> {
    if !app.settings.insecure_no_auth {
        check_webhook_auth(&app.settings.webhook_auth, headers)?;
    }
    check_json_content_type(headers)?;
    let limit = app.settings.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    // Large bodies take their size from the intake budget (a body of
    // unknown length counts as the largest accepted); Alertmanager's usual
    // small groups skip it: they cannot add up to much.
    let weight = declared
        .map_or(limit, |n| n as usize)
        .clamp(1, limit.max(1));
    let _in_flight = match weight > SMALL_BODY {
        true => Some(
            app.intake_budget
                .acquire_many(u32::try_from(weight).unwrap_or(u32::MAX))
                .await
                // Never closed; if it were, the service is going away.
                .map_err(|_| ApiError::Journal(JournalError::WriterGone))?,
        ),
        false => None,
    };
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::TooLarge { limit })?;
    // Only the group fields go on: the raw body is what is journaled.
    let summary = WebhookSummary::from(parse_notification(&raw)?);
    let alerts = summary.alerts;
    let id = app
        .journal
        .append(NewWebhook {
            source: Source::Alertmanager,
            replay_of: None,
            dry_run: app.settings.dry_run,
            raw: raw.to_vec(),
            summary,
            received_at: app.clock.now(),
        })
        .await
        .map_err(ApiError::Journal)?;
    app.wake_worker();
    tracing::debug!(id, alerts, "webhook journaled");
    Ok(Receipt {
        status: "accepted",
        id,
        alerts,
    })
}

/// Bodies up to this size skip the intake budget (64 KiB: a group of
/// about 50 alerts).
const SMALL_BODY: usize = 64 << 10;

/// Accepts `application/json` with any parameters (`; charset=utf-8`).
fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let found = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    let is_json = found.is_some_and(|v| {
        v.split(|b| *b == b';')
            .next()
            .is_some_and(|m| m.trim_ascii().eq_ignore_ascii_case(b"application/json"))
    });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            found: found.map(|v| String::from_utf8_lossy(v).into_owned()),
        })
    }
}

/// Bearer or basic, as Alertmanager's `http_config` sends them; compared in
/// constant time.
pub fn check_webhook_auth(auth: &WebhookAuth, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (scheme, credentials) = presented.split_once(' ').unwrap_or((presented, ""));
    let ok = if scheme.eq_ignore_ascii_case("bearer") {
        auth.bearer
            .as_ref()
            .is_some_and(|t| constant_time_eq(credentials.trim(), t.expose()))
    } else if scheme.eq_ignore_ascii_case("basic") {
        auth.basic.as_ref().is_some_and(|(user, password)| {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials.trim())
                .unwrap_or_default();
            let decoded = String::from_utf8_lossy(&decoded);
            let (u, p) = decoded.split_once(':').unwrap_or(("", ""));
            // Both compared, always, so timing does not tell which was wrong.
            constant_time_eq(u, user) & constant_time_eq(p, password.expose())
        })
    } else {
        false
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unauthorized {
            challenge: challenge(auth),
            missing: presented.is_empty(),
        })
    }
}

/// Checks the operator token on the operator API.
pub fn check_operator_auth(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    // `--insecure-no-auth` is about Alertmanager's webhooks only: the
    // operator API (history, real replays) always needs its own token.
    let Some(token) = &app.settings.operator_token else {
        return Err(ApiError::OperatorApiDisabled);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = presented.split_once(' ').is_some_and(|(s, t)| {
        s.eq_ignore_ascii_case("bearer") && constant_time_eq(t.trim(), token.expose())
    });
    if ok {
        Ok(())
    } else {
        auth_failed(app, AuthApi::operator, presented.is_empty(), headers);
        Err(ApiError::Unauthorized {
            challenge: "Bearer realm=\"rollbackd operator\"".into(),
            missing: presented.is_empty(),
        })
    }
}

/// Counts a refused credential and logs it, rate-limited, with what a
/// person tracing a scanner or a misconfigured Alertmanager needs (never
/// the credential).
fn auth_failed(app: &AppState, api: AuthApi, missing: bool, headers: &HeaderMap) {
    if app.metrics.auth_failure(api, missing) {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let agent: String = agent.chars().take(80).collect();
        tracing::warn!(
            api = ?api,
            reason = if missing { "missing" } else { "wrong" },
            user_agent = %agent.escape_debug(),
            "request refused: bad credentials (further ones within 10 s are only counted, rollbackd_auth_failures_total)"
        );
    }
}

fn challenge(auth: &WebhookAuth) -> String {
    match (&auth.bearer, &auth.basic) {
        (_, None) => "Bearer realm=\"rollbackd\"".into(),
        (None, Some(_)) => "Basic realm=\"rollbackd\", charset=\"UTF-8\"".into(),
        (Some(_), Some(_)) => {
            "Bearer realm=\"rollbackd\", Basic realm=\"rollbackd\", charset=\"UTF-8\"".into()
        }
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
