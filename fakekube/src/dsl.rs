//! A small scenario DSL, so a test reads like the seeds:
//!
//! ```no_run
//! # async fn demo(fake: &fakekube::FakeKube) {
//! let web = fake.deployment("shop", "web").image("nginx:1.25").create().await;
//! web.deploy("nginx:1.26", "upgrade to nginx:1.26");
//! web.set_image("nginx:1.27-bad");
//! assert_eq!(web.history().len(), 3);
//! # }
//! ```
//!
//! Every write goes through the same API code as an HTTP request (defaults,
//! validation, resourceVersion, controllers), but is not in the request log:
//! the log holds what the code under test sent.

use crate::api;
use crate::controller::{images_of, rs_revision, Rollout, REVISION};
use crate::resources::{
    controllerrevisions, daemonsets, deployments, replicasets, statefulsets, ResourceType,
};
use crate::selector::LabelSelector;
use crate::status::ApiError;
use crate::util::{dig, dig_i64, dig_mut, dig_str};
use crate::Cluster;
use serde_json::{json, Map, Value};

/// `kubernetes.io/change-cause`, what `kubectl rollout history` shows.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// The workload kinds the DSL builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// apps/v1 Deployment (history in ReplicaSets).
    Deployment,
    /// apps/v1 StatefulSet (history in ControllerRevisions).
    StatefulSet,
    /// apps/v1 DaemonSet (history in ControllerRevisions).
    DaemonSet,
}

impl WorkloadKind {
    /// The resource type behind the kind.
    pub fn resource(self) -> &'static ResourceType {
        match self {
            Self::Deployment => deployments(),
            Self::StatefulSet => statefulsets(),
            Self::DaemonSet => daemonsets(),
        }
    }
}

/// Builds a workload manifest; [`WorkloadBuilder::create`] submits it.
#[derive(Clone)]
#[must_use = "a builder does nothing until create()"]
pub struct WorkloadBuilder {
    cluster: Cluster,
    kind: WorkloadKind,
    ns: String,
    name: String,
    images: Vec<String>,
    container_name: Option<String>,
    replicas: i64,
    labels: Map<String, Value>,
    annotations: Map<String, Value>,
    history_limit: Option<i64>,
    paused: bool,
    rollout: Option<Rollout>,
}

/// `nginx:1.25` → `nginx`; `ghcr.io/acme/api@sha256:…` → `api`.
fn container_name_for(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let base = last.split(['@', ':']).next().unwrap_or(last);
    if base.is_empty() {
        "app".into()
    } else {
        base.to_string()
    }
}

impl WorkloadBuilder {
    pub(crate) fn new(cluster: Cluster, kind: WorkloadKind, ns: &str, name: &str) -> Self {
        Self {
            cluster,
            kind,
            ns: ns.to_string(),
            name: name.to_string(),
            images: vec!["nginx:1.25".into()],
            container_name: None,
            replicas: 3,
            labels: Map::new(),
            annotations: Map::new(),
            history_limit: None,
            paused: false,
            rollout: None,
        }
    }

    /// The image of the (first) container. Default `nginx:1.25`.
    pub fn image(mut self, image: &str) -> Self {
        self.images[0] = image.to_string();
        self
    }

    /// Add a sidecar container with this image.
    pub fn sidecar(mut self, image: &str) -> Self {
        self.images.push(image.to_string());
        self
    }

    /// Name of the first container. Default: from the image (`nginx`).
    pub fn container_name(mut self, name: &str) -> Self {
        self.container_name = Some(name.to_string());
        self
    }

    /// `spec.replicas` (ignored for DaemonSets). Default 3.
    pub fn replicas(mut self, n: i64) -> Self {
        self.replicas = n;
        self
    }

