//! The undo engine and the watch against the fake API server: what reached
//! the cluster, byte for byte where kubectl recorded it.

use std::time::Duration;

use fakekube::{FakeKube, Rollout, WorkloadKind as FakeKind};
use rollbackd::adapters::cluster::undo::{DryRun, UndoEngine, UndoError, UndoOutcome, UndoRequest};
use rollbackd::adapters::cluster::watch::{follow, FollowOutcome};
use rollbackd::core::decide::WorkloadKind;
use rollbackd::core::undo_plan::{PlanError, CHANGE_CAUSE, EPISODE};
use serde_json::{json, Value};

const BEFORE: &str = include_str!("fixtures/kubectl/shop-web-before-undo.json");
const KUBECTL_PATCH: &str = include_str!("fixtures/kubectl/undo-default.patch.json");

fn engine(fake: &FakeKube) -> UndoEngine {
    let config = kube::Config::new(fake.url().parse().unwrap());
    UndoEngine::new(kube::Client::try_from(config).unwrap())
}

fn request(kind: WorkloadKind, ns: &str, name: &str) -> UndoRequest {
    UndoRequest {
        kind,
        namespace: ns.into(),
        name: name.into(),
        to_revision: None,
        episode: Some("29cf3888210a5fcd@2026-11-22T12:50:41.011Z".into()),
        reason: "rollbackd: alert HighErrorRate (high) matched rule high-error-rate".into(),
        dry_run: DryRun::None,
        cooldown: None,
    }
}

fn patches(
    fake: &FakeKube,
    resource: &str,
    ns: &str,
    name: &str,
) -> Vec<fakekube::RecordedRequest> {
    fake.patches_to(resource, ns, name)
}

/// deploy v1, v1.1, v1.2 as in the seeds.
async fn three_releases(fake: &FakeKube) -> fakekube::Workload {
    let web = fake
        .deployment("shop", "web")
        .image("ghcr.io/company/ecommerce:v1.0.0")
        .change_cause("Initial deployment")
        .create()
        .await;
    web.deploy(
        "ghcr.io/company/ecommerce:v1.1.0",
        "kubectl set image ... v1.1.0",
    );
    web.deploy(
        "ghcr.io/company/ecommerce:v1.2.0",
        "kubectl set image ... v1.2.0",
    );
    web
}

/// shop/db (postgres 16.1 then 16.2-bad) and shop/agent (1 then 2-bad).
async fn bad_statefulset_and_daemonset(fake: &FakeKube) {
    let db = fake
        .statefulset("shop", "db")
        .image("postgres:16.1")
        .create()
        .await;
    db.set_image("postgres:16.2-bad");
    let agent = fake
        .daemonset("shop", "agent")
        .image("agent:1")
        .create()
        .await;
    agent.set_image("agent:2-bad");
}

/// Follows shop/deployment/web's rollout for at most `deadline`.
async fn follow_web(fake: &FakeKube, deadline: Duration) -> FollowOutcome {
    let client = engine(fake).client().clone();
    follow(&client, WorkloadKind::Deployment, "shop", "web", deadline)
        .await
        .unwrap()
}

fn revisions(web: &fakekube::Workload) -> Vec<(i64, String)> {
    web.history()
        .into_iter()
        .map(|(n, image, _)| (n, image))
        .collect()
}

