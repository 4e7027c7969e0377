//! Undo parity with real kubectl 1.35, on fakekube and on the real control
//! plane, from the same scenario code: two identical workloads go through
//! three image releases (`kubectl set image`); one is undone with `kubectl
//! rollout undo`, its twin with `rollbackd undo`. Templates must be equal,
//! annotations equal but for rollbackd's own, and `kubectl rollout history`
//! must list the same revisions.

mod common;

use common::cluster::TestKube;
use rollbackd::core::decide::WorkloadKind;
use serde_json::Value;

/// `rollbackd ARGS` with the cluster's kubeconfig; stdout, or a failure.
async fn rollbackd(kube: &TestKube, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .args(args)
        .args(["-n", &kube.ns])
        .env("KUBECONFIG", kube.kubeconfig())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "rollbackd {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn resource(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "deployment",
        WorkloadKind::StatefulSet => "statefulset",
        WorkloadKind::DaemonSet => "daemonset",
    }
}

/// The revision numbers `kubectl rollout history` lists.
async fn history_revisions(kube: &TestKube, workload: &str) -> Vec<String> {
    kube.kubectl_ok(&["rollout", "history", workload])
        .await
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Annotations without rollbackd's own (its episode marker and the
/// change-cause it writes) and without what differs by name alone.
fn comparable_annotations(w: &Value) -> Value {
    let mut a = w["metadata"]["annotations"].clone();
    if let Some(map) = a.as_object_mut() {
        map.remove("rollbackd.io/episode");
        map.remove("kubernetes.io/change-cause");
        if map.is_empty() {
            // rollbackd's own were the only ones.
            return Value::Null;
        }
    }
    a
}

/// The template with the twin's name put back to a common one.
fn comparable_template(w: &Value, name: &str) -> Value {
    let text = serde_json::to_string(&w["spec"]["template"]).unwrap();
    serde_json::from_str(&text.replace(name, "TWIN")).unwrap()
}

/// Releases v1 → v2 → v3 on both twins, then undoes `kubectl`'s twin with
/// kubectl and `ours` with rollbackd (`to_revision`: both with it), and
/// compares.
async fn twins_undo_alike(kube: &TestKube, kind: WorkloadKind, to_revision: Option<&str>) {
    let kubectl_twin = format!("{}-kubectl", resource(kind));
    let ours = format!("{}-ours", resource(kind));
    for name in [&kubectl_twin, &ours] {
        kube.workload(kind, name, "registry.local/app:v1", 2).await;
        for v in ["v2", "v3"] {
            let workload = format!("{}/{name}", resource(kind));
            kube.kubectl_ok(&[
                "set",
                "image",
                &workload,
                &format!("app=registry.local/app:{v}"),
            ])
            .await;
            kube.settle(kind, name).await;
        }
    }
    let theirs_ref = format!("{}/{kubectl_twin}", resource(kind));
    let ours_ref = format!("{}/{ours}", resource(kind));
    let flag = to_revision.map(|r| format!("--to-revision={r}"));
    let mut undo = vec!["rollout", "undo", theirs_ref.as_str()];
    undo.extend(flag.as_deref());
    let said = kube.kubectl_ok(&undo).await;
    assert_eq!(
        said.trim(),
        format!("{}.apps/{kubectl_twin} rolled back", resource(kind))
    );
    let mut ours_args = vec!["undo", ours_ref.as_str()];
    ours_args.extend(flag.as_deref());
    let said = rollbackd(kube, &ours_args).await;
    assert!(said.contains("rolled back"), "{said}");
    kube.settle(kind, &kubectl_twin).await;
    kube.settle(kind, &ours).await;

    let theirs = kube.get(kind, &kubectl_twin).await;
    let mine = kube.get(kind, &ours).await;
    let expected_image = if to_revision == Some("1") { "v1" } else { "v2" };
    assert_eq!(
        kube.image(kind, &ours).await,
        format!("registry.local/app:{expected_image}")
    );
    assert_eq!(
        comparable_template(&mine, &ours),
        comparable_template(&theirs, &kubectl_twin),
        "templates differ"
    );
    assert_eq!(
        comparable_annotations(&mine),
        comparable_annotations(&theirs),
        "annotations differ beyond rollbackd's own"
    );
    assert_eq!(
        history_revisions(kube, &ours_ref).await,
        history_revisions(kube, &theirs_ref).await,
        "kubectl rollout history lists other revisions"
    );
}

on_both! {
    async fn deployment_undo_matches_kubectl(kube) {
        twins_undo_alike(&kube, WorkloadKind::Deployment, None).await;
    }
}

on_both! {
    async fn deployment_undo_to_revision_matches_kubectl(kube) {
        twins_undo_alike(&kube, WorkloadKind::Deployment, Some("1")).await;
    }
}

on_both! {
    async fn statefulset_undo_matches_kubectl(kube) {
        twins_undo_alike(&kube, WorkloadKind::StatefulSet, None).await;
    }
}

on_both! {
    async fn daemonset_undo_matches_kubectl(kube) {
        twins_undo_alike(&kube, WorkloadKind::DaemonSet, None).await;
    }
}
