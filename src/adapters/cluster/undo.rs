//! The undo engine: kubectl's `rollout undo` through kube-rs, in one patch
//! that cannot overwrite a newer deploy and cannot run twice for one alert
//! episode.

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use super::errors::UndoError;
use super::errors::{api_code, api_message, describe_kube_error};
use crate::core::decide::WorkloadKind;
use crate::core::undo_plan::{self as plan, PlanError, Revision, Safety, EPISODE, REVISION};

/// The field manager rollbackd writes as (shown in `managedFields`).
pub const FIELD_MANAGER: &str = "rollbackd";
/// Items per LIST page: the API server's usual cap; a Deployment with more
/// ReplicaSets than this still gets every page.
const PAGE: u32 = 500;

/// kubectl's `--dry-run` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Change the cluster.
    None,
    /// Plan only; nothing sent.
    Client,
    /// Send the patch with `dryRun=All`: the API server validates and
    /// answers, nothing is stored.
    Server,
}

/// What to roll back and why.
#[derive(Debug, Clone)]
pub struct UndoRequest {
    /// Workload kind.
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `--to-revision`; `None` for the previous one.
    pub to_revision: Option<i64>,
    /// Alert episode (fingerprint@startsAt); `None` for a manual undo.
    pub episode: Option<String>,
    /// Why, for `kubernetes.io/change-cause` (the revisions are appended).
    pub reason: String,
    /// Dry-run mode.
    pub dry_run: DryRun,
    /// Refuse when rollbackd rolled this workload back less than this long
    /// before `now` for another episode (a second undo would restore the
    /// bad revision: the toggle hazard).
    pub cooldown: Option<Cooldown>,
}

/// The per-workload cooldown check.
#[derive(Debug, Clone, Copy)]
pub struct Cooldown {
    /// The time of this request.
    pub now: jiff::Timestamp,
    /// How long after a rollback another one is refused.
    pub period: std::time::Duration,
}

/// What a rollback changed, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackReport {
    /// Revision before.
    pub from_revision: i64,
    /// Revision restored.
    pub to_revision: i64,
    /// Container images before.
    pub from_images: Vec<String>,
    /// Container images restored.
    pub to_images: Vec<String>,
    /// The workload's generation after the patch (for the watch).
    pub generation: Option<i64>,
}

/// How an undo ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndoOutcome {
    /// Patched.
    RolledBack(RollbackReport),
    /// Dry-run: what would have been patched.
    DryRun(RollbackReport),
    /// The target revision's template is already live.
    Skipped {
        /// The revision that matches.
        revision: i64,
    },
    /// The workload carries this episode's marker: rolled back already, by
    /// this or another replica.
    AlreadyRolledBack {
        /// The marker found.
        marker: String,
    },
    /// rollbackd rolled this workload back recently for another episode.
    CoolingDown {
        /// The marker found.
        marker: String,
    },
    /// The workload changed between read and patch; nothing overwritten.
    NewerDeployDetected {
        /// The API server's answer.
        detail: String,
    },
}

impl UndoOutcome {
    /// kubectl's wording after `deployment.apps/NAME`.
    pub fn kubectl_message(&self) -> String {
        match self {
            UndoOutcome::RolledBack(_) => "rolled back".into(),
            UndoOutcome::DryRun(_) => "rolled back (dry run)".into(),
            UndoOutcome::Skipped { revision } => {
                format!("skipped rollback (current template already matches revision {revision})")
            }
            UndoOutcome::AlreadyRolledBack { marker } => {
                format!("not rolled back: already rolled back for this incident ({marker})")
            }
            UndoOutcome::CoolingDown { marker } => {
                format!("not rolled back: rolled back recently for another alert ({marker})")
            }
            UndoOutcome::NewerDeployDetected { detail } => {
                format!("not rolled back: newer deploy detected ({detail})")
            }
        }
    }
}

/// The result of [`UndoEngine::prepare`].
#[derive(Debug)]
pub enum Prepared {
    /// A patch to send.
    Ready(Box<Plan>),
    /// Nothing to send: already rolled back, skipped, client dry-run...
    Done(UndoOutcome),
}