#[tokio::test]
async fn default_undo_sends_kubectls_patch_with_a_resource_version_test_and_the_episode() {
    let fake = FakeKube::start().await;
    fake.load_list(BEFORE).unwrap();
    let before = fake.get("deployments", "shop", "web").unwrap();

    let outcome = engine(&fake)
        .undo(&request(WorkloadKind::Deployment, "shop", "web"))
        .await
        .unwrap();
    let UndoOutcome::RolledBack(report) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!((report.from_revision, report.to_revision), (3, 2));
    assert_eq!(report.from_images, ["nginx:1.27-bad"]);
    assert_eq!(report.to_images, ["nginx:1.26"]);

    let sent = patches(&fake, "deployments", "shop", "web");
    assert_eq!(sent.len(), 1, "exactly one write to the Deployment");
    let patch = &sent[0];
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/json-patch+json")
    );
    assert_eq!(patch.field_manager.as_deref(), Some("rollbackd"));
    assert!(!patch.dry_run);
    let body = patch.body.clone().unwrap();
    let kubectl: Value = serde_json::from_str(KUBECTL_PATCH).unwrap();
    assert_eq!(
        body[0],
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": before["metadata"]["resourceVersion"]})
    );
    assert_eq!(body[1], kubectl[0], "the template is exactly kubectl's");
    let mut annotations = kubectl[1]["value"].clone();
    annotations[CHANGE_CAUSE] =
        "rollbackd: alert HighErrorRate (high) matched rule high-error-rate (revision 3 -> 2)"
            .into();
    let marker = body[2]["value"][EPISODE].as_str().unwrap().to_string();
    assert!(
        marker.starts_with("29cf3888210a5fcd@2026-11-22T12:50:41.011Z from=3 to=2 at="),
        "{marker}"
    );
    annotations[EPISODE] = marker.into();
    assert_eq!(
        body[2],
        json!({"op": "replace", "path": "/metadata/annotations", "value": annotations})
    );
    assert_eq!(body.as_array().unwrap().len(), 3);

    // The deployment controller made the restored ReplicaSet revision 4.
    let web = fake.workload(FakeKind::Deployment, "shop", "web");
    assert_eq!(web.image(), "nginx:1.26");
    assert_eq!(web.revision(), 4);
    let history = web.history();
    assert_eq!(
        history.last().unwrap(),
        &(
            4,
            "nginx:1.26".to_string(),
            Some("rollbackd: alert HighErrorRate (high) matched rule high-error-rate (revision 3 -> 2)".into())
        ),
        "kubectl rollout history shows why"
    );
    // A Kubernetes Event on the workload.
    let events = fake.list("events", Some("shop"));
    let rolled: Vec<&Value> = events
        .iter()
        .filter(|e| e["reason"] == "RolledBack")
        .collect();
    assert_eq!(rolled.len(), 1);
    assert_eq!(rolled[0]["involvedObject"]["kind"], "Deployment");
    assert_eq!(rolled[0]["involvedObject"]["name"], "web");
    assert_eq!(rolled[0]["type"], "Normal");
}

#[tokio::test]
async fn history_follows_the_seeds_through_undo_and_to_revision() {
    let fake = FakeKube::start().await;
    let web = three_releases(&fake).await;
    let e = engine(&fake);
    let v = |s: &str| format!("ghcr.io/company/ecommerce:{s}");
    assert_eq!(
        revisions(&web),
        vec![(1, v("v1.0.0")), (2, v("v1.1.0")), (3, v("v1.2.0"))]
    );

    let mut undo = request(WorkloadKind::Deployment, "shop", "web");
    undo.episode = Some("a@1".into());
    assert!(matches!(
        e.undo(&undo).await.unwrap(),
        UndoOutcome::RolledBack(_)
    ));
    assert_eq!(
        revisions(&web),
        vec![(1, v("v1.0.0")), (3, v("v1.2.0")), (4, v("v1.1.0"))]
    );

    let mut to_first = request(WorkloadKind::Deployment, "shop", "web");
    to_first.episode = Some("b@2".into());
    to_first.to_revision = Some(1);
    let UndoOutcome::RolledBack(r) = e.undo(&to_first).await.unwrap() else {
        panic!()
    };
    assert_eq!((r.from_revision, r.to_revision), (4, 1));
    assert_eq!(
        revisions(&web),
        vec![(3, v("v1.2.0")), (4, v("v1.1.0")), (5, v("v1.0.0"))]
    );

    let history = e
        .history(WorkloadKind::Deployment, "shop", "web")
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|r| r.number).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );

    let mut missing = request(WorkloadKind::Deployment, "shop", "web");
    missing.to_revision = Some(2);
    let err = e.undo(&missing).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find specified revision 2 in history"
    );
}

