//! The cluster a scenario runs against: `fakekube`, or the real control
//! plane (etcd, kube-apiserver, kube-controller-manager and a kubelet
//! stand-in) that `bash scripts/realkube start DIR` started, named by
//! `ROLLBACKD_REALKUBE=DIR`. `bash scripts/test` starts one for the whole
//! suite; every real scenario gets a namespace of its own in it.
//!
//! A scenario written against [`TestKube`] talks to the API server through
//! kube-rs and kubectl only, so the same code runs on both: the fake must
//! agree with the real server, and where they differ the real one is right.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use rollbackd::adapters::cluster::undo::UndoEngine;
use rollbackd::adapters::cluster::watch::{follow, FollowOutcome};
use rollbackd::adapters::cluster::Cluster;
use rollbackd::core::decide::WorkloadKind;
use serde_json::{json, Value};

/// The variable that names a running real control plane's folder.
pub const REALKUBE_ENV: &str = "ROLLBACKD_REALKUBE";

/// Which API server a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The in-process fake.
    Fake,
    /// The real control plane of `scripts/realkube`.
    Real,
}

/// A cluster under test, with a namespace of the scenario's own.
pub struct TestKube {
    /// Fake or real.
    pub flavor: Flavor,
    /// The namespace this scenario owns.
    pub ns: String,
    client: kube::Client,
    kubeconfig: PathBuf,
    fake: Option<fakekube::FakeKube>,
    _dir: tempfile::TempDir,
}

/// The real control plane's folder, or a clear failure: these tests are
/// part of the suite, not optional.
pub fn realkube_dir() -> PathBuf {
    match std::env::var_os(REALKUBE_ENV) {
        Some(dir) if Path::new(&dir).join("kubeconfig").is_file() => PathBuf::from(dir),
        Some(dir) => panic!(
            "{REALKUBE_ENV}={} has no kubeconfig: is the control plane running? \
             (bash scripts/realkube start DIR)",
            Path::new(&dir).display()
        ),
        None => panic!(
            "this test runs against a real control plane: run the suite with `bash scripts/test`, \
             or `bash scripts/realkube start DIR` and set {REALKUBE_ENV}=DIR"
        ),
    }
}

/// A client for the real control plane's cluster-admin kubeconfig.
pub async fn realkube_client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("realkube kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("realkube kubeconfig is usable");
    kube::Client::try_from(config).expect("client")
}