/// A planned rollback: what was read and the patch that would restore it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The workload as read (labels and annotations for the guard).
    pub workload: Value,
    /// From/to revisions and images.
    pub report: RollbackReport,
    /// When the live revision's holder was created (change correlation).
    pub current_since: Option<jiff::Timestamp>,
    /// The patch.
    pub patch: PlannedPatch,
}

/// The one write of an undo.
#[derive(Debug, Clone)]
pub enum PlannedPatch {
    /// RFC 6902, for Deployments.
    Json(Value),
    /// Strategic merge, for StatefulSets and DaemonSets.
    Strategic(Value),
}

/// kubectl's resource name for messages (`deployments.apps`).
pub fn resource_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "deployments.apps",
        WorkloadKind::StatefulSet => "statefulsets.apps",
        WorkloadKind::DaemonSet => "daemonsets.apps",
    }
}

/// How many times a patch is sent again after its precondition failed on a
/// status-only write: a controller writes status a few times a second at
/// most while pods flap, and the read-to-patch window is milliseconds, so
/// three moves in a row means something else keeps writing: then the
/// refusal stands, classified as before.
const STATUS_MOVES: u32 = 3;

/// The undo engine over a Kubernetes client.
#[derive(Clone)]
pub struct UndoEngine {
    client: Client,
    page: u32,
}

impl UndoEngine {
    /// An engine using `client` (from kubeconfig or in-cluster).
    pub fn new(client: Client) -> UndoEngine {
        UndoEngine { client, page: PAGE }
    }

    /// Lists history in pages of `n` items (default 500).
    pub fn with_page_size(mut self, n: u32) -> UndoEngine {
        self.page = n.max(1);
        self
    }

    /// The client, for the watch.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Performs the undo and records a Kubernetes Event for what happened
    /// (`RolledBack`, or the refusal), unless it is a dry-run.
    pub async fn undo(&self, req: &UndoRequest) -> Result<UndoOutcome, UndoError> {
        let result = match self.prepare(req).await {
            Ok(Prepared::Ready(plan)) => self.apply(req, *plan).await,
            Ok(Prepared::Done(outcome)) => Ok(outcome),
            Err(e) => Err(e),
        };
        self.record_outcome(req, &result).await;
        result
    }

    /// Records the Kubernetes Event for an undo's result (none for a
    /// dry-run); why it could not be recorded, if it could not.
    pub async fn record_outcome(
        &self,
        req: &UndoRequest,
        result: &Result<UndoOutcome, UndoError>,
    ) -> Option<String> {
        if req.dry_run == DryRun::None {
            let (type_, reason, message) = match &result {
                Ok(UndoOutcome::RolledBack(r)) => (
                    "Normal",
                    "RolledBack",
                    format!(
                        "Rolled back from revision {} to {}: {}",
                        r.from_revision, r.to_revision, req.reason
                    ),
                ),
                Ok(UndoOutcome::DryRun(_)) => return None,
                Ok(refused) => (
                    "Warning",
                    "RollbackSkipped",
                    format!("{}: {}", refused.kubectl_message(), req.reason),
                ),
                // Nothing to attach an Event to, or no API to attach it with.
                Err(UndoError::NotFound { .. } | UndoError::Api(_)) => return None,
                Err(e) => ("Warning", "RollbackFailed", format!("{e}: {}", req.reason)),
            };
            return self.record_event(req, type_, reason, &message).await.err();
        }
        None
    }

    /// Reads the workload and its history and plans the patch, without
    /// writing: the marker, cooldown, revision choice, paused and
    /// already-matching checks all happen here.
    pub async fn prepare(&self, req: &UndoRequest) -> Result<Prepared, UndoError> {
        let workload = self
            .get_workload(req.kind, &req.namespace, &req.name)
            .await?;
        if let Some(marker) = marker_of(&workload) {
            let marked = Marker::parse(&marker);
            if req.episode.is_some() && marked.episode == req.episode.as_deref() {
                return Ok(Prepared::Done(UndoOutcome::AlreadyRolledBack { marker }));
            }
            if let (Some(cooldown), Some(at)) = (req.cooldown, marked.at) {
                let age = cooldown.now.duration_since(at);
                if age >= jiff::SignedDuration::ZERO && age.unsigned_abs() < cooldown.period {
                    return Ok(Prepared::Done(UndoOutcome::CoolingDown { marker }));
                }
            }
        }
        let history = self.history_of(req.kind, &workload).await?;
        match req.kind {
            WorkloadKind::Deployment => self.prepare_deployment(req, workload, &history),
            WorkloadKind::StatefulSet | WorkloadKind::DaemonSet => {
                self.prepare_with_controller_revisions(req, workload, &history)
            }
        }
    }

