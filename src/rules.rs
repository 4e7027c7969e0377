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
//! [`line_at`]), so every line is exact.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::parse::LabelSet;

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

/// Matcher operator, as in Alertmanager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`: the label equals the value.
    Eq,
    /// `!=`: the label differs from the value.
    NotEq,
    /// `=~`: the label matches the (anchored) regex.
    Re,
    /// `!~`: the label does not match the (anchored) regex.
    NotRe,
}

impl MatchOp {
    /// The operator as written in a matcher.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::NotEq => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }

    fn is_regex(self) -> bool {
        matches!(self, MatchOp::Re | MatchOp::NotRe)
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Alertmanager matcher, such as `severity=~"critical|high"`.
///
/// Build one with [`Matcher::new`] or by parsing its text (`"x".parse()`).
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
    pub name: String,
    /// How the label is compared.
    pub op: MatchOp,
    /// The value, or the regex as written (without the anchors).
    pub value: String,
    /// For `=~` and `!~`: `^(?:value)$`, compiled once.
    regex: Option<Regex>,
}

/// Why a matcher is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MatcherError(String);

impl Matcher {
    /// A matcher from its parts; compiles the regex for `=~` and `!~`.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let name = name.into();
        let value = value.into();
        if !is_label_name(&name) {
            return Err(MatcherError(format!(
                "invalid label name {} in matcher: use letters, digits and \"_\", not starting with a digit",
                quote(&name)
            )));
        }
        let mut matcher = Matcher {
            name,
            op,
            value,
            regex: None,
        };
        if op.is_regex() {
            // Alertmanager anchors every regex matcher at both ends.
            match Regex::new(&format!("^(?:{})$", matcher.value)) {
                Ok(re) => matcher.regex = Some(re),
                Err(e) => {
                    return Err(MatcherError(format!(
                        "invalid regex in matcher {matcher}: {}",
                        regex_problem(&e)
                    )))
                }
            }
        }
        Ok(matcher)
    }

    /// Whether the label set satisfies the matcher; an absent label counts
    /// as the empty string, as in Alertmanager.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        let value = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Eq, _) => value == self.value,
            (MatchOp::NotEq, _) => value != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(value),
            (MatchOp::NotRe, Some(re)) => !re.is_match(value),
            // `new` always compiles the regex of a regex operator.
            (MatchOp::Re | MatchOp::NotRe, None) => unreachable!("regex matcher without regex"),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

/// Prints the matcher back in Alertmanager's syntax: `name="value"`, the
/// value quoted with `\\`, `\"` and `\n` escaped.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.op, quote(&self.value))
    }
}

/// Parses one matcher: `name="value"`, `name=~"re"`, or unquoted
/// `name=value` for simple values.
impl FromStr for Matcher {
    type Err = MatcherError;

    fn from_str(text: &str) -> Result<Matcher, MatcherError> {
        let mut scan = Scanner::new(text);
        let parsed = scan.matcher().and_then(|m| {
            scan.skip_space();
            match scan.peek() {
                None => Ok(m),
                Some(_) => Err(scan.unexpected_after_value()),
            }
        });
        let (name, op, value) =
            parsed.map_err(|why| MatcherError(format!("invalid matcher `{text}`: {why}")))?;
        Matcher::new(name, op, value)
    }
}

/// Parses a matcher set in Alertmanager's brace form, `{a="b", c=~"d"}`;
/// the braces are optional, a trailing comma is allowed, `{}` matches all.
pub fn parse_matcher_set(text: &str) -> Result<Vec<Matcher>, MatcherError> {
    let mut scan = Scanner::new(text);
    let parts = scan
        .matcher_set()
        .map_err(|why| MatcherError(format!("invalid matchers `{text}`: {why}")))?;
    parts
        .into_iter()
        .map(|(name, op, value)| Matcher::new(name, op, value))
        .collect()
}

/// A hand-written scanner for matchers; the grammar is small and the errors
/// can then say exactly what was expected.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

type MatcherParts = (String, MatchOp, String);

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn unexpected_after_value(&self) -> String {
        format!(
            "unexpected {} after the value (quote values with spaces or any of , {{ }} = ! ~)",
            quote(self.rest())
        )
    }

    /// `{ m, m, ... }` or `m, m, ...`.
    fn matcher_set(&mut self) -> Result<Vec<MatcherParts>, String> {
        self.skip_space();
        let braced = self.eat("{");
        let mut parts = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None if braced => return Err("missing closing \"}\"".into()),
                None => return Ok(parts),
                Some('}') if braced => {
                    self.bump();
                    self.skip_space();
                    return match self.peek() {
                        None => Ok(parts),
                        Some(_) => Err(format!("unexpected {} after \"}}\"", quote(self.rest()))),
                    };
                }
                Some(_) => {}
            }
            parts.push(self.matcher()?);
            self.skip_space();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                None => {}
                Some('}') if braced => {}
                Some(_) => {
                    return Err(format!(
                        "expected \",\" between matchers, found {} (quote values with spaces)",
                        quote(self.rest())
                    ))
                }
            }
        }
    }

    /// `name op value`, with optional spaces around the operator.
    fn matcher(&mut self) -> Result<MatcherParts, String> {
        self.skip_space();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.bump();
        }
        let name = &self.text[start..self.pos];
        if name.is_empty() {
            return Err(match self.peek() {
                None => "expected a label name, found nothing".into(),
                Some(_) => format!("expected a label name, found {}", quote(self.rest())),
            });
        }
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!(
                "label name {} must not start with a digit",
                quote(name)
            ));
        }
        self.skip_space();
        // Longest operators first: "=~" before "=".
        let op = if self.eat("=~") {
            MatchOp::Re
        } else if self.eat("!=") {
            MatchOp::NotEq
        } else if self.eat("!~") {
            MatchOp::NotRe
        } else if self.eat("=") {
            MatchOp::Eq
        } else {
            return Err(match self.peek() {
                None => format!(
                    "expected an operator (=, !=, =~ or !~) after label name {}",
                    quote(name)
                ),
                Some(_) => format!(
                    "expected an operator (=, !=, =~ or !~) after label name {}, found {}",
                    quote(name),
                    quote(self.rest())
                ),
            });
        };
        self.skip_space();
        let value = self.value(op)?;
        Ok((name.to_string(), op, value))
    }

    /// A double-quoted value with Go escapes, or a run of plain characters.
    fn value(&mut self, op: MatchOp) -> Result<String, String> {
        if self.eat("\"") {
            let mut value = String::new();
            loop {
                match self.bump() {
                    None => return Err("missing closing quote '\"' after the value".into()),
                    Some('"') => return Ok(value),
                    Some('\\') => match self.bump() {
                        Some('"') => value.push('"'),
                        Some('\\') => value.push('\\'),
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some(c) => {
                            return Err(format!(
                                "unknown escape \\{c} in a quoted value (write \\\\{c} for a backslash)"
                            ))
                        }
                        None => return Err("missing closing quote '\"' after the value".into()),
                    },
                    Some(c) => value.push(c),
                }
            }
        }
        let start = self.pos;
        while self.peek().is_some_and(is_plain_value_char) {
            self.bump();
        }
        if self.pos == start {
            return Err(match self.peek() {
                Some('\'') => "quote values with double quotes, not single quotes".into(),
                _ => format!("expected a value after \"{op}\" (write \"\" for the empty string)"),
            });
        }
        Ok(self.text[start..self.pos].to_string())
    }
}

