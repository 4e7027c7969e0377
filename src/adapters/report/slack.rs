//! Slack: the two transports and how Slack's answers are read.
//!
//! - Incoming webhook: `POST` the message to the webhook URL; Slack answers
//!   `ok` (plain text), or an HTTP error whose body names it
//!   (`invalid_payload`, `channel_not_found`, `no_service`...).
//! - Bot token: `chat.postMessage` for an incident's first message,
//!   `chat.update` (channel ID + `ts` from the post) afterwards; JSON body,
//!   `Authorization: Bearer`. Slack answers HTTP 200 with `{"ok": false,
//!   "error": "..."}` for its own errors.
//!
//! Every answer becomes an [`Outcome`]: delivered; rate limited (HTTP 429
//! or `ratelimited`, with `Retry-After`); worth a retry (5xx, 408, timeouts,
//! connection errors, Slack's `internal_error`-like errors); message gone
//! (`chat.update` of a deleted message: post a new one); or permanent
//! (anything else: `channel_not_found`, `invalid_auth`, `invalid_blocks`...),
//! which no retry can fix. Error texts never hold the webhook URL or the
//! token.

use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::SlackConfig;
use crate::core::secret::Secret;

/// Slack answers in well under a second; 10 s rides out a slow moment, and
/// a hung connection holds its channel's queue no longer than that before
/// the request is retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connecting is a fraction of the request; a host that does not accept in
/// 5 s is down, and the retry's backoff takes over.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A `Retry-After` beyond an hour is a broken answer; waiting longer would
/// look like a lost report.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How much of an unexpected answer body an error message keeps.
const MAX_ERROR_BODY_CHARS: usize = 200;

/// The outbox's channel for reports sent through an incoming webhook, which
/// posts to the channel it was created for.
pub(super) const WEBHOOK_CHANNEL: &str = "(incoming webhook)";

/// Slack API errors caused by Slack's side, worth retrying.
const TRANSIENT_ERRORS: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];
/// `chat.update` errors meaning the message is gone or can no longer be
/// edited: post a new one.
const MESSAGE_GONE_ERRORS: &[&str] = &[
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
];

/// How one request ended.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    /// Slack took it; for a new bot message, its channel ID and `ts`.
    Delivered { posted: Option<(String, String)> },
    /// Slack asked to slow down; `retry_after` when it said how long.
    RateLimited {
        retry_after: Option<Duration>,
        error: String,
    },
    /// Failed in a way a later attempt may not.
    Retry { error: String },
    /// The message to update is gone: post a new one.
    MessageGone { error: String },
    /// Failed in a way no retry fixes.
    Permanent { error: String },
}

enum Transport {
    Webhook {
        url: Secret,
    },
    Bot {
        token: Secret,
        channel: String,
        api_url: String,
    },
}

/// A configured Slack transport with its HTTP client.
pub(super) struct SlackClient {
    http: reqwest::Client,
    transport: Transport,
}

impl SlackClient {
    /// `None` when Slack is disabled.
    pub(super) fn new(config: SlackConfig) -> Option<SlackClient> {
        let transport = match config {
            SlackConfig::Disabled => return None,
            SlackConfig::Webhook { url } => Transport::Webhook { url },
            SlackConfig::Bot {
                token,
                channel,
                api_url,
            } => Transport::Bot {
                token,
                channel,
                api_url: api_url.trim_end_matches('/').to_string(),
            },
        };
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect would carry the message (and the bot token) to a
            // host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rollbackd/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only fails when the TLS backend cannot start, which with
            // rustls and built-in roots does not happen.
            .expect("the HTTP client for Slack builds");
        Some(SlackClient { http, transport })
    }

    /// The outbox channel for an incident with this override.
    pub(super) fn channel_for(&self, wanted: Option<&str>) -> String {
        match &self.transport {
            Transport::Webhook { .. } => WEBHOOK_CHANNEL.to_string(),
            Transport::Bot { channel, .. } => wanted
                .filter(|c| !c.is_empty())
                .unwrap_or(channel)
                .to_string(),
        }
    }