    /// A label on the workload object (not the pods): Flux and Argo CD
    /// ownership labels go here.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), json!(value));
        self
    }

    /// An annotation on the workload object.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), json!(value));
        self
    }

    /// `kubernetes.io/change-cause`.
    pub fn change_cause(self, text: &str) -> Self {
        self.annotation(CHANGE_CAUSE, text)
    }

    /// `spec.revisionHistoryLimit`.
    pub fn revision_history_limit(mut self, n: i64) -> Self {
        self.history_limit = Some(n);
        self
    }

    /// `spec.paused: true` (Deployments).
    pub fn paused(mut self) -> Self {
        self.paused = true;
        self
    }

    /// How this workload's rollouts progress.
    pub fn rollout(mut self, mode: Rollout) -> Self {
        self.rollout = Some(mode);
        self
    }

    /// The manifest [`create`](Self::create) submits.
    pub fn manifest(&self) -> Value {
        let pod_labels = json!({"app": self.name});
        let containers: Vec<Value> = self
            .images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                let name = match (&self.container_name, i) {
                    (Some(n), 0) => n.clone(),
                    _ => container_name_for(image),
                };
                json!({"name": name, "image": image})
            })
            .collect();
        let mut spec = json!({
            "selector": {"matchLabels": pod_labels},
            "template": {"metadata": {"labels": pod_labels}, "spec": {"containers": containers}},
        });
        if self.kind != WorkloadKind::DaemonSet {
            spec["replicas"] = json!(self.replicas);
        }
        if self.kind == WorkloadKind::StatefulSet {
            spec["serviceName"] = json!(self.name);
        }
        if let Some(n) = self.history_limit {
            spec["revisionHistoryLimit"] = json!(n);
        }
        if self.paused {
            spec["paused"] = json!(true);
        }
        let mut labels = Map::new();
        labels.insert("app".into(), json!(self.name));
        labels.extend(self.labels.clone());
        let mut meta = json!({"name": self.name, "namespace": self.ns, "labels": labels});
        if !self.annotations.is_empty() {
            meta["annotations"] = Value::Object(self.annotations.clone());
        }
        let res = self.kind.resource();
        json!({"apiVersion": res.api_version(), "kind": res.kind, "metadata": meta, "spec": spec})
    }

    /// Create the workload (and run its controller), without awaiting.
    pub fn try_create(self) -> Result<Workload, ApiError> {
        if let Some(mode) = self.rollout {
            self.cluster.set_rollout(&self.ns, &self.name, mode);
        }
        let manifest = self.manifest();
        api::create(
            &mut self.cluster.lock(),
            self.kind.resource(),
            &self.ns,
            manifest,
            false,
        )?;
        Ok(Workload {
            cluster: self.cluster,
            kind: self.kind,
            ns: self.ns,
            name: self.name,
        })
    }

    /// Create the workload (and run its controller). Panics if the API
    /// refuses it: this is a test helper.
    pub async fn create(self) -> Workload {
        let what = format!("{}/{}", self.ns, self.name);
        self.try_create()
            .unwrap_or_else(|e| panic!("creating {what}: {}", e.message))
    }
}

/// A handle on a workload in the fake cluster. Cheap to clone, `'static`:
/// it can be moved into an [`Cluster::on_next`] hook.
#[derive(Clone)]
pub struct Workload {
    cluster: Cluster,
    kind: WorkloadKind,
    ns: String,
    name: String,
}

/// One row of `kubectl rollout history`: (revision, images joined by `,`,
/// change-cause).
pub type HistoryRow = (i64, String, Option<String>);

impl Workload {
    pub(crate) fn new(cluster: Cluster, kind: WorkloadKind, ns: &str, name: &str) -> Self {
        Self {
            cluster,
            kind,
            ns: ns.to_string(),
            name: name.to_string(),
        }
    }

