//! Tests of whole rules files: shapes, validation, lines, the matrix.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::core::parse::LabelSet;

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
        crate::core::guard::GuardConfig::default().workload_limit
    );
    assert_eq!(g.deploy_margin, None);
    assert_eq!(g.gitops, crate::core::guard::GitOpsPolicy::Suspend);
    assert_eq!(
        rules.rules[0].gitops,
        Some(crate::core::guard::GitOpsPolicy::Refuse)
    );
    assert_eq!(
            fixture_error("bad-limit.yaml"),
            "tests/fixtures/rules/bad-limit.yaml:1: guard.limits.workload: invalid limit \"1 every 10m\": expected like \"1 per 10m\" or \"5 per 1h, burst 2\""
        );
}

/// A list of matchers anchored once and aliased by every rule: what the
/// security review's 21 KB file did (789 MB). The regexes are compiled once
/// per distinct pattern, and past 1,000 rules or 64 matchers a rule the file
/// is refused, with the line.
#[test]
fn aliased_matchers_compile_each_regex_once_and_are_capped() {
    let mut text = String::from("rules:\n  - name: r0\n    match: &m\n");
    for i in 0..64 {
        text.push_str(&format!(
            "      - 'alertname=~\"(Service|Api){i}.*Down\"'\n"
        ));
    }
    text.push_str("    decision: notify\n    deadline: 5m\n");
    for i in 1..1000 {
        text.push_str(&format!(
            "  - name: r{i}\n    match: *m\n    decision: notify\n    deadline: 5m\n"
        ));
    }
    let (rules, compiled) = super::matcher::with_regex_cache(|| {
        let rules = Rules::parse("alias.yaml", &text).unwrap();
        (rules, super::matcher::compiled_count())
    });
    assert_eq!(rules.rules.len(), 1000);
    assert_eq!(rules.rules[999].matchers.len(), 64);
    assert_eq!(compiled, 64, "one compiled regex per distinct pattern");

    let over =
        text.clone() + "  - name: r1000\n    match: *m\n    decision: notify\n    deadline: 5m\n";
    let err = Rules::parse("alias.yaml", &over).unwrap_err().to_string();
    assert!(err.starts_with("alias.yaml:"), "{err}");
    assert!(err.contains("more than 1000 rules in one file"), "{err}");

    let mut wide = String::from("rules:\n  - name: r0\n    match:\n");
    for i in 0..65 {
        wide.push_str(&format!("      - 'team=\"t{i}\"'\n"));
    }
    wide.push_str("    decision: notify\n    deadline: 5m\n");
    let err = Rules::parse("wide.yaml", &wide).unwrap_err().to_string();
    assert!(err.contains("more than 64 matchers in one rule"), "{err}");
}
