//! The matrix: what a rule decides, the rules in order, the gate, and the
//! table `rollbackd check` prints.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::format_duration;
use super::matcher::{quote, Matcher};
use super::DEFAULT_RULES_YAML;
use crate::core::parse::LabelSet;

/// What a matching rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionKind {
    /// Roll back now.
    Rollback,
    /// Hold, then roll back if the alert still fires.
    RollbackAfter,
    /// Report only.
    Notify,
    /// Do nothing.
    Ignore,
}

impl DecisionKind {
    /// Every decision, in the order the documentation lists them.
    pub const ALL: [DecisionKind; 4] = [
        DecisionKind::Rollback,
        DecisionKind::RollbackAfter,
        DecisionKind::Notify,
        DecisionKind::Ignore,
    ];

    /// The name used in rules files, reports and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Rollback => "rollback",
            DecisionKind::RollbackAfter => "rollback-after",
            DecisionKind::Notify => "notify",
            DecisionKind::Ignore => "ignore",
        }
    }

    /// The decision a rules file spells `name`, if any.
    pub fn from_name(name: &str) -> Option<DecisionKind> {
        DecisionKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named rule of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique name, shown in reports (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// What the rule is for, in words; may be empty.
    pub description: String,
    /// All must match (AND); none matches every alert.
    pub matchers: Vec<Matcher>,
    /// What to do when the rule matches.
    pub decision: DecisionKind,
    /// Time to roll back (to act, for `notify`); zero for `ignore`, which
    /// has none.
    pub deadline: Duration,
    /// How long `rollback-after` waits for the alert to resolve; `None` for
    /// every other decision.
    pub hold: Option<Duration>,
    /// What to do when a GitOps tool manages the workload; `None`: the
    /// guard's default.
    pub gitops: Option<crate::core::guard::GitOpsPolicy>,
    /// Slack channel for this rule's incidents (an alert's `slack_channel`
    /// annotation wins); `None`: the default channel.
    pub slack_channel: Option<String>,
}

impl Rule {
    /// Whether every matcher of the rule holds for `labels`.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    /// The matchers as Alertmanager prints them, comma-separated.
    pub fn matchers_text(&self) -> String {
        self.matchers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The opt-in annotation: only alerts that carry it take part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// Annotation name, e.g. `rollback`.
    pub annotation: String,
    /// The exact value it must have, e.g. `true`.
    pub value: String,
}

/// Why `rollback="true"`: DESIGN.md names it; opt-in per alert, so no alert
/// rolls anything back unless its PrometheusRule says so.
impl Default for Gate {
    fn default() -> Self {
        Gate {
            annotation: "rollback".into(),
            value: "true".into(),
        }
    }
}

/// `annotation rollback="true"`.
impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "annotation {}={}", self.annotation, quote(&self.value))
    }
}

/// The loaded matrix: the gate and the rules in order (first match wins).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// The opt-in annotation.
    pub gate: Gate,
    /// Rate limits, cooldown, namespaces, change correlation, GitOps.
    pub guard: crate::core::guard::GuardConfig,
    /// The rules, in file order, files in file-name order.
    pub rules: Vec<Rule>,
}

impl Rules {
    /// The rules shipped in the binary (`rules/default.yaml`).
    pub fn embedded_default() -> Rules {
        Rules::parse("rules/default.yaml (embedded)", DEFAULT_RULES_YAML)
            .expect("embedded rules are valid")
    }

    /// The rule named `name` (a decision's `rule`), if any.
    pub fn named(&self, name: Option<&str>) -> Option<&Rule> {
        let name = name?;
        self.rules.iter().find(|rule| rule.name == name)
    }

    /// The first rule whose matchers all hold for `labels`.
    pub fn first_match(&self, labels: &LabelSet) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.matches(labels))
    }

    /// The matrix as an aligned plain-text table, the gate on the line
    /// above, for `rollbackd check`.
    pub fn matrix_table(&self) -> String {
        let header = ["RULE", "MATCHERS", "DECISION", "HOLD", "DEADLINE"].map(String::from);
        let mut rows = vec![header];
        for rule in &self.rules {
            let matchers = if rule.matchers.is_empty() {
                "(any alert)".to_string()
            } else {
                rule.matchers_text()
            };
            let deadline = if rule.deadline.is_zero() {
                "-".to_string()
            } else {
                format_duration(rule.deadline)
            };
            rows.push([
                rule.name.clone(),
                matchers,
                rule.decision.as_str().to_string(),
                rule.hold.map_or_else(|| "-".to_string(), format_duration),
                deadline,
            ]);
        }
        let mut widths = [0; 5];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = format!("gate: {}\n\n", self.gate);
        for row in &rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 < row.len() {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}
