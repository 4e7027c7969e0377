//! Watch: follows a rollout to its end as `kubectl rollout status` does.
//!
//! [`rollout_status`] is kubectl's verdict (`polymorphichelpers/
//! rollout_status.go`) as a pure function of the object; [`follow`] feeds
//! it the objects a Kubernetes watch delivers, bounded by a deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, WatchEvent, WatchParams};
use kube::Client;

use crate::adapters::cluster::errors::forbidden;
use crate::adapters::cluster::undo::NamespacedObject;
use crate::core::decide::WorkloadKind;
use crate::core::rollout::{rollout_status, RolloutStatus};

/// How following a rollout ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowOutcome {
    /// kubectl would print its success line.
    Healthy {
        /// Time from the start of the watch.
        took: Duration,
        /// kubectl's line.
        message: String,
    },
    /// The rollout cannot finish by itself.
    Stalled {
        /// Why (`ProgressDeadlineExceeded`, deleted, ...).
        reason: String,
    },
    /// The rule's deadline passed first.
    DeadlineMissed {
        /// The last "Waiting for ..." line seen.
        last: String,
    },
}

/// Why the watch itself failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The workload is gone.
    #[error("{0} not found")]
    NotFound(String),
}

/// Pause between attempts after an API error during the watch: long enough
/// not to hammer a struggling API server, short against any deadline.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Server-side watch timeout; the watch is renewed after it (the API
/// server caps watches at a few minutes anyway).
const WATCH_SECONDS: u32 = 290;

/// Follows the rollout of `kind` `namespace/name` until it completes,
/// stalls, or `deadline` passes: a GET, then a watch from that
/// resourceVersion, renewed when the server ends it or drops it.
pub async fn follow(
    client: &Client,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
    deadline: Duration,
) -> Result<FollowOutcome, WatchError> {
    let started = tokio::time::Instant::now();
    let last = Arc::new(Mutex::new(String::new()));
    let watching = async {
        match kind {
            WorkloadKind::Deployment => {
                follow_typed::<Deployment>(client, kind, namespace, name, &last).await
            }
            WorkloadKind::StatefulSet => {
                follow_typed::<StatefulSet>(client, kind, namespace, name, &last).await
            }
            WorkloadKind::DaemonSet => {
                follow_typed::<DaemonSet>(client, kind, namespace, name, &last).await
            }
        }
    };
    match tokio::time::timeout(deadline, watching).await {
        Ok(Ok(Ok(message))) => Ok(FollowOutcome::Healthy {
            took: started.elapsed(),
            message,
        }),
        Ok(Ok(Err(reason))) => Ok(FollowOutcome::Stalled { reason }),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(FollowOutcome::DeadlineMissed {
            last: last.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }),
    }
}

/// Ok(Ok(line)) complete, Ok(Err(reason)) stalled.
async fn follow_typed<K>(
    client: &Client,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
    last: &Mutex<String>,
) -> Result<Result<String, String>, WatchError>
where
    K: NamespacedObject,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let verdict = |object: &K| -> Option<Result<String, String>> {
        let value = serde_json::to_value(object).expect("k8s objects serialize");
        match rollout_status(kind, &value) {
            RolloutStatus::Complete(m) => Some(Ok(m)),
            RolloutStatus::Failed(r) => Some(Err(r)),
            RolloutStatus::Progressing(m) => {
                tracing::debug!(workload = name, status = %m, "rollout progressing");
                *last.lock().unwrap_or_else(|p| p.into_inner()) = m;
                None
            }
        }
    };
    // A watch refused by RBAC leaves a GET every RETRY_AFTER: the verdict
    // says so, so the missing verb shows in the journal.
    let mut polled: Option<String> = None;
    let noted = |done: Result<String, String>, polled: &Option<String>| match polled {
        None => done,
        Some(why) => {
            let note = format!(" (followed by polling: {why})");
            done.map(|m| m + &note).map_err(|r| r + &note)
        }
    };
    loop {
        let object = match api.get_opt(name).await {
            Ok(Some(o)) => o,
            Ok(None) => return Err(WatchError::NotFound(format!("{}/{name}", kind.as_str()))),
            Err(e) => {
                tracing::warn!(error = %e, workload = name, "reading the rollout failed; retrying");
                if let Some(why) = forbidden(&e) {
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = why;
                }
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        if let Some(done) = verdict(&object) {
            return Ok(noted(done, &polled));
        }
        let rv = object.meta().resource_version.clone().unwrap_or_default();
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(WATCH_SECONDS);
        let stream = match api.watch(&params, &rv).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, workload = name, "watch failed; retrying");
                if let Some(why) = forbidden(&e) {
                    polled = Some(why);
                }
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        // Until the server ends or drops the watch; then GET and watch again.
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => {
                    if let Some(done) = verdict(&o) {
                        return Ok(noted(done, &polled));
                    }
                }
                Ok(WatchEvent::Deleted(_)) => {
                    return Ok(Err(format!(
                        "{} {name} was deleted during the rollout",
                        kind.as_str()
                    )));
                }
                Ok(WatchEvent::Bookmark(_)) => {}
                Ok(WatchEvent::Error(e)) => {
                    tracing::debug!(error = %e.message, "watch ended by the server");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "watch stream broke");
                    break;
                }
            }
        }
    }
}
