//! Leader election among replicas, through a Lease (kube-lease-manager).
//!
//! Every replica accepts and journals webhooks. The leader processes them:
//! it alone spends the rate budgets and runs holds. A follower hands each
//! webhook it accepted to the leader (a `POST /webhook` with the same body
//! and credentials, acknowledged only once the leader journaled it) and
//! journals where it went; while no leader is known, the work waits in its
//! journal. The Lease's holder names the leader as `identity@host:port`, so
//! followers know where to send.
//!
//! The Lease is a fence for the budgets, not for the cluster: during a
//! takeover two replicas may both believe they lead for a moment, and a
//! webhook may reach the leader twice (sent by Alertmanager to several
//! replicas, or re-sent after a crash). What keeps a rollback from running
//! twice is the episode marker the undo writes under a resourceVersion test
//! (see `undo`), which every replica checks before acting.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};
use kube::Api;
use kube_lease_manager::{LeaseCreateMode, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::adapters::cluster::errors::describe_kube_error;
use crate::adapters::metrics::Metrics;

/// How replicas elect the one that spends the rate budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElection {
    /// The Lease's name.
    pub lease_name: String,
    /// Its namespace; `None`: the client's default namespace.
    pub namespace: Option<String>,
    /// Seconds the Lease is valid after a renewal.
    pub lease_duration: u64,
    /// Seconds before expiry the leader renews.
    pub renew_grace: u64,
    /// This replica's name.
    pub identity: String,
    /// host:port peers reach this replica at; `None`: the bound listen
    /// address (checked at start).
    pub advertise_address: Option<String>,
}

/// What this replica does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No election: the only replica, processes everything.
    Single,
    /// Holds the Lease: processes, spends budgets, runs holds.
    Leader,
    /// Another replica leads (or none yet): hands webhooks to it.
    Follower,
}

impl Role {
    /// `single`, `leader` or `follower`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Single => "single",
            Role::Leader => "leader",
            Role::Follower => "follower",
        }
    }

    /// Whether this replica processes webhooks and runs holds itself.
    pub fn processes(self) -> bool {
        !matches!(self, Role::Follower)
    }
}

/// The replica leading now, as its Lease says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its name (the pod name).
    pub identity: String,
    /// host:port to reach it at.
    pub address: String,
}

impl Peer {
    /// Reads `identity@host:port`; `None` for a holder not written by
    /// rollbackd.
    pub fn parse(holder: &str) -> Option<Peer> {
        let (identity, address) = holder.rsplit_once('@')?;
        (!identity.is_empty() && address.contains(':')).then(|| Peer {
            identity: identity.to_string(),
            address: address.to_string(),
        })
    }

    /// The Lease's holder string.
    pub fn holder(&self) -> String {
        format!("{}@{}", self.identity, self.address)
    }
}

/// This replica's role, shared by the worker and `/readyz`; cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    role: watch::Receiver<Role>,
    lease: Option<LeaseView>,
    /// A single replica's sender, kept so `changed` pends instead of failing.
    _fixed: Option<std::sync::Arc<watch::Sender<Role>>>,
}

#[derive(Clone)]
struct LeaseView {
    api: Api<Lease>,
    name: String,
    me: Peer,
}

impl Leadership {
    /// No election: always [`Role::Single`].
    pub fn single() -> Leadership {
        let (tx, role) = watch::channel(Role::Single);
        Leadership {
            role,
            lease: None,
            _fixed: Some(std::sync::Arc::new(tx)),
        }
    }

    /// The role now.
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// Resolves when the role changes (never for a single replica).
    pub async fn changed(&mut self) {
        if self.role.changed().await.is_err() {
            // The election ended (shutdown): nothing more will change.
            std::future::pending::<()>().await;
        }
    }

    /// This replica in the Lease, when elections run.
    pub fn me(&self) -> Option<&Peer> {
        self.lease.as_ref().map(|l| &l.me)
    }

    /// The replica holding an unexpired Lease now, read from the API server;
    /// `None` when nobody does, or this replica does.
    pub async fn leader(&self) -> Result<Option<Peer>, kube::Error> {
        let Some(view) = &self.lease else {
            return Ok(None);
        };
        let lease = view.api.get(&view.name).await?;
        let Some(spec) = lease.spec else {
            return Ok(None);
        };
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(renewed), Some(secs)) => {
                let until = renewed
                    .0
                    .checked_add(jiff::SignedDuration::from_secs(i64::from(secs)))
                    .unwrap_or(Timestamp::MAX);
                until <= Timestamp::now()
            }
            _ => true,
        };
        if expired {
            return Ok(None);
        }
        Ok(spec
            .holder_identity
            .as_deref()
            .and_then(Peer::parse)
            .filter(|p| *p != view.me))
    }
}