    /// Where a row queued for `channel` goes now (the configuration may
    /// have changed since it was queued); also the rate-limit key.
    pub(super) fn destination<'a>(&'a self, channel: &'a str) -> &'a str {
        match &self.transport {
            Transport::Webhook { .. } => WEBHOOK_CHANNEL,
            Transport::Bot {
                channel: default, ..
            } if channel == WEBHOOK_CHANNEL => default,
            Transport::Bot { .. } => channel,
        }
    }

    /// Whether only stage changes are posted (a webhook cannot update).
    pub(super) fn posts_stage_changes_only(&self) -> bool {
        matches!(self.transport, Transport::Webhook { .. })
    }

    /// Sends `body` to `channel`: updates `message` (channel ID, ts) when
    /// the incident has one, else posts.
    pub(super) async fn send(
        &self,
        channel: &str,
        body: &Value,
        message: Option<&(String, String)>,
    ) -> Outcome {
        let outcome = match &self.transport {
            Transport::Webhook { url } => self.send_webhook(url, body).await,
            Transport::Bot { token, api_url, .. } => {
                self.send_bot(token, api_url, channel, body, message).await
            }
        };
        self.redact_outcome(outcome)
    }

    async fn send_webhook(&self, url: &Secret, body: &Value) -> Outcome {
        let mut body = body.clone();
        body["unfurl_links"] = false.into();
        body["unfurl_media"] = false.into();
        let response = match self.http.post(url.expose()).json(&body).send().await {
            Ok(r) => r,
            Err(e) => return transport_error(e),
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => return transport_error(e),
        };
        let said = clip(text.trim());
        if status.is_success() {
            return Outcome::Delivered { posted: None };
        }
        let error = format!("incoming webhook: HTTP {}: {said}", status.as_u16());
        classify_status(status, retry_after, error)
    }

    async fn send_bot(
        &self,
        token: &Secret,
        api_url: &str,
        channel: &str,
        body: &Value,
        message: Option<&(String, String)>,
    ) -> Outcome {
        let mut body = body.clone();
        let method = match message {
            Some((channel_id, ts)) => {
                body["channel"] = channel_id.as_str().into();
                body["ts"] = ts.as_str().into();
                "chat.update"
            }
            None => {
                body["channel"] = channel.into();
                body["unfurl_links"] = false.into();
                body["unfurl_media"] = false.into();
                "chat.postMessage"
            }
        };
        let request = self
            .http
            .post(format!("{api_url}/{method}"))
            .header(AUTHORIZATION, format!("Bearer {}", token.expose()))
            // Slack's Web API wants the charset spelled out for JSON.
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string());
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return transport_error(e),
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => return transport_error(e),
        };
        if !status.is_success() {
            let error = format!("{method}: HTTP {}: {}", status.as_u16(), clip(text.trim()));
            return classify_status(status, retry_after, error);
        }
        let answer: ApiAnswer = match serde_json::from_str(&text) {
            Ok(a) => a,
            Err(_) => {
                return Outcome::Retry {
                    error: format!("{method}: unreadable answer: {}", clip(text.trim())),
                }
            }
        };
        if answer.ok {
            let posted = match (method, answer.channel, answer.ts) {
                ("chat.postMessage", Some(channel), Some(ts)) => Some((channel, ts)),
                _ => None,
            };
            return Outcome::Delivered { posted };
        }
        let code = answer.error.unwrap_or_else(|| "unknown_error".into());
        let mut error = format!("{method}: {code}");
        let details = answer
            .response_metadata
            .map(|m| m.messages)
            .unwrap_or_default();
        if !details.is_empty() {
            error.push_str(&format!(" ({})", clip(&details.join("; "))));
        }
        match code.as_str() {
            "ratelimited" | "rate_limited" => Outcome::RateLimited { retry_after, error },
            c if TRANSIENT_ERRORS.contains(&c) => Outcome::Retry { error },
            c if message.is_some() && MESSAGE_GONE_ERRORS.contains(&c) => {
                Outcome::MessageGone { error }
            }
            _ => Outcome::Permanent { error },
        }
    }

    /// Replaces the secrets in an outcome's error text (belt and braces:
    /// the texts are built without URLs, but an error chain could quote
    /// one).
    fn redact_outcome(&self, outcome: Outcome) -> Outcome {
        let redact = |error: String| self.redact(error);
        match outcome {
            Outcome::Delivered { .. } => outcome,
            Outcome::RateLimited { retry_after, error } => Outcome::RateLimited {
                retry_after,
                error: redact(error),
            },
            Outcome::Retry { error } => Outcome::Retry {
                error: redact(error),
            },
            Outcome::MessageGone { error } => Outcome::MessageGone {
                error: redact(error),
            },
            Outcome::Permanent { error } => Outcome::Permanent {
                error: redact(error),
            },
        }
    }

    fn redact(&self, mut text: String) -> String {
        let secret = match &self.transport {
            Transport::Webhook { url } => url.expose(),
            Transport::Bot { token, .. } => token.expose(),
        };
        let mut secrets = vec![secret.to_string()];
        // A webhook URL's path is the credential on its own.
        if let Ok(url) = reqwest::Url::parse(secret) {
            if url.path().len() > 1 {
                secrets.push(url.path().to_string());
            }
        }
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            text = text.replace(s.as_str(), "<secret>");
        }
        text
    }
}