    /// The workload's revisions, oldest first (`kubectl rollout history`).
    pub async fn history(
        &self,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<Revision>, UndoError> {
        let workload = self.get_workload(kind, namespace, name).await?;
        self.history_of(kind, &workload).await
    }

    fn prepare_deployment(
        &self,
        req: &UndoRequest,
        deployment: Value,
        history: &[Revision],
    ) -> Result<Prepared, UndoError> {
        let target = plan::choose_deployment_revision(&req.name, history, req.to_revision)?;
        let live_template = &deployment["spec"]["template"];
        let from_revision = current_revision(WorkloadKind::Deployment, &deployment, history);
        let report = RollbackReport {
            from_revision,
            to_revision: target.number,
            from_images: images(live_template),
            to_images: images(&target.content),
            generation: None,
        };
        if req.dry_run == DryRun::Client {
            return Ok(Prepared::Done(UndoOutcome::DryRun(report)));
        }
        if deployment["spec"]["paused"] == Value::Bool(true) {
            return Err(PlanError::Paused.into());
        }
        if plan::equal_ignore_hash(&target.content, live_template) {
            return Ok(Prepared::Done(UndoOutcome::Skipped {
                revision: target.number,
            }));
        }
        let annotations = plan::rollback_annotations(
            deployment["metadata"]["annotations"]
                .as_object()
                .unwrap_or(&serde_json::Map::new()),
            &target.annotations,
        );
        let safety = self.safety(req, &deployment, &report);
        let patch = plan::deployment_patch(&target.content, annotations, &safety);
        Ok(Prepared::Ready(Box::new(Plan {
            current_since: revision_created(history, from_revision),
            workload: deployment,
            report,
            patch: PlannedPatch::Json(patch),
        })))
    }

    fn prepare_with_controller_revisions(
        &self,
        req: &UndoRequest,
        workload: Value,
        history: &[Revision],
    ) -> Result<Prepared, UndoError> {
        let target = plan::choose_controller_revision(history, req.to_revision)?;
        let from_revision = current_revision(req.kind, &workload, history);
        let report = RollbackReport {
            from_revision,
            to_revision: target.number,
            from_images: images(&workload["spec"]["template"]),
            to_images: images(&target.content["spec"]["template"]),
            generation: None,
        };
        if req.dry_run == DryRun::Client {
            return Ok(Prepared::Done(UndoOutcome::DryRun(report)));
        }
        if plan::controller_revision_matches(&workload, &target.content) {
            return Ok(Prepared::Done(UndoOutcome::Skipped {
                revision: target.number,
            }));
        }
        let safety = self.safety(req, &workload, &report);
        let patch = plan::controller_revision_patch(&target.content, &safety);
        Ok(Prepared::Ready(Box::new(Plan {
            current_since: revision_created(history, from_revision),
            workload,
            report,
            patch: PlannedPatch::Strategic(patch),
        })))
    }

    /// Sends a prepared patch (the only write of an undo).
    pub async fn apply(&self, req: &UndoRequest, mut plan: Plan) -> Result<UndoOutcome, UndoError> {
        let mut moved = 0;
        loop {
            let sent = self.send(req, &plan.patch).await?;
            // The precondition failed: read again. If only the status moved
            // (the controller's own writes), the plan still holds: send it
            // again under the new resourceVersion, a bounded number of
            // times. Otherwise the read is what classifies the refusal.
            let mut reread = None;
            if let Err(e) = &sent {
                if matches!(api_code(e), Some(409) | Some(422)) {
                    let now = self.get_workload(req.kind, &req.namespace, &req.name).await;
                    match now {
                        Ok(now)
                            if moved < STATUS_MOVES
                                && plan::only_status_moved(&plan.workload, &now) =>
                        {
                            let rv = now["metadata"]["resourceVersion"]
                                .as_str()
                                .unwrap_or_default();
                            tracing::debug!(workload = %req.name, resource_version = rv, "only the status moved since the read; patching again");
                            plan.patch = match &plan.patch {
                                PlannedPatch::Json(p) => {
                                    PlannedPatch::Json(plan::with_resource_version(p, rv))
                                }
                                PlannedPatch::Strategic(p) => {
                                    PlannedPatch::Strategic(plan::with_resource_version(p, rv))
                                }
                            };
                            plan.workload = now;
                            moved += 1;
                            continue;
                        }
                        other => reread = Some(other),
                    }
                }
            }
            let read_rv = plan.workload["metadata"]["resourceVersion"].as_str();
            return self
                .finish(req, read_rv, plan.report.clone(), sent, reread)
                .await;
        }
    }

    /// Sends the patch; the API server's answer (the generation after it).
    async fn send(
        &self,
        req: &UndoRequest,
        patch: &PlannedPatch,
    ) -> Result<Result<Option<i64>, kube::Error>, UndoError> {
        let params = patch_params(req.dry_run);
        let ns = &req.namespace;
        Ok(match (patch, req.kind) {
            (PlannedPatch::Json(patch), _) => {
                let patch: json_patch::Patch = serde_json::from_value(patch.clone())
                    .map_err(|e| UndoError::Api(format!("building the patch: {e}")))?;
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
                api.patch(&req.name, &params, &Patch::Json::<()>(patch))
                    .await
                    .map(|o| o.metadata.generation)
            }
            (PlannedPatch::Strategic(patch), WorkloadKind::StatefulSet) => {
                let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
                api.patch(&req.name, &params, &Patch::Strategic(patch))
                    .await
                    .map(|o| o.metadata.generation)
            }
            (PlannedPatch::Strategic(patch), _) => {
                let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), ns);
                api.patch(&req.name, &params, &Patch::Strategic(patch))
                    .await
                    .map(|o| o.metadata.generation)
            }
        })
    }

    fn safety(&self, req: &UndoRequest, workload: &Value, report: &RollbackReport) -> Safety {
        let marker = Marker {
            episode: Some(req.episode.as_deref().unwrap_or(MANUAL_EPISODE)),
            from: report.from_revision,
            to: report.to_revision,
            at: Some(req.cooldown.map_or_else(jiff::Timestamp::now, |c| c.now)),
        };
        Safety {
            resource_version: workload["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            episode: marker.to_string(),
            change_cause: format!(
                "{} (revision {} -> {})",
                req.reason, report.from_revision, report.to_revision
            ),
        }
    }

    /// Maps the patch result to an outcome and records the Event.
    /// `reread`: the workload as `apply` read it after a refused
    /// precondition (read here when it has not).
    async fn finish(
        &self,
        req: &UndoRequest,
        read_rv: Option<&str>,
        mut report: RollbackReport,
        result: Result<Option<i64>, kube::Error>,
        reread: Option<Result<Value, UndoError>>,
    ) -> Result<UndoOutcome, UndoError> {
        match result {
            Ok(generation) => {
                report.generation = generation;
                if req.dry_run == DryRun::Server {
                    return Ok(UndoOutcome::DryRun(report));
                }
                Ok(UndoOutcome::RolledBack(report))
            }
            // 422 (the JSON Patch `test`; the API server drops the reason
            // from its message) or 409 (the resourceVersion precondition of
            // a strategic merge patch): tell a newer deploy from a refused
            // patch by reading the object again.
            Err(e) if matches!(api_code(&e), Some(409) | Some(422)) => {
                let read = read_rv.unwrap_or_default();
                let now = match reread {
                    Some(now) => now,
                    None => self.get_workload(req.kind, &req.namespace, &req.name).await,
                };
                match now {
                    Ok(now) if now["metadata"]["resourceVersion"].as_str() != Some(read) => {
                        Ok(UndoOutcome::NewerDeployDetected {
                            detail: format!(
                                "resourceVersion {read} became {} before the patch landed",
                                now["metadata"]["resourceVersion"].as_str().unwrap_or("?")
                            ),
                        })
                    }
                    _ => Err(UndoError::Restore {
                        revision: report.to_revision,
                        message: api_message(&e),
                    }),
                }
            }
            Err(e) if api_code(&e) == Some(404) => Err(UndoError::NotFound {
                resource: resource_name(req.kind),
                name: req.name.clone(),
            }),
            Err(e) if api_code(&e) == Some(403) => Err(UndoError::from_kube(e)),
            Err(e) => Err(UndoError::Restore {
                revision: report.to_revision,
                message: api_message(&e),
            }),
        }
    }

    /// Records a Kubernetes Event on the workload. A failure is logged and
    /// returned as text for the journal, never an error of the rollback:
    /// the rollback itself is what matters.
    pub async fn record_event(
        &self,
        req: &UndoRequest,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), String> {
        let now = jiff::Timestamp::now();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &req.namespace);
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", req.name, now.as_nanosecond())),
                namespace: Some(req.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("apps/v1".into()),
                kind: Some(kind_name(req.kind).into()),
                name: Some(req.name.clone()),
                namespace: Some(req.namespace.clone()),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(type_.into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            action: Some("Rollback".into()),
            reporting_component: Some("rollbackd".into()),
            reporting_instance: Some(hostname()),
            source: Some(EventSource {
                component: Some("rollbackd".into()),
                host: None,
            }),
            ..Default::default()
        };
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            let error = describe_kube_error(&e);
            tracing::warn!(%error, workload = %req.name, "could not record the Kubernetes Event");
            return Err(error);
        }
        Ok(())
    }

    async fn get_workload(
        &self,
        kind: WorkloadKind,
        ns: &str,
        name: &str,
    ) -> Result<Value, UndoError> {
        let result = match kind {
            WorkloadKind::Deployment => get_json::<Deployment>(&self.client, ns, name).await,
            WorkloadKind::StatefulSet => get_json::<StatefulSet>(&self.client, ns, name).await,
            WorkloadKind::DaemonSet => get_json::<DaemonSet>(&self.client, ns, name).await,
        };
        match result {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(UndoError::NotFound {
                resource: resource_name(kind),
                name: name.to_string(),
            }),
            Err(e) => Err(UndoError::from_kube(e)),
        }
    }

    async fn history_of(
        &self,
        kind: WorkloadKind,
        workload: &Value,
    ) -> Result<Vec<Revision>, UndoError> {
        let ns = workload["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let uid = workload["metadata"]["uid"].as_str().unwrap_or_default();
        let selector = label_selector(&workload["spec"]["selector"])?;
        match kind {
            WorkloadKind::Deployment => {
                let rs = list_all::<ReplicaSet>(&self.client, ns, &selector, self.page).await?;
                Ok(plan::deployment_history(uid, &rs))
            }
            _ => {
                let crs =
                    list_all::<ControllerRevision>(&self.client, ns, &selector, self.page).await?;
                Ok(plan::controller_revision_history(uid, &crs))
            }
        }
    }
}