#[tokio::test]
async fn history_is_read_across_every_page_of_the_list() {
    let fake = FakeKube::start().await;
    let web = three_releases(&fake).await;
    let outcome = engine(&fake)
        .with_page_size(1)
        .undo(&request(WorkloadKind::Deployment, "shop", "web"))
        .await
        .unwrap();
    let UndoOutcome::RolledBack(r) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!((r.from_revision, r.to_revision), (3, 2));
    let lists: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|q| q.verb == "list" && q.path.ends_with("/replicasets"))
        .map(|q| q.query)
        .collect();
    assert_eq!(
        lists.len(),
        3,
        "one request per ReplicaSet with limit=1: {lists:?}"
    );
    assert!(
        lists
            .iter()
            .all(|q| q.contains("labelSelector=app%3Dweb") && q.contains("limit=1")),
        "{lists:?}"
    );
    assert!(lists[1].contains("continue="), "{lists:?}");
    assert_eq!(web.image(), "ghcr.io/company/ecommerce:v1.1.0");
}

#[tokio::test]
async fn undo_to_the_live_revision_is_skipped_without_a_write() {
    let fake = FakeKube::start().await;
    three_releases(&fake).await;
    let mut req = request(WorkloadKind::Deployment, "shop", "web");
    req.to_revision = Some(3);
    let outcome = engine(&fake).undo(&req).await.unwrap();
    assert_eq!(outcome, UndoOutcome::Skipped { revision: 3 });
    assert_eq!(
        outcome.kubectl_message(),
        "skipped rollback (current template already matches revision 3)"
    );
    assert!(patches(&fake, "deployments", "shop", "web").is_empty());
}

#[tokio::test]
async fn paused_deployment_and_missing_history_are_refused_with_kubectls_words() {
    let fake = FakeKube::start().await;
    let web = three_releases(&fake).await;
    web.pause();
    let err = engine(&fake)
        .undo(&request(WorkloadKind::Deployment, "shop", "web"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"
    );
    let refused: Vec<Value> = fake
        .list("events", Some("shop"))
        .into_iter()
        .filter(|e| e["reason"] == "RollbackFailed")
        .collect();
    assert_eq!(refused.len(), 1, "the refusal is an Event too");

    fake.deployment("shop", "api").image("api:1").create().await;
    let err = engine(&fake)
        .undo(&request(WorkloadKind::Deployment, "shop", "api"))
        .await
        .unwrap_err();
    assert!(matches!(err, UndoError::Plan(PlanError::NoHistory { .. })));
    assert_eq!(
        err.to_string(),
        "no rollout history found for deployment \"api\""
    );

    let err = engine(&fake)
        .undo(&request(WorkloadKind::Deployment, "shop", "nope"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "deployments.apps \"nope\" not found");
    assert!(fake
        .writes()
        .iter()
        .all(|w| w.resource.as_deref() != Some("deployments") || w.method != "PATCH"));
}

#[tokio::test]
async fn revision_history_limit_one_still_rolls_back_to_the_one_kept() {
    let fake = FakeKube::start().await;
    let web = fake
        .deployment("shop", "web")
        .image("app:1")
        .revision_history_limit(1)
        .create()
        .await;
    web.set_image("app:2");
    web.set_image("app:3");
    assert_eq!(
        web.history().iter().map(|h| h.0).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let UndoOutcome::RolledBack(r) = engine(&fake)
        .undo(&request(WorkloadKind::Deployment, "shop", "web"))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((r.to_revision, web.image()), (2, "app:2".to_string()));
}

#[tokio::test]
async fn foreign_and_unparsable_replica_sets_are_not_history() {
    let fake = FakeKube::start().await;
    let web = three_releases(&fake).await;
    let live = web.get();
    let template = |image: &str| {
        let mut t = live["spec"]["template"].clone();
        t["spec"]["containers"][0]["image"] = image.into();
        t
    };
    let rs = |name: &str, revision: &str, owner_uid: &str, image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "shop", "labels": live["spec"]["selector"]["matchLabels"],
                "annotations": {"deployment.kubernetes.io/revision": revision},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": owner_uid, "controller": true}]},
            "spec": {"replicas": 0, "selector": live["spec"]["selector"], "template": template(image)}})
    };
    // Same labels, a higher revision, but another controller: ignored.
    fake.put_object(rs("web-impostor", "9", "another-uid", "evil:1"));
    // Controlled, but its revision does not parse: ignored.
    let uid = live["metadata"]["uid"].as_str().unwrap();
    fake.put_object(rs("web-garbled", "two", uid, "garbled:1"));
    let UndoOutcome::RolledBack(r) = engine(&fake)
        .undo(&request(WorkloadKind::Deployment, "shop", "web"))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r.to_revision, 2);
    assert_eq!(web.image(), "ghcr.io/company/ecommerce:v1.1.0");
}

