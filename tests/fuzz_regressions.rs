//! Every input that once made a fuzz target fail (`bash scripts/fuzz`, see
//! `fuzz/README.md`), fed to the same entry point, with the exact answer it
//! must get now. The inputs sit in `tests/fixtures/fuzz/<target>/`, where
//! the script also seeds its corpora from.

use std::sync::Arc;

use rollbackd::adapters::clock::SystemClock;
use rollbackd::core::rules::{Rules, RulesError};
use rollbackd::service::guard::Guard;

/// What `Rules::parse` answers for a file named `fuzz.yaml`, the name the
/// rules target gives, as `(line, reason)`.
fn rules_error(source: &[u8]) -> (usize, String) {
    let source = std::str::from_utf8(source).expect("rules inputs are UTF-8");
    match Rules::parse("fuzz.yaml", source) {
        Err(RulesError::Invalid { file, line, reason }) => {
            assert_eq!(file, "fuzz.yaml");
            (line, reason)
        }
        Err(other) => panic!("expected a file:line error, got {other}"),
        Ok(_) => panic!("expected an error, the rules parsed"),
    }
}

/// Found by the rules target (minimised from 86 bytes to `-\n<`): libyaml
/// places an error at the end of a file without a final line break on the
/// line after the last one, so the error named line 3 of a 2-line file.
#[test]
fn syntax_error_at_end_of_file_without_final_newline_names_its_last_line() {
    let input =
        include_bytes!("fixtures/fuzz/rules/syntax-error-at-end-without-final-newline.yaml");
    assert_eq!(input, b"-\n<");
    assert_eq!(
        rules_error(input),
        (
            2,
            "YAML syntax error: could not find expected ':' while scanning a simple key that started at line 2".to_string()
        )
    );
}

/// The same mistake in a real rules file, as an editor that drops the final
/// newline saves it: the error names the last line, where the mistake is.
#[test]
fn missing_colon_on_the_last_line_is_reported_on_that_line() {
    let source = "rules:\n  - name: web\n    decision rollback";
    assert_eq!(source.lines().count(), 3);
    let (line, reason) = rules_error(source.as_bytes());
    assert_eq!(line, 3, "{reason}");
    assert_eq!(
        reason,
        "YAML syntax error: could not find expected ':' while scanning a simple key that started at line 3"
    );
}

/// With the final newline the file has an empty line 4 where the input
/// ends; the error stays there, as before the fix.
#[test]
fn syntax_error_at_end_of_file_with_final_newline_is_unchanged() {
    let (line, _) = rules_error(b"rules:\n  - name: web\n    decision rollback\n");
    assert_eq!(line, 4);
}

/// Found while writing the rules target (its `Guard::new` check), then
/// minimised with `cargo fuzz tmin`: `rollbackd check` accepted this file,
/// and `serve` panicked building the guard's rate limiter ("Duration is
/// longer than 584 years", in governor). Now refused at the limit's line.
#[test]
fn guard_limit_period_beyond_what_the_limiter_counts_is_refused() {
    let input = include_bytes!("fixtures/fuzz/rules/guard-limit-period-beyond-584-years.yaml");
    assert_eq!(
        rules_error(input),
        (
            3,
            "guard.limits.workload: invalid limit \"1 per 9999999h, burst 1\": a full burst must refill within 100 years (period / count × burst)".to_string()
        )
    );
}

/// The same through the burst (minimised from `burst 4000000000`): governor
/// multiplied the period by the burst and overflowed.
#[test]
fn guard_limit_burst_that_overflows_the_limiter_is_refused() {
    let input = include_bytes!("fixtures/fuzz/rules/guard-limit-burst-overflows.yaml");
    assert_eq!(
        rules_error(input),
        (
            3,
            "guard.limits.cluster: invalid limit \"1 per 1h, burst 40000000\": a full burst must refill within 100 years (period / count × burst)".to_string()
        )
    );
}

/// The bound itself: a limit that refills in exactly 100 years is accepted
/// and its rate limiter builds; one hour more is refused.
#[test]
fn guard_limit_of_one_hundred_years_is_the_longest_accepted() {
    let file = |limit: &str| {
        format!(
            "guard:\n  limits:\n    namespace: {limit}\nrules:\n  - name: a\n    match: []\n    decision: notify\n    deadline: 30s\n"
        )
    };
    let rules = Rules::parse("fuzz.yaml", &file("1 per 876000h")).expect("100 years is allowed");
    let _guard = Guard::new(rules.guard.clone(), Arc::new(SystemClock));
    let (line, reason) = rules_error(file("1 per 876001h").as_bytes());
    assert_eq!(line, 3);
    assert!(
        reason.starts_with("guard.limits.namespace: invalid limit \"1 per 876001h, burst 1\""),
        "{reason}"
    );
}
