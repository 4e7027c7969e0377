//! Label selectors (the string syntax of `?labelSelector=` and the
//! `matchLabels`/`matchExpressions` of a workload's `spec.selector`) and field
//! selectors.

use crate::util::dig;
use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// A `spec.selector` that is null or missing matches nothing, as for
    /// workloads; a query selector never sets this.
    matches_nothing: bool,
}

impl LabelSelector {
    /// Parse the `labelSelector` query syntax: `a=b,c!=d,e in (f,g),!h,i`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(Self {
            requirements,
            matches_nothing: false,
        })
    }

    /// From a `metav1.LabelSelector` JSON value (`matchLabels`,
    /// `matchExpressions`). A missing selector matches nothing.
    pub fn from_json(sel: Option<&Value>) -> Self {
        let Some(sel) = sel.filter(|s| s.is_object()) else {
            return Self {
                requirements: Vec::new(),
                matches_nothing: true,
            };
        };
        let mut requirements = Vec::new();
        if let Some(Value::Object(m)) = sel.get("matchLabels") {
            for (k, v) in m {
                requirements.push(Requirement::Eq(
                    k.clone(),
                    v.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        if let Some(Value::Array(exprs)) = sel.get("matchExpressions") {
            for e in exprs {
                let key = e["key"].as_str().unwrap_or_default().to_string();
                let values: Vec<String> = e["values"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                requirements.push(match e["operator"].as_str().unwrap_or_default() {
                    "In" => Requirement::In(key, values),
                    "NotIn" => Requirement::NotIn(key, values),
                    "Exists" => Requirement::Exists(key),
                    "DoesNotExist" => Requirement::NotExists(key),
                    _ => Requirement::In(key, Vec::new()),
                });
            }
        }
        Self {
            requirements,
            matches_nothing: false,
        }
    }

    /// True when this selector imposes no requirement.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.matches_nothing
    }

    /// Does an object (its `metadata.labels`) satisfy the selector?
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches_labels(dig(obj, &["metadata", "labels"]))
    }

    /// Does a label map (a JSON object or nothing) satisfy the selector?
    pub fn matches_labels(&self, labels: Option<&Value>) -> bool {
        if self.matches_nothing {
            return false;
        }
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Requirement::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

/// Split on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let bad = || format!("unable to parse requirement: {part:?}");
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(check_key(key.trim(), part)?));
    }
    for (op, ctor) in [
        (
            "!=",
            Requirement::NotEq as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Eq),
        ("=", Requirement::Eq),
    ] {
        if let Some((k, v)) = part.split_once(op) {
            return Ok(ctor(check_key(k.trim(), part)?, v.trim().to_string()));
        }
    }
    for (op, gt) in [(">", true), ("<", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let n: i64 = v.trim().parse().map_err(|_| bad())?;
            let k = check_key(k.trim(), part)?;
            return Ok(if gt {
                Requirement::Gt(k, n)
            } else {
                Requirement::Lt(k, n)
            });
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = check_key(words[0], part)?;
        let rest = words[1].trim_start();
        let (notin, set) = if let Some(s) = rest.strip_prefix("notin") {
            (true, s)
        } else if let Some(s) = rest.strip_prefix("in") {
            (false, s)
        } else {
            return Err(bad());
        };
        let set = set.trim();
        let inner = set
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(bad)?;
        let values: Vec<String> = inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        return Ok(if notin {
            Requirement::NotIn(key, values)
        } else {
            Requirement::In(key, values)
        });
    }
    Ok(Requirement::Exists(check_key(part, part)?))
}

fn check_key(key: &str, part: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: {part:?}: invalid label key {key:?}"
        ))
    }
}

/// A field selector: `metadata.name=web,involvedObject.kind!=Pod`. Any dotted
/// JSON path is accepted (the real server allows a per-type list).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    terms: Vec<(Vec<String>, bool, String)>,
}

impl FieldSelector {
    /// Parse `path=value`, `path==value` and `path!=value` terms.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, eq, value) = if let Some((p, v)) = part.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = part.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = part.split_once('=') {
                (p, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            terms.push((
                path.trim().split('.').map(str::to_string).collect(),
                eq,
                value.trim().to_string(),
            ));
        }
        Ok(Self { terms })
    }

    /// True when this selector imposes no requirement.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Does the object satisfy every term?
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(path, eq, want)| {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let got = match dig(obj, &path) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (got == *want) == *eq
        })
    }

    /// The value of a `metadata.name=` term, if there is one.
    pub fn name(&self) -> Option<&str> {
        self.terms
            .iter()
            .find(|(p, eq, _)| *eq && p.len() == 2 && p[0] == "metadata" && p[1] == "name")
            .map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels}})
    }

    #[test]
    fn every_operator_matches_as_kubectl_documents() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=api", true),
            ("tier in (front, back)", true),
            ("tier notin (front)", false),
            ("tier notin (back)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=web,tier=back", false),
            ("app=web,tier in (front,back),!gone", true),
            ("n>4", true),
            ("n<5", false),
            ("", true),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches_object(&o), want, "{sel}");
        }
    }

    #[test]
    fn malformed_selectors_are_refused() {
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
        assert!(LabelSelector::parse("=x").is_err());
    }

    #[test]
    fn workload_selectors_use_match_labels_and_expressions() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front"]},
            {"key": "canary", "operator": "DoesNotExist"}
        ]});
        let s = LabelSelector::from_json(Some(&sel));
        assert!(s.matches_object(&obj(json!({"app": "web", "tier": "front"}))));
        assert!(!s.matches_object(&obj(json!({"app": "web", "tier": "front", "canary": "1"}))));
        assert!(!LabelSelector::from_json(None).matches_object(&obj(json!({}))));
    }

    #[test]
    fn field_selectors_compare_dotted_paths() {
        let ev = json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Deployment", "name": "web"}});
        let f = FieldSelector::parse("involvedObject.name=web,involvedObject.kind!=Pod").unwrap();
        assert!(f.matches(&ev));
        assert_eq!(
            FieldSelector::parse("metadata.name=e1").unwrap().name(),
            Some("e1")
        );
        assert!(!FieldSelector::parse("metadata.name=e2")
            .unwrap()
            .matches(&ev));
    }
}