/// Characters an unquoted value may hold; anything else needs quotes.
fn is_plain_value_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '"' | '\'' | ',' | '{' | '}' | '=' | '!' | '~')
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value in double quotes, escaped as Alertmanager prints matchers.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The one-line cause of a regex error (the crate prints the pattern and a
/// caret over several lines first).
fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or(text.lines().last().unwrap_or(&text))
        .trim()
        .to_string()
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
    pub gitops: Option<crate::guard::GitOpsPolicy>,
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
    pub guard: crate::guard::GuardConfig,
    /// The rules, in file order, files in file-name order.
    pub rules: Vec<Rule>,
}

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
pub const DEFAULT_RULES_YAML: &str = include_str!("../rules/default.yaml");

impl Rules {
    /// Parses one rules file; `file` names it in errors.
    ///
    /// # Errors
    ///
    /// [`RulesError::Invalid`] with the line and reason of the first mistake.
    pub fn parse(file: &str, source: &str) -> Result<Rules, RulesError> {
        let parsed = parse_file(file, source)?;
        Ok(Rules {
            gate: parsed.gate.unwrap_or_default(),
            guard: parsed.guard.unwrap_or_default(),
            rules: parsed.rules,
        })
    }

    /// Loads every `*.yaml` and `*.yml` file of `dir`, in file-name order,
    /// and concatenates their rules in that order.
    ///
    /// Hidden entries are skipped, so a Kubernetes ConfigMap mount (with its
    /// `..data` folder and symlinks) loads as expected. Refused: a missing or
    /// empty folder, a rule name used twice (in any files), and a gate that
    /// two files define differently.
    ///
    /// # Errors
    ///
    /// [`RulesError::Io`] for the folder or a file that cannot be read, or
    /// a folder without rules files; [`RulesError::Invalid`] for a mistake
    /// in a file, with the file and line.
    pub fn load_dir(dir: &Path) -> Result<Rules, RulesError> {
        let io_error = |file: &Path, reason: String| RulesError::Io {
            file: file.display().to_string(),
            reason,
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|e| io_error(dir, format!("cannot read the rules folder: {e}")))?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| io_error(dir, format!("cannot list the rules folder: {e}")))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            let is_yaml = Path::new(name).extension().is_some_and(|ext| {
                ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml")
            });
            // `metadata` follows symlinks, as ConfigMap mounts need.
            if !is_yaml
                || name.starts_with('.')
                || !std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file())
            {
                continue;
            }
            paths.push((name.to_string(), entry.path()));
        }
        paths.sort();
        if paths.is_empty() {
            return Err(io_error(
                dir,
                "no rules files (*.yaml or *.yml) in this folder".into(),
            ));
        }

        let mut files = Vec::new();
        for (_, path) in &paths {
            let file = path.display().to_string();
            let source = std::fs::read_to_string(path)
                .map_err(|e| io_error(path, format!("cannot read: {e}")))?;
            let parsed = parse_file(&file, &source)?;
            files.push((file, source, parsed));
        }

        let mut gate: Option<(usize, &Gate)> = None;
        let mut first_name: HashMap<&str, (usize, usize)> = HashMap::new();
        for (f, (file, source, parsed)) in files.iter().enumerate() {
            if let Some(this) = &parsed.gate {
                match gate {
                    None => gate = Some((f, this)),
                    Some((g, first)) if first != this => {
                        let (first_file, first_source, _) = &files[g];
                        return Err(RulesError::Invalid {
                            file: file.clone(),
                            line: gate_line(source, this, first),
                            reason: format!(
                                "gate {this} differs from {first} in {first_file}:{}: all files must agree on the gate (or define it in one file only)",
                                gate_line(first_source, first, this)
                            ),
                        });
                    }
                    Some(_) => {}
                }
            }
            for (i, rule) in parsed.rules.iter().enumerate() {
                if let Some(&(ff, fi)) = first_name.get(rule.name.as_str()) {
                    let (first_file, first_source, _) = &files[ff];
                    return Err(RulesError::Invalid {
                        file: file.clone(),
                        line: rule_line(source, i, "name"),
                        reason: format!(
                            "duplicate rule name {} (first defined at {first_file}:{})",
                            quote(&rule.name),
                            rule_line(first_source, fi, "name")
                        ),
                    });
                }
                first_name.insert(&rule.name, (f, i));
            }
        }
        let gate = gate.map(|(_, g)| g.clone()).unwrap_or_default();
        let mut guard = None;
        for (file, source, parsed) in &files {
            if let Some(g) = &parsed.guard {
                if let Some((first_file, _)) = &guard {
                    return Err(RulesError::Invalid {
                        file: file.clone(),
                        line: key_line(source, "guard"),
                        reason: format!("a second guard section (the first is in {first_file}): define it in one file only"),
                    });
                }
                guard = Some((file.clone(), g.clone()));
            }
        }
        let guard = guard.map(|(_, g)| g).unwrap_or_default();
        let rules = files.into_iter().flat_map(|(_, _, p)| p.rules).collect();
        Ok(Rules { gate, guard, rules })
    }

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

/// A duration as Prometheus prints one: `30s`, `5m`, `2m30s`, `1h30m`,
/// `500ms` (whole milliseconds; `0s` for zero).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in DURATION_UNITS {
        let count = ms / size;
        if count > 0 {
            out.push_str(&format!("{count}{unit}"));
            ms %= size;
        }
    }
    out
}

/// Units a duration may use, largest first, with their size in ms.
const DURATION_UNITS: [(&str, u128); 4] =
    [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses a Prometheus-style duration: whole numbers with units `h`, `m`,
/// `s`, `ms`, largest unit first, each at most once (`1h30m`, `500ms`).
/// Parses a Prometheus-style duration (`30s`, `5m`, `1h30m`, `500ms`).
pub fn parse_duration_text(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let malformed = || {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            format!(
                "invalid duration {}: add a unit, like {text}s or {text}m",
                quote(text)
            )
        } else {
            format!(
                "invalid duration {}: expected whole numbers with units h, m, s or ms, largest first, like 30s, 5m, 1h30m or 500ms",
                quote(text)
            )
        }
    };
    let mut rest = text;
    let mut total: u128 = 0;
    let mut next_unit = 0;
    if rest.is_empty() {
        return Err(malformed());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(malformed());
        }
        if digits > 12 {
            return Err(format!("invalid duration {}: too large", quote(text)));
        }
        let count: u128 = rest[..digits].parse().map_err(|_| malformed())?;
        rest = &rest[digits..];
        // "ms" before "m", or "5ms" would read as 5 minutes and a stray "s".
        let Some(u) = (next_unit..DURATION_UNITS.len())
            .filter(|&u| rest.starts_with(DURATION_UNITS[u].0))
            .max_by_key(|&u| DURATION_UNITS[u].0.len())
        else {
            return Err(malformed());
        };
        let (unit, size) = DURATION_UNITS[u];
        rest = &rest[unit.len()..];
        total += count * size;
        next_unit = u + 1;
    }
    if total == 0 {
        return Err(format!(
            "invalid duration {}: must be more than zero",
            quote(text)
        ));
    }
    let millis = u64::try_from(total).map_err(|_| malformed())?;
    Ok(Duration::from_millis(millis))
}

