//! Core: the domain, pure. The Alertmanager payload and its parsing
//! ([`parse`]), the rules ([`rules`]), the decision ([`decide`]), the
//! guard's policy ([`guard`]), kubectl's undo plan ([`undo_plan`]), kubectl's
//! rollout verdict ([`rollout`]), and the small types everything shares
//! ([`clock::Clock`], [`secret::Secret`]). Nothing here does I/O or waits:
//! every function is a function of its arguments, table-tested beside it.
//!
//! May import: std, serde, serde_json, serde_norway, jiff, regex,
//! thiserror, and other `core` modules. Never tokio, kube, k8s_openapi,
//! reqwest, rusqlite, axum, hyper or governor, and nothing outside `core`
//! (`scripts/check-layers` enforces it). A feature that needs more has put
//! a fact in the wrong place: pass the fact in.

pub mod clock;
pub mod decide;
pub mod guard;
pub mod parse;
pub mod rollout;
pub mod rules;
pub mod secret;
pub mod undo_plan;