#[derive(Deserialize)]
struct ApiAnswer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    response_metadata: Option<ResponseMetadata>,
}

#[derive(Deserialize)]
struct ResponseMetadata {
    #[serde(default)]
    messages: Vec<String>,
}

fn classify_status(status: StatusCode, retry_after: Option<Duration>, error: String) -> Outcome {
    if status == StatusCode::TOO_MANY_REQUESTS {
        Outcome::RateLimited { retry_after, error }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        Outcome::Retry { error }
    } else {
        Outcome::Permanent { error }
    }
}

/// A request that got no answer: timeouts and connection errors are
/// retried; a request that could not even be built is not. The URL (the
/// webhook's secret) is stripped first.
fn transport_error(e: reqwest::Error) -> Outcome {
    let e = e.without_url();
    let permanent = e.is_builder();
    let mut error = if e.is_timeout() {
        format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        error.push_str(": ");
        error.push_str(&cause.to_string());
        source = cause.source();
    }
    if permanent {
        Outcome::Permanent { error }
    } else {
        Outcome::Retry { error }
    }
}

/// `Retry-After` in seconds, as Slack sends it.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_ERROR_BODY_CHARS {
        return text.to_string();
    }
    let kept: String = text.chars().take(MAX_ERROR_BODY_CHARS).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_slack_means_them() {
        let e = || "x".to_string();
        let retry_in = Some(Duration::from_secs(3));
        assert_eq!(
            classify_status(StatusCode::TOO_MANY_REQUESTS, retry_in, e()),
            Outcome::RateLimited {
                retry_after: retry_in,
                error: e()
            }
        );
        assert_eq!(
            classify_status(StatusCode::SERVICE_UNAVAILABLE, None, e()),
            Outcome::Retry { error: e() }
        );
        assert_eq!(
            classify_status(StatusCode::NOT_FOUND, None, e()),
            Outcome::Permanent { error: e() }
        );
    }

    #[test]
    fn webhook_url_and_its_path_are_redacted() {
        let client = SlackClient::new(SlackConfig::Webhook {
            url: Secret::new("https://hooks.slack.com/services/T0/B0/XYZ"),
        })
        .unwrap();
        assert_eq!(
            client.redact("posting to https://hooks.slack.com/services/T0/B0/XYZ failed".into()),
            "posting to <secret> failed"
        );
        assert_eq!(
            client.redact("path /services/T0/B0/XYZ".into()),
            "path <secret>"
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "999999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
