//! Rules: the decision matrix, loaded from `rules/*.yaml`.
//!
//! A rules file names an opt-in gate and an ordered list of rules; the first
//! rule whose matchers all hold for an alert's labels decides what happens:
//!
//! ```yaml
//! gate:                 # optional; this is the default
//!   annotation: rollback
//!   value: "true"
//! rules:
//!   - name: service-down
//!     description: Service down, roll back immediately
//!     match: ['severity="critical"', 'alertname=~".*Down"']
//!     decision: rollback        # rollback | rollback-after | notify | ignore
//!     deadline: 30s             # time to roll back
//!   - name: performance-degradation
//!     match: '{severity="medium"}'   # Alertmanager's brace form works too
//!     decision: rollback-after
//!     hold: 2m                  # only, and always, with rollback-after
//!     deadline: 5m
//! ```
//!
//! Matchers use Alertmanager's syntax and semantics: `=`, `!=`, `=~`, `!~`;
//! regexes are anchored at both ends; a missing label is the empty string.
//! Durations are Prometheus-style (`500ms`, `30s`, `5m`, `1h30m`).
//!
//! A bad file is refused whole, with `file:line: reason`. Values are checked
//! while serde walks the YAML, so the parser's own position is the line;
//! checks across fields (a hold against the deadline, duplicate names) ask
//! the parser again for the position of the offending value (see
//! `lines`), so every line is exact.
//!
//! By concern: [`matrix`] (the rules, the gate, the table `check` prints),
//! [`matcher`] (Alertmanager matchers and their scanner), [`duration`]
//! (durations, limit windows), `syntax` (the file format as serde reads
//! it), `validate` (`file:line` errors, checks across fields and files) and
//! `lines` (where a value sits in the file). Reading the folder from disk is
//! the adapters' `rules_dir`.

pub mod duration;
mod lines;
pub mod matcher;
pub mod matrix;
mod syntax;
mod validate;

#[cfg(test)]
mod tests;

pub use duration::{format_duration, parse_duration_text};
pub use matcher::{parse_matcher_set, MatchOp, Matcher, MatcherError};
pub use matrix::{DecisionKind, Gate, Rule, Rules};

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A rules file is wrong: where, and why.
    #[error("{file}:{line}: {reason}")]
    Invalid {
        /// The file as given (folder joined with the file name).
        file: String,
        /// 1-based line of the offending value.
        line: usize,
        /// What is wrong, in words.
        reason: String,
    },
    /// The folder or a file could not be read, or the folder holds no rules
    /// files.
    #[error("{file}: {reason}")]
    Io {
        /// The folder or file.
        file: String,
        /// What went wrong.
        reason: String,
    },
}

/// The shipped `rules/default.yaml`.
pub const DEFAULT_RULES_YAML: &str = include_str!("../../../rules/default.yaml");
