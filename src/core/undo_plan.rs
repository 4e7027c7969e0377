//! The pure half of the undo engine: kubectl's rules for choosing a revision,
//! comparing templates and computing annotations, and the patches that
//! carry them. No IO here; `engine` feeds it objects read from the cluster.
//!
//! Sources of truth (kubectl 1.35, `polymorphichelpers/rollback.go`,
//! `deployment/util/deployment_util.go`), reproduced rule by rule below.

use serde_json::{json, Map, Value};

/// The revision a ReplicaSet carries, copied from its Deployment.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a reused ReplicaSet had.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// Shown by `kubectl rollout history`.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// The label the deployment controller adds to each ReplicaSet's template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// rollbackd's marker: the alert episode a rollback was for, and from/to.
pub const EPISODE: &str = "rollbackd.io/episode";

/// Annotations a rollback keeps from the Deployment instead of taking them
/// from the ReplicaSet (kubectl's `annotationsToSkip`).
pub const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// Why a rollback cannot be planned. Messages are kubectl's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `--to-revision=N` names a revision not in history.
    #[error("unable to find specified revision {0} in history")]
    RevisionNotFound(i64),
    /// Fewer than two revisions.
    #[error("no rollout history found for {kind} {name:?}")]
    NoHistory {
        /// `deployment`, `statefulset`, `daemonset`.
        kind: &'static str,
        /// Workload name.
        name: String,
    },
    /// The Deployment is paused.
    #[error("you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again")]
    Paused,
    /// An object lacks a field the engine needs.
    #[error("{0}")]
    Malformed(String),
}

/// One revision of a workload's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// Revision number.
    pub number: i64,
    /// The ReplicaSet or ControllerRevision holding it.
    pub name: String,
    /// For a ReplicaSet: its pod template. For a ControllerRevision: `data`.
    pub content: Value,
    /// The holder's annotations.
    pub annotations: Map<String, Value>,
    /// When the holder was created (for a reused ReplicaSet: its first
    /// rollout, not its latest).
    pub created: Option<String>,
}

/// Whether `object` has a controller ownerReference to `owner_uid`
/// (`metav1.IsControlledBy`).
pub fn is_controlled_by(object: &Value, owner_uid: &str) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["controller"] == json!(true) && r["uid"].as_str() == Some(owner_uid))
        })
}

/// The revision of a ReplicaSet: missing annotation = 0, unparsable = the
/// ReplicaSet is left out (kubectl's `deploymentutil.Revision`).
pub fn replica_set_revision(rs: &Value) -> Option<i64> {
    match rs["metadata"]["annotations"][REVISION].as_str() {
        None => Some(0),
        Some(s) => s.parse().ok(),
    }
}

