//! The cluster, through kube-rs: the only code that talks to the Kubernetes
//! API about workloads.
//!
//! - [`undo`]: exactly what `kubectl rollout undo` does, and safer where
//!   kubectl is unsafe: reads the workload and its history, checks the
//!   episode marker, sends one patch with a resourceVersion precondition,
//!   records a Kubernetes Event. kubectl's rules themselves (revision
//!   choice, template equality, annotations, the patches) are pure, in
//!   `core::undo_plan`.
//! - [`watch`]: follows a rollout as `kubectl rollout status` does; the
//!   verdict is `core::rollout`.
//! - [`gitops`]: writes to GitOps tools' objects (Flux suspend).
//! - [`errors`]: how the API server's errors read (a 403 names the verb).
//! - [`Cluster`]: the connection, or why there is none.

pub mod errors;
pub mod gitops;
pub mod undo;
pub mod watch;

use undo::UndoEngine;

/// The cluster connection, or why there is none. rollbackd starts and
/// journals without a cluster; each rollback it cannot do is recorded with
/// the reason and can be replayed later.
#[derive(Clone)]
pub enum Cluster {
    /// A client built from KUBECONFIG or the in-cluster config.
    Connected(UndoEngine),
    /// No usable configuration; the reason.
    Unavailable(String),
}

impl Cluster {
    /// Builds the client as kubectl finds its configuration (KUBECONFIG,
    /// ~/.kube/config, in-cluster).
    pub async fn infer() -> Cluster {
        match kube::Client::try_default().await {
            Ok(client) => Cluster::Connected(UndoEngine::new(client)),
            Err(e) => Cluster::Unavailable(format!("no Kubernetes configuration: {e}")),
        }
    }

    /// A client for the API server at `url` (plain HTTP), for tests and
    /// local runs against a fake API server.
    pub fn at_url(url: &str) -> Cluster {
        let config = kube::Config::new(url.parse().expect("valid URL"));
        match kube::Client::try_from(config) {
            Ok(client) => Cluster::Connected(UndoEngine::new(client)),
            Err(e) => Cluster::Unavailable(e.to_string()),
        }
    }

    /// The engine, or why there is none.
    pub fn engine(&self) -> Result<&UndoEngine, &str> {
        match self {
            Cluster::Connected(e) => Ok(e),
            Cluster::Unavailable(why) => Err(why),
        }
    }
}
