//! The three patch formats the API server accepts from rollbackd: RFC 6902
//! JSON Patch, RFC 7386 merge patch, and the strategic merge patch subset
//! that ControllerRevision `data` and kubectl use.

use crate::status::ApiError;
use serde_json::{Map, Value};

/// The patch content types, by their media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply, see `fields`).
    Apply,
}

impl PatchType {
    /// From a `Content-Type` header (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// The media types listed in the real server's 415 answer to a PATCH.
pub(crate) const PATCH_TYPES_BUILTIN: &str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json";
/// The same for custom resources, which have no strategic merge.
pub(crate) const PATCH_TYPES_CRD: &str =
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

/// Apply an RFC 6902 patch. Undecodable → 400 with the decoder's message;
/// failing to apply (a failed `test`, a missing path) → the 422 that
/// `applyJSPatch` returns.
pub fn json_patch(doc: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let ops: json_patch::Patch =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops).map_err(|_| ApiError::json_patch_failed())?;
    Ok(out)
}

/// Apply an RFC 7386 merge patch.
pub fn merge_patch(doc: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let p: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut out = doc.clone();
    json_patch::merge(&mut out, &p);
    Ok(out)
}

/// Apply a strategic merge patch: a merge patch, plus the `$patch: replace`
/// and `$patch: delete` directives, lists of known kinds merged by their
/// merge key (`containers` by `name`, …) instead of replaced, and other
/// `$`-directives (`$setElementOrder/…`, `$retainKeys`) ignored.
pub fn strategic_merge_patch(doc: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let p: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !p.is_object() {
        return Err(ApiError::bad_request("invalid JSON document"));
    }
    Ok(smp_value(Some(doc), &p).unwrap_or(Value::Null))
}

/// The merge key of a list field, by field name, as the Kubernetes types tag
/// them with `patchMergeKey`.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "hostAliases" => "ip",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// `None` means "delete this field".
fn smp_value(orig: Option<&Value>, patch: &Value) -> Option<Value> {
    match patch {
        Value::Null => None,
        Value::Object(p) => {
            match p.get("$patch").and_then(Value::as_str) {
                Some("replace") => return Some(strip_directives(patch)),
                Some("delete") => return None,
                _ => {}
            }
            let mut out = match orig {
                Some(Value::Object(o)) => o.clone(),
                _ => Map::new(),
            };
            for (k, v) in p {
                if k.starts_with('$') {
                    continue;
                }
                let merged = match (v, merge_key(k)) {
                    (Value::Array(items), Some(key)) => {
                        Some(merge_list(out.get(k).and_then(Value::as_array), items, key))
                    }
                    (Value::Array(items), None) if k == "finalizers" => {
                        Some(union_list(out.get(k).and_then(Value::as_array), items))
                    }
                    _ => smp_value(out.get(k), v),
                };
                match merged {
                    Some(m) => {
                        out.insert(k.clone(), m);
                    }
                    None => {
                        out.remove(k);
                    }
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => Some(Value::Array(items.iter().map(strip_directives).collect())),
        other => Some(other.clone()),
    }
}

fn merge_list(orig: Option<&Vec<Value>>, patch: &[Value], key: &str) -> Value {
    if patch
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Value::Array(
            patch
                .iter()
                .filter(|e| e.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        );
    }
    let mut out: Vec<Value> = orig.cloned().unwrap_or_default();
    for item in patch {
        let id = item.get(key).cloned();
        let pos = id
            .as_ref()
            .and_then(|id| out.iter().position(|o| o.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                if let Some(m) = smp_value(Some(&out[i]), item) {
                    out[i] = m;
                }
            }
            (None, false) => out.push(strip_directives(item)),
        }
    }
    Value::Array(out)
}

fn union_list(orig: Option<&Vec<Value>>, patch: &[Value]) -> Value {
    let mut out: Vec<Value> = orig.cloned().unwrap_or_default();
    for v in patch {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    Value::Array(out)
}

/// Drop `$`-directives and nulls, recursively: what is left when a patch
/// fragment becomes plain content.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_test_op_passes_and_fails_like_the_api_server() {
        let doc = json!({"metadata": {"resourceVersion": "7"}, "spec": {"x": 1}});
        let ok = br#"[{"op":"test","path":"/metadata/resourceVersion","value":"7"},{"op":"replace","path":"/spec/x","value":2}]"#;
        assert_eq!(json_patch(&doc, ok).unwrap()["spec"]["x"], 2);
        let stale = br#"[{"op":"test","path":"/metadata/resourceVersion","value":"6"},{"op":"replace","path":"/spec/x","value":2}]"#;
        let err = json_patch(&doc, stale).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(err.reason, "Invalid");
        assert_eq!(
            err.message,
            "the server rejected our request due to an error in our request"
        );
        assert_eq!(json_patch(&doc, b"{not json").unwrap_err().code, 400);
    }

    #[test]
    fn merge_patch_deletes_with_null() {
        let doc = json!({"a": {"b": 1, "c": 2}});
        let out = merge_patch(&doc, br#"{"a":{"b":null,"d":3}}"#).unwrap();
        assert_eq!(out, json!({"a": {"c": 2, "d": 3}}));
    }

    #[test]
    fn strategic_merge_replace_directive_restores_a_controller_revision() {
        let sts = json!({"spec": {"replicas": 3, "template": {
            "metadata": {"labels": {"app": "db", "extra": "x"}},
            "spec": {"containers": [{"name": "db", "image": "pg:16", "env": [{"name": "A", "value": "1"}]}]}
        }}});
        let data = json!({"spec": {"template": {"$patch": "replace",
            "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": "pg:15"}]}
        }}});
        let out = strategic_merge_patch(&sts, data.to_string().as_bytes()).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(
            out["spec"]["template"],
            json!({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "pg:15"}]}})
        );
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let doc = json!({"spec": {"containers": [
            {"name": "app", "image": "a:1"}, {"name": "sidecar", "image": "s:1"}
        ]}});
        let p = br#"{"spec":{"containers":[{"name":"sidecar","image":"s:2"},{"name":"new","image":"n:1"}]}}"#;
        let out = strategic_merge_patch(&doc, p).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "app", "image": "a:1"}, {"name": "sidecar", "image": "s:2"}, {"name": "new", "image": "n:1"}])
        );
        let del = br#"{"spec":{"containers":[{"name":"app","$patch":"delete"}]}}"#;
        let out = strategic_merge_patch(&doc, del).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "sidecar", "image": "s:1"}])
        );
    }
}