/// The history of a Deployment from the ReplicaSets listed with its
/// selector: only those it controls, only those with a readable revision.
pub fn deployment_history(deployment_uid: &str, replica_sets: &[Value]) -> Vec<Revision> {
    let mut history: Vec<Revision> = replica_sets
        .iter()
        .filter(|rs| is_controlled_by(rs, deployment_uid))
        .filter_map(|rs| {
            Some(Revision {
                number: replica_set_revision(rs)?,
                name: rs["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                content: rs["spec"]["template"].clone(),
                annotations: rs["metadata"]["annotations"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                created: rs["metadata"]["creationTimestamp"]
                    .as_str()
                    .map(String::from),
            })
        })
        .collect();
    history.sort_by_key(|r| r.number);
    history
}

/// The history of a StatefulSet or DaemonSet from its ControllerRevisions.
pub fn controller_revision_history(owner_uid: &str, revisions: &[Value]) -> Vec<Revision> {
    let mut history: Vec<Revision> = revisions
        .iter()
        .filter(|cr| is_controlled_by(cr, owner_uid))
        .filter_map(|cr| {
            Some(Revision {
                number: cr["revision"].as_i64()?,
                name: cr["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                content: cr["data"].clone(),
                annotations: cr["metadata"]["annotations"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                created: cr["metadata"]["creationTimestamp"]
                    .as_str()
                    .map(String::from),
            })
        })
        .collect();
    history.sort_by_key(|r| r.number);
    history
}

/// kubectl's choice of a Deployment revision (`deploymentRevision`): exactly
/// `to_revision` when given, else the second-highest.
pub fn choose_deployment_revision<'a>(
    name: &str,
    history: &'a [Revision],
    to_revision: Option<i64>,
) -> Result<&'a Revision, PlanError> {
    if let Some(n) = to_revision.filter(|n| *n != 0) {
        if n < 0 {
            return Err(PlanError::RevisionNotFound(n));
        }
        return history
            .iter()
            .find(|r| r.number == n)
            .ok_or(PlanError::RevisionNotFound(n));
    }
    // kubectl walks the list keeping the two highest; with `history` sorted,
    // that is the second from the end. Equal revision numbers count once as
    // "latest" in kubectl's loop, so skip duplicates of the highest.
    let latest = history.last().ok_or_else(|| PlanError::NoHistory {
        kind: "deployment",
        name: name.to_string(),
    })?;
    history
        .iter()
        .rev()
        .find(|r| r.number < latest.number)
        .ok_or_else(|| PlanError::NoHistory {
            kind: "deployment",
            name: name.to_string(),
        })
}

/// kubectl's choice for StatefulSets and DaemonSets (`findHistory`).
pub fn choose_controller_revision(
    history: &[Revision],
    to_revision: Option<i64>,
) -> Result<&Revision, PlanError> {
    match to_revision.filter(|n| *n != 0) {
        Some(n) => history
            .iter()
            .find(|r| r.number == n)
            .ok_or(PlanError::RevisionNotFound(n)),
        None if history.len() <= 1 => Err(PlanError::RevisionNotFound(0)),
        None => Ok(&history[history.len() - 2]),
    }
}

/// The template with `pod-template-hash` removed from its labels.
pub fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove(POD_TEMPLATE_HASH);
    }
    t
}

/// `EqualIgnoreHash`: templates equal once `pod-template-hash` is dropped,
/// with Kubernetes' semantic equality (an empty map or list equals an absent
/// one).
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    normalize(&without_hash(a)) == normalize(&without_hash(b))
}

