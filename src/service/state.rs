//! The shared state: one `Clone` struct of handles, built in one place.
//! Defined here, below the worker and the HTTP layer that use it, and
//! importing neither (the server that starts them is `server`).

use std::sync::Arc;

use tokio::sync::{Notify, Semaphore};

use crate::adapters::cluster::Cluster;
use crate::adapters::journal::{CommitObserver, Journal, JournalError, JournalOptions};
use crate::adapters::lease::{ElectionError, Leadership};
use crate::adapters::metrics::Metrics;
use crate::adapters::report::Reporter;
use crate::core::clock::Clock;
use crate::core::rules::{Rules, RulesError};
use crate::service::config::{RulesSource, Settings};
use crate::service::guard::Guard;

/// Everything a request handler or the worker shares.
#[derive(Clone)]
pub struct AppState {
    /// Resolved settings (listen address, auth, limits, dry-run).
    pub settings: Arc<Settings>,
    /// The decision matrix, loaded and validated at start-up.
    pub rules: Arc<Rules>,
    /// The durable journal.
    pub journal: Journal,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Wakes the worker when new work is journaled.
    pub work_ready: Arc<Notify>,
    /// Bytes of webhook bodies being read, parsed and journaled at once:
    /// a storm of large groups waits here instead of being held parsed
    /// all together (one permit per byte).
    pub intake_budget: Arc<Semaphore>,
    /// Namespaces, change correlation, GitOps, rate limits and the breaker.
    pub guard: Arc<Guard>,
    /// The Kubernetes API, through the undo engine.
    pub cluster: Cluster,
    /// Reports incidents to Slack through the journal's outbox.
    pub reporter: Reporter,
    /// Leader, follower, or the only replica.
    pub leadership: Leadership,
}

impl AppState {
    /// Tells the worker there is work in the journal.
    pub fn wake_worker(&self) {
        self.work_ready.notify_one();
    }
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Rules refused.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// Journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Leader election could not start.
    #[error(transparent)]
    Election(#[from] ElectionError),
    /// Leader election on a wildcard listen address without an address to
    /// advertise.
    #[error(
        "leader election: set ROLLBACKD_ADVERTISE_ADDRESS (pod IP:port); the listen address {0} is not one peers can reach"
    )]
    NoAdvertiseAddress(std::net::SocketAddr),
    /// The rules want every alert to name its cluster, but this replica
    /// has no name to compare it with.
    #[error(
        "the rules set guard.require_cluster_label, but no cluster name is configured: set ROLLBACKD_CLUSTER_NAME (--cluster-name)"
    )]
    NoClusterName,
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// Address.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Webhook bytes in flight at once: 8 MiB (about 8 groups of 1,000 alerts
/// and their parsed form), or one body of the largest size accepted.
/// Alertmanager's usual small groups never wait; bench/README.md (RSS).
pub const INTAKE_BUDGET_BYTES: usize = 8 << 20;

fn intake_budget(max_body_bytes: usize) -> usize {
    INTAKE_BUDGET_BYTES
        .max(max_body_bytes)
        .min(Semaphore::MAX_PERMITS)
}

/// Loads rules from where the settings say.
pub fn load_rules(source: &RulesSource) -> Result<Rules, RulesError> {
    match source {
        RulesSource::Dir(dir) => crate::adapters::rules_dir::load_dir(dir),
        RulesSource::Embedded => Ok(Rules::embedded_default()),
    }
}

impl AppState {
    /// Builds the state: loads rules, opens the journal, registers metrics.
    pub fn build(
        settings: Settings,
        clock: Arc<dyn Clock>,
        journal_options: JournalOptions,
        cluster: Cluster,
    ) -> Result<AppState, StartError> {
        let rules = load_rules(&settings.rules)?;
        if rules.guard.require_cluster_label && settings.cluster_name.is_none() {
            return Err(StartError::NoClusterName);
        }
        let metrics = Arc::new(Metrics::new());
        let observed = metrics.clone();
        let observer: CommitObserver = Arc::new(move |took, n| observed.journal_commit(took, n));
        let journal = Journal::open(&settings.journal, journal_options, Some(observer))?;
        let reporter = Reporter::with_metrics(
            settings.slack.clone(),
            journal.clone(),
            clock.clone(),
            metrics.slack.clone(),
        );
        let guard = Arc::new(Guard::new(rules.guard.clone(), clock.clone()));
        let intake_budget = Arc::new(Semaphore::new(intake_budget(settings.max_body_bytes)));
        Ok(AppState {
            settings: Arc::new(settings),
            rules: Arc::new(rules),
            journal,
            metrics,
            clock,
            work_ready: Arc::new(Notify::new()),
            intake_budget,
            guard,
            cluster,
            reporter,
            leadership: Leadership::single(),
        })
    }
}
