//! Field ownership and server-side apply, the part of it that decides who
//! may set a field.
//!
//! The real API server keeps `metadata.managedFields`: for every field, the
//! field managers that set it, by apply or by update. An apply that would
//! change a field another manager owns fails with `409 Conflict` unless it
//! is forced; that is what makes an apply a safe compare-and-set, and what
//! leader election with server-side apply (the Lease's `holderIdentity`)
//! relies on.
//!
//! Kept here: ownership of leaf fields (maps are walked, lists are atomic
//! leaves), per manager and operation; conflicts of an apply with fields
//! others own holding a different value; `force=true` taking them over; an
//! applier's fields it no longer applies are removed; an update (PUT or a
//! JSON, merge or strategic patch) takes the fields it changes and drops
//! the ones it removes. Not kept: `managedFields` in the object (the table
//! lives beside the store), list-item granularity (`listMapKeys`), and apply
//! creating a missing object (404, as for any patch here).

use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::store::{key, State};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// How a manager came to own a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update or a non-apply patch.
    Update,
}

/// Who owns one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    /// The `fieldManager`.
    pub manager: String,
    /// Apply or update.
    pub op: Operation,
}

/// Field path (`.spec.holderIdentity`) to its owners.
pub(crate) type Owners = BTreeMap<String, Vec<Owner>>;

/// The manager recorded when a write names none (the real server derives
/// one from the user agent).
pub(crate) const UNKNOWN_MANAGER: &str = "unknown";

/// Fields no manager owns: identity and the server's own bookkeeping.
fn unowned(path: &[&str]) -> bool {
    matches!(
        path,
        ["apiVersion"]
            | ["kind"]
            | ["status", ..]
            | [
                "metadata",
                "name"
                    | "namespace"
                    | "uid"
                    | "resourceVersion"
                    | "generation"
                    | "creationTimestamp"
                    | "managedFields"
                    | "selfLink"
            ]
    )
}