/// Drops nulls and empty maps/lists, recursively, as Go's zero values are
/// omitted and `apiequality.Semantic` treats nil and empty alike.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalize(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The Deployment's annotations after a rollback, as kubectl computes them:
/// the skip-listed ones kept from the Deployment, every other one from the
/// target ReplicaSet.
pub fn rollback_annotations(
    deployment: &Map<String, Value>,
    replica_set: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for key in ANNOTATIONS_TO_SKIP {
        if let Some(v) = deployment.get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    for (k, v) in replica_set {
        if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// What rollbackd adds to kubectl's patch.
#[derive(Debug, Clone, PartialEq)]
pub struct Safety {
    /// The resourceVersion read; the patch fails if the object moved on.
    pub resource_version: String,
    /// Value of the episode annotation.
    pub episode: String,
    /// Value of `kubernetes.io/change-cause`.
    pub change_cause: String,
}

/// kubectl's JSON Patch for a Deployment (`getDeploymentPatch`), preceded by
/// a `test` of the resourceVersion, with the episode marker and the change
/// cause in the annotations.
pub fn deployment_patch(
    template: &Value,
    mut annotations: Map<String, Value>,
    safety: &Safety,
) -> Value {
    annotations.insert(EPISODE.into(), safety.episode.clone().into());
    annotations.insert(CHANGE_CAUSE.into(), safety.change_cause.clone().into());
    json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": safety.resource_version},
        {"op": "replace", "path": "/spec/template", "value": without_hash(template)},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ])
}

/// kubectl's patch for a StatefulSet or DaemonSet is the revision's `data`
/// as a strategic merge patch. rollbackd sends the same `data` plus the
/// precondition (`metadata.resourceVersion` in a strategic merge patch makes
/// the API server answer 409 if it moved on) and its annotations.
pub fn controller_revision_patch(data: &Value, safety: &Safety) -> Value {
    let mut patch = data.clone();
    if !patch.is_object() {
        patch = json!({});
    }
    patch["metadata"] = json!({
        "resourceVersion": safety.resource_version,
        "annotations": {
            EPISODE: safety.episode,
            CHANGE_CAUSE: safety.change_cause,
        }
    });
    patch
}

/// The patch kubectl's `getStatefulSetPatch` / `getDaemonSetPatch` would
/// build from the live object: used to tell whether a revision already
/// matches (kubectl compares the bytes; the JSON values compare the same).
pub fn template_as_revision_data(workload: &Value) -> Value {
    let mut template = workload["spec"]["template"].clone();
    if let Some(t) = template.as_object_mut() {
        t.insert("$patch".into(), "replace".into());
    }
    json!({"spec": {"template": template}})
}

/// Whether the ControllerRevision's data already equals the live template.
pub fn controller_revision_matches(workload: &Value, data: &Value) -> bool {
    normalize(&template_as_revision_data(workload)["spec"]["template"])
        == normalize(&data["spec"]["template"])
}

/// Whether `now` differs from `read` only where controllers write on their
/// own: `status`, `metadata.resourceVersion`, `metadata.managedFields`. Then
/// every input of the plan (template, annotations, generation) still holds,
/// and a patch refused by its resourceVersion precondition may be sent again
/// with the new one. On a real cluster the workload controller writes status
/// all the time, most of all while its pods flap under the very alert that
/// fired; treating such a write as a newer deploy would skip the rollback.
pub fn only_status_moved(read: &Value, now: &Value) -> bool {
    let comparable = |v: &Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("status");
        }
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
        v
    };
    comparable(read) == comparable(now)
}

