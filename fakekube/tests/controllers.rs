//! The controllers' bookkeeping, driven through the scenario DSL.

use fakekube::{Cluster, Rollout, WorkloadKind, REVISION, REVISION_HISTORY, STS_HASH_LABEL};
use serde_json::json;

fn rows(v: &[(i64, &str, Option<&str>)]) -> Vec<fakekube::HistoryRow> {
    v.iter()
        .map(|(r, i, c)| (*r, i.to_string(), c.map(str::to_string)))
        .collect()
}

#[tokio::test]
async fn each_new_template_gets_the_next_revision() {
    let fake = Cluster::new();
    let web = fake
        .deployment("shop", "web")
        .image("nginx:1.25")
        .create()
        .await;
    web.set_image("nginx:1.26");
    web.set_image("nginx:1.27-bad");
    assert_eq!(
        web.history(),
        rows(&[
            (1, "nginx:1.25", None),
            (2, "nginx:1.26", None),
            (3, "nginx:1.27-bad", None)
        ])
    );
    assert_eq!(web.revision(), 3);

    let rss = web.replica_sets();
    let hash = rss[2]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rss[2]["metadata"]["name"], format!("web-{hash}"));
    assert!(
        hash.chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{hash}"
    );
    assert_eq!(
        rss[2]["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash
    );
    assert_eq!(
        rss[2]["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
        hash
    );
    assert_eq!(
        rss[2]["metadata"]["ownerReferences"][0]["uid"],
        web.get()["metadata"]["uid"]
    );
    assert_eq!(rss[2]["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        rss[2]["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
        "3"
    );
    assert_eq!(
        rss[2]["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"],
        "4"
    );
    let replicas: Vec<i64> = rss
        .iter()
        .map(|rs| rs["spec"]["replicas"].as_i64().unwrap())
        .collect();
    assert_eq!(replicas, [0, 0, 3]);
    assert!(web.is_rolled_out());
}

#[tokio::test]
async fn returning_to_an_old_template_reuses_its_replica_set() {
    let fake = Cluster::new();
    let web = fake
        .deployment("shop", "web")
        .image("nginx:1.25")
        .create()
        .await;
    let first = web.replica_sets()[0]["metadata"]["name"].clone();
    web.set_image("nginx:1.26");
    web.set_image("nginx:1.27-bad");
    web.set_image("nginx:1.25");

    let rss = web.replica_sets();
    assert_eq!(rss.len(), 3, "no new ReplicaSet");
    let reused = rss
        .iter()
        .find(|rs| rs["metadata"]["name"] == first)
        .unwrap();
    assert_eq!(reused["metadata"]["annotations"][REVISION], "4");
    assert_eq!(reused["metadata"]["annotations"][REVISION_HISTORY], "1");
    assert_eq!(reused["spec"]["replicas"], 3);
    assert_eq!(web.revision(), 4);
    assert_eq!(
        web.history(),
        rows(&[
            (2, "nginx:1.26", None),
            (3, "nginx:1.27-bad", None),
            (4, "nginx:1.25", None)
        ])
    );
    // And again: 1,4 → 1,4,6 after 1.26 comes back as 5.
    web.set_image("nginx:1.26");
    web.set_image("nginx:1.25");
    let reused = fake.get("rs", "shop", first.as_str().unwrap()).unwrap();
    assert_eq!(reused["metadata"]["annotations"][REVISION], "6");
    assert_eq!(reused["metadata"]["annotations"][REVISION_HISTORY], "1,4");
}

#[tokio::test]
async fn annotations_are_copied_but_the_skip_list() {
    let fake = Cluster::new();
    let web = fake
        .deployment("shop", "web")
        .change_cause("initial release")
        .annotation("kubectl.kubernetes.io/last-applied-configuration", "{}")
        .annotation("team", "shop")
        .create()
        .await;
    let rs = &web.replica_sets()[0];
    let anns = rs["metadata"]["annotations"].as_object().unwrap();
    assert_eq!(anns["kubernetes.io/change-cause"], "initial release");
    assert_eq!(anns["team"], "shop");
    assert!(!anns.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    assert_eq!(anns[REVISION], "1");

    // Annotating later reaches the current ReplicaSet, as with kubectl annotate.
    web.deploy("nginx:1.26", "upgrade");
    web.annotate_change_cause("upgrade to nginx:1.26, for real");
    assert_eq!(
        web.history(),
        rows(&[
            (1, "nginx:1.25", Some("initial release")),
            (2, "nginx:1.26", Some("upgrade to nginx:1.26, for real")),
        ])
    );
}

#[tokio::test]
async fn revision_history_limit_prunes_the_oldest_idle_replica_sets() {
    let fake = Cluster::new();
    let web = fake
        .deployment("shop", "web")
        .revision_history_limit(2)
        .create()
        .await;
    for v in ["1.26", "1.27", "1.28", "1.29"] {
        web.set_image(&format!("nginx:{v}"));
    }
    let revisions: Vec<i64> = web.history().iter().map(|h| h.0).collect();
    assert_eq!(revisions, [3, 4, 5], "the new one and two old ones");
}

#[tokio::test]
async fn stepped_rollouts_move_only_when_the_test_says() {
    let fake = Cluster::new();
    let web = fake.deployment("shop", "web").replicas(3).create().await;
    web.set_rollout(Rollout::Steps(1));
    web.set_image("nginx:1.26");

    let status = |w: &fakekube::Workload| {
        let d = w.get();
        (
            d["status"]["updatedReplicas"].as_i64().unwrap_or(0),
            d["status"]["replicas"].as_i64().unwrap_or(0),
            d["status"]["availableReplicas"].as_i64().unwrap_or(0),
        )
    };
    assert_eq!(status(&web), (0, 3, 3));
    assert_eq!(
        web.rollout_status(),
        Err("Waiting for deployment \"web\" rollout to finish: 0 out of 3 new replicas have been updated...".into())
    );
    assert!(web.advance());
    assert_eq!(status(&web), (1, 3, 3));
    assert!(web.advance());
    assert_eq!(status(&web), (2, 3, 3));
    assert!(web.advance());
    assert_eq!(status(&web), (3, 3, 3));
    assert!(!web.advance(), "nothing left to do");
    assert_eq!(
        web.rollout_status(),
        Ok("deployment \"web\" successfully rolled out".into())
    );
    let cond = web.get()["status"]["conditions"][1].clone();
    assert_eq!(cond["reason"], "NewReplicaSetAvailable");
}

#[tokio::test]
async fn a_bad_image_stalls_until_the_deadline_and_a_good_one_completes() {
    let fake = Cluster::new();
    fake.set_image_rollout("nginx:1.27-bad", Rollout::Never);
    let web = fake.deployment("shop", "web").replicas(3).create().await;
    web.set_image("nginx:1.27-bad");

    let d = web.get();
    assert_eq!(d["status"]["updatedReplicas"], 1);
    assert_eq!(d["status"]["replicas"], 4);
    assert_eq!(d["status"]["availableReplicas"], 3);
    assert_eq!(d["status"]["unavailableReplicas"], 1);
    assert!(!web.is_rolled_out());
    assert!(!web.advance(), "Never does not step");

    assert!(web.expire_progress_deadline());
    let d = web.get();
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(progressing["status"], "False");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
    let new_rs = web.replica_sets().last().unwrap()["metadata"]["name"].clone();
    assert_eq!(
        progressing["message"],
        format!("ReplicaSet {new_rs} has timed out progressing.")
    );
    assert_eq!(
        web.rollout_status(),
        Err("deployment \"web\" exceeded its progress deadline".into())
    );

    // Rolling back to the good image completes at once.
    web.set_image("nginx:1.25");
    assert!(web.is_rolled_out(), "{:?}", web.rollout_status());
    assert_eq!(web.revision(), 3);
}

#[tokio::test]
async fn a_paused_deployment_does_not_roll_out() {
    let fake = Cluster::new();
    let web = fake.deployment("shop", "web").create().await;
    web.pause();
    web.set_image("nginx:1.26");
    assert_eq!(web.replica_sets().len(), 1);
    assert_eq!(web.revision(), 1);
    let d = web.get();
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    web.resume();
    assert_eq!(web.revision(), 2);
}

#[tokio::test]
async fn statefulset_revisions_live_in_controller_revisions() {
    let fake = Cluster::new();
    let db = fake
        .statefulset("shop", "db")
        .image("postgres:15")
        .replicas(2)
        .create()
        .await;
    db.set_image("postgres:16");
    let crs = db.controller_revisions();
    assert_eq!(crs.len(), 2);
    let (old, new) = (&crs[0], &crs[1]);
    assert_eq!(old["revision"], 1);
    assert_eq!(new["revision"], 2);
    let hash = new["metadata"]["labels"][STS_HASH_LABEL].as_str().unwrap();
    assert_eq!(new["metadata"]["name"], format!("db-{hash}"));
    assert_eq!(new["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
    let template = &new["data"]["spec"]["template"];
    assert_eq!(template["$patch"], "replace");
    assert_eq!(template["spec"]["containers"][0]["image"], "postgres:16");
    assert_eq!(new["data"].as_object().unwrap().len(), 1, "only spec");
    assert_eq!(
        new["data"]["spec"].as_object().unwrap().len(),
        1,
        "only spec.template"
    );

    let sts = db.get();
    assert_eq!(sts["status"]["updateRevision"], new["metadata"]["name"]);
    assert_eq!(sts["status"]["currentRevision"], new["metadata"]["name"]);
    assert_eq!(sts["status"]["updatedReplicas"], 2);
    assert_eq!(sts["status"]["readyReplicas"], 2);
    assert!(db.is_rolled_out());

    // Back to postgres:15: the first revision is reused as revision 3.
    db.set_rollout(Rollout::Steps(1));
    db.set_image("postgres:15");
    let crs = db.controller_revisions();
    assert_eq!(crs.len(), 2);
    assert_eq!(crs[1]["metadata"]["name"], old["metadata"]["name"]);
    assert_eq!(crs[1]["revision"], 3);
    let sts = db.get();
    assert_eq!(sts["status"]["updateRevision"], old["metadata"]["name"]);
    assert_eq!(sts["status"]["currentRevision"], new["metadata"]["name"]);
    assert_eq!(
        db.rollout_status(),
        Err(
            "Waiting for partitioned roll out to finish: 0 out of 2 new pods have been updated..."
                .into()
        )
    );
    assert!(db.advance());
    assert!(db.advance());
    let sts = db.get();
    assert_eq!(sts["status"]["currentRevision"], old["metadata"]["name"]);
    assert_eq!(
        db.rollout_status(),
        Ok("partitioned roll out complete: 2 new pods have been updated...".into())
    );

    // A broken image: one pod replaced and never ready.
    db.set_rollout(Rollout::Never);
    db.set_image("postgres:17-bad");
    assert_eq!(
        db.rollout_status(),
        Err("Waiting for 1 pods to be ready...".into())
    );
    db.set_image("postgres:15");
    assert_eq!(db.revision(), 5);
    assert_eq!(
        db.history(),
        vec![
            (2, "postgres:16".to_string(), None),
            (4, "postgres:17-bad".to_string(), None),
            (5, "postgres:15".to_string(), None)
        ]
    );
}

#[tokio::test]
async fn daemonset_revisions_carry_annotations_and_hash_labels() {
    let fake = Cluster::new();
    fake.set_nodes(4);
    let agent = fake
        .daemonset("ops", "agent")
        .image("agent:1")
        .change_cause("first")
        .create()
        .await;
    agent.deploy("agent:2", "second");
    let crs = agent.controller_revisions();
    assert_eq!(crs.len(), 2);
    assert_eq!(
        crs[1]["metadata"]["annotations"]["kubernetes.io/change-cause"],
        "second"
    );
    assert!(crs[1]["metadata"]["labels"]["controller-revision-hash"].is_string());
    let ds = agent.get();
    assert_eq!(ds["status"]["desiredNumberScheduled"], 4);
    assert_eq!(ds["status"]["updatedNumberScheduled"], 4);
    assert_eq!(ds["status"]["numberAvailable"], 4);
    assert!(agent.is_rolled_out());
    assert_eq!(agent.revision(), 2);

    agent.set_image("agent:1");
    assert_eq!(agent.revision(), 3);
    assert_eq!(agent.controller_revisions().len(), 2);
}

#[tokio::test]
async fn deleting_a_deployment_collects_its_replica_sets() {
    let fake = Cluster::new();
    let web = fake.deployment("shop", "web").create().await;
    web.set_image("nginx:1.26");
    assert_eq!(fake.list("rs", Some("shop")).len(), 2);
    fake.delete("deployments", "shop", "web").unwrap();
    assert!(fake.list("rs", Some("shop")).is_empty());
}

#[tokio::test]
async fn create_through_the_api_refuses_a_selector_that_misses_the_template() {
    let fake = Cluster::new();
    let err = fake
        .create(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "other"}},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}
        }))
        .unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert!(fake.get("deploy", "shop", "web").is_none());
}

#[test]
fn workload_kinds_map_to_their_resources() {
    assert_eq!(WorkloadKind::StatefulSet.resource().plural, "statefulsets");
}

#[tokio::test]
async fn rolling_back_mid_rollout_keeps_the_old_pods() {
    let fake = Cluster::new();
    let web = fake.deployment("shop", "web").replicas(4).create().await;
    web.set_rollout(Rollout::Steps(1));
    web.set_image("nginx:1.26");
    assert!(web.advance());
    // One pod on 1.26, three on 1.25; back to 1.25.
    web.set_image("nginx:1.25");
    let d = web.get();
    assert_eq!(d["status"]["updatedReplicas"], 3);
    assert_eq!(d["status"]["replicas"], 4);
    assert!(web.advance());
    assert!(web.is_rolled_out());
    assert_eq!(web.revision(), 3);
}