/// The episode a manual undo writes in the marker.
pub const MANUAL_EPISODE: &str = "manual";

/// The value of the episode annotation:
/// `EPISODE from=N to=M at=RFC3339`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker<'a> {
    /// The alert episode (fingerprint@startsAt) or `manual`.
    pub episode: Option<&'a str>,
    /// Revision rolled back from.
    pub from: i64,
    /// Revision restored.
    pub to: i64,
    /// When.
    pub at: Option<jiff::Timestamp>,
}

impl<'a> Marker<'a> {
    /// Reads a marker; fields it cannot read are left empty.
    pub fn parse(value: &'a str) -> Marker<'a> {
        let mut words = value.split_whitespace();
        let mut m = Marker {
            episode: words.next(),
            from: 0,
            to: 0,
            at: None,
        };
        for word in words {
            match word.split_once('=') {
                Some(("from", v)) => m.from = v.parse().unwrap_or(0),
                Some(("to", v)) => m.to = v.parse().unwrap_or(0),
                Some(("at", v)) => m.at = v.parse().ok(),
                _ => {}
            }
        }
        m
    }
}

impl std::fmt::Display for Marker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} from={} to={}",
            self.episode.unwrap_or(MANUAL_EPISODE),
            self.from,
            self.to
        )?;
        if let Some(at) = self.at {
            write!(f, " at={at}")?;
        }
        Ok(())
    }
}