/// `patch` with its precondition moved to `resource_version`: the `test` op
/// of a JSON Patch, or `metadata.resourceVersion` of a strategic merge patch.
pub fn with_resource_version(patch: &Value, resource_version: &str) -> Value {
    let mut patch = patch.clone();
    match &mut patch {
        Value::Array(ops) => {
            for op in ops.iter_mut() {
                if op["op"] == "test" && op["path"] == "/metadata/resourceVersion" {
                    op["value"] = resource_version.into();
                }
            }
        }
        Value::Object(_) => patch["metadata"]["resourceVersion"] = resource_version.into(),
        _ => {}
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = include_str!("../../tests/fixtures/kubectl/shop-web-before-undo.json");
    const KUBECTL_PATCH: &str =
        include_str!("../../tests/fixtures/kubectl/undo-default.patch.json");

    fn fixture() -> (Value, Vec<Value>) {
        let list: Value = serde_json::from_str(BEFORE).unwrap();
        let items = list["items"].as_array().unwrap();
        let deployment = items
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .unwrap()
            .clone();
        let rs = items
            .iter()
            .filter(|o| o["kind"] == "ReplicaSet")
            .cloned()
            .collect();
        (deployment, rs)
    }

    fn rev(number: i64) -> Revision {
        Revision {
            number,
            name: format!("rs-{number}"),
            content: json!({}),
            annotations: Map::new(),
            created: None,
        }
    }

    #[test]
    fn revision_choice_follows_kubectl() {
        let h = vec![rev(1), rev(2), rev(3)];
        let cases: Vec<(Option<i64>, Result<i64, PlanError>)> = vec![
            (None, Ok(2)),
            (Some(0), Ok(2)),
            (Some(1), Ok(1)),
            (Some(3), Ok(3)),
            (Some(7), Err(PlanError::RevisionNotFound(7))),
            (Some(-1), Err(PlanError::RevisionNotFound(-1))),
        ];
        for (to, want) in cases {
            let got = choose_deployment_revision("web", &h, to).map(|r| r.number);
            assert_eq!(got, want, "to_revision {to:?}");
        }
        let one = vec![rev(1)];
        assert_eq!(
            choose_deployment_revision("web", &one, None)
                .unwrap_err()
                .to_string(),
            "no rollout history found for deployment \"web\""
        );
        assert_eq!(
            choose_deployment_revision("web", &[], None)
                .unwrap_err()
                .to_string(),
            "no rollout history found for deployment \"web\""
        );
        // Gaps (revisions 1, 4, 6 after reuse): second-highest is 4.
        let gaps = vec![rev(1), rev(4), rev(6)];
        assert_eq!(
            choose_deployment_revision("web", &gaps, None)
                .unwrap()
                .number,
            4
        );
        assert_eq!(choose_controller_revision(&gaps, None).unwrap().number, 4);
        assert_eq!(
            choose_controller_revision(&one, None).unwrap_err(),
            PlanError::RevisionNotFound(0)
        );
    }

    #[test]
    fn history_keeps_only_controlled_replica_sets_with_readable_revisions() {
        let owned = |name: &str, rev: Option<&str>, uid: &str, controller: bool| {
            let mut rs = json!({"metadata": {"name": name, "annotations": {},
                "ownerReferences": [{"uid": uid, "controller": controller, "kind": "Deployment"}]},
                "spec": {"template": {}}});
            if let Some(r) = rev {
                rs["metadata"]["annotations"][REVISION] = r.into();
            }
            rs
        };
        let list = vec![
            owned("a", Some("1"), "D", true),
            owned("b", Some("2"), "D", true),
            owned("c", Some("9"), "OTHER", true),
            owned("d", Some("8"), "D", false),
            owned("e", Some("abc"), "D", true),
            owned("f", None, "D", true),
        ];
        let h = deployment_history("D", &list);
        let names: Vec<(&str, i64)> = h.iter().map(|r| (r.name.as_str(), r.number)).collect();
        assert_eq!(names, vec![("f", 0), ("a", 1), ("b", 2)]);
    }

    #[test]
    fn templates_compare_equal_ignoring_the_hash_and_empty_fields() {
        let a = json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
            "spec": {"containers": [{"name": "n", "image": "nginx:1", "resources": {}}]}});
        let b = json!({"metadata": {"labels": {"app": "web"}, "annotations": {}},
            "spec": {"containers": [{"name": "n", "image": "nginx:1"}]}});
        let c = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "n", "image": "nginx:2"}]}});
        assert!(equal_ignore_hash(&a, &b));
        assert!(!equal_ignore_hash(&a, &c));
        let d = json!({"metadata": {"labels": {"app": "api"}},
            "spec": {"containers": [{"name": "n", "image": "nginx:1"}]}});
        assert!(!equal_ignore_hash(&a, &d), "other labels still count");
    }

    #[test]
    fn annotations_are_computed_as_kubectl_computes_them() {
        let deployment = json!({
            "deployment.kubernetes.io/revision": "3",
            "kubectl.kubernetes.io/last-applied-configuration": "{...}",
            "deployment.kubernetes.io/desired-replicas": "3",
            "kubernetes.io/change-cause": "upgrade to 1.27-bad",
            "team": "shop",
        });
        let rs = json!({
            "deployment.kubernetes.io/revision": "2",
            "deployment.kubernetes.io/revision-history": "1",
            "deployment.kubernetes.io/max-replicas": "4",
            "kubernetes.io/change-cause": "upgrade to 1.26",
            "owner": "payments",
        });
        let got = rollback_annotations(deployment.as_object().unwrap(), rs.as_object().unwrap());
        assert_eq!(
            Value::Object(got),
            json!({
                "deployment.kubernetes.io/revision": "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                "deployment.kubernetes.io/desired-replicas": "3",
                "kubernetes.io/change-cause": "upgrade to 1.26",
                "owner": "payments",
            }),
            "skip-listed keys from the Deployment, the rest from the ReplicaSet; `team` dropped"
        );
    }

    #[test]
    fn default_undo_of_the_recorded_state_matches_kubectls_patch() {
        let (deployment, replica_sets) = fixture();
        let uid = deployment["metadata"]["uid"].as_str().unwrap();
        let history = deployment_history(uid, &replica_sets);
        assert_eq!(
            history.iter().map(|r| r.number).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let target = choose_deployment_revision("web", &history, None).unwrap();
        assert_eq!(target.number, 2);
        assert!(!equal_ignore_hash(
            &target.content,
            &deployment["spec"]["template"]
        ));
        let annotations = rollback_annotations(
            deployment["metadata"]["annotations"].as_object().unwrap(),
            &target.annotations,
        );
        let safety = Safety {
            resource_version: deployment["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .into(),
            episode: "fp@t".into(),
            change_cause: "rollbackd: why".into(),
        };
        let ours = deployment_patch(&target.content, annotations, &safety);
        let kubectl: Value = serde_json::from_str(KUBECTL_PATCH).unwrap();

        assert_eq!(ours[0]["op"], "test");
        assert_eq!(ours[0]["value"], deployment["metadata"]["resourceVersion"]);
        assert_eq!(
            ours[1], kubectl[0],
            "the template op is kubectl's, byte for byte in value"
        );
        let mut expected_annotations = kubectl[1]["value"].clone();
        expected_annotations[CHANGE_CAUSE] = "rollbackd: why".into();
        expected_annotations[EPISODE] = "fp@t".into();
        assert_eq!(ours[2]["op"], kubectl[1]["op"]);
        assert_eq!(ours[2]["path"], kubectl[1]["path"]);
        assert_eq!(ours[2]["value"], expected_annotations);
    }

    #[test]
    fn controller_revision_match_ignores_the_replace_directive() {
        let sts = json!({"spec": {"template": {"metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": "pg:16"}]}}}});
        let same = json!({"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": "pg:16"}]}}}});
        let older = json!({"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": "pg:15"}]}}}});
        assert!(controller_revision_matches(&sts, &same));
        assert!(!controller_revision_matches(&sts, &older));
        let safety = Safety {
            resource_version: "42".into(),
            episode: "e".into(),
            change_cause: "c".into(),
        };
        let patch = controller_revision_patch(&older, &safety);
        assert_eq!(patch["spec"], older["spec"]);
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(patch["metadata"]["annotations"][EPISODE], "e");
    }

    #[test]
    fn only_a_status_write_lets_the_precondition_move() {
        let read = json!({"metadata": {"resourceVersion": "7", "generation": 2,
            "annotations": {"a": "1"}, "managedFields": []},
            "spec": {"template": {"x": 1}}, "status": {"readyReplicas": 2}});
        let mut status_only = read.clone();
        status_only["metadata"]["resourceVersion"] = "8".into();
        status_only["metadata"]["managedFields"] = json!([{"manager": "kube-controller-manager"}]);
        status_only["status"]["readyReplicas"] = 1.into();
        assert!(only_status_moved(&read, &status_only));
        for (pointer, value) in [
            ("/spec/template/x", json!(2)),
            ("/metadata/generation", json!(3)),
            ("/metadata/annotations/a", json!("2")),
        ] {
            let mut moved = status_only.clone();
            *moved.pointer_mut(pointer).unwrap() = value;
            assert!(!only_status_moved(&read, &moved), "{pointer}");
        }
    }

    #[test]
    fn the_precondition_moves_in_both_patch_forms() {
        let json_patch = json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
            {"op": "replace", "path": "/spec/template", "value": {}},
        ]);
        let moved = with_resource_version(&json_patch, "8");
        assert_eq!(moved[0]["value"], "8");
        assert_eq!(moved[1], json_patch[1]);
        let smp =
            json!({"spec": {}, "metadata": {"resourceVersion": "7", "annotations": {"e": "x"}}});
        let moved = with_resource_version(&smp, "8");
        assert_eq!(
            moved["metadata"],
            json!({"resourceVersion": "8", "annotations": {"e": "x"}})
        );
    }
}