// ---------------------------------------------------------------------------
// The file format, as serde reads it. Every value type checks itself while
// serde walks the YAML, so its error carries the parser's exact position.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with a \"rules\" list")]
struct RawFile {
    #[serde(default)]
    gate: Option<RawGate>,
    #[serde(default)]
    guard: Option<crate::guard::RawGuard>,
    rules: RuleList,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with annotation and value")]
struct RawGate {
    #[serde(default)]
    annotation: Option<GateAnnotation>,
    #[serde(default)]
    value: Option<GateValue>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a rule: a mapping with name, match, decision and deadline"
)]
struct RawRule {
    name: RuleName,
    #[serde(default)]
    description: Option<String>,
    #[serde(rename = "match")]
    matchers: MatcherList,
    decision: Decision,
    #[serde(default)]
    deadline: Option<DurationValue>,
    #[serde(default)]
    hold: Option<DurationValue>,
    #[serde(default)]
    gitops: Option<crate::guard::GitOpsPolicy>,
    #[serde(default)]
    slack_channel: Option<String>,
}

/// Implements `Deserialize` for a newtype read from a string, checked by
/// `$check: fn(&str) -> Result<T, String>`.
macro_rules! string_value {
    ($ty:ident($inner:ty), $expecting:literal, $check:expr) => {
        struct $ty($inner);

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        let check: fn(&str) -> Result<$inner, String> = $check;
                        check(v).map($ty).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

string_value!(RuleName(String), "a rule name", |v| {
    let ok = v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "invalid rule name {}: use letters, digits, \"-\", \"_\" and \".\", starting with a letter or digit",
            quote(v)
        ))
    }
});

string_value!(Decision(DecisionKind), "a decision", |v| {
    DecisionKind::from_name(v).ok_or_else(|| {
        format!(
            "unknown decision {} (expected one of rollback, rollback-after, notify, ignore)",
            quote(v)
        )
    })
});

string_value!(
    DurationValue(Duration),
    "a duration like 30s, 5m or 1h30m",
    parse_duration
);

string_value!(
    OneMatcher(Matcher),
    "a matcher like severity=\"critical\"",
    |v| { v.parse::<Matcher>().map_err(|e| e.to_string()) }
);

string_value!(GateAnnotation(String), "an annotation name", |v| {
    if is_label_name(v) {
        Ok(v.to_string())
    } else {
        Err(format!(
            "invalid gate annotation name {}: use letters, digits and \"_\", not starting with a digit",
            quote(v)
        ))
    }
});

string_value!(GateValue(String), "the annotation value", |v| {
    if v.is_empty() {
        Err("the gate value must not be empty (an empty annotation is no annotation)".into())
    } else {
        Ok(v.to_string())
    }
});

/// `match:` as a list of single matchers or one string in brace form.
struct MatcherList(Vec<Matcher>);

impl<'de> Deserialize<'de> for MatcherList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MatcherList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of matchers or a string like '{severity=\"critical\"}'")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MatcherList, E> {
                parse_matcher_set(v).map(MatcherList).map_err(E::custom)
            }
            fn visit_unit<E: de::Error>(self) -> Result<MatcherList, E> {
                Err(E::custom(
                    "match is empty: list matchers, or write match: [] to match every alert",
                ))
            }
            fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<MatcherList, A::Error> {
                // `match: {severity="critical"}` unquoted is a YAML mapping.
                Err(de::Error::custom(
                    "match must be a list of matchers or a quoted string: quote the brace form, like match: '{severity=\"critical\"}'",
                ))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MatcherList, A::Error> {
                // Each item is read by its own type, so an error points at
                // that item's line.
                let mut matchers = Vec::new();
                while let Some(OneMatcher(m)) = seq.next_element()? {
                    matchers.push(m);
                }
                Ok(MatcherList(matchers))
            }
        }
        d.deserialize_any(V)
    }
}

/// `rules:`, which must hold at least one rule.
struct RuleList(Vec<RawRule>);

impl<'de> Deserialize<'de> for RuleList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RuleList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of rules")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RuleList, A::Error> {
                let mut rules = Vec::new();
                while let Some(rule) = seq.next_element()? {
                    rules.push(rule);
                }
                if rules.is_empty() {
                    return Err(de::Error::custom(EMPTY_RULES));
                }
                Ok(RuleList(rules))
            }
        }
        d.deserialize_seq(V)
    }
}

const EMPTY_RULES: &str = "the rules list is empty: a rules file needs at least one rule";

// ---------------------------------------------------------------------------
// Parsing a file: YAML syntax, then the shape, then checks across fields.

struct ParsedFile {
    /// The gate, if the file defines one.
    gate: Option<Gate>,
    /// The guard section, if the file has one.
    guard: Option<crate::guard::GuardConfig>,
    rules: Vec<Rule>,
}

fn parse_file(file: &str, source: &str) -> Result<ParsedFile, RulesError> {
    let invalid = |line: usize, reason: String| RulesError::Invalid {
        file: file.to_string(),
        line: line.min(end_line(source)),
        reason,
    };
    // Syntax first, on its own: errors from here on are about the content.
    if let Err(e) = serde_norway::from_str::<IgnoredAny>(source) {
        return Err(match e.location() {
            Some(loc) => invalid(loc.line(), yaml_syntax_reason(&e.to_string(), loc.line(), loc.column())),
            None if e.to_string().contains("more than one document") => invalid(
                second_document_line(source),
                "a second YAML document: a rules file holds one (put all rules in one \"rules\" list)".into(),
            ),
            None => invalid(1, format!("YAML syntax error: {e}")),
        });
    }
    let raw: RawFile = serde_norway::from_str(source).map_err(|e| {
        let (line, reason) = shape_error(source, &e);
        invalid(line, reason)
    })?;

    let gate = raw.gate.map(|g| {
        let default = Gate::default();
        Gate {
            annotation: g.annotation.map_or(default.annotation, |a| a.0),
            value: g.value.map_or(default.value, |v| v.0),
        }
    });

    let guard = match raw.guard {
        None => None,
        Some(g) => Some(
            g.resolve()
                .map_err(|reason| invalid(key_line(source, "guard"), reason))?,
        ),
    };
    if let Some(Err((what, reason))) = guard.as_ref().map(check_limit_windows) {
        let at = [Step::Key("guard"), Step::Key("limits"), Step::Key(what)];
        let line = line_at(source, &at).unwrap_or_else(|| key_line(source, "guard"));
        return Err(invalid(line, reason));
    }

    let mut rules = Vec::with_capacity(raw.rules.0.len());
    let mut first_index: HashMap<String, usize> = HashMap::new();
    for (i, raw) in raw.rules.0.into_iter().enumerate() {
        let name = raw.name.0;
        let decision = raw.decision.0;
        let deadline = raw.deadline.map(|d| d.0);
        let hold = raw.hold.map(|h| h.0);
        let in_rule = |field: &'static str, why: String| {
            invalid(
                rule_line(source, i, field),
                format!("rule {}: {why}", quote(&name)),
            )
        };
        if let Some(&first) = first_index.get(&name) {
            return Err(invalid(
                rule_line(source, i, "name"),
                format!(
                    "duplicate rule name {} (first defined at line {})",
                    quote(&name),
                    rule_line(source, first, "name")
                ),
            ));
        }
        match (decision, hold) {
            (DecisionKind::RollbackAfter, None) => {
                return Err(in_rule(
                    "decision",
                    "decision rollback-after needs a hold (how long to wait for the alert to resolve), like hold: 2m".into(),
                ))
            }
            (DecisionKind::RollbackAfter, Some(_)) | (_, None) => {}
            (other, Some(_)) => {
                return Err(in_rule(
                    "hold",
                    format!("hold is only for decision rollback-after (this rule decides {other})"),
                ))
            }
        }
        let deadline = match (decision, deadline) {
            (DecisionKind::Ignore, None) => Duration::ZERO,
            (DecisionKind::Ignore, Some(_)) => {
                return Err(in_rule(
                    "deadline",
                    "decision ignore takes no deadline (nothing is done)".into(),
                ))
            }
            (other, None) => {
                return Err(in_rule(
                    "",
                    format!("missing deadline: decision {other} needs one (the time to roll back), like deadline: 30s"),
                ))
            }
            (_, Some(deadline)) => deadline,
        };
        if let Some(hold) = hold.filter(|&hold| hold >= deadline) {
            return Err(in_rule(
                "hold",
                format!(
                    "hold {} must be shorter than deadline {} (the rollback must fit in the deadline after the hold)",
                    format_duration(hold),
                    format_duration(deadline)
                ),
            ));
        }
        first_index.insert(name.clone(), i);
        rules.push(Rule {
            name,
            description: raw.description.unwrap_or_default(),
            matchers: raw.matchers.0,
            decision,
            deadline,
            hold,
            gitops: raw.gitops,
            slack_channel: raw.slack_channel.filter(|c| !c.trim().is_empty()),
        });
    }
    Ok(ParsedFile { gate, guard, rules })
}

