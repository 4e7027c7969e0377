//! Line lookup: where a value sits in a rules file. serde gives no spans,
//! but serde_norway puts the position of the value being read on every
//! error; so to learn where a value sits, walk to it and fail there on
//! purpose.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::matrix::Gate;

/// The line the input ends on, numbered as libyaml numbers lines (CR LF,
/// CR, LF, NEL, LS and PS each end one). libyaml puts an error at the end of
/// a file without a final line break on the line after it, which the file
/// does not have; such errors are reported on this line instead.
pub(super) fn end_line(source: &str) -> usize {
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

/// The line of the `---` that starts a second YAML document.
pub(super) fn second_document_line(source: &str) -> usize {
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
pub(super) fn key_line(source: &str, key: &str) -> usize {
    source
        .lines()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map_or(1, |i| i + 1)
}

pub(super) fn rule_line(source: &str, index: usize, field: &'static str) -> usize {
    let rule = [Step::Key("rules"), Step::Index(index)];
    let at_field = [rule[0], rule[1], Step::Key(field)];
    (!field.is_empty())
        .then(|| line_at(source, &at_field))
        .flatten()
        .or_else(|| line_at(source, &rule))
        .unwrap_or(1)
}

/// The line of the gate's field where `this` differs from `other`.
pub(super) fn gate_line(source: &str, this: &Gate, other: &Gate) -> usize {
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
pub(super) enum Step<'a> {
    /// The value of this key in a mapping (its first occurrence).
    Key(&'a str),
    /// The value of this key's second occurrence (a duplicate key).
    Again(&'a str),
    /// This item of a list.
    Index(usize),
}

/// The steps of a serde_norway path such as `rules[2].match`.
pub(super) fn steps_of(path: &str) -> Vec<Step<'_>> {
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
pub(super) fn line_at(source: &str, path: &[Step<'_>]) -> Option<usize> {
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
pub(super) fn text_at(source: &str, path: &[Step<'_>]) -> Option<String> {
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
