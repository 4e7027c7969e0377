//! Alertmanager matchers: `=`, `!=`, `=~`, `!~`, anchored regexes, the
//! brace form, and the scanner that reads them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use regex::Regex;

use crate::core::parse::LabelSet;

thread_local! {
    /// The regexes compiled while one rules file is read, by pattern: a
    /// pattern repeated (by hand, or by a YAML alias that repeats a whole
    /// list of matchers across every rule) is compiled once, and its
    /// matchers share the program (a `Regex` clone is a reference).
    static COMPILED: RefCell<Option<HashMap<String, Regex>>> = const { RefCell::new(None) };
}

/// Runs `read` (the reading of one rules file) with a regex cache; the
/// outermost call owns it and drops it at the end.
pub(super) fn with_regex_cache<T>(read: impl FnOnce() -> T) -> T {
    let outermost = COMPILED.with(|c| {
        let mut cache = c.borrow_mut();
        let outermost = cache.is_none();
        if outermost {
            *cache = Some(HashMap::new());
        }
        outermost
    });
    let out = read();
    if outermost {
        COMPILED.with(|c| *c.borrow_mut() = None);
    }
    out
}

/// `pattern` compiled, from the current file's cache when it has it.
fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    COMPILED.with(|c| match c.borrow_mut().as_mut() {
        Some(cache) => {
            if let Some(re) = cache.get(pattern) {
                return Ok(re.clone());
            }
            let re = Regex::new(pattern)?;
            cache.insert(pattern.to_string(), re.clone());
            Ok(re)
        }
        None => Regex::new(pattern),
    })
}

/// How many distinct regexes the current file's cache holds (tests).
#[cfg(test)]
pub(super) fn compiled_count() -> usize {
    COMPILED.with(|c| c.borrow().as_ref().map_or(0, HashMap::len))
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
            match compile(&format!("^(?:{})$", matcher.value)) {
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
pub(super) fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value in double quotes, escaped as Alertmanager prints matchers.
pub(super) fn quote(value: &str) -> String {
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
}