#[tokio::test]
async fn a_second_delivery_of_the_same_episode_does_not_toggle_back() {
    let fake = FakeKube::start().await;
    fake.load_list(BEFORE).unwrap();
    let e = engine(&fake);
    let req = request(WorkloadKind::Deployment, "shop", "web");
    assert!(matches!(
        e.undo(&req).await.unwrap(),
        UndoOutcome::RolledBack(_)
    ));
    // Alertmanager re-sends: plain `rollout undo` would now restore 1.27-bad.
    let again = e.undo(&req).await.unwrap();
    let UndoOutcome::AlreadyRolledBack { marker } = &again else {
        panic!("{again:?}")
    };
    assert!(marker.starts_with("29cf3888210a5fcd@2026-11-22T12:50:41.011Z from=3 to=2"));
    assert_eq!(patches(&fake, "deployments", "shop", "web").len(), 1);
    assert_eq!(
        fake.workload(FakeKind::Deployment, "shop", "web").image(),
        "nginx:1.26"
    );
}

#[tokio::test]
async fn another_alert_within_the_cooldown_does_not_toggle_back_either() {
    let fake = FakeKube::start().await;
    fake.load_list(BEFORE).unwrap();
    let e = engine(&fake);
    let now: jiff::Timestamp = "2026-11-22T12:51:00Z".parse().unwrap();
    let mut first = request(WorkloadKind::Deployment, "shop", "web");
    first.cooldown = Some(rollbackd::adapters::cluster::undo::Cooldown {
        now,
        period: Duration::from_secs(600),
    });
    assert!(matches!(
        e.undo(&first).await.unwrap(),
        UndoOutcome::RolledBack(_)
    ));
    let mut other = first.clone();
    other.episode = Some("12a3c0d6be0f2789@2026-11-22T12:50:41.011Z".into());
    other.cooldown = Some(rollbackd::adapters::cluster::undo::Cooldown {
        now: now + jiff::SignedDuration::from_secs(120),
        period: Duration::from_secs(600),
    });
    assert!(matches!(
        e.undo(&other).await.unwrap(),
        UndoOutcome::CoolingDown { .. }
    ));
    assert_eq!(patches(&fake, "deployments", "shop", "web").len(), 1);
}

#[tokio::test]
async fn a_deploy_landing_between_read_and_patch_is_never_overwritten() {
    let fake = FakeKube::start().await;
    let web = three_releases(&fake).await;
    let newer = web.clone();
    fake.on_next("PATCH", "deployments/web", move |_| {
        newer.deploy("ghcr.io/company/ecommerce:v1.3.0", "hotfix");
    });
    let outcome = engine(&fake)
        .undo(&request(WorkloadKind::Deployment, "shop", "web"))
        .await
        .unwrap();
    assert!(
        matches!(outcome, UndoOutcome::NewerDeployDetected { .. }),
        "{outcome:?}"
    );
    let sent = patches(&fake, "deployments", "shop", "web");
    assert_eq!(sent.iter().map(|p| p.status).collect::<Vec<_>>(), vec![422]);
    assert_eq!(
        web.image(),
        "ghcr.io/company/ecommerce:v1.3.0",
        "the newer deploy stands"
    );
    assert_eq!(web.revision(), 4);
    let skipped: Vec<Value> = fake
        .list("events", Some("shop"))
        .into_iter()
        .filter(|e| e["reason"] == "RollbackSkipped")
        .collect();
    assert_eq!(skipped.len(), 1);
}

