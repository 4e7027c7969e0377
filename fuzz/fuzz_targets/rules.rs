//! Fuzzes `Rules::parse`, the parser of one rules file (`rules/*.yaml`),
//! with arbitrary text.
//!
//! Checked for every input:
//! - it never panics;
//! - a refusal names a line of the file: `file:line: reason` with the line
//!   between 1 and the line after the last line break (libyaml reports an
//!   error at the end of the input there), counting line breaks as YAML
//!   does (see [`yaml_lines`]);
//! - accepted rules can be used as `serve` and `check` use them: the guard's
//!   rate limiters are built from them, the matrix prints, and every rule's
//!   matchers run against a real alert's labels.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rollbackd::adapters::clock::SystemClock;
use rollbackd::service::guard::Guard;
use rollbackd::core::parse::LabelSet;
use rollbackd::core::rules::{Rules, RulesError};

fuzz_target!(|data: &[u8]| {
    // Rules files are read with `read_to_string`: only UTF-8 reaches the
    // parser.
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match Rules::parse("fuzz.yaml", source) {
        Err(RulesError::Invalid { file, line, reason }) => {
            assert_eq!(file, "fuzz.yaml");
            let last = yaml_lines(source);
            assert!(
                (1..=last).contains(&line),
                "line {line} is outside the file (1..={last}): {reason}"
            );
            assert!(
                !reason.is_empty(),
                "an error without a reason at line {line}"
            );
        }
        Err(e @ RulesError::Io { .. }) => panic!("parsing text cannot fail to read: {e}"),
        Ok(rules) => {
            let _ = rules.matrix_table();
            let _guard = Guard::new(rules.guard.clone(), Arc::new(SystemClock));
            let labels: LabelSet = [
                ("alertname", "HighErrorRate"),
                ("severity", "high"),
                ("namespace", "shop"),
                ("deployment", "web"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            for rule in &rules.rules {
                let _ = rule.matches(&labels);
                let _ = rule.matches(&LabelSet::new());
            }
        }
    }
});

/// The number of the line at the end of `source`: one more than its line
/// breaks, counted as libyaml counts them (YAML 1.1): CR LF, CR, LF, NEL,
/// LS and PS. Rust's `str::lines` knows only LF and CR LF, so a lone CR
/// would make libyaml's (correct) line look out of range.
fn yaml_lines(source: &str) -> usize {
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
