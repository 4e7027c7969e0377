//! The API server's verbs over the store: create, update, patch, delete, get
//! and list, with the real server's bookkeeping (uid, creationTimestamp,
//! resourceVersion, generation, status subresource rules), preconditions,
//! dry-run, defaults, validation and garbage collection of dependents.
//!
//! Used both by the HTTP layer and by the scenario DSL, so a test's own
//! writes go through exactly what rollbackd's writes go through.

use crate::controller;
use crate::defaults;
use crate::fields;
use crate::patch::{self, PatchType};
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{all_types, key, State};
use crate::util::{dig, dig_mut, dig_str, hex, unhex};
use serde_json::{json, Map, Value};

/// Options of a LIST (and the filter of a WATCH).
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0: no limit).
    pub limit: usize,
    /// `continue` token.
    pub continue_token: Option<String>,
}

fn check_type(res: &'static ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized (must be of type Object)",
        ));
    };
    let api_version = res.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )))
        }
        _ => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != res.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )))
        }
        _ => {}
    }
    map.insert("apiVersion".into(), json!(api_version));
    map.insert("kind".into(), json!(res.kind));
    Ok(())
}

fn check_namespace(res: &'static ResourceType, obj: &mut Value, ns: &str) -> Result<(), ApiError> {
    let meta = dig_mut(obj, &["metadata"]);
    if !res.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    match meta.get("namespace").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta.insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

fn is_workload(res: &ResourceType) -> bool {
    res.group == "apps" && matches!(res.kind, "Deployment" | "StatefulSet" | "DaemonSet")
}

/// POST: create an object in `ns`.
pub(crate) fn create(
    st: &mut State,
    res: &'static ResourceType,
    ns: &str,
    mut obj: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    check_type(res, &mut obj)?;
    check_namespace(res, &mut obj, ns)?;
    let mut name = dig_str(&obj, &["metadata", "name"]).to_string();
    if name.is_empty() {
        let prefix = dig_str(&obj, &["metadata", "generateName"]).to_string();
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                res,
                "",
                &[(
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required".into(),
                )],
            ));
        }
        name = format!("{prefix}{}", st.new_suffix());
        dig_mut(&mut obj, &["metadata"]).insert("name".into(), json!(name));
    }
    if st.get(res, ns, &name).is_some() {
        return Err(ApiError::already_exists(res, &name));
    }
    let uid = st.new_uid();
    let now = st.clock.rfc3339();
    let meta = dig_mut(&mut obj, &["metadata"]);
    meta.insert("uid".into(), json!(uid));
    meta.insert("creationTimestamp".into(), json!(now));
    for system in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(system);
    }
    if res.generation {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    daemonset_template_generation(res, None, &mut obj);
    if res.status_subresource {
        let map = obj.as_object_mut().expect("checked to be an object");
        if res.builtin {
            map.insert("status".into(), json!({}));
        } else {
            map.remove("status");
        }
    }
    defaults::apply(res, &mut obj);
    defaults::validate(res, &obj, None)?;
    if dry_run {
        return Ok(obj);
    }
    let stored = st.commit_create(res, obj);
    if is_workload(res) {
        controller::reconcile(st, res, ns, &name);
    }
    Ok(stored)
}

/// Bump `metadata.generation` when anything outside metadata and status
/// changed (the apps strategies compare `spec`; for CRDs it is everything
/// but metadata and status).
pub(crate) fn bump_generation(res: &ResourceType, old: &Value, new: &mut Value) {
    if !res.generation {
        return;
    }
    let strip = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let gen = old["metadata"]["generation"].as_i64().unwrap_or(0);
    let gen = if strip(old) != strip(new) {
        gen + 1
    } else {
        gen
    };
    dig_mut(new, &["metadata"]).insert("generation".into(), json!(gen));
}

/// A DaemonSet's `deprecated.daemonset.template.generation` annotation, as
/// the real registry keeps it (apps/v1 stores `spec.templateGeneration`
/// there): 1 on create, one more each time the pod template changes (the
/// annotation is set on the object whatever the client sent). Found
/// missing by tests/engine_both.rs against the real API server.
fn daemonset_template_generation(res: &ResourceType, old: Option<&Value>, new: &mut Value) {
    if res.kind != "DaemonSet" {
        return;
    }
    const KEY: &str = "deprecated.daemonset.template.generation";
    let generation = match old {
        None => 1,
        Some(old) => {
            let was = old["metadata"]["annotations"][KEY]
                .as_str()
                .and_then(|g| g.parse::<i64>().ok())
                .unwrap_or(0);
            if old["spec"]["template"] != new["spec"]["template"] {
                was + 1
            } else {
                was
            }
        }
    };
    dig_mut(new, &["metadata", "annotations"]).insert(KEY.into(), json!(generation.to_string()));
}

