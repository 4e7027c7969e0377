//! rollbackd turns a Prometheus alert into a safe Kubernetes rollback.
//!
//! ```text
//! Alertmanager --POST /webhook--> webhook --> parse --> journal (durable) --> 200 + receipt
//!                                                          |
//!                      worker: decide --> guard --> undo --> watch --> report
//!                              rules      limits    kube-rs  rollout   Slack
//! ```
//!
//! Modules, in the order data flows:
//! - [`webhook`]: `POST /webhook`; checks credentials, content type and size,
//!   journals, acknowledges.
//! - [`parse`]: the Alertmanager v4 payload into domain types, once.
//! - [`journal`]: the SQLite journal (WAL, group commit); the worker's queue
//!   and the history the API shows.
//! - [`worker`]: feeds journaled webhooks through decide, guard, undo,
//!   watch and report, runs the holds that come due, and journals it all.
//! - [`rules`]: the decision matrix from `rules/*.yaml`, Alertmanager matchers.
//! - [`decide`]: alert + rules + now → decision and target; pure.
//! - [`guard`]: namespaces, change correlation, GitOps and rate limits
//!   between decide and undo; refusals are outcomes with reasons.
//! - [`undo`]: `kubectl rollout undo` through kube-rs: one patch with a
//!   resourceVersion test and the alert episode's marker.
//! - [`watch`]: follows the rollout as `kubectl rollout status` does.
//! - [`report`]: tells Slack each step, one message per alert episode (outbox).
//! - [`replay`]: re-runs a journaled webhook on an operator's request.
//! - [`api`]: the router, the operator endpoints, errors as HTTP responses.
//!
//! Beside them: [`config`] (flags, environment, file, secrets), [`metrics`]
//! (Prometheus registry), [`app`] (shared state, clock, server lifecycle) and
//! [`cli`] (`check`, `explain`, and the output of `undo` and `history`).
#![forbid(unsafe_code)]

pub mod core;

pub mod adapters;

pub mod service;