/// Every leaf of `v` with its path: maps are walked, anything else (lists
/// included) is a leaf. `null` leaves are skipped (in an apply they mean
/// "not set").
fn leaves(v: &Value) -> BTreeMap<String, Value> {
    fn walk<'a>(v: &'a Value, path: &mut Vec<&'a str>, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, child) in map {
                    path.push(k);
                    walk(child, path, out);
                    path.pop();
                }
            }
            Value::Null => {}
            // An empty map set on purpose is a leaf, as `{}` in a spec.
            _ if !path.is_empty() && !unowned(path) => {
                out.insert(dotted(path), v.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn dotted(path: &[&str]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

fn segments(path: &str) -> Vec<&str> {
    path.split('.').skip(1).collect()
}

fn value_at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    segments(path)
        .into_iter()
        .try_fold(obj, |v, seg| v.as_object()?.get(seg))
}

fn set_at(obj: &mut Value, path: &str, value: Value) {
    let segs = segments(path);
    let (last, parents) = segs.split_last().expect("a leaf path has a segment");
    let mut cur = obj;
    for seg in parents {
        if !cur.get(*seg).is_some_and(Value::is_object) {
            cur[*seg] = Value::Object(Map::new());
        }
        cur = cur.get_mut(*seg).expect("just made");
    }
    cur[*last] = value;
}

fn remove_at(obj: &mut Value, path: &str) {
    let segs = segments(path);
    let (last, parents) = segs.split_last().expect("a leaf path has a segment");
    let mut cur = obj;
    for seg in parents {
        match cur.get_mut(*seg) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(map) = cur.as_object_mut() {
        map.remove(*last);
    }
}

/// The outcome of an apply, committed only once the update succeeds.
pub(crate) struct Applied {
    /// The object to store.
    pub object: Value,
    /// The ownership table after the apply.
    pub owners: Owners,
}

/// Server-side apply of `config` by `manager` onto `current`.
pub(crate) fn apply(
    st: &State,
    res: &'static ResourceType,
    current: &Value,
    config: &Value,
    manager: Option<&str>,
    force: bool,
) -> Result<Applied, ApiError> {
    let ns = current["metadata"]["namespace"].as_str().unwrap_or("");
    let name = current["metadata"]["name"].as_str().unwrap_or("");
    let Some(manager) = manager.filter(|m| !m.is_empty()) else {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    };
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: the apply configuration is not an object",
        ));
    }
    let wanted = (config["apiVersion"].as_str(), config["kind"].as_str());
    if wanted != (Some(res.api_version().as_str()), Some(res.kind)) {
        return Err(ApiError::bad_request(format!(
            "the apply configuration must have apiVersion {} and kind {}",
            res.api_version(),
            res.kind
        )));
    }
    if let Some(n) = config["metadata"]["name"].as_str().filter(|n| *n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    let mut owners = st
        .fields
        .get(&key(res, ns, name))
        .cloned()
        .unwrap_or_default();
    let config_leaves = leaves(config);
    let mut conflicts = Vec::new();
    for (path, value) in &config_leaves {
        if value_at(current, path) == Some(value) {
            continue;
        }
        for owner in owners.get(path).into_iter().flatten() {
            if owner.manager != manager {
                conflicts.push((owner.manager.clone(), path.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(apply_conflict(res, name, &conflicts));
    }
    let mut object = current.clone();
    // Fields this manager applied before and applies no longer: removed,
    // unless another manager owns them too.
    let dropped: Vec<String> = owners
        .iter()
        .filter(|(path, list)| {
            !config_leaves.contains_key(*path)
                && list
                    .iter()
                    .any(|o| o.manager == manager && o.op == Operation::Apply)
        })
        .map(|(path, _)| path.clone())
        .collect();
    for path in dropped {
        let list = owners.get_mut(&path).expect("listed above");
        list.retain(|o| !(o.manager == manager && o.op == Operation::Apply));
        if list.is_empty() {
            owners.remove(&path);
            remove_at(&mut object, &path);
        }
    }
    for (path, value) in config_leaves {
        let changed = value_at(&object, &path) != Some(&value);
        let list = owners.entry(path.clone()).or_default();
        if changed {
            // A new value: the others' claims on the old one are gone (taken
            // by force, or they held nothing different).
            list.clear();
        }
        list.retain(|o| o.manager != manager || o.op != Operation::Apply);
        list.push(Owner {
            manager: manager.to_string(),
            op: Operation::Apply,
        });
        set_at(&mut object, &path, value);
    }
    Ok(Applied { object, owners })
}

/// `Apply failed with 1 conflict: conflict with "m" using v1: .spec.x`.
fn apply_conflict(res: &ResourceType, name: &str, conflicts: &[(String, String)]) -> ApiError {
    let version = res.api_version();
    let message = if let [(manager, path)] = conflicts {
        format!("Apply failed with 1 conflict: conflict with \"{manager}\" using {version}: {path}")
    } else {
        let lines: Vec<String> = conflicts
            .iter()
            .map(|(m, p)| format!("- conflict with \"{m}\" using {version}: {p}"))
            .collect();
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with \"{m}\" using {version}"),
                "field": p,
            })
        })
        .collect();
    let mut details = json!({"name": name, "kind": res.plural, "causes": causes});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    ApiError {
        code: 409,
        reason: "Conflict",
        message,
        details: Some(details),
    }
}

/// After an update by `manager`: it owns every field it changed or added;
/// removed fields have no owner any more.
pub(crate) fn record_update(
    owners: &mut Owners,
    before: Option<&Value>,
    after: &Value,
    manager: Option<&str>,
) {
    let manager = manager.filter(|m| !m.is_empty()).unwrap_or(UNKNOWN_MANAGER);
    let old = before.map(leaves).unwrap_or_default();
    let new = leaves(after);
    for path in old.keys() {
        if !new.contains_key(path) {
            owners.remove(path);
        }
    }
    for (path, value) in new {
        if old.get(&path) == Some(&value) {
            continue;
        }
        let list = owners.entry(path).or_default();
        list.clear();
        list.push(Owner {
            manager: manager.to_string(),
            op: Operation::Update,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_walk_maps_and_keep_lists_whole() {
        let v = json!({"apiVersion": "v1", "kind": "X",
            "metadata": {"name": "a", "labels": {"app": "web"}},
            "spec": {"a": 1, "l": [1, 2], "n": null, "e": {}}});
        let got: Vec<String> = leaves(&v).into_keys().collect();
        assert_eq!(
            got,
            [".metadata.labels.app", ".spec.a", ".spec.e", ".spec.l"]
        );
    }

    #[test]
    fn update_takes_changed_fields_and_forgets_removed_ones() {
        let mut owners = Owners::new();
        let a = json!({"spec": {"x": 1, "y": 2}});
        record_update(&mut owners, None, &a, Some("one"));
        let b = json!({"spec": {"x": 1, "z": 3}});
        record_update(&mut owners, Some(&a), &b, None);
        assert_eq!(owners[".spec.x"][0].manager, "one");
        assert_eq!(owners[".spec.z"][0].manager, UNKNOWN_MANAGER);
        assert!(!owners.contains_key(".spec.y"));
    }
}