/// The longest a guard limit may take to refill a full burst (period /
/// count × burst). The rate limiters (governor) hold that window in u64
/// nanoseconds (584 years at most) and add it to the clock's nanoseconds
/// since the Unix epoch: a longer window panics when `serve` builds the
/// guard. A century is far past any useful limit and keeps that sum in
/// range until the 2450s.
const MAX_LIMIT_WINDOW: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Refuses a guard limit whose refill window the rate limiters cannot
/// count, as `(which limit, reason)`.
fn check_limit_windows(guard: &crate::guard::GuardConfig) -> Result<(), (&'static str, String)> {
    let limits = [
        ("workload", guard.workload_limit),
        ("namespace", guard.namespace_limit),
        ("cluster", guard.cluster_limit),
    ];
    for (what, limit) in limits {
        let Some(limit) = limit else { continue };
        let window = limit
            .per
            .checked_div(limit.count)
            .and_then(|cell| cell.checked_mul(limit.burst));
        if window.is_none_or(|w| w > MAX_LIMIT_WINDOW) {
            return Err((
                what,
                format!(
                    "guard.limits.{what}: invalid limit {}: a full burst must refill within 100 years (period / count × burst)",
                    quote(&limit.to_string())
                ),
            ));
        }
    }
    Ok(())
}

/// The line the input ends on, numbered as libyaml numbers lines (CR LF,
/// CR, LF, NEL, LS and PS each end one). libyaml puts an error at the end of
/// a file without a final line break on the line after it, which the file
/// does not have; such errors are reported on this line instead.
fn end_line(source: &str) -> usize {
    let mut breaks = 0;
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                breaks += 1;
            }
            '\n' | '\u{85}' | '\u{2028}' | '\u{2029}' => breaks += 1,
            _ => {}
        }
    }
    breaks + 1
}

/// serde_norway's message for an error in the file's shape, as
/// `(line, reason)`: the trailing position goes (the line is reported
/// apart), the path (`rules[2].deadline`) becomes the rule's name.
fn shape_error(source: &str, e: &serde_norway::Error) -> (usize, String) {
    static PATH: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?s)^((?:[A-Za-z_]+|\?)(?:\[\d+\]|\.[A-Za-z_]+|\.\?)*): (.*)$").expect("valid")
    });
    static RULE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^rules\[(\d+)\]\.?(.*)$").expect("valid"));

    let mut text = e.to_string();
    let line = match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if text.ends_with(&suffix) {
                text.truncate(text.len() - suffix.len());
            }
            loc.line()
        }
        None => 1,
    };
    let (path, message) = match PATH.captures(&text) {
        Some(c) => (c[1].to_string(), c[2].to_string()),
        None => (String::new(), text.clone()),
    };
    // serde_norway puts a duplicate key at its mapping; find the key itself.
    let line = match message
        .strip_prefix("duplicate field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        Some(field) => {
            let mut steps = steps_of(&path);
            steps.push(Step::Again(field));
            line_at(source, &steps).unwrap_or(line)
        }
        None => line,
    };
    // serde's generic messages ("invalid type: map, expected a string") do
    // not name the field; ours do, so the path below the rule is only kept
    // for serde's.
    let generic = ["invalid type: ", "invalid value: ", "invalid length "]
        .iter()
        .any(|p| message.starts_with(p));

    if path.is_empty() {
        // An empty document has its position at the end of the file; the
        // file as a whole is at fault, so say line 1.
        let blank = source.lines().all(|l| {
            let l = l.trim_start();
            l.is_empty() || l.starts_with('#')
        });
        let line = if blank { 1 } else { line };
        let reason = if message == "missing field `rules`" {
            "no \"rules\" list: a rules file needs a top-level \"rules:\" with at least one rule"
                .to_string()
        } else if generic {
            "the top level must be a mapping with a \"rules\" list".to_string()
        } else {
            message
        };
        return (line, reason);
    }
    let Some(c) = RULE.captures(&path) else {
        // `gate`, `rules`: serde's messages there need the place; ours
        // (`gate.annotation`, the empty list) already say it.
        let keep_path = generic || !path.contains('.') && message != EMPTY_RULES;
        return (
            line,
            if keep_path {
                format!("{path}: {message}")
            } else {
                message
            },
        );
    };
    let index: usize = c[1].parse().unwrap_or(0);
    let below = &c[2];
    let rule = match text_at(
        source,
        &[Step::Key("rules"), Step::Index(index), Step::Key("name")],
    ) {
        Some(name) if below != "name" => format!("rule {}", quote(&name)),
        _ => format!("rule #{}", index + 1),
    };
    let reason = if generic && !below.is_empty() {
        format!("{rule}: {below}: {message}")
    } else {
        format!("{rule}: {message}")
    };
    (line, reason)
}

/// libyaml's message without positions but the one of the construct that
/// was open: `did not find expected key while parsing a block mapping that
/// started at line 3`.
fn yaml_syntax_reason(text: &str, line: usize, column: usize) -> String {
    static MARK: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r" at line (\d+) column \d+").expect("valid"));
    let own = format!(" at line {line} column {column}");
    let text = text.replacen(&own, "", 1).replacen(", while", " while", 1);
    let text = MARK.replace_all(&text, " that started at line $1");
    format!("YAML syntax error: {text}")
}

/// The line of the `---` that starts a second YAML document.
fn second_document_line(source: &str) -> usize {
    let mut seen = false;
    for (n, line) in source.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || line.starts_with("--- ") {
            if seen {
                return n + 1;
            }
            seen = true;
        } else if !trimmed.is_empty() && !trimmed.starts_with('#') && !trimmed.starts_with('%') {
            seen = true;
        }
    }
    1
}

/// The line of `rules[index].field` (the rule itself when `field` is
/// empty or absent).
/// The line of a top-level key (`guard:`), 1 if not found.
fn key_line(source: &str, key: &str) -> usize {
    source
        .lines()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map_or(1, |i| i + 1)
}

fn rule_line(source: &str, index: usize, field: &'static str) -> usize {
    let rule = [Step::Key("rules"), Step::Index(index)];
    let at_field = [rule[0], rule[1], Step::Key(field)];
    (!field.is_empty())
        .then(|| line_at(source, &at_field))
        .flatten()
        .or_else(|| line_at(source, &rule))
        .unwrap_or(1)
}

