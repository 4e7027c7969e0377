//! `fakekube --listen 127.0.0.1:0 --kubeconfig PATH [--seed LIST.json]
//! [--rollout instant|never|steps:N]`: serve a fake Kubernetes API until
//! SIGTERM or Ctrl-C, for end-to-end runs and benchmarks.

use anyhow::{bail, Context};
use fakekube::{Cluster, FakeKube, Rollout};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// What the command line asked for.
struct Args {
    /// Address to bind (port 0: any free port).
    listen: SocketAddr,
    /// Where to write the kubeconfig.
    kubeconfig: Option<PathBuf>,
    /// `kubectl get -o json` Lists to load first.
    seeds: Vec<PathBuf>,
    /// Default rollout mode.
    rollout: Rollout,
}

const USAGE: &str = "usage: fakekube [--listen ADDR] [--kubeconfig PATH] [--seed LIST.json]... [--rollout instant|never|steps:N]";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        kubeconfig: None,
        seeds: Vec::new(),
        rollout: Rollout::Instant,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> anyhow::Result<String> {
            inline
                .clone()
                .or_else(|| it.next())
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => args.listen = value()?.parse().context("--listen")?,
            "--kubeconfig" => args.kubeconfig = Some(value()?.into()),
            "--seed" => args.seeds.push(value()?.into()),
            "--rollout" => {
                args.rollout = match value()?.as_str() {
                    "instant" => Rollout::Instant,
                    "never" => Rollout::Never,
                    other => match other.strip_prefix("steps:").map(str::parse::<u32>) {
                        Some(Ok(n)) => Rollout::Steps(n),
                        _ => bail!("--rollout: instant, never or steps:N, not {other:?}"),
                    },
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(args)
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is
/// called (not when awaited), so call it before announcing the address: a
/// SIGTERM sent right after the announcement is then always caught.
fn stopped() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let cluster = Cluster::new();
    cluster.set_default_rollout(args.rollout);
    for seed in &args.seeds {
        let text =
            std::fs::read_to_string(seed).with_context(|| format!("reading {}", seed.display()))?;
        cluster
            .load_list(&text)
            .with_context(|| format!("loading {}", seed.display()))?;
    }
    let fake = FakeKube::serve(cluster, args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    if let Some(path) = &args.kubeconfig {
        fake.write_kubeconfig(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let stop = stopped();
    println!("listening addr={}", fake.addr());
    std::io::stdout().flush()?;
    stop.await;
    fake.shutdown().await;
    Ok(())
}
