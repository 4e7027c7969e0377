//! rollbackd turns a Prometheus alert into a safe Kubernetes rollback.
//!
//! Three layers; dependencies point one way, **core ← adapters ← service ←
//! binary** (`scripts/check-layers` fails CI otherwise):
//!
//! ```text
//!                      Alertmanager                      operator
//!                           | POST /webhook                 | /api/v1/events, replay
//!  +-- service -------------v-------------------------------v----------------------+
//!  |  http::webhook --> journal (durable) --> 200 + receipt   http::api, replay    |
//!  |                        |                                                     |
//!  |  worker: pipeline ---> decide --> guard --> undo --> watches --> report      |
//!  |          holds, forward (to the leader)                                      |
//!  |  state (AppState), server (lifecycle), guard (limiters), config, cli         |
//!  +------------|---------------------------|-------------------------------------+
//!               | uses                      | uses
//!  +-- adapters v----------------------+    |
//!  |  journal (SQLite)  cluster (kube: undo, watch, gitops)  report (Slack)    |  |
//!  |  lease (Lease)  metrics  rules_dir  clock                                 |  |
//!  +------------|--------------------------------------------------------------+  |
//!               | uses                      |
//!  +-- core ----v---------------------------v---------------------------------------+
//!  |  parse (payload) --> rules (matrix) --> decide --> guard (policy)              |
//!  |  undo_plan (kubectl's rules)  rollout (kubectl's verdict)  clock  secret       |
//!  |  pure: no I/O, no tokio, kube, reqwest, rusqlite, axum, governor               |
//!  +--------------------------------------------------------------------------------+
//!    main.rs (binary): parses the CLI and wires service::server, or runs a command
//! ```
//!
//! The pipeline, in the order data flows: `service::http::webhook` checks
//! and journals a webhook (`adapters::journal`), then answers; the
//! `service::worker` takes it from the journal, parses it once
//! (`core::parse`), decides each alert (`core::decide` over `core::rules`),
//! asks the guard (`core::guard`'s policy, `service::guard`'s limiters),
//! rolls back (`adapters::cluster::undo`, planned by `core::undo_plan`),
//! follows the rollout (`adapters::cluster::watch`, judged by
//! `core::rollout`) and reports each step (`adapters::report`, through the
//! journal's outbox).
//!
//! - [`core`]: the domain, pure and table-tested.
//! - [`adapters`]: the journal, the cluster, Slack, the Lease, metrics.
//! - [`service`]: the worker, HTTP, replay, state and server, config, cli.
#![forbid(unsafe_code)]

pub mod core;

pub mod adapters;

pub mod service;
