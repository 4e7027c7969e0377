//! rollbackd's chart RBAC on the real control plane: the chart's
//! ServiceAccount, (Cluster)Roles and bindings rendered by `helm template`,
//! applied as cluster-admin, and a kubeconfig that holds nothing but that
//! ServiceAccount's token, for a `rollbackd serve` process.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::cluster::{kubectl_path, realkube_dir, TestKube};

/// helm 4, unpacked next to kubectl by `scripts/tools` (or `ROLLBACKD_HELM`).
pub fn helm_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ROLLBACKD_HELM") {
        return PathBuf::from(p);
    }
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/chart-check/layer-2.2.2/helm/helm");
    assert!(
        p.is_file(),
        "helm not found at {}: run `bash scripts/tools` (scripts/test does)",
        p.display()
    );
    p
}

/// The chart's `rbac.scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One ClusterRole + ClusterRoleBinding (the chart's default).
    Cluster,
    /// One Role + RoleBinding in the release namespace, which also holds
    /// the Flux objects (`rbac.namespaces` and `rbac.fluxSuspend.namespaces`).
    Namespaces,
}

/// `helm template RELEASE charts/rollbackd -n NS` with leader election and
/// the Flux suspend switch on: the ServiceAccount and every RBAC object, as
/// JSON documents in the chart's order.
pub async fn render(release: &str, ns: &str, scope: Scope) -> Vec<Value> {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/rollbackd");
    let mut cmd = tokio::process::Command::new(helm_path());
    cmd.arg("template")
        .arg(release)
        .arg(&chart)
        .args(["--namespace", ns])
        .args(["--set", "leaderElection.enabled=true"])
        .args(["--set", "rbac.fluxSuspend.enabled=true"]);
    if scope == Scope::Namespaces {
        cmd.args(["--set", "rbac.scope=namespaces"])
            .args(["--set-json", &format!("rbac.namespaces=[{ns:?}]")])
            .args([
                "--set-json",
                &format!("rbac.fluxSuspend.namespaces=[{ns:?}]"),
            ]);
    }
    let out = cmd
        .args(["--show-only", "templates/serviceaccount.yaml"])
        .args(["--show-only", "templates/rbac.yaml"])
        // helm keeps its cache and config out of $HOME for a test.
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("rollbackd-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("rollbackd-helm-config"),
        )
        .output()
        .await
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("helm renders YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every rule of every Role and ClusterRole rendered, one line each:
/// `KIND NAME: GROUPS RESOURCES VERBS`, for messages and the report.
pub fn describe_rules(docs: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if kind != "Role" && kind != "ClusterRole" {
            continue;
        }
        for rule in doc["rules"].as_array().into_iter().flatten() {
            out.push(format!(
                "{kind} {}: apiGroups={} resources={} verbs={}",
                doc["metadata"]["name"].as_str().unwrap_or_default(),
                rule["apiGroups"],
                rule["resources"],
                rule["verbs"]
            ));
        }
    }
    out
}

/// Takes `verb` on `resource` (in API `group`) away from every rendered
/// Role and ClusterRole, leaving that rule's other resources and verbs as
/// they were (a rule naming several resources is split). Panics when no
/// rule granted it: the test would prove nothing.
pub fn remove_verb(docs: &mut [Value], group: &str, resource: &str, verb: &str) {
    let mut removed = 0;
    for doc in docs.iter_mut() {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if kind != "Role" && kind != "ClusterRole" {
            continue;
        }
        let Some(rules) = doc["rules"].as_array() else {
            continue;
        };
        let mut next = Vec::new();
        for rule in rules {
            let has = |field: &str, want: &str| {
                rule[field]
                    .as_array()
                    .is_some_and(|xs| xs.iter().any(|x| x == want))
            };
            if !(has("apiGroups", group) && has("resources", resource) && has("verbs", verb)) {
                next.push(rule.clone());
                continue;
            }
            removed += 1;
            let others: Vec<&Value> = rule["resources"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| *r != resource)
                .collect();
            if !others.is_empty() {
                let mut rest = rule.clone();
                rest["resources"] = json!(others);
                next.push(rest);
            }
            let verbs: Vec<&Value> = rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| *v != verb)
                .collect();
            if !verbs.is_empty() {
                let mut this = rule.clone();
                this["resources"] = json!([resource]);
                this["verbs"] = json!(verbs);
                next.push(this);
            }
        }
        doc["rules"] = json!(next);
    }
    assert!(
        removed > 0,
        "no rendered rule grants {verb} on {resource} in group {group:?}"
    );
}

/// `kubectl apply -f -` of `docs` as cluster-admin.
pub async fn apply(kube: &TestKube, docs: &[Value]) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": docs});
    kubectl_stdin(kube, &["apply", "-f", "-"], &list.to_string()).await;
}