/// PUT (or the update half of PATCH): replace `name` in `ns` with `obj`.
/// `status_only` is a write to the `/status` subresource.
pub(crate) fn update(
    st: &mut State,
    res: &'static ResourceType,
    ns: &str,
    name: &str,
    mut obj: Value,
    dry_run: bool,
    status_only: bool,
) -> Result<Value, ApiError> {
    check_type(res, &mut obj)?;
    let body_name = dig_str(&obj, &["metadata", "name"]).to_string();
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    check_namespace(res, &mut obj, ns)?;
    let Some(current) = st.get(res, ns, name).cloned() else {
        return Err(ApiError::not_found(res, name));
    };
    let cur_meta = &current["metadata"];
    let want_rv = dig_str(&obj, &["metadata", "resourceVersion"]);
    if !want_rv.is_empty() && want_rv != cur_meta["resourceVersion"].as_str().unwrap_or_default() {
        return Err(ApiError::conflict_modified(res, name));
    }
    let want_uid = dig_str(&obj, &["metadata", "uid"]);
    let cur_uid = cur_meta["uid"].as_str().unwrap_or_default();
    if !want_uid.is_empty() && want_uid != cur_uid {
        return Err(ApiError::conflict(
            res,
            name,
            &format!("Precondition failed: UID in precondition: {want_uid}, UID in object meta: {cur_uid}"),
        ));
    }
    let mut new = if status_only {
        let mut n = current.clone();
        n["status"] = obj.get("status").cloned().unwrap_or(json!({}));
        n
    } else {
        // System fields are the server's, whatever the client sent.
        let meta = dig_mut(&mut obj, &["metadata"]);
        for system in [
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match cur_meta.get(system) {
                Some(v) => meta.insert(system.into(), v.clone()),
                None => meta.remove(system),
            };
        }
        if res.status_subresource {
            let map = obj.as_object_mut().expect("checked to be an object");
            match current.get("status") {
                Some(s) => map.insert("status".into(), s.clone()),
                None => map.remove("status"),
            };
        }
        obj
    };
    dig_mut(&mut new, &["metadata"]).insert(
        "resourceVersion".into(),
        cur_meta["resourceVersion"].clone(),
    );
    if !status_only {
        defaults::apply(res, &mut new);
        defaults::validate(res, &new, Some(&current))?;
    }
    bump_generation(res, &current, &mut new);
    if !status_only {
        daemonset_template_generation(res, Some(&current), &mut new);
    }
    if new == current || dry_run {
        return Ok(new);
    }
    let stored = st.commit_update(res, new);
    if is_workload(res) && !status_only {
        controller::reconcile(st, res, ns, name);
    }
    Ok(stored)
}

/// Who writes, for field ownership: the `fieldManager` and, for an apply,
/// `force`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Writer<'a> {
    /// `fieldManager`.
    pub manager: Option<&'a str>,
    /// `force=true` (apply only).
    pub force: bool,
}

/// PATCH: apply `body` (of `ptype`) to `name` in `ns`, then update; the
/// writer owns the fields it sets.
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch(
    st: &mut State,
    res: &'static ResourceType,
    ns: &str,
    name: &str,
    ptype: PatchType,
    body: &[u8],
    dry_run: bool,
    status_only: bool,
    writer: Writer<'_>,
) -> Result<Value, ApiError> {
    let Some(current) = st.get(res, ns, name).cloned() else {
        return Err(ApiError::not_found(res, name));
    };
    let patched = match ptype {
        PatchType::Json => patch::json_patch(&current, body)?,
        PatchType::Merge => patch::merge_patch(&current, body)?,
        PatchType::Strategic if !res.builtin => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                patch::PATCH_TYPES_CRD
            )))
        }
        PatchType::Strategic => patch::strategic_merge_patch(&current, body)?,
        PatchType::Apply => {
            let config: Value = serde_norway::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            let applied = fields::apply(st, res, &current, &config, writer.manager, writer.force)?;
            let stored = update(st, res, ns, name, applied.object, dry_run, status_only)?;
            if !dry_run {
                st.fields.insert(key(res, ns, name), applied.owners);
            }
            return Ok(stored);
        }
    };
    let stored = update(st, res, ns, name, patched, dry_run, status_only)?;
    if !dry_run {
        record_writer(st, res, Some(&current), &stored, writer);
    }
    Ok(stored)
}

/// Gives `writer` the fields an update or create changed.
pub(crate) fn record_writer(
    st: &mut State,
    res: &'static ResourceType,
    before: Option<&Value>,
    after: &Value,
    writer: Writer<'_>,
) {
    let k = key(
        res,
        dig_str(after, &["metadata", "namespace"]),
        dig_str(after, &["metadata", "name"]),
    );
    fields::record_update(
        st.fields.entry(k).or_default(),
        before,
        after,
        writer.manager,
    );
}

