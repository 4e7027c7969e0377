//! Every input that once made a fuzz target fail (`bash scripts/fuzz`, see
//! `fuzz/README.md`), fed to the same entry point, with the exact answer it
//! must get now. The inputs sit in `tests/fixtures/fuzz/<target>/`, where
//! the script also seeds its corpora from.

use rollbackd::rules::{Rules, RulesError};

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
