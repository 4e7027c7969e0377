//! Adapters: rollbackd's edges to the outside world.
//!
//! - [`rules_dir`]: the rules folder on disk.

pub mod rules_dir;
