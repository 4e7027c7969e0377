//! A fake Slack on 127.0.0.1:0: the Web API's `chat.postMessage` and
//! `chat.update` under `/api`, and incoming webhooks under `/services/...`.
//! It records every request (path, headers, JSON body, arrival on tokio's
//! clock) and answers from a script, then from a default answer (`Ok`
//! unless a test sets an outage).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

/// The bot token the fake accepts.
pub const BOT_TOKEN: &str = "xoxb-17-fake-bot-token-s3cr3t";

/// How the fake answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Success: a new message (post), the same message (update), `ok`
    /// (webhook).
    Ok,
    /// HTTP 429 with `Retry-After: secs`.
    TooManyRequests { retry_after: u64 },
    /// This HTTP status (500, 503...) with a short text body.
    Status(u16),
    /// The Web API's HTTP 200 `{"ok": false, "error": ...}`; for a webhook,
    /// HTTP 404 with the error as text (as Slack's webhooks answer).
    Error(&'static str),
    /// `{"ok": false, "error": "ratelimited"}` with `Retry-After: secs`.
    RateLimitedError { retry_after: u64 },
    /// Never answers.
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `/api/chat.postMessage`, `/api/chat.update`, `/services/T../B../..`.
    pub path: String,
    /// Headers, names lower-case.
    pub headers: HashMap<String, String>,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
    /// Arrival on tokio's clock (paused in tests).
    pub at: Instant,
    /// What the fake answered.
    pub answer: Answer,
}

impl Recorded {
    /// The Web API method (`chat.postMessage`), or `webhook`.
    pub fn method(&self) -> &str {
        self.path
            .strip_prefix("/api/")
            .unwrap_or(if self.path.starts_with("/services/") {
                "webhook"
            } else {
                "?"
            })
    }

    /// The header text of the message (first block).
    pub fn header_text(&self) -> String {
        self.body["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    script: VecDeque<Answer>,
    default: Option<Answer>,
    next_ts: u64,
    /// (channel ID, ts) of every message posted.
    messages: Vec<(String, String)>,
}

struct Shared {
    inner: Mutex<Inner>,
    count: watch::Sender<usize>,
}

/// A running fake Slack.
pub struct FakeSlack {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSlack {
    /// Starts on a port the OS picks.
    pub async fn start() -> FakeSlack {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            count: watch::channel(0).0,
        });
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/services/{*path}", post(webhook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeSlack { url, shared, task }
    }

    /// The Web API base URL (`ROLLBACKD_SLACK_API_URL`).
    pub fn api_url(&self) -> String {
        format!("{}/api", self.url)
    }

    /// An incoming webhook URL whose last segment is `secret`.
    pub fn webhook_url(&self, secret: &str) -> String {
        format!("{}/services/T0FAKE/B0FAKE/{secret}", self.url)
    }

    /// Answers the next requests with these, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.shared.inner.lock().unwrap().script.extend(answers);
    }

    /// The answer once the script is used up (`Ok` by default): e.g. an
    /// outage, `Answer::Status(503)`.
    pub fn set_default(&self, answer: Answer) {
        self.shared.inner.lock().unwrap().default = Some(answer);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    /// Requests answered `Ok`.
    pub fn delivered(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.answer == Answer::Ok)
            .collect()
    }

    /// Waits until at least `n` requests arrived (10 minutes of the test's
    /// clock at most: backoffs and Retry-After waits are shorter); returns
    /// them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Recorded> {
        let mut count = self.shared.count.subscribe();
        tokio::time::timeout(Duration::from_secs(600), count.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "fake Slack got {} requests, expected {n}",
                    self.requests().len()
                )
            })
            .unwrap();
        self.requests()
    }
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The channel ID the fake gives a channel name: `#rollbacks` → `CROLLBACKS`.
pub fn channel_id(channel: &str) -> String {
    if channel.starts_with('C')
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return channel.to_string();
    }
    let name: String = channel
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    format!("C{name}")
}

fn record(shared: &Shared, path: String, headers: &HeaderMap, body: &Bytes) -> (Answer, usize) {
    let mut inner = shared.inner.lock().unwrap();
    let answer = inner
        .script
        .pop_front()
        .or_else(|| inner.default.clone())
        .unwrap_or(Answer::Ok);
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    inner.requests.push(Recorded {
        path,
        headers,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        at: Instant::now(),
        answer: answer.clone(),
    });
    inner.next_ts += 1;
    let ts = inner.next_ts as usize;
    let n = inner.requests.len();
    drop(inner);
    shared.count.send_replace(n);
    (answer, ts)
}

async fn api(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(method): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (answer, n) = record(&shared, format!("/api/{method}"), &headers, &body);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match answer {
        Answer::Ok => {}
        Answer::Hang => std::future::pending::<()>().await,
        Answer::TooManyRequests { retry_after } => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after.to_string())],
                axum::Json(json!({"ok": false, "error": "ratelimited"})),
            )
                .into_response()
        }
        Answer::RateLimitedError { retry_after } => {
            return (
                [("retry-after", retry_after.to_string())],
                axum::Json(json!({"ok": false, "error": "ratelimited"})),
            )
                .into_response()
        }
        Answer::Status(code) => {
            return (
                StatusCode::from_u16(code).unwrap(),
                "upstream connect error",
            )
                .into_response()
        }
        Answer::Error(error) => {
            return axum::Json(json!({"ok": false, "error": error})).into_response()
        }
    }
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {BOT_TOKEN}"));
    if !authorized {
        return axum::Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    let channel = request["channel"].as_str().unwrap_or_default();
    match method.as_str() {
        "chat.postMessage" => {
            let channel = channel_id(channel);
            let ts = format!("1764000000.{n:06}");
            shared
                .inner
                .lock()
                .unwrap()
                .messages
                .push((channel.clone(), ts.clone()));
            axum::Json(json!({
                "ok": true, "channel": channel, "ts": ts,
                "message": {"type": "message", "text": request["text"]},
            }))
            .into_response()
        }
        "chat.update" => {
            let ts = request["ts"].as_str().unwrap_or_default().to_string();
            let known = shared
                .inner
                .lock()
                .unwrap()
                .messages
                .contains(&(channel.to_string(), ts.clone()));
            if !known {
                return axum::Json(json!({"ok": false, "error": "message_not_found"}))
                    .into_response();
            }
            axum::Json(json!({"ok": true, "channel": channel, "ts": ts, "text": request["text"]}))
                .into_response()
        }
        _ => axum::Json(json!({"ok": false, "error": "unknown_method"})).into_response(),
    }
}

async fn webhook(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (answer, _) = record(&shared, format!("/services/{path}"), &headers, &body);
    match answer {
        Answer::Ok => (StatusCode::OK, "ok").into_response(),
        Answer::Hang => std::future::pending().await,
        Answer::TooManyRequests { retry_after } | Answer::RateLimitedError { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after.to_string())],
            "rate_limited",
        )
            .into_response(),
        Answer::Status(code) => {
            (StatusCode::from_u16(code).unwrap(), "internal_error").into_response()
        }
        Answer::Error(error) => (StatusCode::NOT_FOUND, error).into_response(),
    }
}