#[tokio::test]
async fn two_engines_racing_for_one_episode_patch_once() {
    let fake = FakeKube::start().await;
    let web = three_releases(&fake).await;
    let (a, b) = (engine(&fake), engine(&fake));
    let req = request(WorkloadKind::Deployment, "shop", "web");
    let (ra, rb) = tokio::join!(a.undo(&req), b.undo(&req));
    let outcomes = [ra.unwrap(), rb.unwrap()];
    let rolled = outcomes
        .iter()
        .filter(|o| matches!(o, UndoOutcome::RolledBack(_)))
        .count();
    assert_eq!(rolled, 1, "{outcomes:?}");
    assert!(
        outcomes.iter().any(|o| matches!(
            o,
            UndoOutcome::AlreadyRolledBack { .. } | UndoOutcome::NewerDeployDetected { .. }
        )),
        "{outcomes:?}"
    );
    let applied: Vec<u16> = patches(&fake, "deployments", "shop", "web")
        .iter()
        .map(|p| p.status)
        .filter(|s| *s == 200)
        .collect();
    assert_eq!(applied, vec![200], "exactly one patch applied");
    assert_eq!(web.image(), "ghcr.io/company/ecommerce:v1.1.0");
    assert_eq!(web.revision(), 4);
}

#[tokio::test]
async fn server_side_dry_run_changes_nothing() {
    let fake = FakeKube::start().await;
    let web = three_releases(&fake).await;
    let mut req = request(WorkloadKind::Deployment, "shop", "web");
    req.dry_run = DryRun::Server;
    let outcome = engine(&fake).undo(&req).await.unwrap();
    assert!(matches!(outcome, UndoOutcome::DryRun(_)));
    let sent = patches(&fake, "deployments", "shop", "web");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].dry_run, "dryRun=All");
    assert_eq!(web.image(), "ghcr.io/company/ecommerce:v1.2.0");
    assert_eq!(web.revision(), 3);
    assert!(
        fake.list("events", Some("shop")).is_empty(),
        "no Event for a dry-run"
    );
}

