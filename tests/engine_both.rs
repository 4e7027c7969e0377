//! The undo engine's guards and the watch, on fakekube and on the real
//! control plane, from the same scenario code. Where the fake differs from
//! the real API server these tests fail on the fake: the real one is right.

mod common;

use std::time::Duration;

use common::cluster::TestKube;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rollbackd::adapters::cluster::undo::{
    DryRun, Plan, Prepared, UndoEngine, UndoError, UndoOutcome, UndoRequest,
};
use rollbackd::adapters::cluster::watch::{follow, FollowOutcome};
use rollbackd::core::decide::WorkloadKind;
use rollbackd::core::undo_plan::PlanError;
use serde_json::{json, Value};

const DEPLOY: WorkloadKind = WorkloadKind::Deployment;

fn request(kube: &TestKube, name: &str) -> UndoRequest {
    UndoRequest {
        kind: DEPLOY,
        namespace: kube.ns.clone(),
        name: name.into(),
        to_revision: None,
        episode: Some("29cf3888210a5fcd@2026-11-22T12:50:41.011Z".into()),
        reason: "rollbackd: alert HighErrorRate (high) matched rule high-error-rate".into(),
        dry_run: DryRun::None,
        cooldown: None,
    }
}

/// web: v1 then v2, both rolled out.
async fn two_releases(kube: &TestKube) {
    kube.workload(DEPLOY, "web", "registry.local/web:v1", 2)
        .await;
    kube.set_image(DEPLOY, "web", "registry.local/web:v2").await;
}

/// web's two releases, and rollbackd's plan to undo the second, read but
/// not yet sent (what lands between read and patch is the test's).
async fn planned(kube: &TestKube) -> (UndoEngine, UndoRequest, Box<Plan>) {
    two_releases(kube).await;
    let engine = kube.engine();
    let req = request(kube, "web");
    let Prepared::Ready(plan) = engine.prepare(&req).await.unwrap() else {
        panic!("a plan")
    };
    (engine, req, plan)
}

/// Events in the namespace about `name` with `reason`.
async fn events(kube: &TestKube, name: &str, reason: &str) -> Vec<Value> {
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(kube.client(), &kube.ns);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .filter(|e| e["involvedObject"]["name"] == name && e["reason"] == reason)
        .collect()
}

on_both! {
    async fn a_deploy_landing_between_read_and_patch_is_never_overwritten(kube) {
        let (engine, req, plan) = planned(&kube).await;
        // A deploy lands between rollbackd's read and its patch.
        kube.kubectl_ok(&["set", "image", "deployment/web", "app=registry.local/web:v3"]).await;
        let result = engine.apply(&req, *plan).await;
        engine.record_outcome(&req, &result).await; // as the worker does
        let outcome = result.unwrap();
        let UndoOutcome::NewerDeployDetected { detail } = &outcome else {
            panic!("{outcome:?}")
        };
        assert!(detail.starts_with("resourceVersion "), "{detail}");
        kube.settle(DEPLOY, "web").await;
        assert_eq!(kube.image(DEPLOY, "web").await, "registry.local/web:v3", "the newer deploy stands");
        assert_eq!(events(&kube, "web", "RollbackSkipped").await.len(), 1);
    }
}

on_both! {
    async fn a_stale_resource_version_test_is_answered_422_with_the_api_servers_words(kube) {
        // What rollbackd's precondition meets: the real status and message.
        two_releases(&kube).await;
        let api = kube.api(DEPLOY);
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
            {"op": "replace", "path": "/spec/replicas", "value": 3}
        ]))
        .unwrap();
        let err = api
            .patch("web", &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
            .unwrap_err();
        let kube::Error::Api(status) = err else { panic!("{err:?}") };
        assert_eq!(status.code, 422);
        assert_eq!(status.reason, "Invalid");
        assert_eq!(
            status.message,
            "the server rejected our request due to an error in our request"
        );
    }
}

