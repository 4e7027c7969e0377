//! The `rollbackd` binary: parses the command line and wires the app.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rollbackd::app::{load_rules, AppState, Server, SystemClock};
use rollbackd::cli;
use rollbackd::config::{ServeArgs, Settings};
use rollbackd::journal::JournalOptions;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check { rules } => cli::check(&cli::default_rules_source(rules))
            .map(|out| print!("{out}"))
            .map_err(anyhow::Error::from),
        Command::Explain { payload, rules, at } => load_rules(&cli::default_rules_source(rules))
            .map_err(anyhow::Error::from)
            .and_then(|rules| {
                let now = at.unwrap_or_else(jiff::Timestamp::now);
                Ok(cli::explain(&rules, &payload, now)?)
            })
            .map(|out| print!("{out}")),
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
        let state = AppState::build(settings, Arc::new(SystemClock), JournalOptions::default())?;
        tracing::info!(
            rules = state.rules.rules.len(),
            journal = %state.journal.path().display(),
            dry_run = state.settings.dry_run,
            "rollbackd starting"
        );
        let server = Server::start(state).await?;
        shutdown_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
