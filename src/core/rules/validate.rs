//! Validation with `file:line` errors: a file's YAML syntax, then its
//! shape, then checks across fields and across files.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde::de::IgnoredAny;

use super::duration::{check_limit_windows, format_duration};
use super::lines::{
    end_line, gate_line, key_line, line_at, rule_line, second_document_line, steps_of, text_at,
    Step,
};
use super::matcher::quote;
use super::matrix::{DecisionKind, Gate, Rule, Rules};
use super::syntax::{RawFile, EMPTY_RULES};
use super::RulesError;

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

    /// Parses rules files in the order given and concatenates their rules
    /// in that order; `files` yields each file's name (as errors show it)
    /// and text, or why it could not be read (the rules folder adapter
    /// reads them lazily, so errors come in file order). Refused: a rule
    /// name used twice (in any files), and a gate that two files define
    /// differently.
    ///
    /// # Errors
    ///
    /// The first `Err` that `files` yields; [`RulesError::Invalid`] for a
    /// mistake in a file, with the file and line.
    pub fn from_files(
        files: impl IntoIterator<Item = Result<(String, String), RulesError>>,
    ) -> Result<Rules, RulesError> {
        let mut parsed_files = Vec::new();
        for read in files {
            let (file, source) = read?;
            let parsed = parse_file(&file, &source)?;
            parsed_files.push((file, source, parsed));
        }
        let files = parsed_files;

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
}

// ---------------------------------------------------------------------------
// Parsing a file: YAML syntax, then the shape, then checks across fields.

struct ParsedFile {
    /// The gate, if the file defines one.
    gate: Option<Gate>,
    /// The guard section, if the file has one.
    guard: Option<crate::core::guard::GuardConfig>,
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
    let raw: RawFile = super::matcher::with_regex_cache(|| serde_norway::from_str(source))
        .map_err(|e| {
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