/// DELETE: remove `name` in `ns` (with optional resourceVersion / uid
/// preconditions) and, like the garbage collector, its dependents.
pub(crate) fn delete(
    st: &mut State,
    res: &'static ResourceType,
    ns: &str,
    name: &str,
    precondition_rv: Option<&str>,
    precondition_uid: Option<&str>,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let Some(current) = st.get(res, ns, name).cloned() else {
        return Err(ApiError::not_found(res, name));
    };
    let rv = dig_str(&current, &["metadata", "resourceVersion"]);
    let uid = dig_str(&current, &["metadata", "uid"]).to_string();
    if let Some(want) = precondition_rv.filter(|w| !w.is_empty() && *w != rv) {
        return Err(ApiError::conflict(
            res,
            name,
            &format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"),
        ));
    }
    if let Some(want) = precondition_uid.filter(|w| !w.is_empty() && *w != uid) {
        return Err(ApiError::conflict(
            res,
            name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
        ));
    }
    let mut details = json!({"name": name, "kind": res.plural, "uid": uid});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    let success = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    });
    if dry_run {
        return Ok(success);
    }
    st.commit_delete(res, ns, name);
    controller::forget(st, res, ns, name);
    collect_dependents(st, &uid);
    Ok(success)
}

/// Background garbage collection: delete every object whose ownerReferences
/// name `owner_uid`, and theirs in turn.
fn collect_dependents(st: &mut State, owner_uid: &str) {
    let mut doomed = Vec::new();
    for res in all_types() {
        for obj in st.list(res, None) {
            let owned = obj["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == owner_uid));
            if owned {
                doomed.push((
                    res,
                    dig_str(obj, &["metadata", "namespace"]).to_string(),
                    dig_str(obj, &["metadata", "name"]).to_string(),
                    dig_str(obj, &["metadata", "uid"]).to_string(),
                ));
            }
        }
    }
    for (res, ns, name, uid) in doomed {
        if st.commit_delete(res, &ns, &name).is_some() {
            collect_dependents(st, &uid);
        }
    }
}

/// GET one object.
pub(crate) fn get(
    st: &State,
    res: &'static ResourceType,
    ns: &str,
    name: &str,
) -> Result<Value, ApiError> {
    st.get(res, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(res, name))
}

/// Does `obj` pass a list/watch filter?
pub(crate) fn selected(q: &ListQuery, obj: &Value) -> bool {
    q.labels.matches_object(obj) && q.fields.matches(obj)
}

/// The shape of an object inside a List: built-in types drop `apiVersion`
/// and `kind` (the real server encodes typed list items without them);
/// custom resources keep them.
pub(crate) fn list_item(res: &ResourceType, obj: &Value) -> Value {
    let mut item = obj.clone();
    if res.builtin {
        if let Some(m) = item.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
    }
    item
}

/// LIST, with selectors, `limit` and opaque `continue` tokens.
pub(crate) fn list(
    st: &State,
    res: &'static ResourceType,
    ns: Option<&str>,
    q: &ListQuery,
) -> Result<Value, ApiError> {
    let after: Option<(String, String)> = match &q.continue_token {
        None => None,
        Some(t) => {
            let text = unhex(t)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::bad_request(format!("continue key is not valid: {t}")))?;
            let mut parts = text.splitn(3, '\n');
            let (_rv, n, name) = (parts.next(), parts.next(), parts.next());
            match (n, name) {
                (Some(n), Some(name)) => Some((n.to_string(), name.to_string())),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "continue key is not valid: {t}"
                    )))
                }
            }
        }
    };
    let matching: Vec<&Value> = st
        .list(res, ns)
        .into_iter()
        .filter(|o| {
            after.as_ref().is_none_or(|(n, name)| {
                let k = (
                    dig_str(o, &["metadata", "namespace"]).to_string(),
                    dig_str(o, &["metadata", "name"]).to_string(),
                );
                k > (n.clone(), name.clone())
            })
        })
        .filter(|o| selected(q, o))
        .collect();
    let take = if q.limit == 0 {
        matching.len()
    } else {
        q.limit.min(matching.len())
    };
    let items: Vec<Value> = matching[..take].iter().map(|o| list_item(res, o)).collect();
    let mut metadata = json!({"resourceVersion": st.rv.to_string()});
    if take < matching.len() {
        let last = matching[take - 1];
        let token = format!(
            "{}\n{}\n{}",
            st.rv,
            dig_str(last, &["metadata", "namespace"]),
            dig_str(last, &["metadata", "name"])
        );
        metadata["continue"] = json!(hex(token.as_bytes()));
        // Like etcd3's lister: only counted when no selector filters.
        if q.labels.is_empty() && q.fields.is_empty() {
            metadata["remainingItemCount"] = json!(matching.len() - take);
        }
    }
    Ok(json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}

/// A workload's owner reference to `owner`, as controllers write it.
pub(crate) fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Is `obj` controlled by the object with `owner_uid`?
pub(crate) fn controlled_by(obj: &Value, owner_uid: &str) -> bool {
    dig(obj, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["controller"] == json!(true) && r["uid"] == owner_uid)
        })
}