/// Why the election could not start.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// No cluster to hold a Lease in.
    #[error("leader election needs the Kubernetes API: {0}")]
    NoCluster(String),
    /// The Lease could not be read or created.
    #[error("cannot use Lease {namespace}/{name}: {reason}")]
    Lease {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The running election; [`Election::release`] ends it.
pub struct Election {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// How long shutdown waits for the Lease to be released.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

impl Election {
    /// Joins the election for `settings`' Lease as `me`. The role starts as
    /// follower and turns to leader once the Lease is ours.
    pub async fn start(
        client: kube::Client,
        settings: &LeaderElection,
        me: Peer,
        metrics: std::sync::Arc<Metrics>,
    ) -> Result<(Leadership, Election), ElectionError> {
        let namespace = settings
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let manager = LeaseManagerBuilder::new(client.clone(), &settings.lease_name)
            .with_namespace(&namespace)
            .with_identity(me.holder())
            .with_duration(settings.lease_duration)
            .with_grace(settings.renew_grace)
            .with_create_mode(LeaseCreateMode::AutoCreate)
            .build()
            .await
            .map_err(|e| ElectionError::Lease {
                namespace: namespace.clone(),
                name: settings.lease_name.clone(),
                reason: match e {
                    LeaseManagerError::KubeError(e) => describe_kube_error(&e),
                    other => other.to_string(),
                },
            })?;
        // Taking and renewing the Lease are PATCHes, made later in the
        // manager's loop, which only logs a refusal: without that verb this
        // replica would stay a follower for good. Ask now (a server-side
        // dry run of an empty patch), so start-up says so instead.
        let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
        let dry_run = PatchParams {
            dry_run: true,
            ..Default::default()
        };
        leases
            .patch(
                &settings.lease_name,
                &dry_run,
                &Patch::Merge(serde_json::json!({})),
            )
            .await
            .map_err(|e| ElectionError::Lease {
                namespace: namespace.clone(),
                name: settings.lease_name.clone(),
                reason: describe_kube_error(&e),
            })?;
        let (role_tx, role) = watch::channel(Role::Follower);
        metrics.set_leader(false);
        let (stop, mut stopping) = watch::channel(false);
        let (mut held, lease_task) = manager.watch().await;
        let name = settings.lease_name.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = held.changed() => {
                        if changed.is_err() {
                            tracing::error!(lease = %name, "the Lease manager stopped: this replica no longer takes part in the election");
                            break;
                        }
                        let leader = *held.borrow_and_update();
                        let next = if leader { Role::Leader } else { Role::Follower };
                        tracing::info!(lease = %name, role = next.as_str(), "leadership changed");
                        metrics.set_leader(leader);
                        let _ = role_tx.send(next);
                    }
                    _ = stopping.wait_for(|s| *s) => break,
                }
            }
            // Stop acting as leader before giving the Lease up.
            let _ = role_tx.send(Role::Follower);
            metrics.set_leader(false);
            // Closing the channel makes the manager release the Lease.
            drop(held);
            match tokio::time::timeout(RELEASE_TIMEOUT, lease_task).await {
                Ok(Ok(Ok(_))) => tracing::info!(lease = %name, "Lease released"),
                Ok(Ok(Err(e))) => {
                    tracing::warn!(lease = %name, error = %e, "could not release the Lease; it expires on its own")
                }
                Ok(Err(e)) => tracing::warn!(lease = %name, error = %e, "the Lease manager failed"),
                Err(_) => {
                    tracing::warn!(lease = %name, "releasing the Lease timed out; it expires on its own")
                }
            }
        });
        let leadership = Leadership {
            role,
            lease: Some(LeaseView {
                api: leases,
                name: settings.lease_name.clone(),
                me,
            }),
            _fixed: None,
        };
        Ok((leadership, Election { stop, task }))
    }

    /// Steps down and releases the Lease, so another replica takes over at
    /// once instead of after the Lease expires.
    pub async fn release(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_strings_round_trip() {
        let p = Peer::parse("rollbackd-7d9f-x2k8q@10.0.3.7:9095").unwrap();
        assert_eq!(p.identity, "rollbackd-7d9f-x2k8q");
        assert_eq!(p.address, "10.0.3.7:9095");
        assert_eq!(p.holder(), "rollbackd-7d9f-x2k8q@10.0.3.7:9095");
        assert_eq!(Peer::parse("r-0@[::1]:9095").unwrap().address, "[::1]:9095");
        assert_eq!(Peer::parse("controller-0"), None);
        assert_eq!(Peer::parse("@10.0.0.1:1"), None);
        assert_eq!(Peer::parse("a@host"), None);
    }

    #[test]
    fn only_followers_hand_work_over() {
        assert!(Role::Single.processes());
        assert!(Role::Leader.processes());
        assert!(!Role::Follower.processes());
    }
}
