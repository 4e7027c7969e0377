//! Adapters: rollbackd's edges to the outside world, each behind the
//! narrowest interface its caller needs.
//!
//! - [`journal`] is the SQLite journal, the only code that touches the disk
//!   after start-up: schema and migrations, intake writes, worker outcomes,
//!   holds, the report outbox and event queries.
//! - [`cluster`] is the Kubernetes API through kube-rs: the undo engine, the
//!   rollout watch, GitOps writes (Flux suspend), and the connection.
//! - [`report`] tells Slack: rendering and delivery from the outbox.
//! - [`lease`] is the Lease that elects the replica that acts.
//! - [`metrics`] is the Prometheus registry (served by the service layer).
//! - [`rules_dir`] reads the rules folder; [`clock`] is the wall clock.
//!
//! May import: `core`, other adapters, and any crate. Never the service
//! layer (`worker`, `http`, `server`, ...) or the binary: an adapter that
//! needs a service fact takes it as an argument (`scripts/check-layers`
//! enforces it).

pub mod clock;
pub mod cluster;
pub mod journal;
pub mod lease;
pub mod metrics;
pub mod report;
pub mod rules_dir;
