//! Undo: exactly what `kubectl rollout undo` does, through the Kubernetes
//! API, and safer where kubectl is unsafe.
//!
//! - `core::undo_plan`: kubectl's rules (revision choice, template
//!   equality, annotations) and the patches, pure.
//! - [`engine`]: reads the workload and its history, checks the episode
//!   marker, sends one patch with a resourceVersion precondition, records a
//!   Kubernetes Event.

pub mod engine;

pub use engine::{
    Cooldown, DryRun, Marker, Plan, PlannedPatch, Prepared, RollbackReport, UndoEngine, UndoError,
    UndoOutcome, UndoRequest,
};