    /// The kind.
    pub fn kind(&self) -> WorkloadKind {
        self.kind
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The object as stored now. Panics if it was deleted.
    pub fn get(&self) -> Value {
        self.try_get()
            .unwrap_or_else(|| panic!("{}/{} does not exist", self.ns, self.name))
    }

    /// The object as stored now, if it exists.
    pub fn try_get(&self) -> Option<Value> {
        self.cluster
            .lock()
            .get(self.kind.resource(), &self.ns, &self.name)
            .cloned()
    }

    /// Change the object through the API (an update, like `kubectl edit`),
    /// running its controller. Returns the stored object. The closure runs
    /// under the cluster's lock: it must not call back into the cluster.
    pub fn edit(&self, change: impl FnOnce(&mut Value)) -> Result<Value, ApiError> {
        let res = self.kind.resource();
        let mut st = self.cluster.lock();
        let mut obj = api::get(&st, res, &self.ns, &self.name)?;
        change(&mut obj);
        api::update(&mut st, res, &self.ns, &self.name, obj, false, false)
    }

    fn must_edit(&self, what: &str, change: impl FnOnce(&mut Value)) -> Value {
        self.edit(change)
            .unwrap_or_else(|e| panic!("{what} on {}/{}: {}", self.ns, self.name, e.message))
    }

    /// `kubectl set image`: the first container's image.
    pub fn set_image(&self, image: &str) -> Value {
        self.must_edit("set image", |o| {
            o["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        })
    }

    /// A new version with its reason in one write, like `kubectl apply` of a
    /// manifest carrying `kubernetes.io/change-cause`.
    pub fn deploy(&self, image: &str, change_cause: &str) -> Value {
        self.must_edit("deploy", |o| {
            o["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
            dig_mut(o, &["metadata", "annotations"])
                .insert(CHANGE_CAUSE.into(), json!(change_cause));
        })
    }

    /// `kubectl annotate … kubernetes.io/change-cause=…`.
    pub fn annotate_change_cause(&self, text: &str) -> Value {
        self.annotate(CHANGE_CAUSE, text)
    }

    /// `kubectl annotate`.
    pub fn annotate(&self, key: &str, value: &str) -> Value {
        self.must_edit("annotate", |o| {
            dig_mut(o, &["metadata", "annotations"]).insert(key.into(), json!(value));
        })
    }

    /// `kubectl label` (on the object).
    pub fn label(&self, key: &str, value: &str) -> Value {
        self.must_edit("label", |o| {
            dig_mut(o, &["metadata", "labels"]).insert(key.into(), json!(value));
        })
    }

    /// `kubectl scale`.
    pub fn scale(&self, replicas: i64) -> Value {
        self.must_edit("scale", |o| o["spec"]["replicas"] = json!(replicas))
    }

    /// `kubectl rollout pause`.
    pub fn pause(&self) -> Value {
        self.must_edit("pause", |o| o["spec"]["paused"] = json!(true))
    }

    /// `kubectl rollout resume`.
    pub fn resume(&self) -> Value {
        self.must_edit("resume", |o| {
            if let Some(spec) = o["spec"].as_object_mut() {
                spec.remove("paused");
            }
        })
    }

    /// The current template's images, joined by `,`.
    pub fn image(&self) -> String {
        images_of(&self.get()["spec"]["template"]).join(",")
    }

    /// The current revision: the Deployment's `deployment.kubernetes.io/revision`,
    /// or the `revision` of the StatefulSet's/DaemonSet's current template's
    /// ControllerRevision. 0 when there is none.
    pub fn revision(&self) -> i64 {
        let obj = self.get();
        match self.kind {
            WorkloadKind::Deployment => dig_i64(&obj, &["metadata", "annotations", REVISION], 0),
            _ => {
                let data = crate::controller::revision_data(&obj["spec"]["template"]);
                self.controller_revisions()
                    .iter()
                    .filter(|cr| cr["data"] == data)
                    .map(|cr| cr["revision"].as_i64().unwrap_or(0))
                    .max()
                    .unwrap_or(0)
            }
        }
    }

    fn owned(&self, res: &'static ResourceType) -> Vec<Value> {
        let obj = self.get();
        let uid = dig_str(&obj, &["metadata", "uid"]).to_string();
        let selector = LabelSelector::from_json(dig(&obj, &["spec", "selector"]));
        self.cluster
            .lock()
            .list(res, Some(&self.ns))
            .into_iter()
            .filter(|o| api::controlled_by(o, &uid))
            .filter(|o| res.kind != "ReplicaSet" || selector.matches_object(o))
            .cloned()
            .collect()
    }

    /// The ReplicaSets this Deployment controls (by selector and controller
    /// uid, as kubectl lists them), oldest revision first.
    pub fn replica_sets(&self) -> Vec<Value> {
        let mut rss = self.owned(replicasets());
        rss.sort_by_key(|rs| rs_revision(rs).unwrap_or(-1));
        rss
    }

    /// The ControllerRevisions this StatefulSet/DaemonSet controls, oldest
    /// revision first.
    pub fn controller_revisions(&self) -> Vec<Value> {
        let mut crs = self.owned(controllerrevisions());
        crs.sort_by_key(|cr| cr["revision"].as_i64().unwrap_or(0));
        crs
    }

    /// `kubectl rollout history`: one row per revision, oldest first.
    pub fn history(&self) -> Vec<HistoryRow> {
        let cause = |o: &Value| {
            dig(o, &["metadata", "annotations", CHANGE_CAUSE])
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        match self.kind {
            WorkloadKind::Deployment => self
                .replica_sets()
                .iter()
                .filter_map(|rs| {
                    let rev = rs_revision(rs)?;
                    Some((rev, images_of(&rs["spec"]["template"]).join(","), cause(rs)))
                })
                .collect(),
            _ => self
                .controller_revisions()
                .iter()
                .map(|cr| {
                    (
                        cr["revision"].as_i64().unwrap_or(0),
                        images_of(&cr["data"]["spec"]["template"]).join(","),
                        cause(cr),
                    )
                })
                .collect(),
        }
    }

    /// How this workload's rollouts progress from now on (re-runs its
    /// controller, so a stuck rollout switched to `Instant` completes).
    pub fn set_rollout(&self, mode: Rollout) {
        self.cluster.set_rollout(&self.ns, &self.name, mode);
    }

    /// One `Steps` step. Returns whether the rollout moved.
    pub fn advance(&self) -> bool {
        self.cluster.advance(&self.ns, &self.name)
    }

    /// Declare the progress deadline exceeded (Deployments).
    pub fn expire_progress_deadline(&self) -> bool {
        self.cluster.expire_progress_deadline(&self.ns, &self.name)
    }

    /// `kubectl rollout status` in one look: `Ok(message)` when done,
    /// `Err(message)` while waiting or failed, worded like kubectl.
    pub fn rollout_status(&self) -> Result<String, String> {
        rollout_status(self.kind, &self.get())
    }

    /// `kubectl rollout status` would say the rollout is complete.
    pub fn is_rolled_out(&self) -> bool {
        self.rollout_status().is_ok()
    }
}

/// kubectl's `StatusViewer`s (`kubectl/pkg/polymorphichelpers/rollout_status.go`)
/// for one observed object; messages without kubectl's trailing newline.
pub fn rollout_status(kind: WorkloadKind, obj: &Value) -> Result<String, String> {
    let name = dig_str(obj, &["metadata", "name"]);
    let generation = dig_i64(obj, &["metadata", "generation"], 0);
    let observed = dig_i64(obj, &["status", "observedGeneration"], 0);
    let s = |k: &str| dig_i64(obj, &["status", k], 0);
    match kind {
        WorkloadKind::Deployment => {
            if generation > observed {
                return Err("Waiting for deployment spec update to be observed...".into());
            }
            let progressing = obj["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"));
            if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
                return Err(format!(
                    "deployment {name:?} exceeded its progress deadline"
                ));
            }
            let replicas = dig_i64(obj, &["spec", "replicas"], 1);
            let (updated, total, available) =
                (s("updatedReplicas"), s("replicas"), s("availableReplicas"));
            if updated < replicas {
                return Err(format!(
                    "Waiting for deployment {name:?} rollout to finish: {updated} out of {replicas} new replicas have been updated..."
                ));
            }
            if total > updated {
                return Err(format!(
                    "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                    total - updated
                ));
            }
            if available < updated {
                return Err(format!(
                    "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
                ));
            }
            Ok(format!("deployment {name:?} successfully rolled out"))
        }
        WorkloadKind::DaemonSet => {
            if dig_str(obj, &["spec", "updateStrategy", "type"]) != "RollingUpdate" {
                return Err(
                    "rollout status is only available for RollingUpdate strategy type".into(),
                );
            }
            if generation > observed {
                return Err("Waiting for daemon set spec update to be observed...".into());
            }
            let (desired, updated, available) = (
                s("desiredNumberScheduled"),
                s("updatedNumberScheduled"),
                s("numberAvailable"),
            );
            if updated < desired {
                return Err(format!(
                    "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
                ));
            }
            if available < desired {
                return Err(format!(
                    "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
                ));
            }
            Ok(format!("daemon set {name:?} successfully rolled out"))
        }
        WorkloadKind::StatefulSet => {
            if dig_str(obj, &["spec", "updateStrategy", "type"]) != "RollingUpdate" {
                return Err(
                    "rollout status is only available for RollingUpdate strategy type".into(),
                );
            }
            if observed == 0 || generation > observed {
                return Err("Waiting for statefulset spec update to be observed...".into());
            }
            let replicas = dig_i64(obj, &["spec", "replicas"], 1);
            let ready = s("readyReplicas");
            if ready < replicas {
                return Err(format!(
                    "Waiting for {} pods to be ready...",
                    replicas - ready
                ));
            }
            let updated = s("updatedReplicas");
            // The API server defaults `rollingUpdate.partition` to 0, so
            // kubectl usually takes this "partitioned" path.
            if let Some(ru) =
                dig(obj, &["spec", "updateStrategy", "rollingUpdate"]).filter(|v| v.is_object())
            {
                if let Some(partition) = ru.get("partition").and_then(Value::as_i64) {
                    if updated < replicas - partition {
                        return Err(format!(
                            "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                            replicas - partition
                        ));
                    }
                }
                return Ok(format!(
                    "partitioned roll out complete: {updated} new pods have been updated..."
                ));
            }
            let current = dig_str(obj, &["status", "currentRevision"]);
            let update = dig_str(obj, &["status", "updateRevision"]);
            if update != current {
                return Err(format!(
                    "waiting for statefulset rolling update to complete {updated} pods at revision {update}..."
                ));
            }
            Ok(format!(
                "statefulset rolling update complete {} pods at revision {current}...",
                s("currentReplicas")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_come_from_images() {
        assert_eq!(container_name_for("nginx:1.25"), "nginx");
        assert_eq!(container_name_for("ghcr.io/acme/api@sha256:abc"), "api");
        assert_eq!(container_name_for("reg:5000/team/web"), "web");
    }
}
