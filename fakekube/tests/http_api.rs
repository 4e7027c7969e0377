//! The HTTP surface: verbs, status codes and wording, dry-run, paging,
//! watches, fault injection and the request log.

mod common;

use common::*;
use fakekube::{FakeKube, Rollout};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn json_patch_test_op_passes_then_fails_on_a_stale_version() {
    let fake = FakeKube::start().await;
    let web = fake.deployment("shop", "web").create().await;
    let http = Http::new(&fake);
    let rv = web.get()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let ok = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/annotations/rollbackd.io~1episode", "value": "fp@t0"},
    ]);
    let (code, obj) = http.patch(DEPLOY_WEB, JSON_PATCH, &ok.to_string()).await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(
        obj["metadata"]["annotations"]["rollbackd.io/episode"],
        "fp@t0"
    );
    assert_ne!(obj["metadata"]["resourceVersion"], json!(rv));

    // Same test value again: the object moved on, so the patch must fail.
    let (code, status) = http.patch(DEPLOY_WEB, JSON_PATCH, &ok.to_string()).await;
    assert_eq!(code, 422);
    assert_eq!(
        status,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server rejected our request due to an error in our request",
            "reason": "Invalid", "details": {}, "code": 422
        })
    );
}

#[tokio::test]
async fn dry_run_validates_and_answers_but_stores_nothing() {
    let fake = FakeKube::start().await;
    let web = fake.deployment("shop", "web").create().await;
    let http = Http::new(&fake);
    let before = fake.resource_version();
    let history = web.history();

    let patch = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:9"}]);
    let (code, obj) = http
        .patch(
            &format!("{DEPLOY_WEB}?dryRun=All&fieldManager=rollbackd"),
            JSON_PATCH,
            &patch.to_string(),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:9"
    );
    assert_eq!(obj["metadata"]["generation"], 2, "the would-be generation");
    assert_eq!(fake.resource_version(), before, "nothing bumped");
    assert_eq!(web.image(), "nginx:1.25");
    assert_eq!(web.history(), history, "no ReplicaSet made");

    let (code, _) = http
        .post(
            "/apis/apps/v1/namespaces/shop/deployments?dryRun=All",
            &json!({"metadata": {"name": "api"}, "spec": fake.deployment("shop", "api").manifest()["spec"]}),
        )
        .await;
    assert_eq!(code, 201);
    assert!(fake.get("deployments", "shop", "api").is_none());
    let (code, _) = http.delete(&format!("{DEPLOY_WEB}?dryRun=All")).await;
    assert_eq!(code, 200);
    assert!(fake.get("deployments", "shop", "web").is_some());

    let log = fake.writes();
    assert!(log.iter().all(|r| r.dry_run));
    assert_eq!(log[0].field_manager.as_deref(), Some("rollbackd"));
}