pub(super) fn patch_params(dry_run: DryRun) -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        dry_run: dry_run == DryRun::Server,
        ..Default::default()
    }
}

/// The episode marker on a workload, if any.
pub fn marker_of(workload: &Value) -> Option<String> {
    workload["metadata"]["annotations"][EPISODE]
        .as_str()
        .map(String::from)
}

/// When the holder of `revision` was created.
fn revision_created(history: &[Revision], revision: i64) -> Option<jiff::Timestamp> {
    history
        .iter()
        .find(|r| r.number == revision)
        .and_then(|r| r.created.as_deref())
        .and_then(|t| t.parse().ok())
}

/// The live revision: the Deployment's revision annotation, else the
/// highest in history.
fn current_revision(kind: WorkloadKind, workload: &Value, history: &[Revision]) -> i64 {
    let annotated = match kind {
        WorkloadKind::Deployment => workload["metadata"]["annotations"][REVISION]
            .as_str()
            .and_then(|s| s.parse().ok()),
        _ => None,
    };
    annotated.unwrap_or_else(|| history.last().map_or(0, |r| r.number))
}

/// Container images of a pod template.
pub fn images(template: &Value) -> Vec<String> {
    template["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["image"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
        WorkloadKind::DaemonSet => "DaemonSet",
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .or_else(|_| std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()))
        .unwrap_or_else(|_| "rollbackd".into())
}