#[tokio::test]
async fn statefulset_and_daemonset_roll_back_through_controller_revisions() {
    let fake = FakeKube::start().await;
    bad_statefulset_and_daemonset(&fake).await;
    let e = engine(&fake);

    for (kind, resource, name, good) in [
        (
            WorkloadKind::StatefulSet,
            "statefulsets",
            "db",
            "postgres:16.1",
        ),
        (WorkloadKind::DaemonSet, "daemonsets", "agent", "agent:1"),
    ] {
        let before = fake.get(resource, "shop", name).unwrap();
        let outcome = e.undo(&request(kind, "shop", name)).await.unwrap();
        let UndoOutcome::RolledBack(r) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!((r.from_revision, r.to_revision), (2, 1), "{name}");
        let sent = patches(&fake, resource, "shop", name);
        assert_eq!(sent.len(), 1, "{name}");
        assert_eq!(
            sent[0].content_type.as_deref(),
            Some("application/strategic-merge-patch+json")
        );
        let body = sent[0].body.clone().unwrap();
        assert_eq!(body["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][0]["image"],
            good
        );
        assert_eq!(
            body["metadata"]["resourceVersion"],
            before["metadata"]["resourceVersion"]
        );
        assert!(body["metadata"]["annotations"][EPISODE]
            .as_str()
            .unwrap()
            .contains("from=2 to=1"));
        let after = fake.get(resource, "shop", name).unwrap();
        assert_eq!(
            after["spec"]["template"]["spec"]["containers"][0]["image"],
            good
        );
        // The controller reused revision 1's ControllerRevision as 3.
        let history = e.history(kind, "shop", name).await.unwrap();
        assert_eq!(
            history.iter().map(|h| h.number).collect::<Vec<_>>(),
            vec![2, 3],
            "{name}"
        );
        // Undo again for the same episode: refused by the marker.
        let again = e.undo(&request(kind, "shop", name)).await.unwrap();
        assert!(
            matches!(again, UndoOutcome::AlreadyRolledBack { .. }),
            "{name}: {again:?}"
        );
        let mut skip = request(kind, "shop", name);
        skip.episode = None;
        skip.to_revision = Some(3);
        assert_eq!(
            e.undo(&skip).await.unwrap(),
            UndoOutcome::Skipped { revision: 3 },
            "{name}"
        );
    }
}

#[tokio::test]
async fn watch_reaches_healthy_as_the_rollout_steps_through() {
    let fake = FakeKube::start().await;
    let web = fake
        .deployment("shop", "web")
        .image("app:1")
        .replicas(3)
        .create()
        .await;
    web.set_image("app:2");
    web.set_rollout(Rollout::Steps(1));
    engine(&fake)
        .undo(&request(WorkloadKind::Deployment, "shop", "web"))
        .await
        .unwrap();
    let client = engine(&fake).client().clone();
    let watching = tokio::spawn(async move {
        follow(
            &client,
            WorkloadKind::Deployment,
            "shop",
            "web",
            Duration::from_secs(60),
        )
        .await
    });
    // Step the rollout only once the watch is open, so it sees each step.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fake.open_watches() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "watch never opened");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fake.drop_watches(); // a dropped watch is renewed
    while web.advance() {}
    let outcome = watching.await.unwrap().unwrap();
    let FollowOutcome::Healthy { message, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(message, "deployment \"web\" successfully rolled out");
}

#[tokio::test]
async fn watch_follows_statefulsets_and_daemonsets_too() {
    let fake = FakeKube::start().await;
    bad_statefulset_and_daemonset(&fake).await;
    let e = engine(&fake);
    for (kind, name, done) in [
        (
            WorkloadKind::StatefulSet,
            "db",
            "partitioned roll out complete: 3 new pods have been updated...",
        ),
        (
            WorkloadKind::DaemonSet,
            "agent",
            "daemon set \"agent\" successfully rolled out",
        ),
    ] {
        e.undo(&request(kind, "shop", name)).await.unwrap();
        let outcome = follow(e.client(), kind, "shop", name, Duration::from_secs(60))
            .await
            .unwrap();
        let FollowOutcome::Healthy { message, .. } = outcome else {
            panic!("{name}: {outcome:?}")
        };
        assert!(message.starts_with(done), "{name}: {message}");
    }
}

#[tokio::test]
async fn watch_reports_a_stalled_rollout() {
    let fake = FakeKube::start().await;
    let web = fake.deployment("shop", "web").image("app:1").create().await;
    web.set_image("app:2");
    fake.set_image_rollout("app:1", Rollout::Never);
    engine(&fake)
        .undo(&request(WorkloadKind::Deployment, "shop", "web"))
        .await
        .unwrap();
    assert!(web.expire_progress_deadline());
    let outcome = follow_web(&fake, Duration::from_secs(60)).await;
    assert_eq!(
        outcome,
        FollowOutcome::Stalled {
            reason: "deployment \"web\" exceeded its progress deadline".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn watch_gives_up_at_the_rules_deadline() {
    let fake = FakeKube::start().await;
    let web = fake.deployment("shop", "web").image("app:1").create().await;
    web.set_image("app:2");
    fake.set_image_rollout("app:1", Rollout::Never);
    engine(&fake)
        .undo(&request(WorkloadKind::Deployment, "shop", "web"))
        .await
        .unwrap();
    // Paused clock: the 30 s pass as soon as nothing else can happen.
    let outcome = follow_web(&fake, Duration::from_secs(30)).await;
    assert!(
        matches!(outcome, FollowOutcome::DeadlineMissed { .. }),
        "{outcome:?}"
    );
}