#[tokio::test]
async fn stale_put_conflicts_and_missing_objects_are_not_found() {
    let fake = FakeKube::start().await;
    let web = fake.deployment("shop", "web").create().await;
    let http = Http::new(&fake);
    let stale = web.get();
    web.annotate("touched", "yes");

    let (code, status) = http.put(DEPLOY_WEB, &stale).await;
    assert_eq!(code, 409);
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(
        status["details"],
        json!({"name": "web", "group": "apps", "kind": "deployments"})
    );

    let mut fresh = web.get();
    fresh["spec"]["replicas"] = json!(5);
    let (code, obj) = http.put(DEPLOY_WEB, &fresh).await;
    assert_eq!(code, 200);
    assert_eq!(obj["spec"]["replicas"], 5);

    let (code, status) = http
        .get("/apis/apps/v1/namespaces/shop/deployments/nope")
        .await;
    assert_eq!(code, 404);
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["message"], "deployments.apps \"nope\" not found");
    let (code, _) = http
        .patch(
            "/apis/apps/v1/namespaces/shop/deployments/nope",
            MERGE_PATCH,
            "{}",
        )
        .await;
    assert_eq!(code, 404);
    let (code, status) = http.get("/api/v1/namespaces/shop/events/nope").await;
    assert_eq!(
        (code, status["message"].as_str()),
        (404, Some("events \"nope\" not found"))
    );
    let (code, _) = http.get("/api/v1/namespaces/shop/pods").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn create_conflicts_on_an_existing_name_and_generates_names() {
    let fake = FakeKube::start().await;
    let http = Http::new(&fake);
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "rollbackd"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}});
    let path = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";
    let (code, created) = http.post(path, &lease).await;
    assert_eq!(code, 201);
    assert_eq!(created["metadata"]["namespace"], "ops");
    assert!(created["metadata"]["uid"].is_string());
    let (code, status) = http.post(path, &lease).await;
    assert_eq!(code, 409);
    assert_eq!(status["reason"], "AlreadyExists");
    assert_eq!(
        status["message"],
        "leases.coordination.k8s.io \"rollbackd\" already exists"
    );

    let event = json!({"metadata": {"generateName": "web."}, "reason": "RolledBack",
        "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "shop"}});
    let (code, ev) = http.post("/api/v1/namespaces/shop/events", &event).await;
    assert_eq!(code, 201);
    let name = ev["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("web.") && name.len() == "web.".len() + 5,
        "{name}"
    );
    let (_, list) = http
        .get("/api/v1/namespaces/shop/events?fieldSelector=involvedObject.name%3Dweb")
        .await;
    assert_eq!(names(&list), [name]);
}

#[tokio::test]
async fn merge_and_strategic_patches() {
    let fake = FakeKube::start().await;
    let http = Http::new(&fake);
    let db = fake
        .statefulset("shop", "db")
        .image("postgres:15")
        .create()
        .await;
    let first = db.controller_revisions()[0]["data"].clone();
    db.set_image("postgres:16");

    // Restore revision 1 the way kubectl does: its data as a strategic merge patch.
    let path = "/apis/apps/v1/namespaces/shop/statefulsets/db";
    let (code, obj) = http.patch(path, STRATEGIC_PATCH, &first.to_string()).await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["image"],
        "postgres:15"
    );
    assert!(obj["spec"]["template"].get("$patch").is_none());
    assert_eq!(db.revision(), 3);

    // Flux objects are CRDs: merge patches work, strategic ones are refused.
    let ks = json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"}, "spec": {"interval": "1m"}});
    fake.create(ks).unwrap();
    let ks_path = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps";
    let (code, obj) = http
        .patch(ks_path, MERGE_PATCH, r#"{"spec":{"suspend":true}}"#)
        .await;
    assert_eq!(code, 200);
    assert_eq!(obj["spec"]["suspend"], true);
    assert_eq!(obj["metadata"]["generation"], 2);
    let (code, status) = http
        .patch(ks_path, STRATEGIC_PATCH, r#"{"spec":{"suspend":false}}"#)
        .await;
    assert_eq!(code, 415);
    assert_eq!(status["reason"], "UnsupportedMediaType");
    // An apply configuration names its type.
    let (code, status) = http
        .patch(
            &format!("{ks_path}?fieldManager=flux"),
            "application/apply-patch+yaml",
            "spec: {}",
        )
        .await;
    assert_eq!(code, 400, "{status}");
}

const APPLY: &str = "application/apply-patch+yaml";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/rollbackd";

fn lease_apply(holder: &str) -> String {
    format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nspec:\n  holderIdentity: {holder}\n  leaseDurationSeconds: 15\n"
    )
}

#[tokio::test]
async fn server_side_apply_conflicts_with_another_managers_field() {
    let fake = FakeKube::start().await;
    fake.create(
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "rollbackd", "namespace": "ops"}, "spec": {}}),
    )
    .unwrap();
    let http = Http::new(&fake);
    let (code, body) = http.patch(LEASE, APPLY, &lease_apply("a")).await;
    assert_eq!(code, 400, "apply needs a field manager: {body}");

    let (code, lease) = http
        .patch(&format!("{LEASE}?fieldManager=a"), APPLY, &lease_apply("a"))
        .await;
    assert_eq!(code, 200, "{lease}");
    assert_eq!(lease["spec"]["holderIdentity"], "a");
    // The same value from another manager is no conflict (shared field).
    let (code, _) = http
        .patch(&format!("{LEASE}?fieldManager=b"), APPLY, &lease_apply("a"))
        .await;
    assert_eq!(code, 200);

    let (code, status) = http
        .patch(&format!("{LEASE}?fieldManager=b"), APPLY, &lease_apply("b"))
        .await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"a\" using coordination.k8s.io/v1: .spec.holderIdentity"
    );
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldManagerConflict"
    );
    assert_eq!(
        fake.get("leases", "ops", "rollbackd").unwrap()["spec"]["holderIdentity"],
        "a"
    );

    // Forced, b takes the field over; a's next apply conflicts in turn.
    let (code, lease) = http
        .patch(
            &format!("{LEASE}?fieldManager=b&force=true"),
            APPLY,
            &lease_apply("b"),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    let (code, _) = http
        .patch(&format!("{LEASE}?fieldManager=a"), APPLY, &lease_apply("a"))
        .await;
    assert_eq!(code, 409);

    // An update that removes the field frees it: the next apply succeeds.
    let (code, lease) = http
        .patch(
            &format!("{LEASE}?fieldManager=c"),
            STRATEGIC_PATCH,
            r#"{"spec":{"holderIdentity":null}}"#,
        )
        .await;
    assert_eq!(code, 200);
    assert!(lease["spec"].get("holderIdentity").is_none(), "{lease}");
    let (code, lease) = http
        .patch(&format!("{LEASE}?fieldManager=a"), APPLY, &lease_apply("a"))
        .await;
    assert_eq!(code, 200, "{lease}");
    assert_eq!(lease["spec"]["holderIdentity"], "a");

    // A field an applier stops applying is removed, unless another manager
    // also owns it (b applied the same leaseDurationSeconds).
    let with_transitions = format!("{}  leaseTransitions: 1\n", lease_apply("a"));
    let (code, lease) = http
        .patch(&format!("{LEASE}?fieldManager=a"), APPLY, &with_transitions)
        .await;
    assert_eq!(code, 200);
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    let (code, lease) = http
        .patch(
            &format!("{LEASE}?fieldManager=a"),
            APPLY,
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nspec:\n  holderIdentity: a\n",
        )
        .await;
    assert_eq!(code, 200);
    assert!(lease["spec"].get("leaseTransitions").is_none(), "{lease}");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15, "{lease}");
}