on_both! {
    async fn a_paused_deployment_is_refused_with_kubectls_words(kube) {
        two_releases(&kube).await;
        kube.kubectl_ok(&["rollout", "pause", "deployment/web"]).await;
        let err = kube.engine().undo(&request(&kube, "web")).await.unwrap_err();
        assert!(matches!(err, UndoError::Plan(PlanError::Paused)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"
        );
        assert_eq!(kube.image(DEPLOY, "web").await, "registry.local/web:v2");
    }
}

on_both! {
    async fn server_side_dry_run_changes_nothing(kube) {
        two_releases(&kube).await;
        let before = kube.get(DEPLOY, "web").await;
        let mut req = request(&kube, "web");
        req.dry_run = DryRun::Server;
        let outcome = kube.engine().undo(&req).await.unwrap();
        let UndoOutcome::DryRun(report) = &outcome else { panic!("{outcome:?}") };
        assert_eq!((report.from_revision, report.to_revision), (2, 1));
        let after = kube.get(DEPLOY, "web").await;
        assert_eq!(after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);
        assert_eq!(after["spec"], before["spec"]);
        assert!(events(&kube, "web", "RolledBack").await.is_empty(), "no Event for a dry run");
    }
}

on_both! {
    async fn a_rollback_is_an_event_kubectl_get_events_shows(kube) {
        two_releases(&kube).await;
        let outcome = kube.engine().undo(&request(&kube, "web")).await.unwrap();
        assert!(matches!(outcome, UndoOutcome::RolledBack(_)), "{outcome:?}");
        let shown = kube
            .kubectl_ok(&["get", "events", "--field-selector", "reason=RolledBack", "-o", "json"])
            .await;
        let shown: Value = serde_json::from_str(&shown).unwrap();
        let items = shown["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{shown}");
        assert_eq!(items[0]["involvedObject"]["kind"], "Deployment");
        assert_eq!(items[0]["involvedObject"]["name"], "web");
        assert_eq!(items[0]["type"], "Normal");
        let message = items[0]["message"].as_str().unwrap();
        assert!(message.contains("revision 2"), "{message}");
        kube.settle(DEPLOY, "web").await;
        assert_eq!(kube.image(DEPLOY, "web").await, "registry.local/web:v1");
    }
}

on_both! {
    async fn the_watch_is_healthy_once_a_good_rollback_is_available(kube) {
        two_releases(&kube).await;
        kube.engine().undo(&request(&kube, "web")).await.unwrap();
        let outcome = follow(&kube.client(), DEPLOY, &kube.ns, "web", Duration::from_secs(90))
            .await
            .unwrap();
        let FollowOutcome::Healthy { message, .. } = &outcome else { panic!("{outcome:?}") };
        assert_eq!(message, "deployment \"web\" successfully rolled out");
    }
}

on_both! {
    async fn the_watch_reports_a_stalled_rollout_at_the_progress_deadline(kube) {
        // The bad release's pods never become Ready (fakelet's bad-image
        // pattern on the real cluster, Rollout::Never on the fake); the
        // deployment controller declares ProgressDeadlineExceeded.
        kube.workload(DEPLOY, "web", "registry.local/web:v1", 2).await;
        kube.api(DEPLOY)
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"progressDeadlineSeconds": 2}})),
            )
            .await
            .unwrap();
        kube.settle(DEPLOY, "web").await;
        if let Some(fake) = kube.fake() {
            fake.set_image_rollout("registry.local/web:v2-bad", fakekube::Rollout::Never);
        }
        kube.set_image_unsettled(DEPLOY, "web", "registry.local/web:v2-bad").await;
        if let Some(fake) = kube.fake() {
            // The fake has no clock of its own for the deadline.
            assert!(fake.expire_progress_deadline(&kube.ns, "web"));
        }
        let outcome = follow(&kube.client(), DEPLOY, &kube.ns, "web", Duration::from_secs(90))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            FollowOutcome::Stalled {
                reason: "deployment \"web\" exceeded its progress deadline".into()
            }
        );
        // The old pods keep serving.
        let web = kube.get(DEPLOY, "web").await;
        assert!(web["status"]["availableReplicas"].as_i64().unwrap_or(0) >= 1, "{web}");
    }
}