/// Runs kubectl (cluster-admin, the scenario's namespace) with `stdin`;
/// its stdout, or a failure with its output.
pub async fn kubectl_stdin(kube: &TestKube, args: &[&str], stdin: &str) -> String {
    let out = kubectl_stdin_output(kube, args, stdin).await;
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs kubectl (cluster-admin, the scenario's namespace) with `stdin`.
pub async fn kubectl_stdin_output(
    kube: &TestKube,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    let mut child = kube
        .kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

/// The name and namespace of the rendered ServiceAccount.
pub fn service_account(docs: &[Value]) -> (String, String) {
    let sa = docs
        .iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .expect("the chart renders a ServiceAccount");
    (
        sa["metadata"]["name"].as_str().unwrap().to_string(),
        sa["metadata"]["namespace"].as_str().unwrap().to_string(),
    )
}

/// A token for `sa` from the TokenRequest API (`kubectl create token`).
pub async fn token(kube: &TestKube, sa: &str) -> String {
    let out = kube
        .kubectl_ok(&["create", "token", sa, "--duration=1h"])
        .await;
    let token = out.trim().to_string();
    assert!(!token.is_empty(), "kubectl create token printed nothing");
    token
}

/// A kubeconfig at `path` holding only `token` (server and CA from the
/// real control plane's admin kubeconfig), namespace `ns`.
pub fn token_kubeconfig(path: &Path, token: &str, ns: &str) {
    let admin = std::fs::read_to_string(realkube_dir().join("kubeconfig")).unwrap();
    let admin: Value = serde_norway::from_str(&admin).expect("admin kubeconfig is YAML");
    let cluster = &admin["clusters"][0]["cluster"];
    assert!(
        cluster["server"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://127.0.0.1:")),
        "the control plane listens on loopback: {cluster}"
    );
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "realkube", "cluster": {
            "server": cluster["server"],
            "certificate-authority-data": cluster["certificate-authority-data"],
        }}],
        "users": [{"name": "rollbackd", "user": {"token": token}}],
        "contexts": [{"name": "rollbackd", "context": {
            "cluster": "realkube", "user": "rollbackd", "namespace": ns,
        }}],
        "current-context": "rollbackd",
    });
    std::fs::write(path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

/// kubectl as the ServiceAccount of `kubeconfig`.
pub async fn kubectl_as(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(kubectl_path())
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("kubectl runs")
}

/// The Flux Kustomization CRD (`kustomize.toolkit.fluxcd.io/v1`), the part
/// rollbackd touches: `spec.suspend` typed, the rest (and
/// `status.inventory`) preserved. Cluster-wide and shared by every test:
/// created once, left in place if another test (or Flux's own CRD) got
/// there first.
pub async fn flux_kustomization_crd(kube: &TestKube) {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "kustomizations.kustomize.toolkit.fluxcd.io"},
        "spec": {
            "group": "kustomize.toolkit.fluxcd.io",
            "names": {"kind": "Kustomization", "listKind": "KustomizationList",
                      "plural": "kustomizations", "singular": "kustomization",
                      "shortNames": ["ks"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {
                                "suspend": {"type": "boolean"},
                                "interval": {"type": "string"},
                                "path": {"type": "string"},
                                "prune": {"type": "boolean"},
                            },
                        },
                        "status": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {
                                "inventory": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": true,
                                },
                            },
                        },
                    },
                }},
            }],
        },
    });
    let out = kubectl_stdin_output(kube, &["create", "-f", "-"], &crd.to_string()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("AlreadyExists"),
        "creating the Flux Kustomization CRD: {stderr}"
    );
    kube.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/kustomizations.kustomize.toolkit.fluxcd.io",
    ])
    .await;
    // Established is the API server's word; the discovery and the REST
    // mapping follow within moments: wait until a list answers.
    super::until(
        "the Kustomization API serves",
        Duration::from_secs(60),
        || async {
            let out = kube
                .kubectl()
                .args([
                    "get",
                    "kustomizations.kustomize.toolkit.fluxcd.io",
                    "-o",
                    "name",
                ])
                .output()
                .await
                .unwrap();
            out.status.success().then_some(())
        },
    )
    .await;
}

/// A Flux Kustomization `name` in the scenario's namespace, valid under
/// Flux's own CRD too (interval, path, prune, sourceRef).
pub async fn flux_kustomization(kube: &TestKube, name: &str) {
    let ks = json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": kube.ns},
        "spec": {
            "interval": "10m", "path": "./apps", "prune": true, "suspend": false,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system", "namespace": kube.ns},
        },
    });
    kube.create(ks).await;
}

/// Deletes the named cluster-scoped objects when dropped (a
/// ClusterRole and its binding outlive the scenario's namespace).
pub struct ClusterScoped(pub Vec<String>);

impl ClusterScoped {
    /// The ClusterRoles and ClusterRoleBindings among `docs`.
    pub fn of(docs: &[Value]) -> ClusterScoped {
        ClusterScoped(
            docs.iter()
                .filter(|d| {
                    matches!(
                        d["kind"].as_str(),
                        Some("ClusterRole" | "ClusterRoleBinding")
                    )
                })
                .map(|d| {
                    format!(
                        "{}/{}",
                        d["kind"].as_str().unwrap().to_ascii_lowercase(),
                        d["metadata"]["name"].as_str().unwrap()
                    )
                })
                .collect(),
        )
    }
}

impl Drop for ClusterScoped {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let _ = std::process::Command::new(kubectl_path())
            .env("KUBECONFIG", realkube_dir().join("kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .args(["delete", "--ignore-not-found", "--wait=false"])
            .args(&self.0)
            .output();
    }
}
