//! The workload controllers, run synchronously after every write to a
//! Deployment, StatefulSet or DaemonSet (and by [`advance`] / [`expire`]):
//!
//! - deployment controller (`pkg/controller/deployment`): finds the
//!   ReplicaSet whose template equals the Deployment's ignoring
//!   `pod-template-hash`, bumps its revision to max+1 and appends the old one
//!   to `revision-history` (a rollback), or creates `{name}-{hash}`; copies
//!   the Deployment's annotations except the skip list; sets the
//!   Deployment's `revision`; scales; writes status and conditions; prunes
//!   beyond `revisionHistoryLimit` once complete.
//! - StatefulSet and DaemonSet controllers (`pkg/controller/statefulset`,
//!   `pkg/controller/daemon`): ControllerRevisions holding
//!   `{"spec":{"template":{…,"$patch":"replace"}}}`, reused by bumping
//!   `revision`, status `updateRevision`/`currentRevision` and counts.
//!
//! How far a rollout gets is the test's choice ([`Rollout`]).

use crate::api::{bump_generation, controlled_by, controller_ref};
use crate::resources::{
    controllerrevisions, daemonsets, deployments, replicasets, statefulsets, ResourceType,
};
use crate::selector::LabelSelector;
use crate::store::State;
use crate::util::{
    canonical_json, dig, dig_i64, dig_mut, dig_str, fnv32, safe_encode, template_hash,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// `deployment.kubernetes.io/revision`.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// `deployment.kubernetes.io/revision-history`.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `deployment.kubernetes.io/desired-replicas`.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `deployment.kubernetes.io/max-replicas`.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label the deployment controller adds to its ReplicaSets.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The hash label of StatefulSet ControllerRevisions.
pub const STS_HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// The hash label of DaemonSet ControllerRevisions.
pub const DS_HASH_LABEL: &str = "controller-revision-hash";

/// `annotationsToSkip` in `deployment_util.go`: never copied from a
/// Deployment to its ReplicaSets (and kept by kubectl on undo).
pub const SKIP_COPY_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// The deployment controller's `maxRevHistoryLengthInChars`: the
/// revision-history annotation is kept under this many characters.
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// How far a workload's rollout goes, set per workload, per image or as the
/// default. In every mode the controller observes a spec change at once
/// (`status.observedGeneration` catches up in the same step, and the new
/// ReplicaSet / ControllerRevision exists with its revision); the mode
/// decides the replica counts and conditions that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rollout {
    /// Complete at once: every replica updated, ready and available.
    #[default]
    Instant,
    /// `n` replicas more per [`crate::Cluster::advance`] call; each step is a
    /// MODIFIED event. Lets a test drive a rollout without sleeping. A
    /// rollout starts from the pods its target already has (a rollback in
    /// the middle of a rollout keeps them).
    Steps(u32),
    /// One new pod that never becomes ready; the old ones keep serving. For
    /// Deployments, [`crate::Cluster::expire_progress_deadline`] then sets
    /// `Progressing=False` with reason `ProgressDeadlineExceeded`.
    Never,
}

/// Where one workload's current rollout stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Progress {
    /// Name of the new ReplicaSet / update ControllerRevision.
    pub target: String,
    /// Name of the revision the old pods run (StatefulSet/DaemonSet).
    pub previous: String,
    /// Replicas updated so far (`Steps`).
    pub updated: i64,
    /// The progress deadline was declared exceeded.
    pub timed_out: bool,
    /// No older revision had pods: nothing to replace.
    pub from_scratch: bool,
}