on_both! {
    async fn two_engines_racing_for_one_episode_patch_once(kube) {
        two_releases(&kube).await;
        let (a, b) = (kube.engine(), kube.engine());
        let req = request(&kube, "web");
        let (ra, rb) = tokio::join!(a.undo(&req), b.undo(&req));
        let outcomes = [ra.unwrap(), rb.unwrap()];
        let rolled = outcomes
            .iter()
            .filter(|o| matches!(o, UndoOutcome::RolledBack(_)))
            .count();
        assert_eq!(rolled, 1, "{outcomes:?}");
        kube.settle(DEPLOY, "web").await;
        assert_eq!(kube.image(DEPLOY, "web").await, "registry.local/web:v1");
        let web = kube.get(DEPLOY, "web").await;
        assert_eq!(web["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3");
    }
}

on_both! {
    async fn undo_to_the_live_revision_is_skipped_without_a_write(kube) {
        two_releases(&kube).await;
        let before = kube.get(DEPLOY, "web").await;
        let mut req = request(&kube, "web");
        req.to_revision = Some(2);
        let outcome = kube.engine().undo(&req).await.unwrap();
        assert_eq!(outcome, UndoOutcome::Skipped { revision: 2 });
        let after = kube.get(DEPLOY, "web").await;
        assert_eq!(after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);
    }
}

/// What a Deployment and its ReplicaSets look like, without what differs
/// from run to run (names of things, uids, versions, times).
fn shape(deploy: &Value, replica_sets: &[Value]) -> Value {
    let strip = |v: &Value| {
        let mut v = v.clone();
        let meta = v["metadata"].as_object_mut().unwrap();
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "namespace",
            "name",
            "ownerReferences",
        ] {
            meta.remove(k);
        }
        if let Some(labels) = v["metadata"]["labels"].as_object_mut() {
            labels.remove("pod-template-hash");
        }
        // The marker's `at=` is the wall clock of each run.
        if let Some(Value::String(marker)) =
            v["metadata"]["annotations"].get_mut("rollbackd.io/episode")
        {
            if let Some(at) = marker.find(" at=") {
                marker.truncate(at);
            }
        }
        if let Some(labels) = v["spec"]["template"]["metadata"]["labels"].as_object_mut() {
            labels.remove("pod-template-hash");
        }
        if let Some(sel) = v["spec"]["selector"]["matchLabels"].as_object_mut() {
            sel.remove("pod-template-hash");
        }
        if let Some(conds) = v["status"]["conditions"].as_array_mut() {
            for c in conds {
                let c = c.as_object_mut().unwrap();
                c.remove("lastTransitionTime");
                c.remove("lastUpdateTime");
                // The message names the ReplicaSet (a hash).
                c.remove("message");
            }
        }
        v
    };
    let mut sets: Vec<Value> = replica_sets
        .iter()
        .map(strip)
        .map(|mut rs| {
            // The real controller scales a ReplicaSet in maxSurge steps, each
            // a generation; the fake's instant rollout scales in one. Known
            // and documented (fakekube: "no real time"), so not compared.
            rs["metadata"].as_object_mut().unwrap().remove("generation");
            rs["status"]
                .as_object_mut()
                .unwrap()
                .remove("observedGeneration");
            rs
        })
        .collect();
    if deploy["kind"] == "DaemonSet" {
        for rev in &mut sets {
            // The real DaemonSet controller hashes the Go struct of the
            // template (spew's printout, FNV-32a); the fake cannot print Go
            // structs, so this name-like label is not compared. rollbackd
            // reads revisions and data, never this hash.
            rev["metadata"]["labels"]
                .as_object_mut()
                .unwrap()
                .remove("controller-revision-hash");
        }
    }
    // ReplicaSets by their revision annotation, ControllerRevisions by
    // `revision`.
    sets.sort_by_key(|o| {
        let rs = &o["metadata"]["annotations"]["deployment.kubernetes.io/revision"];
        rs.as_str()
            .map_or_else(|| o["revision"].to_string(), str::to_string)
    });
    json!({"workload": strip(deploy), "history": sets})
}

/// `kind` web as the API server has it, and its ReplicaSets or
/// ControllerRevisions.
async fn life(kube: &TestKube, kind: WorkloadKind) -> (Value, Vec<Value>) {
    let workload = kube.get(kind, "web").await;
    let history: Vec<Value> = if kind == DEPLOY {
        let api: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
            Api::namespaced(kube.client(), &kube.ns);
        let items = api.list(&ListParams::default()).await.unwrap().items;
        items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect()
    } else {
        let api: Api<k8s_openapi::api::apps::v1::ControllerRevision> =
            Api::namespaced(kube.client(), &kube.ns);
        let items = api.list(&ListParams::default()).await.unwrap().items;
        items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect()
    };
    (workload, history)
}

