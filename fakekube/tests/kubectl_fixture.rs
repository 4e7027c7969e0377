//! The kubectl recording, replayed: the fake must hold the recorded state
//! verbatim and react to kubectl's own undo patch as the recorded cluster did.

mod common;

use common::*;
use fakekube::{WorkloadKind, REVISION, REVISION_HISTORY};
use serde_json::{json, Value};

#[tokio::test]
async fn fixture_loads_verbatim_and_lists_by_selector() {
    let fake = fake_with_fixture().await;
    let http = Http::new(&fake);

    let (code, d) = http.get(DEPLOY_WEB).await;
    assert_eq!(code, 200);
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    assert_eq!(
        d, fixture["items"][0],
        "GET returns the recorded object unchanged"
    );
    assert_eq!(d["metadata"]["resourceVersion"], "119");
    assert_eq!(d["metadata"]["uid"], "d033386f-bbed-43b8-84c7-5a494f98f8b8");

    let (code, list) = http
        .get("/apis/apps/v1/namespaces/shop/replicasets?labelSelector=app%3Dweb")
        .await;
    assert_eq!(code, 200);
    let mut got = names(&list);
    got.sort();
    assert_eq!(got, ["web-5dc764dd69", "web-6979b568c6", "web-6cf59bd4d9"]);
    assert_eq!(list["kind"], "ReplicaSetList");
    assert_eq!(list["metadata"]["resourceVersion"], "119");
    let item = &list["items"][0];
    assert!(
        item.get("kind").is_none(),
        "typed list items carry no kind, as from a real server"
    );
    assert_eq!(
        item["metadata"]["ownerReferences"][0]["uid"],
        d["metadata"]["uid"]
    );

    // The cluster-wide path lists the same three.
    let (_, all) = http
        .get("/apis/apps/v1/replicasets?labelSelector=app=web")
        .await;
    assert_eq!(names(&all).len(), 3);
    let (_, none) = http
        .get("/apis/apps/v1/replicasets?labelSelector=app%3Dapi")
        .await;
    assert_eq!(names(&none).len(), 0);
}

#[tokio::test]
async fn kubectls_undo_patch_makes_revision_2_the_fourth() {
    let fake = fake_with_fixture().await;
    let http = Http::new(&fake);

    let (code, patched) = http.patch(DEPLOY_WEB, JSON_PATCH, UNDO_PATCH).await;
    assert_eq!(code, 200, "{patched}");
    // The response is the object as written, before the controller ran.
    assert_eq!(patched["metadata"]["generation"], 4);
    assert_eq!(patched["status"]["observedGeneration"], 3);
    assert_eq!(patched["metadata"]["annotations"][REVISION], "3");
    assert_eq!(patched["metadata"]["resourceVersion"], "120");

    let web = fake.workload(WorkloadKind::Deployment, "shop", "web");
    let d = web.get();
    assert_eq!(d["metadata"]["annotations"][REVISION], "4");
    assert_eq!(
        d["metadata"]["annotations"]["kubernetes.io/change-cause"],
        "upgrade to nginx:1.26"
    );
    assert_eq!(d["status"]["observedGeneration"], 4);
    assert_eq!(web.image(), "nginx:1.26");
    assert!(web.is_rolled_out(), "{:?}", web.rollout_status());

    let rs = fake.get("rs", "shop", "web-6979b568c6").unwrap();
    assert_eq!(rs["metadata"]["annotations"][REVISION], "4");
    assert_eq!(rs["metadata"]["annotations"][REVISION_HISTORY], "2");
    assert_eq!(rs["spec"]["replicas"], 3);
    let bad = fake.get("rs", "shop", "web-5dc764dd69").unwrap();
    assert_eq!(bad["spec"]["replicas"], 0);
    assert_eq!(bad["metadata"]["annotations"][REVISION], "3");

    assert_eq!(
        web.history(),
        vec![
            (
                1,
                "nginx:1.25".to_string(),
                Some("initial release nginx:1.25".to_string())
            ),
            (
                3,
                "nginx:1.27-bad".to_string(),
                Some("upgrade to nginx:1.27-bad".to_string())
            ),
            (
                4,
                "nginx:1.26".to_string(),
                Some("upgrade to nginx:1.26".to_string())
            ),
        ]
    );
}

#[tokio::test]
async fn undo_twice_toggles_back_to_the_bad_version() {
    let fake = fake_with_fixture().await;
    let http = Http::new(&fake);
    let web = fake.workload(WorkloadKind::Deployment, "shop", "web");

    assert_eq!(http.patch(DEPLOY_WEB, JSON_PATCH, UNDO_PATCH).await.0, 200);
    // kubectl's second undo: the previous revision is now 3 (nginx:1.27-bad).
    let target = fake.get("rs", "shop", "web-5dc764dd69").unwrap();
    let mut template = target["spec"]["template"].clone();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    let mut annotations = web.get()["metadata"]["annotations"].clone();
    annotations["kubernetes.io/change-cause"] = json!("upgrade to nginx:1.27-bad");
    let second = json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]);
    assert_eq!(
        http.patch(DEPLOY_WEB, JSON_PATCH, &second.to_string())
            .await
            .0,
        200
    );

    assert_eq!(web.image(), "nginx:1.27-bad");
    assert_eq!(web.revision(), 5);
    let rs = fake.get("rs", "shop", "web-5dc764dd69").unwrap();
    assert_eq!(rs["metadata"]["annotations"][REVISION], "5");
    assert_eq!(rs["metadata"]["annotations"][REVISION_HISTORY], "3");
    let revisions: Vec<i64> = web.history().iter().map(|h| h.0).collect();
    assert_eq!(revisions, [1, 4, 5]);
}

#[tokio::test]
async fn a_resource_version_test_op_stops_a_patch_after_a_newer_deploy() {
    let fake = fake_with_fixture().await;
    let http = Http::new(&fake);
    let web = fake.workload(WorkloadKind::Deployment, "shop", "web");

    // rollbackd read at 119; a deploy lands before its PATCH.
    let newer = web.clone();
    fake.on_next("PATCH", "deployments/web", move |_| {
        newer.set_image("nginx:1.28");
    });
    let mut ops: Vec<Value> = serde_json::from_str(UNDO_PATCH).unwrap();
    ops.insert(
        0,
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": "119"}),
    );
    let (code, status) = http
        .patch(DEPLOY_WEB, JSON_PATCH, &Value::Array(ops).to_string())
        .await;
    assert_eq!(code, 422);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "the server rejected our request due to an error in our request"
    );
    assert_eq!(
        web.image(),
        "nginx:1.28",
        "the newer deploy is not overwritten"
    );
    assert_eq!(web.revision(), 4);
}