/// Rollout settings and per-workload progress.
#[derive(Debug, Default)]
pub(crate) struct ControllerState {
    /// Mode for workloads with no more specific setting.
    pub default_mode: Rollout,
    /// Mode per (namespace, name).
    pub modes: BTreeMap<(String, String), Rollout>,
    /// Mode for templates that use this image (wins over the others): a bad
    /// image never becomes ready, whichever workload deploys it.
    pub image_modes: BTreeMap<String, Rollout>,
    /// Progress per (kind, namespace, name).
    pub progress: BTreeMap<(&'static str, String, String), Progress>,
    /// Node count, for DaemonSets' `desiredNumberScheduled` (`None`: 3).
    pub nodes: Option<i64>,
}

impl ControllerState {
    fn mode(&self, ns: &str, name: &str, template: &Value) -> Rollout {
        let images = images_of(template);
        for image in &images {
            if let Some(m) = self.image_modes.get(image) {
                return *m;
            }
        }
        self.modes
            .get(&(ns.to_string(), name.to_string()))
            .copied()
            .unwrap_or(self.default_mode)
    }
}

/// The container images of a pod template, in order.
pub(crate) fn images_of(template: &Value) -> Vec<String> {
    dig(template, &["spec", "containers"])
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| c["image"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Run the controller of a workload kind on one object.
pub(crate) fn reconcile(st: &mut State, res: &'static ResourceType, ns: &str, name: &str) {
    match res.kind {
        "Deployment" => deployment(st, ns, name),
        "StatefulSet" => statefulset(st, ns, name),
        "DaemonSet" => daemonset(st, ns, name),
        _ => {}
    }
}

/// Drop the progress record of a deleted workload.
pub(crate) fn forget(st: &mut State, res: &'static ResourceType, ns: &str, name: &str) {
    st.ctl
        .progress
        .remove(&(res.kind, ns.to_string(), name.to_string()));
}

const WORKLOADS: [fn() -> &'static ResourceType; 3] = [deployments, statefulsets, daemonsets];

/// Move every `Steps` rollout of workloads named `name` in `ns` one step.
/// Returns whether any moved.
pub(crate) fn advance(st: &mut State, ns: &str, name: &str) -> bool {
    let mut moved = false;
    for res in WORKLOADS.map(|f| f()) {
        let Some(obj) = st.get(res, ns, name) else {
            continue;
        };
        let template = obj["spec"]["template"].clone();
        let replicas = desired(st, res, obj);
        let mode = st.ctl.mode(ns, name, &template);
        let key = (res.kind, ns.to_string(), name.to_string());
        if let (Rollout::Steps(n), Some(p)) = (mode, st.ctl.progress.get_mut(&key)) {
            if p.updated < replicas {
                p.updated = (p.updated + i64::from(n.max(1))).min(replicas);
                moved = true;
                reconcile(st, res, ns, name);
            }
        }
    }
    moved
}

/// Declare the progress deadline of an unfinished Deployment rollout
/// exceeded. Returns whether there was one.
pub(crate) fn expire(st: &mut State, ns: &str, name: &str) -> bool {
    let key = ("Deployment", ns.to_string(), name.to_string());
    let Some(d) = st.get(deployments(), ns, name) else {
        return false;
    };
    let replicas = desired(st, deployments(), d);
    let complete = d["status"]["updatedReplicas"].as_i64().unwrap_or(0) >= replicas
        && d["status"]["availableReplicas"].as_i64().unwrap_or(0) >= replicas
        && d["status"]["replicas"].as_i64().unwrap_or(0) == replicas;
    match st.ctl.progress.get_mut(&key) {
        Some(p) if !complete => {
            p.timed_out = true;
            reconcile(st, deployments(), ns, name);
            true
        }
        _ => false,
    }
}

/// Re-run the controllers of every workload (after a mode change).
pub(crate) fn resync_all(st: &mut State) {
    for res in WORKLOADS.map(|f| f()) {
        let keys: Vec<(String, String)> = st
            .list(res, None)
            .iter()
            .map(|o| {
                (
                    dig_str(o, &["metadata", "namespace"]).to_string(),
                    dig_str(o, &["metadata", "name"]).to_string(),
                )
            })
            .collect();
        for (ns, name) in keys {
            reconcile(st, res, &ns, &name);
        }
    }
}

fn desired(st: &State, res: &ResourceType, obj: &Value) -> i64 {
    if res.kind == "DaemonSet" {
        st.ctl.nodes.unwrap_or(3)
    } else {
        dig_i64(obj, &["spec", "replicas"], 1)
    }
}

/// A template with `pod-template-hash` removed and empty label/annotation
/// maps and nulls dropped: the form `EqualIgnoreHash` compares.
fn normalized_template(t: &Value) -> Value {
    let mut t = drop_nulls(t);
    if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(POD_TEMPLATE_HASH);
        }
        for k in ["labels", "annotations"] {
            if meta
                .get(k)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                meta.remove(k);
            }
        }
    }
    t
}

fn drop_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), drop_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(drop_nulls).collect()),
        other => other.clone(),
    }
}

/// `EqualIgnoreHash`: pod templates equal but for `pod-template-hash`.
pub fn templates_equal_ignoring_hash(a: &Value, b: &Value) -> bool {
    normalized_template(a) == normalized_template(b)
}

/// A ReplicaSet's revision: missing is 0, unparsable is `None` (skipped).
pub(crate) fn rs_revision(rs: &Value) -> Option<i64> {
    match dig(rs, &["metadata", "annotations", REVISION]) {
        None => Some(0),
        Some(v) => v.as_str().and_then(|s| s.parse().ok()),
    }
}