/// The same steps on the fake and on the real server give the same objects,
/// but for names, uids, versions and times: two releases of `kind`, undone
/// by rollbackd, rolled out; the workload and its history objects
/// (ReplicaSets, ControllerRevisions).
async fn agree(kind: WorkloadKind) {
    let mut shapes = Vec::new();
    for flavor in [common::cluster::Flavor::Real, common::cluster::Flavor::Fake] {
        let kube = TestKube::start(flavor, "agree").await;
        kube.workload(kind, "web", "registry.local/web:v1", 2).await;
        kube.set_image(kind, "web", "registry.local/web:v2").await;
        let mut req = request(&kube, "web");
        req.kind = kind;
        kube.engine().undo(&req).await.unwrap();
        kube.settle(kind, "web").await;
        // `rollout status` is satisfied before the real controllers' last
        // status writes (a pod still counted as terminating): read once
        // those have landed.
        let (workload, history) = common::until(
            "the rollout's last status writes",
            Duration::from_secs(30),
            || async {
                let life = life(&kube, kind).await;
                let terminating =
                    |o: &Value| o["status"]["terminatingReplicas"].as_i64().unwrap_or(0) > 0;
                (!terminating(&life.0) && !life.1.iter().any(terminating)).then_some(life)
            },
        )
        .await;
        shapes.push(shape(&workload, &history));
    }
    let (real, fake) = (&shapes[0], &shapes[1]);
    let mut differences = Vec::new();
    differ("", fake, real, &mut differences);
    assert!(
        differences.is_empty(),
        "{kind:?}: fakekube differs from the real API server:\n{}",
        differences.join("\n")
    );
}

/// Every JSON pointer where `fake` and `real` differ, with both values.
fn differ(at: &str, fake: &Value, real: &Value, out: &mut Vec<String>) {
    match (fake, real) {
        (Value::Object(f), Value::Object(r)) => {
            let keys: std::collections::BTreeSet<&String> = f.keys().chain(r.keys()).collect();
            for k in keys {
                let (fv, rv) = (
                    f.get(k).unwrap_or(&Value::Null),
                    r.get(k).unwrap_or(&Value::Null),
                );
                differ(&format!("{at}/{k}"), fv, rv, out);
            }
        }
        (Value::Array(f), Value::Array(r)) if f.len() == r.len() => {
            for (i, (fv, rv)) in f.iter().zip(r).enumerate() {
                differ(&format!("{at}/{i}"), fv, rv, out);
            }
        }
        _ if fake != real => out.push(format!("{at}: fake {fake} real {real}")),
        _ => {}
    }
}

#[tokio::test]
async fn the_fake_and_the_real_server_agree_on_a_deployments_life() {
    agree(DEPLOY).await;
}

#[tokio::test]
async fn the_fake_and_the_real_server_agree_on_a_statefulsets_life() {
    agree(WorkloadKind::StatefulSet).await;
}

#[tokio::test]
async fn the_fake_and_the_real_server_agree_on_a_daemonsets_life() {
    agree(WorkloadKind::DaemonSet).await;
}

on_both! {
    async fn a_status_write_between_read_and_patch_is_not_a_newer_deploy(kube) {
        // On a real cluster the controllers write a workload's status all
        // the time (pods flapping under the very alert that fired): that
        // changes the resourceVersion but not what is deployed. Found on
        // the real control plane, where a controller's status write landed
        // between rollbackd's read and its patch.
        let (engine, req, plan) = planned(&kube).await;
        let before = kube.get(DEPLOY, "web").await;
        kube.api(DEPLOY)
            .patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"collisionCount": 0}})),
            )
            .await
            .unwrap();
        let after = kube.get(DEPLOY, "web").await;
        assert_ne!(after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);
        let outcome = engine.apply(&req, *plan).await.unwrap();
        assert!(matches!(outcome, UndoOutcome::RolledBack(_)), "{outcome:?}");
        kube.settle(DEPLOY, "web").await;
        assert_eq!(kube.image(DEPLOY, "web").await, "registry.local/web:v1");
    }
}