#[tokio::test]
async fn paging_with_limit_and_continue() {
    let fake = FakeKube::start().await;
    for i in 0..5 {
        fake.deployment("shop", &format!("app{i}")).create().await;
    }
    let http = Http::new(&fake);
    let (_, page1) = http
        .get("/apis/apps/v1/namespaces/shop/deployments?limit=2")
        .await;
    assert_eq!(names(&page1), ["app0", "app1"]);
    assert_eq!(page1["metadata"]["remainingItemCount"], 3);
    let token = page1["metadata"]["continue"].as_str().unwrap();
    let (_, page2) = http
        .get(&format!(
            "/apis/apps/v1/namespaces/shop/deployments?limit=2&continue={token}"
        ))
        .await;
    assert_eq!(names(&page2), ["app2", "app3"]);
    let token = page2["metadata"]["continue"].as_str().unwrap();
    let (_, page3) = http
        .get(&format!(
            "/apis/apps/v1/namespaces/shop/deployments?limit=2&continue={token}"
        ))
        .await;
    assert_eq!(names(&page3), ["app4"]);
    assert!(page3["metadata"].get("continue").is_none());
    let (code, _) = http
        .get("/apis/apps/v1/namespaces/shop/deployments?continue=zz")
        .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn watch_streams_changes_as_they_happen() {
    let fake = FakeKube::start().await;
    let web = fake.deployment("shop", "web").create().await;
    let http = Http::new(&fake);
    let rv = web.get()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let mut w = http
        .watch(&format!(
            "{}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dweb",
            "/apis/apps/v1/namespaces/shop/deployments"
        ))
        .await;
    web.set_image("nginx:1.26");
    // The user's write, then the controller's status update.
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(
        ev["object"]["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    assert_eq!(ev["object"]["kind"], "Deployment");
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(
        ev["object"]["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );

    // A new watch without a version starts with ADDED for what exists.
    let mut all = http
        .watch("/apis/apps/v1/namespaces/shop/replicasets?watch=1")
        .await;
    assert_eq!(all.next_summary().await.unwrap().0, "ADDED");
    assert_eq!(all.next_summary().await.unwrap().0, "ADDED");
    fake.deployment("shop", "api").create().await;
    let (kind, name) = all.next_summary().await.unwrap();
    assert_eq!(kind, "ADDED");
    assert!(name.starts_with("api-"), "{name}");
    assert!(fake.open_watches() >= 2);
}

#[tokio::test]
async fn stepped_rollouts_emit_one_event_per_step() {
    let fake = FakeKube::start().await;
    fake.set_default_rollout(Rollout::Steps(1));
    let web = fake.deployment("shop", "web").replicas(2).create().await;
    assert!(web.advance() && web.advance());
    let http = Http::new(&fake);
    let rv = fake.resource_version();
    let mut w = http
        .watch(&format!(
            "/apis/apps/v1/namespaces/shop/deployments?watch=true&resourceVersion={rv}"
        ))
        .await;
    web.set_image("nginx:1.26");
    let mut updated = Vec::new();
    for _ in 0..4 {
        let ev = w.next().await.unwrap();
        assert_eq!(ev["type"], "MODIFIED");
        updated.push(
            ev["object"]["status"]["updatedReplicas"]
                .as_i64()
                .unwrap_or(0),
        );
        if updated.len() >= 2 {
            web.advance();
        }
    }
    // Template write (old status), controller (0 updated), step 1, step 2.
    assert_eq!(updated, [2, 0, 1, 2]);
}

#[tokio::test]
async fn dropped_watches_end_and_bookmarks_arrive() {
    let fake = FakeKube::start().await;
    let http = Http::new(&fake);
    let mut w = http
        .watch("/apis/apps/v1/namespaces/shop/deployments?watch=true&resourceVersion=1&allowWatchBookmarks=true")
        .await;
    fake.send_bookmarks();
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "BOOKMARK");
    assert_eq!(ev["object"]["kind"], "Deployment");
    assert_eq!(ev["object"]["apiVersion"], "apps/v1");
    fake.drop_watches();
    assert!(w.next().await.is_none(), "the stream ends");
}

#[tokio::test]
async fn watch_timeout_ends_the_stream() {
    let fake = FakeKube::start().await;
    let http = Http::new(&fake);
    let started = Instant::now();
    let mut w = http
        .watch("/apis/apps/v1/deployments?watch=true&timeoutSeconds=1&resourceVersion=0")
        .await;
    assert!(w.next().await.is_none());
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn injected_faults_latency_and_the_request_log() {
    let fake = FakeKube::start().await;
    fake.deployment("shop", "web").create().await;
    let http = Http::new(&fake);

    fake.fail_next(("PATCH", "deployments/web"), 409, 1);
    fake.fail_next("list", 500, 2);
    let (code, status) = http.patch(DEPLOY_WEB, MERGE_PATCH, "{}").await;
    assert_eq!(code, 409);
    assert_eq!(status["reason"], "Conflict");
    let (code, _) = http.patch(DEPLOY_WEB, MERGE_PATCH, "{}").await;
    assert_eq!(code, 200, "only once");
    for _ in 0..2 {
        let (code, status) = http.get("/apis/apps/v1/namespaces/shop/replicasets").await;
        assert_eq!(
            (code, status["reason"].as_str()),
            (500, Some("InternalError"))
        );
    }
    assert_eq!(
        http.get("/apis/apps/v1/namespaces/shop/replicasets")
            .await
            .0,
        200
    );

    fake.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(http.get(DEPLOY_WEB).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    fake.set_latency(Duration::ZERO);

    let patches = fake.patches_to("deployments", "shop", "web");
    assert_eq!(patches.len(), 2);
    assert_eq!(patches[0].status, 409);
    assert!(patches[0].injected);
    assert_eq!(patches[1].status, 200);
    assert_eq!(patches[1].content_type.as_deref(), Some(MERGE_PATCH));
    assert_eq!(patches[1].body, Some(json!({})));
    assert_eq!(fake.writes().len(), 2);
    let verbs: Vec<String> = fake.requests().iter().map(|r| r.verb.clone()).collect();
    assert_eq!(verbs, ["patch", "patch", "list", "list", "list", "get"]);
}

#[tokio::test]
async fn discovery_is_enough_for_clients() {
    let fake = FakeKube::start().await;
    let http = Http::new(&fake);
    let (code, v) = http.get("/version").await;
    assert_eq!(code, 200);
    assert_eq!(v["gitVersion"], "v1.35.0");
    let (_, api) = http.get("/api").await;
    assert_eq!(api["versions"], json!(["v1"]));
    let (_, groups) = http.get("/apis").await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "kustomize.toolkit.fluxcd.io",
        "helm.toolkit.fluxcd.io",
        "argoproj.io",
    ] {
        assert!(names.contains(&g), "{g}");
    }
    let (_, apps) = http.get("/apis/apps/v1").await;
    let deploy = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "deployments")
        .unwrap();
    assert_eq!(deploy["kind"], "Deployment");
    assert_eq!(deploy["namespaced"], true);
    let (_, core) = http.get("/api/v1").await;
    assert!(core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "events"));
}

#[tokio::test]
async fn status_subresource_and_main_resource_keep_their_halves() {
    let fake = FakeKube::start().await;
    let web = fake.deployment("shop", "web").create().await;
    let http = Http::new(&fake);
    // A main-resource write cannot change status …
    let (_, obj) = http
        .patch(
            DEPLOY_WEB,
            MERGE_PATCH,
            r#"{"status":{"replicas":99},"spec":{"replicas":4}}"#,
        )
        .await;
    assert_eq!(obj["spec"]["replicas"], 4);
    assert_ne!(obj["status"]["replicas"], 99);
    // … and a status write cannot change spec.
    let (code, obj) = http
        .patch(
            &format!("{DEPLOY_WEB}/status"),
            MERGE_PATCH,
            r#"{"status":{"replicas":99},"spec":{"replicas":1}}"#,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(obj["status"]["replicas"], 99);
    assert_eq!(obj["spec"]["replicas"], 4);
    assert_eq!(web.get()["metadata"]["generation"], 2);
    // A no-op write changes nothing, not even the resourceVersion.
    let rv = fake.resource_version();
    let (_, obj) = http.patch(DEPLOY_WEB, MERGE_PATCH, "{}").await;
    assert_eq!(obj["metadata"]["resourceVersion"], json!(rv.to_string()));
    assert_eq!(fake.resource_version(), rv);
    let _: Value = obj;
}

#[tokio::test]
async fn a_selector_watch_sees_objects_enter_and_leave_the_selection() {
    let fake = FakeKube::start().await;
    let lease = |team: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "l", "namespace": "ops", "labels": {"team": team}}, "spec": {}})
    };
    fake.create(lease("a")).unwrap();
    let http = Http::new(&fake);
    let rv = fake.resource_version();
    let mut w = http
        .watch(&format!(
            "/apis/coordination.k8s.io/v1/namespaces/ops/leases?watch=true&labelSelector=team%3Da&resourceVersion={rv}"
        ))
        .await;
    let relabel = |team: &str| {
        let mut l = fake.get("leases", "ops", "l").unwrap();
        l["metadata"]["labels"]["team"] = json!(team);
        fake.replace(l).unwrap();
    };
    relabel("b");
    relabel("a");
    relabel("a2");
    assert_eq!(w.next_summary().await.unwrap().0, "DELETED");
    assert_eq!(w.next_summary().await.unwrap().0, "ADDED");
    assert_eq!(w.next_summary().await.unwrap().0, "DELETED");
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_gets_410_expired() {
    let fake = FakeKube::start().await;
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "churn", "namespace": "ops"}, "spec": {}});
    // More writes than the change history keeps.
    for _ in 0..10_050 {
        fake.put_object(lease.clone());
    }
    let http = Http::new(&fake);
    let mut w = http
        .watch("/apis/coordination.k8s.io/v1/namespaces/ops/leases?watch=true&resourceVersion=5")
        .await;
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    assert!(ev["object"]["message"]
        .as_str()
        .unwrap()
        .starts_with("too old resource version: 5 ("));
    assert!(w.next().await.is_none());
}