/// `metav1.LabelSelectorAsSelector` as a string for `labelSelector=`.
pub fn label_selector(selector: &Value) -> Result<String, UndoError> {
    let mut parts = Vec::new();
    if let Some(labels) = selector["matchLabels"].as_object() {
        for (k, v) in labels {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(exprs) = selector["matchExpressions"].as_array() {
        for e in exprs {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|vs| vs.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(match e["operator"].as_str().unwrap_or_default() {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                other => {
                    return Err(UndoError::Plan(PlanError::Malformed(format!(
                        "unsupported selector operator {other:?}"
                    ))))
                }
            });
        }
    }
    if parts.is_empty() {
        // An empty selector selects everything; the real API server refuses
        // such a Deployment, and kubectl would list every ReplicaSet. Refuse.
        return Err(UndoError::Plan(PlanError::Malformed(
            "the workload has an empty selector".into(),
        )));
    }
    Ok(parts.join(","))
}

/// A namespaced built-in object (k8s-openapi type) that kube-rs reads and
/// serde turns into JSON for the pure planning code.
pub trait NamespacedObject:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
    + Send
    + 'static
{
}

impl<K> NamespacedObject for K where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + 'static
{
}

async fn get_json<K>(client: &Client, ns: &str, name: &str) -> Result<Option<Value>, kube::Error>
where
    K: NamespacedObject,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let object = api.get_opt(name).await?;
    Ok(object.map(|o| serde_json::to_value(o).expect("k8s objects serialize")))
}

/// Lists every page (`limit` + `continue`), as JSON.
async fn list_all<K>(
    client: &Client,
    ns: &str,
    selector: &str,
    page: u32,
) -> Result<Vec<Value>, UndoError>
where
    K: NamespacedObject,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    let mut params = ListParams::default().labels(selector).limit(page);
    loop {
        let page = api.list(&params).await.map_err(UndoError::from_kube)?;
        out.extend(
            page.items
                .into_iter()
                .map(|o| serde_json::to_value(o).expect("k8s objects serialize")),
        );
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_render_as_the_api_server_parses_them() {
        let s = json!({"matchLabels": {"app": "web", "tier": "fe"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]});
        assert_eq!(
            label_selector(&s).unwrap(),
            "app=web,tier=fe,env in (prod,stage),!canary"
        );
        assert!(label_selector(&json!({})).is_err());
    }

    #[test]
    fn marker_round_trips() {
        let at: jiff::Timestamp = "2026-11-22T12:51:00Z".parse().unwrap();
        let m = Marker {
            episode: Some("29cf@2026-11-22T12:50:41.011Z"),
            from: 5,
            to: 4,
            at: Some(at),
        };
        let text = m.to_string();
        assert_eq!(
            text,
            "29cf@2026-11-22T12:50:41.011Z from=5 to=4 at=2026-11-22T12:51:00Z"
        );
        assert_eq!(Marker::parse(&text), m);
        assert_eq!(Marker::parse("garbage").episode, Some("garbage"));
    }

    #[test]
    fn images_lists_containers_in_order() {
        let t = json!({"spec": {"containers": [{"image": "a:1"}, {"image": "b:2"}]}});
        assert_eq!(images(&t), vec!["a:1", "b:2"]);
    }
}
