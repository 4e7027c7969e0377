//! The `rollbackd` binary: parses the command line and wires the app.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rollbackd::adapters::clock::SystemClock;
use rollbackd::adapters::cluster::undo::{DryRun, UndoEngine, UndoOutcome, UndoRequest};
use rollbackd::adapters::cluster::Cluster;
use rollbackd::adapters::journal::JournalOptions;
use rollbackd::service::cli;
use rollbackd::service::config::{ServeArgs, Settings};
use rollbackd::service::server::Server;
use rollbackd::service::state::{load_rules, AppState};

/// Turns Prometheus alerts into safe Kubernetes rollbacks.
#[derive(Parser)]
#[command(name = "rollbackd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Receive Alertmanager webhooks and act on them.
    Serve(ServeArgs),
    /// Validate a rules folder and print the decision matrix.
    Check {
        /// Rules folder [default: rules/, or the embedded defaults].
        dir: Option<PathBuf>,
        /// The same, as `serve` and `explain` take it.
        #[arg(long, conflicts_with = "dir")]
        rules: Option<PathBuf>,
    },
    /// Show the decision for each alert of a webhook payload (no cluster).
    Explain {
        /// An Alertmanager webhook body (JSON).
        payload: PathBuf,
        /// Rules folder [default: rules/, or the embedded defaults].
        #[arg(long, env = "ROLLBACKD_RULES")]
        rules: Option<PathBuf>,
        /// Decide as of this time (RFC 3339) instead of now.
        #[arg(long)]
        at: Option<jiff::Timestamp>,
    },
    /// Roll a workload back, as `kubectl rollout undo` (with rollbackd's
    /// resourceVersion precondition, marker, change-cause and Event).
    Undo {
        /// TYPE/NAME: deployment/web, statefulset/db, daemonset/agent.
        workload: String,
        /// Namespace [default: the kubeconfig context's].
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// The revision to roll back to [default: the previous one].
        #[arg(long)]
        to_revision: Option<i64>,
        /// none, client (plan only) or server (API server dry-run).
        #[arg(long, default_value = "none", num_args = 0..=1, default_missing_value = "client")]
        dry_run: DryRunArg,
        /// Why, recorded as kubernetes.io/change-cause.
        #[arg(long, default_value = "rollbackd undo by hand")]
        reason: String,
    },
    /// Show a workload's revisions, as `kubectl rollout history`.
    History {
        /// TYPE/NAME: deployment/web, statefulset/db, daemonset/agent.
        workload: String,
        /// Namespace [default: the kubeconfig context's].
        #[arg(short = 'n', long)]
        namespace: Option<String>,
        /// Show the pod template of this revision.
        #[arg(long)]
        revision: Option<i64>,
    },
}

/// kubectl's `--dry-run` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum DryRunArg {
    None,
    Client,
    Server,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check { dir, rules } => cli::check(&cli::default_rules_source(dir.or(rules)))
            .map(|out| print!("{out}"))
            .map_err(anyhow::Error::from),
        Command::Explain { payload, rules, at } => load_rules(&cli::default_rules_source(rules))
            .map_err(anyhow::Error::from)
            .and_then(|rules| {
                let now = at.unwrap_or_else(jiff::Timestamp::now);
                Ok(cli::explain(&rules, &payload, now)?)
            })
            .map(|out| print!("{out}")),
        Command::Undo {
            workload,
            namespace,
            to_revision,
            dry_run,
            reason,
        } => undo(&workload, namespace, to_revision, dry_run, reason),
        Command::History {
            workload,
            namespace,
            revision,
        } => history(&workload, namespace, revision),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROLLBACKD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let settings = Settings::resolve(&args)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let cluster = Cluster::infer().await;
        if let Err(why) = cluster.engine() {
            tracing::warn!(
                reason = why,
                "no cluster: webhooks are journaled, rollbacks recorded as not done"
            );
        }
        let state = AppState::build(
            settings,
            Arc::new(SystemClock),
            JournalOptions::default(),
            cluster,
        )?;
        tracing::info!(
            rules = state.rules.rules.len(),
            journal = %state.journal.path().display(),
            dry_run = state.settings.dry_run,
            "rollbackd starting"
        );
        if state.settings.insecure_no_auth {
            tracing::warn!(
                "WEBHOOK AUTHENTICATION IS OFF (--insecure-no-auth): anyone who can reach this \
                 port can submit alerts that roll workloads back; the operator API still \
                 needs its token"
            );
        }
        match &state.settings.cluster_name {
            Some(name) => tracing::info!(
                cluster = %name,
                label = %state.rules.guard.cluster_label,
                "alerts for other clusters are refused"
            ),
            None => tracing::warn!(
                cluster_check = rollbackd::service::http::api::NO_CLUSTER_CHECK,
                "no cluster name"
            ),
        }
        let stop = shutdown_signal();
        let server = Server::start(state).await?;
        stop.await;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is
/// called, before the server starts, so an early SIGTERM still shuts down
/// gracefully.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    }
}

/// A client as kubectl finds its configuration, and the namespace to use.
async fn client(namespace: Option<String>) -> anyhow::Result<(kube::Client, String)> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| anyhow::anyhow!("cannot load the Kubernetes configuration: {e}"))?;
    let ns = namespace.unwrap_or_else(|| client.default_namespace().to_string());
    Ok((client, ns))
}

fn undo(
    workload: &str,
    namespace: Option<String>,
    to_revision: Option<i64>,
    dry_run: DryRunArg,
    reason: String,
) -> anyhow::Result<()> {
    let (kind, name) = cli::parse_workload(workload).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let (client, namespace) = client(namespace).await?;
        let engine = UndoEngine::new(client);
        let request = UndoRequest {
            kind,
            namespace,
            name: name.clone(),
            to_revision,
            episode: None,
            reason,
            dry_run: match dry_run {
                DryRunArg::None => DryRun::None,
                DryRunArg::Client => DryRun::Client,
                DryRunArg::Server => DryRun::Server,
            },
            cooldown: None,
        };
        let outcome = engine.undo(&request).await?;
        let suffix = match (&outcome, dry_run) {
            (UndoOutcome::DryRun(_), DryRunArg::Server) => {
                "rolled back (server dry run)".to_string()
            }
            _ => outcome.kubectl_message(),
        };
        println!("{}/{name} {suffix}", cli::kubectl_resource(kind));
        match outcome {
            UndoOutcome::NewerDeployDetected { .. } => {
                anyhow::bail!("the workload changed while rolling back; nothing was overwritten")
            }
            _ => Ok(()),
        }
    })
}

fn history(workload: &str, namespace: Option<String>, revision: Option<i64>) -> anyhow::Result<()> {
    let (kind, name) = cli::parse_workload(workload).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let (client, namespace) = client(namespace).await?;
        let history = UndoEngine::new(client)
            .history(kind, &namespace, &name)
            .await?;
        match revision {
            None => print!("{}", cli::format_history(kind, &name, &history)),
            Some(n) => {
                let r = history
                    .iter()
                    .find(|r| r.number == n)
                    .ok_or_else(|| anyhow::anyhow!("unable to find the specified revision"))?;
                print!("{}", cli::format_revision(kind, &name, r));
            }
        }
        Ok(())
    })
}
