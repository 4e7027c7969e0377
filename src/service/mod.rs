//! Service: wires `core` and the adapters into the running pipeline.
//!
//! - [`state`]: the shared state ([`state::AppState`], one `Clone` struct of
//!   handles), built in one place and importing nothing of the service
//!   layer above it but settings and the guard.
//! - [`worker`]: feeds journaled webhooks through decide, guard, undo, watch
//!   and report; runs holds; forwards to the leader.
//! - [`http`]: webhook intake, the operator API, probes and `/metrics`.
//! - [`replay`]: re-runs a journaled webhook on an operator's request.
//! - [`server`]: starts and stops it all (HTTP, worker, Slack delivery,
//!   leader election).
//! - [`guard`]: the rate limiters (governor) over `core::guard`'s policy.
//! - [`config`]: flags, environment, file, secrets → [`config::Settings`].
//! - [`cli`]: `check`, `explain`, and the output of `undo` and `history`.
//!
//! May import: `core`, `adapters`, other service modules and any crate.
//! Never the binary (`main.rs`). Below: nothing in `core` or `adapters`
//! imports this layer (`scripts/check-layers` enforces it).

pub mod cli;
pub mod config;
pub mod guard;
pub mod http;
pub mod replay;
pub mod server;
pub mod state;
pub mod worker;
