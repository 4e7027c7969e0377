//! Helpers shared by fakekube's black-box tests: a thin HTTP client and a
//! watch-stream reader that waits on events with a deadline, never a sleep.

#![allow(dead_code)]

use fakekube::FakeKube;
use futures_util::StreamExt;
use serde_json::Value;
use std::time::Duration;

/// The kubectl recording: Deployment shop/web at revision 3 and its three
/// ReplicaSets.
pub const FIXTURE: &str = include_str!("../fixtures/shop-web-before-undo.json");
/// The exact body `kubectl rollout undo deployment/web -n shop` sent.
pub const UNDO_PATCH: &str = include_str!("../fixtures/undo-default.patch.json");

/// How long a test waits for something that should happen at once.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub const DEPLOY_WEB: &str = "/apis/apps/v1/namespaces/shop/deployments/web";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";

/// A fake serving the kubectl fixture.
pub async fn fake_with_fixture() -> FakeKube {
    let fake = FakeKube::start().await;
    fake.load_list(FIXTURE).expect("the fixture loads");
    fake
}

/// A plain HTTP client bound to one fake.
pub struct Http {
    client: reqwest::Client,
    base: String,
}

/// (status, body as JSON or `Null`).
pub type Answer = (u16, Value);

impl Http {
    pub fn new(fake: &FakeKube) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: fake.url(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("the fake answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(self.client.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(self.client.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &str) -> Answer {
        let req = self
            .client
            .patch(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_string());
        self.send(req).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.client.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Open a watch (`path` carries the query) and return its event reader.
    pub async fn watch(&self, path: &str) -> Watch {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the fake answers");
        assert_eq!(resp.status().as_u16(), 200, "watch {path}");
        Watch {
            stream: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
        }
    }
}

/// Newline-delimited watch events.
pub struct Watch {
    stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>,
    >,
    buf: Vec<u8>,
}

impl Watch {
    /// The next event, or `None` if the stream ended; panics after
    /// [`DEADLINE`].
    pub async fn next(&mut self) -> Option<Value> {
        tokio::time::timeout(DEADLINE, self.next_inner())
            .await
            .expect("a watch event within the deadline")
    }

    async fn next_inner(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).expect("each line is JSON"));
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }

    /// (type, object name) of the next event.
    pub async fn next_summary(&mut self) -> Option<(String, String)> {
        let ev = self.next().await?;
        Some((
            ev["type"].as_str().unwrap_or_default().to_string(),
            ev["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ))
    }
}

/// Names of a List's items.
pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("a List")
        .iter()
        .map(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}
