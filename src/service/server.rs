//! The server's lifecycle: binds, joins the leader election, starts the
//! HTTP layer, the worker and Slack delivery, and stops them in order.

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::adapters::lease::{Election, ElectionError, Peer};
use crate::service::state::{AppState, StartError};
use crate::service::worker::Worker;

/// A running server: its address and the handles to stop it.
pub struct Server {
    /// The bound address (useful with port 0).
    pub addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    worker: Option<JoinHandle<()>>,
    reporter: Option<JoinHandle<()>>,
    election: Option<Election>,
}

impl Server {
    /// Binds, joins the leader election (when configured; its role is in
    /// the state before anything runs), starts the HTTP server and (unless
    /// intake-only) the worker.
    pub async fn start(mut state: AppState) -> Result<Server, StartError> {
        let listener = TcpListener::bind(state.settings.listen)
            .await
            .map_err(|e| StartError::Bind {
                addr: state.settings.listen,
                reason: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| StartError::Bind {
            addr: state.settings.listen,
            reason: e.to_string(),
        })?;
        let election = match &state.settings.leader_election {
            Some(settings) => {
                let client = match state.cluster.engine() {
                    Ok(engine) => engine.client().clone(),
                    Err(why) => return Err(ElectionError::NoCluster(why.to_string()).into()),
                };
                let address = match &settings.advertise_address {
                    Some(a) => a.clone(),
                    None if addr.ip().is_unspecified() => {
                        return Err(StartError::NoAdvertiseAddress(addr))
                    }
                    None => addr.to_string(),
                };
                let me = Peer {
                    identity: settings.identity.clone(),
                    address,
                };
                let (leadership, election) =
                    Election::start(client, settings, me, state.metrics.clone()).await?;
                state.leadership = leadership;
                Some(election)
            }
            None => None,
        };
        let (shutdown, mut stop_http) = watch::channel(false);
        let worker = if state.settings.intake_only {
            None
        } else {
            let worker = Worker::new(state.clone());
            let stop = shutdown.subscribe();
            Some(tokio::spawn(worker.run(stop)))
        };
        // Like the worker, Slack delivery is for the replica that processes:
        // a standby delivering the same outbox would post twice.
        let reporter = (!state.settings.intake_only)
            .then(|| tokio::spawn(state.reporter.clone().run(shutdown.subscribe())));
        let router = crate::service::http::api::router(state);
        let http = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop_http.wait_for(|stop| *stop).await;
                })
                .await
        });
        tracing::info!(%addr, "rollbackd listening");
        Ok(Server {
            addr,
            shutdown,
            http,
            worker,
            reporter,
            election,
        })
    }

    /// Stops accepting, lets in-flight requests finish, stops the worker
    /// between webhooks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.http.await;
        if let Some(worker) = self.worker {
            let _ = worker.await;
        }
        if let Some(reporter) = self.reporter {
            let _ = reporter.await;
        }
        // Last: the worker no longer acts, so the next leader may.
        if let Some(election) = self.election {
            election.release().await;
        }
    }
}
