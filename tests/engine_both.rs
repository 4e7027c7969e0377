//! The undo engine's guards and the watch, on fakekube and on the real
//! control plane, from the same scenario code. Where the fake differs from
//! the real API server these tests fail on the fake: the real one is right.

mod common;

use std::time::Duration;

use common::cluster::TestKube;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rollbackd::adapters::cluster::undo::{DryRun, Prepared, UndoError, UndoOutcome, UndoRequest};
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
        two_releases(&kube).await;
        let engine = kube.engine();
        let req = request(&kube, "web");
        let Prepared::Ready(plan) = engine.prepare(&req).await.unwrap() else {
            panic!("a plan")
        };
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