/// The line of the gate's field where `this` differs from `other`.
fn gate_line(source: &str, this: &Gate, other: &Gate) -> usize {
    let field = if this.annotation != other.annotation {
        "annotation"
    } else {
        "value"
    };
    line_at(source, &[Step::Key("gate"), Step::Key(field)])
        .or_else(|| line_at(source, &[Step::Key("gate")]))
        .unwrap_or(1)
}

// ---------------------------------------------------------------------------
// Positions after the fact. serde gives no spans, but serde_norway puts the
// position of the value being read on every error; so to learn where a
// value sits, walk to it and fail there on purpose.

/// One step of a path into the YAML document.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// The value of this key in a mapping (its first occurrence).
    Key(&'a str),
    /// The value of this key's second occurrence (a duplicate key).
    Again(&'a str),
    /// This item of a list.
    Index(usize),
}

/// The steps of a serde_norway path such as `rules[2].match`.
fn steps_of(path: &str) -> Vec<Step<'_>> {
    static STEP: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"([A-Za-z_]+)|\[(\d+)\]").expect("valid"));
    STEP.captures_iter(path)
        .map(|c| match (c.get(1), c.get(2)) {
            (Some(key), _) => Step::Key(key.as_str()),
            (None, index) => Step::Index(index.map_or(0, |i| i.as_str().parse().unwrap_or(0))),
        })
        .collect()
}

/// What to do at the end of the path.
#[derive(Clone, Copy)]
enum Leaf {
    /// Fail, so the error carries the value's position.
    Mark,
    /// Read the value as a string.
    Text,
}

/// The line where the value at `path` starts (for a mapping: its first
/// key), or `None` if there is no such value.
fn line_at(source: &str, path: &[Step<'_>]) -> Option<usize> {
    Walk {
        path,
        leaf: Leaf::Mark,
    }
    .deserialize(serde_norway::Deserializer::from_str(source))
    .err()
    .and_then(|e| e.location())
    .map(|loc| loc.line())
}

/// The string at `path`, if there is one.
fn text_at(source: &str, path: &[Step<'_>]) -> Option<String> {
    Walk {
        path,
        leaf: Leaf::Text,
    }
    .deserialize(serde_norway::Deserializer::from_str(source))
    .ok()
    .flatten()
}

struct Walk<'p> {
    path: &'p [Step<'p>],
    leaf: Leaf,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        match self.path.split_first() {
            None => match self.leaf {
                Leaf::Mark => d.deserialize_any(FailHere),
                Leaf::Text => String::deserialize(d).map(Some),
            },
            Some((&step, rest)) => {
                let visitor = WalkVisitor {
                    step,
                    next: Walk {
                        path: rest,
                        leaf: self.leaf,
                    },
                };
                match step {
                    Step::Key(_) | Step::Again(_) => d.deserialize_map(visitor),
                    Step::Index(_) => d.deserialize_seq(visitor),
                }
            }
        }
    }
}

struct WalkVisitor<'p> {
    step: Step<'p>,
    next: Walk<'p>,
}

impl<'de> Visitor<'de> for WalkVisitor<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping or a list")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let (wanted, skip) = match self.step {
            Step::Key(key) => (key, 0),
            Step::Again(key) => (key, 1),
            Step::Index(_) => return Ok(None),
        };
        let mut next = Some(self.next);
        let mut found = None;
        let mut seen = 0;
        while let Some(key) = map.next_key::<serde_norway::Value>()? {
            let hit = key.as_str() == Some(wanted);
            let wanted_now = hit && seen == skip;
            seen += usize::from(hit);
            match next.take_if(|_| wanted_now) {
                Some(walk) => found = map.next_value_seed(walk)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        let Step::Index(wanted) = self.step else {
            return Ok(None);
        };
        let mut next = Some(self.next);
        let mut found = None;
        let mut index = 0;
        loop {
            match next.take_if(|_| index == wanted) {
                Some(walk) => match seq.next_element_seed(walk)? {
                    Some(value) => found = value,
                    None => break,
                },
                None => {
                    if seq.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                }
            }
            index += 1;
        }
        Ok(found)
    }
}

/// A visitor that accepts nothing: its error carries the value's position.
struct FailHere;

