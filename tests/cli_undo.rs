//! `rollbackd undo` and `rollbackd history` as a person runs them: the real
//! binary, KUBECONFIG pointing at the fake API server.

use fakekube::{FakeKube, WorkloadKind as FakeKind};
use tokio::process::Command;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn rollbackd(kubeconfig: &std::path::Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[tokio::test]
async fn undo_and_history_speak_kubectl() {
    let fake = FakeKube::start().await;
    fake.load_list(include_str!("fixtures/kubectl/shop-web-before-undo.json"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kc).unwrap();

    let h = rollbackd(&kc, &["history", "deployment/web", "-n", "shop"]).await;
    assert_eq!(h.code, Some(0), "{}", h.stderr);
    assert_eq!(
        h.stdout,
        "deployment.apps/web \n\
         REVISION  CHANGE-CAUSE\n\
         1         initial release nginx:1.25\n\
         2         upgrade to nginx:1.26\n\
         3         upgrade to nginx:1.27-bad\n\n"
    );

    let r = rollbackd(
        &kc,
        &["history", "deploy/web", "-n", "shop", "--revision", "2"],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("deployment.apps/web with revision #2\nPod Template:\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("    Image:\tnginx:1.26\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("  Annotations:\tkubernetes.io/change-cause: upgrade to nginx:1.26\n"),
        "{}",
        r.stdout
    );

    let missing = rollbackd(
        &kc,
        &["history", "deployment/web", "-n", "shop", "--revision", "9"],
    )
    .await;
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (Some(1), "error: unable to find the specified revision\n")
    );

    let dry = rollbackd(
        &kc,
        &["undo", "deployment/web", "-n", "shop", "--dry-run=server"],
    )
    .await;
    assert_eq!(
        (dry.code, dry.stdout.as_str()),
        (
            Some(0),
            "deployment.apps/web rolled back (server dry run)\n"
        )
    );
    assert_eq!(
        fake.workload(FakeKind::Deployment, "shop", "web").image(),
        "nginx:1.27-bad"
    );

    let undo = rollbackd(&kc, &["undo", "deployment/web", "-n", "shop"]).await;
    assert_eq!(
        (undo.code, undo.stdout.as_str()),
        (Some(0), "deployment.apps/web rolled back\n"),
        "{}",
        undo.stderr
    );
    let web = fake.workload(FakeKind::Deployment, "shop", "web");
    assert_eq!((web.image().as_str(), web.revision()), ("nginx:1.26", 4));

    let skip = rollbackd(
        &kc,
        &["undo", "deployment/web", "-n", "shop", "--to-revision", "4"],
    )
    .await;
    assert_eq!(
        (skip.code, skip.stdout.as_str()),
        (
            Some(0),
            "deployment.apps/web skipped rollback (current template already matches revision 4)\n"
        )
    );

    let bad = rollbackd(
        &kc,
        &["undo", "deployment/web", "-n", "shop", "--to-revision", "9"],
    )
    .await;
    assert_eq!(
        (bad.code, bad.stderr.as_str()),
        (
            Some(1),
            "error: unable to find specified revision 9 in history\n"
        )
    );
    let gone = rollbackd(&kc, &["undo", "deployment/nope", "-n", "shop"]).await;
    assert_eq!(
        (gone.code, gone.stderr.as_str()),
        (Some(1), "error: deployments.apps \"nope\" not found\n")
    );
    let kind = rollbackd(&kc, &["undo", "cronjob/x"]).await;
    assert_eq!(kind.code, Some(1));
    assert!(
        kind.stderr
            .contains("no rollback for resource type \"cronjob\""),
        "{}",
        kind.stderr
    );
    assert_eq!(
        fake.patches_to("deployments", "shop", "web")
            .iter()
            .filter(|p| !p.dry_run)
            .count(),
        1
    );
}