fn annotations(obj: &Value) -> Map<String, Value> {
    obj["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// `SetNewReplicaSetAnnotations`: copy the Deployment's annotations (but the
/// skip list), raise the revision to `new_revision` if lower (recording the
/// old one in revision-history), and on creation set desired/max replicas.
/// Returns whether the revision changed.
fn set_new_rs_annotations(
    d: &Value,
    rs: &mut Value,
    new_revision: i64,
    exists: bool,
    replicas: i64,
    max: i64,
) -> bool {
    let before = rs.clone();
    let anns = dig_mut(rs, &["metadata", "annotations"]);
    for (k, v) in annotations(d) {
        if !SKIP_COPY_ANNOTATIONS.contains(&k.as_str()) {
            anns.insert(k, v);
        }
    }
    let old = anns
        .get(REVISION)
        .and_then(Value::as_str)
        .map(str::to_string);
    let old_int = match old.as_deref() {
        None | Some("") => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(n) => n,
            Err(_) => {
                // The real controller gives up on this ReplicaSet's annotations.
                *rs = before;
                return false;
            }
        },
    };
    let mut bumped = false;
    if old_int < new_revision {
        anns.insert(REVISION.into(), json!(new_revision.to_string()));
        bumped = true;
        if let Some(old) = old {
            let history = anns
                .get(REVISION_HISTORY)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if history.is_empty() {
                anns.insert(REVISION_HISTORY.into(), json!(old));
            } else {
                let mut parts: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REVISION_HISTORY_CHARS && start < parts.len() {
                    total -= parts[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REVISION_HISTORY_CHARS {
                    parts = parts.split_off(start);
                    parts.push(&old);
                    anns.insert(REVISION_HISTORY.into(), json!(parts.join(",")));
                }
            }
        }
    }
    if !exists {
        anns.insert(DESIRED_REPLICAS.into(), json!(replicas.to_string()));
        anns.insert(MAX_REPLICAS.into(), json!(max.to_string()));
    }
    bumped
}

/// `intstr` percentages as the deployment controller resolves them.
fn resolve_intstr(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if round_up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

/// (maxSurge, maxUnavailable) of a Deployment for `replicas`.
fn surge_and_unavailable(d: &Value, replicas: i64) -> (i64, i64) {
    if dig_str(d, &["spec", "strategy", "type"]) == "Recreate" {
        return (0, 0);
    }
    let ru = dig(d, &["spec", "strategy", "rollingUpdate"]);
    let surge = resolve_intstr(ru.and_then(|r| r.get("maxSurge")), replicas, true, 0);
    let unavailable = resolve_intstr(ru.and_then(|r| r.get("maxUnavailable")), replicas, false, 0);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable.min(replicas))
}

/// Pods per revision for a rollout state.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// Pods of the new revision.
    new: i64,
    /// Of those, ready and available.
    new_ready: i64,
    /// Pods of older revisions (all ready).
    old: i64,
    /// The rollout is over.
    complete: bool,
}

/// Where the rollout of `key` stands, updating its progress record.
/// `surge`: new pods come in addition to old ones (Deployments) rather
/// than replacing them one by one (StatefulSets, DaemonSets).
#[allow(clippy::too_many_arguments)]
fn step(
    st: &mut State,
    key: (&'static str, String, String),
    target: &str,
    previous: &str,
    started: bool,
    has_old: bool,
    already_updated: i64,
    replicas: i64,
    mode: Rollout,
    surge: bool,
) -> (Progress, Shape) {
    let fresh = |updated| Progress {
        target: target.to_string(),
        previous: previous.to_string(),
        updated,
        timed_out: false,
        from_scratch: !has_old,
    };
    let mut p = match st.ctl.progress.get(&key) {
        Some(p) if p.target == target && !started => p.clone(),
        // A workload seen for the first time and not changed by this write
        // (seeded from a fixture, or a metadata-only write) is taken as
        // rolled out.
        None if !started => fresh(replicas),
        // A new rollout starts from the pods the target already has (a
        // rollback mid-rollout keeps the old ReplicaSet's pods).
        _ => fresh(already_updated.clamp(0, replicas)),
    };
    let u = p.updated.min(replicas);
    let shape = if replicas == 0 || u >= replicas || mode == Rollout::Instant {
        Shape {
            new: replicas,
            new_ready: replicas,
            old: 0,
            complete: true,
        }
    } else if mode == Rollout::Never {
        let old = if p.from_scratch {
            0
        } else if surge {
            replicas
        } else {
            replicas - 1
        };
        Shape {
            new: 1,
            new_ready: 0,
            old,
            complete: false,
        }
    } else {
        Shape {
            new: u,
            new_ready: u,
            old: if p.from_scratch { 0 } else { replicas - u },
            complete: false,
        }
    };
    if shape.complete {
        p.updated = replicas;
        p.timed_out = false;
    }
    st.ctl.progress.insert(key, p.clone());
    (p, shape)
}

/// Create an object as a controller does (through the API, no validation).
fn controller_create(st: &mut State, res: &'static ResourceType, mut obj: Value) -> Value {
    let uid = st.new_uid();
    let now = st.clock.rfc3339();
    let meta = dig_mut(&mut obj, &["metadata"]);
    meta.insert("uid".into(), json!(uid));
    meta.insert("creationTimestamp".into(), json!(now));
    if res.generation {
        meta.insert("generation".into(), json!(1));
    }
    st.commit_create(res, obj)
}

/// Update an object as a controller does: generation bookkeeping, no-op
/// writes dropped.
fn controller_update(
    st: &mut State,
    res: &'static ResourceType,
    old: &Value,
    mut new: Value,
) -> Value {
    bump_generation(res, old, &mut new);
    st.commit_update(res, new)
}

fn rs_status(replicas: i64, ready: i64, generation: i64) -> Value {
    // `terminatingReplicas`: Kubernetes 1.35+ (DeploymentReplicaSetTerminatingReplicas)
    // reports it, 0 here since the fake's pods go at once; the real server
    // showed it in tests/engine_both.rs.
    let mut s = json!({"replicas": replicas, "observedGeneration": generation,
        "terminatingReplicas": 0});
    if replicas > 0 {
        s["fullyLabeledReplicas"] = json!(replicas);
    }
    if ready > 0 {
        s["readyReplicas"] = json!(ready);
        s["availableReplicas"] = json!(ready);
    }
    s
}

/// Scale a ReplicaSet and write the status its own controller would report.
fn write_rs(
    st: &mut State,
    rs: &Value,
    replicas: i64,
    ready: i64,
    d_replicas: i64,
    d_max: i64,
) -> Value {
    let mut new = rs.clone();
    let scaled = rs["spec"]["replicas"].as_i64() != Some(replicas);
    new["spec"]["replicas"] = json!(replicas);
    if scaled {
        let anns = dig_mut(&mut new, &["metadata", "annotations"]);
        anns.insert(DESIRED_REPLICAS.into(), json!(d_replicas.to_string()));
        anns.insert(MAX_REPLICAS.into(), json!(d_max.to_string()));
    }
    bump_generation(replicasets(), rs, &mut new);
    let generation = new["metadata"]["generation"].as_i64().unwrap_or(1);
    new["status"] = rs_status(replicas, ready, generation);
    st.commit_update(replicasets(), new)
}

/// `SetDeploymentCondition` (and the Progressing special case that refreshes
/// `lastUpdateTime` on progress): replace the condition of that type, keeping
/// `lastTransitionTime` when the status is unchanged.
fn set_condition(
    status: &mut Value,
    ctype: &str,
    cstatus: &str,
    reason: &str,
    message: &str,
    now: &str,
    touch: bool,
) {
    let conds = status
        .as_object_mut()
        .expect("status is an object")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let list = conds.as_array_mut().expect("just made an array");
    let current = list.iter().position(|c| c["type"] == ctype);
    if let Some(i) = current {
        let c = &list[i];
        if c["status"] == cstatus && c["reason"] == reason && !touch {
            return;
        }
    }
    let transition = match current {
        Some(i) if list[i]["status"] == cstatus => list[i]["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    if let Some(i) = current {
        list.remove(i);
    }
    list.push(json!({
        "type": ctype,
        "status": cstatus,
        "lastUpdateTime": now,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }));
}

fn sort_by_age(objs: &mut [Value]) {
    objs.sort_by(|a, b| {
        let key = |o: &Value| {
            (
                dig_str(o, &["metadata", "creationTimestamp"]).to_string(),
                dig_str(o, &["metadata", "name"]).to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
}

fn deployment(st: &mut State, ns: &str, name: &str) {
    let Some(d) = st.get(deployments(), ns, name).cloned() else {
        return;
    };
    let uid = dig_str(&d, &["metadata", "uid"]).to_string();
    let selector = LabelSelector::from_json(dig(&d, &["spec", "selector"]));
    let mut rss: Vec<Value> = st
        .list(replicasets(), Some(ns))
        .into_iter()
        .filter(|rs| selector.matches_object(rs) && controlled_by(rs, &uid))
        .cloned()
        .collect();
    sort_by_age(&mut rss);
    let replicas = dig_i64(&d, &["spec", "replicas"], 1);
    let (surge, max_unavailable) = surge_and_unavailable(&d, replicas);
    let template = d["spec"]["template"].clone();
    let paused = d["spec"]["paused"] == json!(true);
    let new_idx = rss
        .iter()
        .position(|rs| templates_equal_ignoring_hash(&rs["spec"]["template"], &template));
    let max_old = rss
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .filter_map(|(_, rs)| rs_revision(rs))
        .max()
        .unwrap_or(0);
    let new_revision = max_old + 1;

    // The new ReplicaSet: reuse (maybe bumping its revision) or plan one.
    let mut started = false;
    let mut new_rs: Option<Value> = None;
    if let Some(i) = new_idx {
        let mut rs = rss[i].clone();
        started =
            set_new_rs_annotations(&d, &mut rs, new_revision, true, replicas, replicas + surge);
        let min_ready = d["spec"].get("minReadySeconds").cloned();
        match min_ready {
            Some(v) => rs["spec"]["minReadySeconds"] = v,
            None => {
                if let Some(s) = rs["spec"].as_object_mut() {
                    s.remove("minReadySeconds");
                }
            }
        }
        new_rs = Some(controller_update(st, replicasets(), &rss[i], rs));
    }
    if paused {
        let mut nd = d.clone();
        if let Some(rs) = &new_rs {
            dig_mut(&mut nd, &["metadata", "annotations"]).insert(
                REVISION.into(),
                rs["metadata"]["annotations"][REVISION].clone(),
            );
        }
        let now = st.clock.rfc3339();
        let mut status = d["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        status["observedGeneration"] = d["metadata"]["generation"].clone();
        set_condition(
            &mut status,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            &now,
            false,
        );
        nd["status"] = status;
        st.commit_update(deployments(), nd);
        return;
    }
    let (target, planned) = match &new_rs {
        Some(rs) => (dig_str(rs, &["metadata", "name"]).to_string(), None),
        None => {
            let mut collisions = d["status"]["collisionCount"].as_i64().unwrap_or(0);
            loop {
                let hash = template_hash(&template, collisions);
                let rs_name = format!("{name}-{hash}");
                if st.get(replicasets(), ns, &rs_name).is_none() {
                    break (rs_name, Some((hash, collisions)));
                }
                collisions += 1;
            }
        }
    };
    if planned.is_some() {
        started = true;
    }
    let old: Vec<Value> = rss
        .iter()
        .filter(|rs| dig_str(rs, &["metadata", "name"]) != target)
        .cloned()
        .collect();
    let has_old = old
        .iter()
        .any(|rs| dig_i64(rs, &["spec", "replicas"], 0) > 0);
    let mode = st.ctl.mode(ns, name, &template);
    let key = ("Deployment", ns.to_string(), name.to_string());
    let prev_updated = d["status"]["updatedReplicas"].as_i64().unwrap_or(0);
    let already = new_rs
        .as_ref()
        .map_or(0, |rs| dig_i64(rs, &["spec", "replicas"], 0));
    let (progress, shape) = step(
        st, key, &target, "", started, has_old, already, replicas, mode, true,
    );

    // Write the new ReplicaSet.
    let new_rs = match (new_rs, planned.clone()) {
        (Some(rs), _) => write_rs(
            st,
            &rs,
            shape.new,
            shape.new_ready,
            replicas,
            replicas + surge,
        ),
        (None, Some((hash, _))) => {
            let mut tpl = template.clone();
            dig_mut(&mut tpl, &["metadata", "labels"])
                .insert(POD_TEMPLATE_HASH.into(), json!(hash));
            let mut sel = d["spec"]["selector"].clone();
            dig_mut(&mut sel, &["matchLabels"]).insert(POD_TEMPLATE_HASH.into(), json!(hash));
            let mut rs = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": target,
                    "namespace": ns,
                    "labels": tpl["metadata"]["labels"],
                    "annotations": {},
                    "ownerReferences": [controller_ref(&d)],
                },
                "spec": {"replicas": shape.new, "selector": sel, "template": tpl},
                "status": rs_status(shape.new, shape.new_ready, 1),
            });
            if let Some(v) = d["spec"].get("minReadySeconds") {
                rs["spec"]["minReadySeconds"] = v.clone();
            }
            set_new_rs_annotations(&d, &mut rs, new_revision, false, replicas, replicas + surge);
            controller_create(st, replicasets(), rs)
        }
        (None, None) => unreachable!("a target is either found or planned"),
    };

    // Old ReplicaSets: the one with most pods keeps what is left.
    let keeper = old
        .iter()
        .enumerate()
        .max_by_key(|(_, rs)| {
            (
                dig_i64(rs, &["spec", "replicas"], 0),
                rs_revision(rs).unwrap_or(0),
            )
        })
        .map(|(i, _)| i);
    for (i, rs) in old.iter().enumerate() {
        let n = if Some(i) == keeper { shape.old } else { 0 };
        write_rs(st, rs, n, n, replicas, replicas + surge);
    }

    // The Deployment's revision annotation and status.
    let mut nd = d.clone();
    dig_mut(&mut nd, &["metadata", "annotations"]).insert(
        REVISION.into(),
        new_rs["metadata"]["annotations"][REVISION].clone(),
    );
    let total = shape.new + shape.old;
    let available = shape.new_ready + shape.old;
    // `terminatingReplicas` as the real controller reports it (1.35+).
    let mut status = json!({"observedGeneration": d["metadata"]["generation"],
        "terminatingReplicas": 0});
    for (k, v) in [
        ("replicas", total),
        ("updatedReplicas", shape.new),
        ("readyReplicas", available),
        ("availableReplicas", available),
        ("unavailableReplicas", (total - available).max(0)),
    ] {
        if v != 0 {
            status[k] = json!(v);
        }
    }
    if let Some(c) = d["status"].get("collisionCount") {
        status["collisionCount"] = c.clone();
    }
    if let Some((_, collisions)) = planned.filter(|(_, c)| *c > 0) {
        status["collisionCount"] = json!(collisions);
    }
    status["conditions"] = d["status"]["conditions"].clone();
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let now = st.clock.rfc3339();
    if available >= replicas - max_unavailable {
        set_condition(
            &mut status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &now,
            false,
        );
    } else {
        set_condition(
            &mut status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &now,
            false,
        );
    }
    if d["spec"]
        .get("progressDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        if shape.complete {
            let msg = format!("ReplicaSet \"{target}\" has successfully progressed.");
            set_condition(
                &mut status,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &msg,
                &now,
                false,
            );
        } else if progress.timed_out {
            let msg = format!("ReplicaSet \"{target}\" has timed out progressing.");
            set_condition(
                &mut status,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                &msg,
                &now,
                false,
            );
        } else {
            let msg = format!("ReplicaSet \"{target}\" is progressing.");
            let touch = started || prev_updated != shape.new;
            set_condition(
                &mut status,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &msg,
                &now,
                touch,
            );
        }
    } else if let Some(list) = status["conditions"].as_array_mut() {
        list.retain(|c| c["type"] != "Progressing");
    }
    nd["status"] = status;
    st.commit_update(deployments(), nd);

    // `cleanupDeployment`, once the rollout is complete.
    if shape.complete {
        if let Some(limit) = d["spec"]["revisionHistoryLimit"].as_i64() {
            let mut old: Vec<Value> = st
                .list(replicasets(), Some(ns))
                .into_iter()
                .filter(|rs| selector.matches_object(rs) && controlled_by(rs, &uid))
                .filter(|rs| dig_str(rs, &["metadata", "name"]) != target)
                .cloned()
                .collect();
            sort_by_age(&mut old);
            old.sort_by_key(|rs| rs_revision(rs).unwrap_or(0));
            let diff = old.len() as i64 - limit;
            for rs in old.iter().take(diff.max(0) as usize) {
                let idle = dig_i64(rs, &["spec", "replicas"], 0) == 0
                    && dig_i64(rs, &["status", "replicas"], 0) == 0
                    && dig_i64(rs, &["metadata", "generation"], 0)
                        <= dig_i64(rs, &["status", "observedGeneration"], 0);
                if idle {
                    st.commit_delete(replicasets(), ns, dig_str(rs, &["metadata", "name"]));
                }
            }
        }
    }
}

/// `getPatch` of the StatefulSet and DaemonSet controllers: what a
/// ControllerRevision stores, `{"spec":{"template":{…,"$patch":"replace"}}}`.
pub fn revision_data(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

fn controlled_revisions(st: &State, owner: &Value) -> Vec<Value> {
    let ns = dig_str(owner, &["metadata", "namespace"]);
    let uid = dig_str(owner, &["metadata", "uid"]);
    let mut crs: Vec<Value> = st
        .list(controllerrevisions(), Some(ns))
        .into_iter()
        .filter(|cr| controlled_by(cr, uid))
        .cloned()
        .collect();
    sort_by_age(&mut crs);
    crs.sort_by_key(|cr| cr["revision"].as_i64().unwrap_or(0));
    crs
}

/// Set a ControllerRevision's `revision` (a rollback to it).
fn bump_revision(st: &mut State, cr: &Value, revision: i64) -> Value {
    let mut new = cr.clone();
    new["revision"] = json!(revision);
    controller_update(st, controllerrevisions(), cr, new)
}

/// Delete the oldest revisions beyond `limit`, sparing `live` ones.
fn truncate_history(st: &mut State, owner: &Value, live: &[&str], limit: i64) {
    let ns = dig_str(owner, &["metadata", "namespace"]).to_string();
    let history: Vec<String> = controlled_revisions(st, owner)
        .iter()
        .map(|cr| dig_str(cr, &["metadata", "name"]).to_string())
        .filter(|n| !live.contains(&n.as_str()))
        .collect();
    let excess = history.len() as i64 - limit;
    for name in history.iter().take(excess.max(0) as usize) {
        st.commit_delete(controllerrevisions(), &ns, name);
    }
}

fn statefulset(st: &mut State, ns: &str, name: &str) {
    let Some(set) = st.get(statefulsets(), ns, name).cloned() else {
        return;
    };
    let template = set["spec"]["template"].clone();
    let data = revision_data(&template);
    let crs = controlled_revisions(st, &set);
    let next = crs
        .last()
        .map(|c| c["revision"].as_i64().unwrap_or(0) + 1)
        .unwrap_or(1);
    let collisions = set["status"]["collisionCount"].as_i64().unwrap_or(0);
    let equal = crs.iter().rposition(|cr| cr["data"] == data);
    let (update_name, started) = match equal {
        Some(i) if i + 1 == crs.len() => {
            (dig_str(&crs[i], &["metadata", "name"]).to_string(), false)
        }
        Some(i) => {
            let cr = bump_revision(st, &crs[i], next);
            (dig_str(&cr, &["metadata", "name"]).to_string(), true)
        }
        None => {
            // `HashControllerRevision`: FNV-1 of the data bytes, then the
            // collision count (the controller always passes one).
            let mut probe = collisions;
            let hash = loop {
                let text = format!("{}{}", canonical_json(&data), probe);
                let hash = safe_encode(&fnv32(text.as_bytes()).to_string());
                if st
                    .get(controllerrevisions(), ns, &format!("{name}-{hash}"))
                    .is_none()
                {
                    break hash;
                }
                probe += 1;
            };
            let mut labels = template["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            labels.insert(STS_HASH_LABEL.into(), json!(hash));
            let cr = json!({
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": {
                    "name": format!("{name}-{hash}"),
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [controller_ref(&set)],
                },
                "data": data,
                "revision": next,
            });
            let cr = controller_create(st, controllerrevisions(), cr);
            (dig_str(&cr, &["metadata", "name"]).to_string(), true)
        }
    };
    let current = match dig_str(&set, &["status", "currentRevision"]) {
        c if !c.is_empty() && st.get(controllerrevisions(), ns, c).is_some() => c.to_string(),
        _ => update_name.clone(),
    };
    let replicas = dig_i64(&set, &["spec", "replicas"], 1);
    let mode = st.ctl.mode(ns, name, &template);
    let key = ("StatefulSet", ns.to_string(), name.to_string());
    let has_old = current != update_name;
    let (progress, shape) = step(
        st,
        key,
        &update_name,
        &current,
        started,
        has_old,
        0,
        replicas,
        mode,
        false,
    );
    let ready = shape.new_ready + shape.old;
    let current_revision = if shape.complete {
        update_name.clone()
    } else {
        progress.previous.clone()
    };
    let current_revision = if current_revision.is_empty() {
        update_name.clone()
    } else {
        current_revision
    };
    let mut status = json!({
        "observedGeneration": set["metadata"]["generation"],
        "replicas": shape.new + shape.old,
        "availableReplicas": ready,
        "currentRevision": current_revision,
        "updateRevision": update_name,
        "collisionCount": collisions,
    });
    let current_replicas = if shape.complete { replicas } else { shape.old };
    for (k, v) in [
        ("readyReplicas", ready),
        ("currentReplicas", current_replicas),
        ("updatedReplicas", shape.new),
    ] {
        if v != 0 {
            status[k] = json!(v);
        }
    }
    let mut nset = set.clone();
    nset["status"] = status;
    st.commit_update(statefulsets(), nset);
    let limit = dig_i64(&set, &["spec", "revisionHistoryLimit"], 10);
    truncate_history(st, &set, &[&current_revision, &update_name], limit);
}

fn daemonset(st: &mut State, ns: &str, name: &str) {
    let Some(ds) = st.get(daemonsets(), ns, name).cloned() else {
        return;
    };
    let template = ds["spec"]["template"].clone();
    let data = revision_data(&template);
    let crs = controlled_revisions(st, &ds);
    let (equal, old): (Vec<&Value>, Vec<&Value>) = crs.iter().partition(|cr| cr["data"] == data);
    let next = old
        .iter()
        .map(|c| c["revision"].as_i64().unwrap_or(0))
        .max()
        .unwrap_or(0)
        + 1;
    let collisions = ds["status"]["collisionCount"].as_i64().unwrap_or(0);
    let (cur_name, started) = match equal.last() {
        Some(cur) => {
            // `dedupCurHistories`: keep the highest, drop the other equal ones.
            for dup in &equal[..equal.len() - 1] {
                st.commit_delete(
                    controllerrevisions(),
                    ns,
                    dig_str(dup, &["metadata", "name"]),
                );
            }
            if cur["revision"].as_i64().unwrap_or(0) < next {
                bump_revision(st, cur, next);
                (dig_str(cur, &["metadata", "name"]).to_string(), true)
            } else {
                (dig_str(cur, &["metadata", "name"]).to_string(), false)
            }
        }
        None => {
            let mut probe = collisions;
            let hash = loop {
                let hash = template_hash(&template, probe);
                if st
                    .get(controllerrevisions(), ns, &format!("{name}-{hash}"))
                    .is_none()
                {
                    break hash;
                }
                probe += 1;
            };
            let mut labels = template["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            labels.insert(DS_HASH_LABEL.into(), json!(hash));
            let mut meta = json!({
                "name": format!("{name}-{hash}"),
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [controller_ref(&ds)],
            });
            if let Some(a) = ds["metadata"].get("annotations") {
                meta["annotations"] = a.clone();
            }
            let cr = json!({
                "apiVersion": "apps/v1",
                "kind": "ControllerRevision",
                "metadata": meta,
                "data": data,
                "revision": next,
            });
            let cr = controller_create(st, controllerrevisions(), cr);
            (dig_str(&cr, &["metadata", "name"]).to_string(), true)
        }
    };
    let nodes = st.ctl.nodes.unwrap_or(3);
    let key = ("DaemonSet", ns.to_string(), name.to_string());
    let previous = st
        .ctl
        .progress
        .get(&key)
        .map(|p| {
            if p.updated >= nodes {
                p.target.clone()
            } else {
                p.previous.clone()
            }
        })
        .unwrap_or_default();
    let has_old = !previous.is_empty() && previous != cur_name;
    let mode = st.ctl.mode(ns, name, &template);
    let (progress, shape) = step(
        st, key, &cur_name, &previous, started, has_old, 0, nodes, mode, false,
    );
    let ready = shape.new_ready + shape.old;
    let mut status = json!({
        "currentNumberScheduled": shape.new + shape.old,
        "desiredNumberScheduled": nodes,
        "numberMisscheduled": 0,
        "numberReady": ready,
        "observedGeneration": ds["metadata"]["generation"],
    });
    for (k, v) in [
        ("updatedNumberScheduled", shape.new),
        ("numberAvailable", ready),
        ("numberUnavailable", (nodes - ready).max(0)),
    ] {
        if v != 0 {
            status[k] = json!(v);
        }
    }
    if collisions > 0 {
        status["collisionCount"] = json!(collisions);
    }
    let mut nds = ds.clone();
    nds["status"] = status;
    st.commit_update(daemonsets(), nds);
    let limit = dig_i64(&ds, &["spec", "revisionHistoryLimit"], 10);
    let live = if shape.complete {
        ""
    } else {
        progress.previous.as_str()
    };
    truncate_history(st, &ds, &[&cur_name, live], limit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_ignores_only_the_hash_label() {
        let a = json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}, "spec": {"x": 1}});
        let b = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"x": 1}});
        let c = json!({"metadata": {"labels": {"app": "web", "tier": "x"}}, "spec": {"x": 1}});
        assert!(templates_equal_ignoring_hash(&a, &b));
        assert!(!templates_equal_ignoring_hash(&a, &c));
        let only_hash = json!({"metadata": {"labels": {"pod-template-hash": "abc"}}, "spec": {}});
        assert!(templates_equal_ignoring_hash(
            &only_hash,
            &json!({"metadata": {}, "spec": {}})
        ));
    }

    #[test]
    fn revision_history_is_appended_as_the_controller_does() {
        let d = json!({"metadata": {"annotations": {
            "kubernetes.io/change-cause": "why",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            "deployment.kubernetes.io/revision": "9"
        }}});
        let mut rs = json!({"metadata": {"annotations": {REVISION: "2", REVISION_HISTORY: "1"}}});
        assert!(set_new_rs_annotations(&d, &mut rs, 5, true, 3, 4));
        let anns = &rs["metadata"]["annotations"];
        assert_eq!(anns[REVISION], "5");
        assert_eq!(anns[REVISION_HISTORY], "1,2");
        assert_eq!(anns["kubernetes.io/change-cause"], "why");
        assert!(anns
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .is_none());
        // Already the newest: nothing moves.
        assert!(!set_new_rs_annotations(&d, &mut rs, 5, true, 3, 4));
        assert_eq!(rs["metadata"]["annotations"][REVISION_HISTORY], "1,2");
    }

    #[test]
    fn percentages_resolve_like_the_deployment_controller() {
        let d = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
        assert_eq!(surge_and_unavailable(&d, 3), (1, 0));
        assert_eq!(surge_and_unavailable(&d, 10), (3, 2));
        let recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        assert_eq!(surge_and_unavailable(&recreate, 3), (0, 0));
    }

    #[test]
    fn revision_data_has_the_controllers_shape() {
        let t = json!({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}});
        assert_eq!(
            revision_data(&t),
            json!({"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}}}})
        );
    }
}