impl Visitor<'_> for FailHere {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nothing (looking up a position)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn matcher(text: &str) -> Matcher {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The error for fixture `tests/fixtures/rules/NAME`, as a user sees it.
    fn fixture_error(name: &str) -> String {
        let file = format!("tests/fixtures/rules/{name}");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(&file);
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        match Rules::parse(&file, &source) {
            Ok(_) => panic!("{file} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn parse_err(source: &str) -> String {
        Rules::parse("r.yaml", source).unwrap_err().to_string()
    }

    const MINIMAL: &str =
        "rules:\n  - name: a\n    match: ['x=\"1\"']\n    decision: rollback\n    deadline: 30s\n";

    // --- matchers -------------------------------------------------------

    #[test]
    fn every_operator_matches_like_alertmanager() {
        let set = labels(&[("severity", "critical"), ("alertname", "ServiceDown")]);
        let cases = [
            ("severity=\"critical\"", true),
            ("severity=\"high\"", false),
            ("severity!=\"high\"", true),
            ("severity!=\"critical\"", false),
            ("severity=~\"critical|high\"", true),
            ("severity=~\"low|medium\"", false),
            ("severity!~\"low|medium\"", true),
            ("severity!~\"crit.*\"", false),
        ];
        for (text, expected) in cases {
            assert_eq!(matcher(text).matches(&set), expected, "{text}");
        }
    }

    #[test]
    fn regex_matchers_are_anchored_like_alertmanager() {
        let set = labels(&[("alertname", "ServiceDown")]);
        assert!(!matcher("alertname=~\"Down\"").matches(&set));
        assert!(!matcher("alertname=~\"Service\"").matches(&set));
        assert!(matcher("alertname=~\".*Down\"").matches(&set));
        assert!(matcher("alertname!~\"Down\"").matches(&set));
        // The anchors wrap the whole alternation, not its first branch.
        assert!(!matcher("alertname=~\"Service|Other\"").matches(&set));
    }

    #[test]
    fn absent_label_counts_as_empty_string() {
        let set = labels(&[("severity", "critical")]);
        assert!(matcher("team!=\"shop\"").matches(&set));
        assert!(matcher("team=\"\"").matches(&set));
        assert!(!matcher("team=\"shop\"").matches(&set));
        assert!(matcher("team=~\"|shop\"").matches(&set));
        assert!(!matcher("team=~\".+\"").matches(&set));
        assert!(matcher("team!~\".+\"").matches(&set));
    }

    #[test]
    fn matcher_text_accepts_unquoted_values_spaces_and_escapes() {
        let m = matcher("  severity =~ critical|high ");
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("severity", MatchOp::Re, "critical|high")
        );
        let m = matcher(r#"summary="say \"hi\"\\now\n""#);
        assert_eq!(m.value, "say \"hi\"\\now\n");
        assert_eq!(matcher("a!=b").op, MatchOp::NotEq);
        assert_eq!(matcher("a!~b").op, MatchOp::NotRe);
        assert_eq!(matcher("a=\"x,y}\"").value, "x,y}");
    }

    #[test]
    fn matcher_display_round_trips_in_alertmanager_syntax() {
        for text in [
            r#"severity="critical""#,
            r#"alertname=~".*(Security|CVE).*""#,
            r#"summary!="say \"hi\"\\now\n""#,
            r#"team!~"""#,
        ] {
            let m = matcher(text);
            assert_eq!(m.to_string(), text);
            assert_eq!(matcher(&m.to_string()), m);
        }
        assert_eq!(
            matcher("severity=critical").to_string(),
            r#"severity="critical""#
        );
    }

    #[test]
    fn bad_matchers_say_what_was_expected() {
        let cases = [
            ("", "invalid matcher ``: expected a label name, found nothing"),
            ("severity", "invalid matcher `severity`: expected an operator (=, !=, =~ or !~) after label name \"severity\""),
            ("app.kubernetes.io=x", "invalid matcher `app.kubernetes.io=x`: expected an operator (=, !=, =~ or !~) after label name \"app\", found \".kubernetes.io=x\""),
            ("1x=\"a\"", "invalid matcher `1x=\"a\"`: label name \"1x\" must not start with a digit"),
            ("severity=", "invalid matcher `severity=`: expected a value after \"=\" (write \"\" for the empty string)"),
            ("severity==\"critical\"", "invalid matcher `severity==\"critical\"`: expected a value after \"=\" (write \"\" for the empty string)"),
            ("severity='critical'", "invalid matcher `severity='critical'`: quote values with double quotes, not single quotes"),
            ("severity=\"critical", "invalid matcher `severity=\"critical`: missing closing quote '\"' after the value"),
            ("a=\"\\d+\"", "invalid matcher `a=\"\\d+\"`: unknown escape \\d in a quoted value (write \\\\d for a backslash)"),
            ("summary=two words", "invalid matcher `summary=two words`: unexpected \"words\" after the value (quote values with spaces or any of , { } = ! ~)"),
            ("alertname=~\"(\"", "invalid regex in matcher alertname=~\"(\": unclosed group"),
        ];
        for (text, expected) in cases {
            assert_eq!(
                text.parse::<Matcher>().unwrap_err().to_string(),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn brace_form_parses_like_alertmanager() {
        let set = parse_matcher_set(r#"{severity="critical", alertname=~"X|Y",}"#).unwrap();
        assert_eq!(
            set,
            vec![
                matcher(r#"severity="critical""#),
                matcher(r#"alertname=~"X|Y""#)
            ]
        );
        assert_eq!(parse_matcher_set("a=b, c!=d").unwrap().len(), 2);
        assert!(parse_matcher_set("{}").unwrap().is_empty());
        assert_eq!(
            parse_matcher_set(r#"{a="b""#).unwrap_err().to_string(),
            r#"invalid matchers `{a="b"`: missing closing "}""#
        );
        assert_eq!(
            parse_matcher_set(r#"{a="b"} x"#).unwrap_err().to_string(),
            r#"invalid matchers `{a="b"} x`: unexpected "x" after "}""#
        );
    }

    // --- durations ------------------------------------------------------

    #[test]
    fn durations_read_and_print_prometheus_style() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("1m", 60_000),
            ("2m30s", 150_000),
            ("1h30m", 5_400_000),
            ("1h1m1s1ms", 3_661_001),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d, Duration::from_millis(ms), "{text}");
            assert_eq!(format_duration(d), text);
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
    }

    #[test]
    fn malformed_durations_are_refused() {
        for text in [
            "", "30", "5 min", "1.5m", "30s1m", "1m1m", "-1s", "1d", "s", "0s",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} accepted");
        }
        assert_eq!(
            parse_duration("30").unwrap_err(),
            "invalid duration \"30\": add a unit, like 30s or 30m"
        );
        assert_eq!(
            parse_duration("0m").unwrap_err(),
            "invalid duration \"0m\": must be more than zero"
        );
    }

    // --- files ----------------------------------------------------------

    #[test]
    fn full_file_parses_into_rules() {
        let source = r#"
gate:
  annotation: auto_rollback
  value: "yes"
rules:
  - name: down
    description: Service down
    match: ['severity="critical"', 'alertname=~".*Down"']
    decision: rollback
    deadline: 30s
  - name: slow
    match: '{severity="medium"}'
    decision: rollback-after
    hold: 2m
    deadline: 5m
  - name: rest
    match: []
    decision: ignore
"#;
        let rules = Rules::parse("r.yaml", source).unwrap();
        assert_eq!(
            rules.gate,
            Gate {
                annotation: "auto_rollback".into(),
                value: "yes".into()
            }
        );
        assert_eq!(rules.rules.len(), 3);
        let down = &rules.rules[0];
        assert_eq!(down.name, "down");
        assert_eq!(down.description, "Service down");
        assert_eq!(
            down.matchers,
            vec![
                matcher(r#"severity="critical""#),
                matcher(r#"alertname=~".*Down""#)
            ]
        );
        assert_eq!(down.decision, DecisionKind::Rollback);
        assert_eq!(down.deadline, Duration::from_secs(30));
        assert_eq!(down.hold, None);
        let slow = &rules.rules[1];
        assert_eq!(slow.matchers, vec![matcher(r#"severity="medium""#)]);
        assert_eq!(slow.hold, Some(Duration::from_secs(120)));
        assert_eq!(slow.deadline, Duration::from_secs(300));
        let rest = &rules.rules[2];
        assert_eq!(
            (rest.decision, rest.deadline),
            (DecisionKind::Ignore, Duration::ZERO)
        );
        assert!(
            rest.matches(&LabelSet::new()),
            "no matchers match every alert"
        );
    }

    #[test]
    fn gate_defaults_to_rollback_true_field_by_field() {
        assert_eq!(
            Rules::parse("r.yaml", MINIMAL).unwrap().gate,
            Gate::default()
        );
        assert_eq!(Gate::default().to_string(), "annotation rollback=\"true\"");
        let source = format!("gate:\n  value: \"yes\"\n{MINIMAL}");
        let gate = Rules::parse("r.yaml", &source).unwrap().gate;
        assert_eq!(
            gate,
            Gate {
                annotation: "rollback".into(),
                value: "yes".into()
            }
        );
    }

    #[test]
    fn first_matching_rule_wins() {
        let rules = Rules::embedded_default();
        let security = labels(&[("severity", "critical"), ("alertname", "CVEExploitAttempt")]);
        assert_eq!(rules.first_match(&security).unwrap().name, "security-issue");
        let down = labels(&[("severity", "critical"), ("alertname", "ServiceDown")]);
        assert_eq!(rules.first_match(&down).unwrap().name, "service-down");
        assert!(rules
            .first_match(&labels(&[("severity", "warning")]))
            .is_none());
    }

    #[test]
    fn default_rules_ship_the_seed_matrix() {
        let rules = Rules::embedded_default();
        assert_eq!(rules.gate, Gate::default());
        let rows: Vec<_> = rules
            .rules
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.decision,
                    r.hold.map(|h| h.as_secs()),
                    r.deadline.as_secs(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("security-issue", DecisionKind::Rollback, None, 30),
                ("service-down", DecisionKind::Rollback, None, 30),
                ("high-error-rate", DecisionKind::Rollback, None, 60),
                (
                    "performance-degradation",
                    DecisionKind::RollbackAfter,
                    Some(120),
                    300
                ),
                ("minor-bug", DecisionKind::Notify, None, 1800),
            ]
        );
        // The shipped folder loads the same rules as the embedded copy.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        assert_eq!(Rules::load_dir(&dir).unwrap(), rules);
    }

    #[test]
    fn matrix_table_is_aligned_with_the_gate_above() {
        let table = Rules::embedded_default().matrix_table();
        let expected = r#"gate: annotation rollback="true"

RULE                     MATCHERS                                                                                 DECISION        HOLD  DEADLINE
security-issue           severity="critical", alertname=~".*(Security|CVE|Vulnerab|Intrusion|Unauthori[sz]ed).*"  rollback        -     30s
service-down             severity="critical"                                                                      rollback        -     30s
high-error-rate          severity="high"                                                                          rollback        -     1m
performance-degradation  severity="medium"                                                                        rollback-after  2m    5m
minor-bug                severity="low"                                                                           notify          -     30m
"#;
        assert_eq!(table, expected);
    }

    #[test]
    fn matrix_table_shows_catch_all_and_ignore_without_deadline() {
        let rules = Rules::parse(
            "r.yaml",
            "rules:\n  - name: rest\n    match: {}\n    decision: ignore\n",
        );
        // `match: {}` is a YAML mapping, not the brace string.
        assert_eq!(
            rules.unwrap_err().to_string(),
            "r.yaml:3: rule \"rest\": match must be a list of matchers or a quoted string: quote the brace form, like match: '{severity=\"critical\"}'"
        );
        let rules = Rules::parse(
            "r.yaml",
            "rules:\n  - name: rest\n    match: '{}'\n    decision: ignore\n",
        )
        .unwrap();
        assert_eq!(
            rules.matrix_table(),
            "gate: annotation rollback=\"true\"\n\nRULE  MATCHERS     DECISION  HOLD  DEADLINE\nrest  (any alert)  ignore    -     -\n"
        );
    }

    // One fixture per mistake; each asserts the whole message a user reads.

    #[test]
    fn unknown_field_is_refused_at_its_line() {
        assert_eq!(
            fixture_error("unknown-field.yaml"),
            "tests/fixtures/rules/unknown-field.yaml:9: rule \"service-down\": unknown field `severity`, expected one of `name`, `description`, `match`, `decision`, `deadline`, `hold`, `gitops`, `slack_channel`"
        );
    }

    #[test]
    fn bad_regex_is_refused_with_the_matcher_and_cause() {
        assert_eq!(
            fixture_error("bad-regex.yaml"),
            "tests/fixtures/rules/bad-regex.yaml:7: rule \"service-down\": invalid regex in matcher alertname=~\"(Service\": unclosed group"
        );
    }

    #[test]
    fn bad_duration_is_refused_with_examples() {
        assert_eq!(
            fixture_error("bad-duration.yaml"),
            "tests/fixtures/rules/bad-duration.yaml:10: rule \"high-error-rate\": invalid duration \"1 min\": expected whole numbers with units h, m, s or ms, largest first, like 30s, 5m, 1h30m or 500ms"
        );
    }

    #[test]
    fn duration_without_unit_is_refused() {
        assert_eq!(
            fixture_error("duration-without-unit.yaml"),
            "tests/fixtures/rules/duration-without-unit.yaml:6: rule \"service-down\": invalid duration \"30\": add a unit, like 30s or 30m"
        );
    }

    #[test]
    fn duplicate_rule_name_points_at_both_definitions() {
        assert_eq!(
            fixture_error("duplicate-name.yaml"),
            "tests/fixtures/rules/duplicate-name.yaml:12: duplicate rule name \"service-down\" (first defined at line 3)"
        );
    }

    #[test]
    fn unknown_decision_lists_the_valid_ones() {
        assert_eq!(
            fixture_error("unknown-decision.yaml"),
            "tests/fixtures/rules/unknown-decision.yaml:5: rule \"service-down\": unknown decision \"rollbak\" (expected one of rollback, rollback-after, notify, ignore)"
        );
    }

    #[test]
    fn rollback_after_without_hold_is_refused() {
        assert_eq!(
            fixture_error("hold-missing.yaml"),
            "tests/fixtures/rules/hold-missing.yaml:6: rule \"performance-degradation\": decision rollback-after needs a hold (how long to wait for the alert to resolve), like hold: 2m"
        );
    }

    #[test]
    fn hold_on_other_decisions_is_refused() {
        assert_eq!(
            fixture_error("hold-not-allowed.yaml"),
            "tests/fixtures/rules/hold-not-allowed.yaml:7: rule \"service-down\": hold is only for decision rollback-after (this rule decides rollback)"
        );
    }

    #[test]
    fn hold_must_be_shorter_than_deadline() {
        assert_eq!(
            fixture_error("hold-not-below-deadline.yaml"),
            "tests/fixtures/rules/hold-not-below-deadline.yaml:8: rule \"performance-degradation\": hold 5m must be shorter than deadline 5m (the rollback must fit in the deadline after the hold)"
        );
    }

    #[test]
    fn missing_deadline_is_refused_at_the_rule() {
        assert_eq!(
            fixture_error("deadline-missing.yaml"),
            "tests/fixtures/rules/deadline-missing.yaml:3: rule \"minor-bug\": missing deadline: decision notify needs one (the time to roll back), like deadline: 30s"
        );
    }

    #[test]
    fn bad_matcher_syntax_is_refused_at_its_item() {
        assert_eq!(
            fixture_error("bad-matcher.yaml"),
            "tests/fixtures/rules/bad-matcher.yaml:7: rule \"high-error-rate\": invalid matcher `severity==\"high\"`: expected a value after \"=\" (write \"\" for the empty string)"
        );
    }

    #[test]
    fn yaml_syntax_error_says_where() {
        assert_eq!(
            fixture_error("yaml-syntax.yaml"),
            "tests/fixtures/rules/yaml-syntax.yaml:6: YAML syntax error: did not find expected '-' indicator while parsing a block collection that started at line 3"
        );
    }

    #[test]
    fn empty_rules_list_is_refused() {
        assert_eq!(
            fixture_error("empty.yaml"),
            "tests/fixtures/rules/empty.yaml:5: the rules list is empty: a rules file needs at least one rule"
        );
    }

    #[test]
    fn file_without_rules_is_refused() {
        assert_eq!(
            fixture_error("no-rules.yaml"),
            "tests/fixtures/rules/no-rules.yaml:1: no \"rules\" list: a rules file needs a top-level \"rules:\" with at least one rule"
        );
    }

    #[test]
    fn invalid_rule_name_is_refused() {
        assert_eq!(
            fixture_error("bad-rule-name.yaml"),
            "tests/fixtures/rules/bad-rule-name.yaml:3: rule #1: invalid rule name \"service down\": use letters, digits, \"-\", \"_\" and \".\", starting with a letter or digit"
        );
    }

    #[test]
    fn every_fixture_is_refused() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            fixture_error(&name);
            count += 1;
        }
        assert!(count >= 14, "{count} fixtures");
    }

    #[test]
    fn other_shape_errors_name_the_field_and_line() {
        let cases = [
            ("gates: {}\n", "r.yaml:1: unknown field `gates`, expected one of `gate`, `guard`, `rules`"),
            ("- a\n", "r.yaml:1: the top level must be a mapping with a \"rules\" list"),
            ("rules: 5\n", "r.yaml:1: rules: invalid type: integer `5`, expected a list of rules"),
            ("rules:\n", "r.yaml:1: the rules list is empty: a rules file needs at least one rule"),
            (
                "rules:\n  - name: a\n    match: [{x: 1}]\n    decision: notify\n    deadline: 1m\n",
                "r.yaml:3: rule \"a\": match[0]: invalid type: map, expected a matcher like severity=\"critical\"",
            ),
            (
                "rules:\n  - name: a\n    decision: notify\n    deadline: 1m\n",
                "r.yaml:2: rule \"a\": missing field `match`",
            ),
            (
                "rules:\n  - name: a\n    match: []\n    decision: ignore\n    deadline: 1m\n",
                "r.yaml:5: rule \"a\": decision ignore takes no deadline (nothing is done)",
            ),
            (
                "gate:\n  annotation: roll back\nrules: []\n",
                "r.yaml:2: invalid gate annotation name \"roll back\": use letters, digits and \"_\", not starting with a digit",
            ),
            (
                "rules:\n  - {name: a, match: [], decision: ignore}\n---\nrules: []\n",
                "r.yaml:3: a second YAML document: a rules file holds one (put all rules in one \"rules\" list)",
            ),
            (
                "rules:\n  - name: a\n    match: []\n    decision: notify\n    name: b\n    deadline: 1m\n",
                "r.yaml:5: rule \"a\": duplicate field `name`",
            ),
            (
                "rules:\n  - name: a\n    match:\n    decision: notify\n    deadline: 1m\n",
                "r.yaml:3: rule \"a\": match is empty: list matchers, or write match: [] to match every alert",
            ),
            (
                "rules:\n  - name: a\n    match: '{a=\"b\" c=\"d\"}'\n    decision: notify\n    deadline: 1m\n",
                "r.yaml:3: rule \"a\": invalid matchers `{a=\"b\" c=\"d\"}`: expected \",\" between matchers, found \"c=\\\"d\\\"}\" (quote values with spaces)",
            ),
            (
                "rules:\n  - name: a\n    match: []\n    decision: notify\n    deadline: [1]\n",
                "r.yaml:5: rule \"a\": deadline: invalid type: sequence, expected a duration like 30s, 5m or 1h30m",
            ),
            (
                "rules:\n  - match: []\n    decision: notify\n    deadline: 1m\n",
                "r.yaml:2: rule #1: missing field `name`",
            ),
            (
                "gate:\n  annotation: x\n  bogus: 1\nrules: []\n",
                "r.yaml:3: gate: unknown field `bogus`, expected `annotation` or `value`",
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(parse_err(source), expected, "{source}");
        }
    }

    #[test]
    fn lines_are_exact_in_flow_style_too() {
        let source = "rules:\n  - {name: a, match: [], decision: ignore}\n  - {name: a, match: [], decision: ignore}\n";
        assert_eq!(
            parse_err(source),
            "r.yaml:3: duplicate rule name \"a\" (first defined at line 2)"
        );
    }

    // --- folders --------------------------------------------------------

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        dir
    }

    fn rule_yaml(name: &str) -> String {
        format!("rules:\n  - name: {name}\n    match: ['x=\"{name}\"']\n    decision: notify\n    deadline: 1m\n")
    }

    #[test]
    fn folder_loads_yaml_files_in_name_order() {
        let dir = folder(&[
            ("20-b.yml", &rule_yaml("b")),
            ("10-a.yaml", &rule_yaml("a")),
            (
                "30-c.yaml",
                &format!("gate:\n  annotation: auto\n{}", rule_yaml("c")),
            ),
            ("README.md", "not rules"),
            (".hidden.yaml", "not: [rules"),
        ]);
        let rules = Rules::load_dir(dir.path()).unwrap();
        let names: Vec<_> = rules.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(rules.gate.annotation, "auto");
    }

    #[test]
    fn folder_errors_name_the_file() {
        let dir = folder(&[
            ("a.yaml", &rule_yaml("a")),
            (
                "b.yaml",
                "rules:\n  - name: b\n    match: []\n    decision: nope\n",
            ),
        ]);
        let file = dir.path().join("b.yaml").display().to_string();
        assert_eq!(
            Rules::load_dir(dir.path()).unwrap_err().to_string(),
            format!("{file}:4: rule \"b\": unknown decision \"nope\" (expected one of rollback, rollback-after, notify, ignore)")
        );
    }

    #[test]
    fn duplicate_names_across_files_are_refused() {
        let dir = folder(&[
            ("a.yaml", &rule_yaml("same")),
            (
                "b.yaml",
                &format!(
                    "{}  - name: same\n    match: []\n    decision: ignore\n",
                    rule_yaml("other")
                ),
            ),
        ]);
        let a = dir.path().join("a.yaml").display().to_string();
        let b = dir.path().join("b.yaml").display().to_string();
        assert_eq!(
            Rules::load_dir(dir.path()).unwrap_err().to_string(),
            format!("{b}:6: duplicate rule name \"same\" (first defined at {a}:2)")
        );
    }

    #[test]
    fn gates_that_differ_between_files_are_refused() {
        let dir = folder(&[
            (
                "a.yaml",
                &format!(
                    "gate:\n  annotation: rollback\n  value: \"true\"\n{}",
                    rule_yaml("a")
                ),
            ),
            (
                "b.yaml",
                &format!(
                    "gate:\n  annotation: rollback\n  value: \"yes\"\n{}",
                    rule_yaml("b")
                ),
            ),
            ("c.yaml", &rule_yaml("c")),
        ]);
        let a = dir.path().join("a.yaml").display().to_string();
        let b = dir.path().join("b.yaml").display().to_string();
        assert_eq!(
            Rules::load_dir(dir.path()).unwrap_err().to_string(),
            format!("{b}:3: gate annotation rollback=\"yes\" differs from annotation rollback=\"true\" in {a}:3: all files must agree on the gate (or define it in one file only)")
        );
        // The same gate in two files is fine.
        std::fs::write(
            dir.path().join("b.yaml"),
            format!("gate:\n  value: \"true\"\n{}", rule_yaml("b")),
        )
        .unwrap();
        assert_eq!(Rules::load_dir(dir.path()).unwrap().rules.len(), 3);
    }

    #[test]
    fn missing_or_empty_folder_is_an_error() {
        let dir = folder(&[("notes.txt", "x")]);
        let shown = dir.path().display().to_string();
        assert_eq!(
            Rules::load_dir(dir.path()).unwrap_err().to_string(),
            format!("{shown}: no rules files (*.yaml or *.yml) in this folder")
        );
        let missing = dir.path().join("nope");
        let err = Rules::load_dir(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: cannot read the rules folder: ",
                missing.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn guard_section_overrides_defaults_and_bad_limits_name_their_line() {
        let rules = Rules::parse(
            "g.yaml",
            "guard:\n  limits:\n    cluster: 3 per 1h, burst 1\n    namespace: off\n  deploy_margin: off\n  gitops: suspend\nrules:\n  - name: a\n    match: []\n    decision: rollback\n    deadline: 30s\n    gitops: refuse\n",
        )
        .unwrap();
        let g = &rules.guard;
        assert_eq!(g.cluster_limit.unwrap().to_string(), "3 per 1h, burst 1");
        assert_eq!(g.namespace_limit, None);
        assert_eq!(
            g.workload_limit,
            crate::guard::GuardConfig::default().workload_limit
        );
        assert_eq!(g.deploy_margin, None);
        assert_eq!(g.gitops, crate::guard::GitOpsPolicy::Suspend);
        assert_eq!(
            rules.rules[0].gitops,
            Some(crate::guard::GitOpsPolicy::Refuse)
        );
        assert_eq!(
            fixture_error("bad-limit.yaml"),
            "tests/fixtures/rules/bad-limit.yaml:1: guard.limits.workload: invalid limit \"1 every 10m\": expected like \"1 per 10m\" or \"5 per 1h, burst 2\""
        );
    }
}
