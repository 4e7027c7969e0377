//! The file format as serde reads it: every value type checks itself while
//! serde walks the YAML, so its error carries the parser's exact position.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::duration::parse_duration;
use super::matcher::{is_label_name, parse_matcher_set, quote, Matcher};
use super::matrix::DecisionKind;

// ---------------------------------------------------------------------------
// The file format, as serde reads it. Every value type checks itself while
// serde walks the YAML, so its error carries the parser's exact position.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with a \"rules\" list")]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) gate: Option<RawGate>,
    #[serde(default)]
    pub(super) guard: Option<crate::core::guard::RawGuard>,
    pub(super) rules: RuleList,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with annotation and value")]
pub(super) struct RawGate {
    #[serde(default)]
    pub(super) annotation: Option<GateAnnotation>,
    #[serde(default)]
    pub(super) value: Option<GateValue>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a rule: a mapping with name, match, decision and deadline"
)]
pub(super) struct RawRule {
    pub(super) name: RuleName,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(rename = "match")]
    pub(super) matchers: MatcherList,
    pub(super) decision: Decision,
    #[serde(default)]
    pub(super) deadline: Option<DurationValue>,
    #[serde(default)]
    pub(super) hold: Option<DurationValue>,
    #[serde(default)]
    pub(super) gitops: Option<crate::core::guard::GitOpsPolicy>,
    #[serde(default)]
    pub(super) slack_channel: Option<String>,
}

/// Implements `Deserialize` for a newtype read from a string, checked by
/// `$check: fn(&str) -> Result<T, String>`.
macro_rules! string_value {
    ($ty:ident($inner:ty), $expecting:literal, $check:expr) => {
        pub(super) struct $ty(pub(super) $inner);

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

/// Rules in one file at most. A decision matrix is a screenful; a
/// thousand rules is far past any real one, and the cap (with
/// [`MAX_MATCHERS_PER_RULE`] and the per-file regex cache) bounds what a
/// small file can expand to through YAML aliases.
pub(super) const MAX_RULES_PER_FILE: usize = 1000;
/// Matchers in one rule at most: Alertmanager routes rarely use more than
/// a handful.
pub(super) const MAX_MATCHERS_PER_RULE: usize = 64;
const TOO_MANY_RULES: &str =
    "more than 1000 rules in one file (YAML aliases count each time they are used): split the matrix or simplify it";
const TOO_MANY_MATCHERS: &str =
    "more than 64 matchers in one rule (YAML aliases count each time they are used)";

/// `match:` as a list of single matchers or one string in brace form.
pub(super) struct MatcherList(pub(super) Vec<Matcher>);

impl<'de> Deserialize<'de> for MatcherList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MatcherList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of matchers or a string like '{severity=\"critical\"}'")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MatcherList, E> {
                let matchers = parse_matcher_set(v).map_err(E::custom)?;
                if matchers.len() > MAX_MATCHERS_PER_RULE {
                    return Err(E::custom(TOO_MANY_MATCHERS));
                }
                Ok(MatcherList(matchers))
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
                    if matchers.len() == MAX_MATCHERS_PER_RULE {
                        return Err(de::Error::custom(TOO_MANY_MATCHERS));
                    }
                    matchers.push(m);
                }
                Ok(MatcherList(matchers))
            }
        }
        d.deserialize_any(V)
    }
}

/// `rules:`, which must hold at least one rule.
pub(super) struct RuleList(pub(super) Vec<RawRule>);

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
                    if rules.len() == MAX_RULES_PER_FILE {
                        return Err(de::Error::custom(TOO_MANY_RULES));
                    }
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

pub(super) const EMPTY_RULES: &str =
    "the rules list is empty: a rules file needs at least one rule";