/// A name no other test in this run uses, fit for a namespace (a DNS
/// label): `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    format!(
        "{}-{}-{}",
        prefix.trim_matches('-'),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestKube {
    /// The flavor's cluster with a fresh namespace named after `prefix`.
    pub async fn start(flavor: Flavor, prefix: &str) -> TestKube {
        match flavor {
            Flavor::Fake => Self::start_fake(prefix).await,
            Flavor::Real => Self::start_real(prefix).await,
        }
    }

    /// A new fakekube; the namespace is `prefix` (nothing else lives there).
    pub async fn start_fake(prefix: &str) -> TestKube {
        let fake = fakekube::FakeKube::start().await;
        // As many nodes as scripts/realkube's fakelet registers, so a
        // DaemonSet has as many pods on both.
        fake.set_nodes(1);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig).unwrap();
        let config = kube::Config::new(fake.url().parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        TestKube {
            flavor: Flavor::Fake,
            ns: prefix.to_string(),
            client,
            kubeconfig,
            fake: Some(fake),
            _dir: dir,
        }
    }

    /// The running real control plane, with a namespace of this scenario's
    /// own, created and given its `default` ServiceAccount.
    pub async fn start_real(prefix: &str) -> TestKube {
        let kubeconfig = realkube_dir().join("kubeconfig");
        let client = realkube_client(&kubeconfig).await;
        let ns = unique(prefix);
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .expect("namespace created");
        TestKube {
            flavor: Flavor::Real,
            ns,
            client,
            kubeconfig,
            fake: None,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Whether this is the real control plane.
    pub fn is_real(&self) -> bool {
        self.flavor == Flavor::Real
    }

    /// A kube-rs client (cluster-admin on the real one).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The undo engine on this cluster.
    pub fn engine(&self) -> UndoEngine {
        UndoEngine::new(self.client())
    }

    /// rollbackd's cluster handle.
    pub fn cluster(&self) -> Cluster {
        Cluster::Connected(self.engine())
    }

    /// A kubeconfig file for kubectl and `rollbackd` processes.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The fake, for what only it can do (its request log, fault
    /// injection); `None` on the real control plane.
    pub fn fake(&self) -> Option<&fakekube::FakeKube> {
        self.fake.as_ref()
    }

    /// Real kubectl 1.35 against this cluster, in this namespace (async:
    /// the fake answers on this test's own runtime).
    pub fn kubectl(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(kubectl_path());
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .args(["-n", &self.ns]);
        cmd
    }

    /// Runs kubectl; its stdout, or a failure with its stderr.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self
            .kubectl()
            .args(args)
            .output()
            .await
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl create -f -` of `obj` (in this namespace).
    pub async fn create(&self, obj: Value) -> Value {
        let api = self.dynamic(&obj);
        let obj: DynamicObject = serde_json::from_value(obj).unwrap();
        let created = api
            .create(&PostParams::default(), &obj)
            .await
            .expect("created");
        serde_json::to_value(created).unwrap()
    }

    /// A workload of `kind` named `name` running `image` (container
    /// `app`), `replicas` pods, ready when this returns.
    pub async fn workload(&self, kind: WorkloadKind, name: &str, image: &str, replicas: i64) {
        let template = json!({
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": image}]}
        });
        let mut spec = json!({
            "selector": {"matchLabels": {"app": name}},
            "template": template,
        });
        if kind != WorkloadKind::DaemonSet {
            spec["replicas"] = json!(replicas);
        }
        if kind == WorkloadKind::StatefulSet {
            spec["serviceName"] = json!(name);
        }
        let kind_name = match kind {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        };
        self.create(json!({
            "apiVersion": "apps/v1", "kind": kind_name,
            "metadata": {"name": name, "namespace": self.ns},
            "spec": spec,
        }))
        .await;
        self.settle(kind, name).await;
    }

    /// What `kubectl set image KIND/NAME app=IMAGE` sends (a strategic
    /// merge patch of the container), then waits for the rollout to end.
    pub async fn set_image(&self, kind: WorkloadKind, name: &str, image: &str) {
        self.set_image_unsettled(kind, name, image).await;
        self.settle(kind, name).await;
    }

    /// [`set_image`] without waiting for the rollout.
    pub async fn set_image_unsettled(&self, kind: WorkloadKind, name: &str, image: &str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
        self.api(kind)
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .expect("image set");
    }

    /// The workload as the API server has it.
    pub async fn get(&self, kind: WorkloadKind, name: &str) -> Value {
        serde_json::to_value(self.api(kind).get(name).await.expect("workload")).unwrap()
    }

    /// The first container's image.
    pub async fn image(&self, kind: WorkloadKind, name: &str) -> String {
        let w = self.get(kind, name).await;
        w["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits, as `kubectl rollout status` does, for the rollout to end
    /// healthy (bounded: a real rollout of ready-at-once pods takes
    /// seconds).
    pub async fn settle(&self, kind: WorkloadKind, name: &str) {
        let outcome = follow(&self.client, kind, &self.ns, name, Duration::from_secs(90))
            .await
            .expect("watch");
        assert!(
            matches!(outcome, FollowOutcome::Healthy { .. }),
            "{kind:?} {}/{name} did not become healthy: {outcome:?}",
            self.ns
        );
        // `rollout status` is satisfied before the real controller's last
        // status write (the old pods counted as terminating until they are
        // gone): wait for it, so a test that compares resourceVersions
        // afterwards sees no write of the controller's.
        super::until(
            "the rollout's last status write",
            Duration::from_secs(30),
            || async {
                let w = self.get(kind, name).await;
                (w["status"]["terminatingReplicas"].as_i64().unwrap_or(0) == 0).then_some(())
            },
        )
        .await;
    }

    /// The typed-less API of `kind` in this namespace.
    pub fn api(&self, kind: WorkloadKind) -> Api<DynamicObject> {
        let kind_name = match kind {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        };
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind_name));
        Api::namespaced_with(self.client(), &self.ns, &ar)
    }

    fn dynamic(&self, obj: &Value) -> Api<DynamicObject> {
        let (group, version) = match obj["apiVersion"].as_str().unwrap().split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (
                String::new(),
                obj["apiVersion"].as_str().unwrap().to_string(),
            ),
        };
        let kind = obj["kind"].as_str().unwrap();
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, kind));
        match obj["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.client(), ns, &ar),
            None => Api::all_with(self.client(), &ar),
        }
    }
}

/// kubectl 1.35, unpacked from npm by `scripts/tools` (or `ROLLBACKD_KUBECTL`).
pub fn kubectl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ROLLBACKD_KUBECTL") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/chart-check/layer-2.2.2/kubectl/kubectl");
    assert!(
        p.is_file(),
        "kubectl 1.35 not found at {}: run `bash scripts/tools` (scripts/test does)",
        p.display()
    );
    p
}

/// Declares a scenario twice: `fake` against fakekube, `real` against the
/// real control plane, from the same body.
#[macro_export]
macro_rules! on_both {
    ($(#[$meta:meta])* async fn $name:ident($kube:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn scenario($kube: $crate::common::cluster::TestKube) $body
            #[tokio::test]
            async fn fake() {
                scenario($crate::common::cluster::TestKube::start(
                    $crate::common::cluster::Flavor::Fake, "shop").await).await
            }
            #[tokio::test]
            async fn real() {
                scenario($crate::common::cluster::TestKube::start(
                    $crate::common::cluster::Flavor::Real, stringify!($name)).await).await
            }
        }
    };
}
