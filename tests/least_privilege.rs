//! Least privilege, proven on the real control plane: the chart's
//! ServiceAccount and RBAC (rendered by `helm template`, applied as
//! cluster-admin) are all `rollbackd serve` needs for a whole rollback
//! (read, list ReplicaSets, suspend Flux, patch, Event, watch, Lease), and
//! with any one of those verbs taken away the rollback fails `forbidden`,
//! naming the verb and the resource, in the journal and in Slack: never a
//! crash, never a silent success.
//!
//! The process talks to the API server with nothing but a TokenRequest
//! token of that ServiceAccount.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::TestKube;
use common::proc::{auth_env, spawn, Proc};
use common::rbac::{self, Scope};
use common::slack::FakeSlack;
use common::{until, FIRING, WEBHOOK_TOKEN};
use rollbackd::core::decide::WorkloadKind;
use serde_json::{json, Value};

/// The workload, its Flux Kustomization and rollbackd's identity.
const WEB: &str = "web";
const KUSTOMIZATION: &str = "apps";
const IDENTITY: &str = "rollbackd-0";
/// Failure bound for a real rollout, a rollback and its watch (they take
/// seconds).
const DEADLINE: Duration = Duration::from_secs(90);

/// A fresh namespace on the real control plane holding the chart's RBAC
/// (as `edit` leaves it), a Flux Kustomization owning Deployment `web`
/// with two releases (`web:v1`, then `web:v2`), a kubeconfig with only the
/// ServiceAccount's token, and a rules folder with `gitops: suspend`.
struct Prepared {
    kube: TestKube,
    docs: Vec<Value>,
    /// The kubeconfig holding only the ServiceAccount's token.
    kubeconfig: std::path::PathBuf,
    rules: std::path::PathBuf,
    _cluster_scoped: rbac::ClusterScoped,
    dir: tempfile::TempDir,
}

impl Prepared {
    async fn new(prefix: &str, scope: Scope, edit: impl FnOnce(&mut Vec<Value>)) -> Prepared {
        let kube = TestKube::start_real(prefix).await;
        let ns = kube.ns.clone();
        // The release is named after the namespace: ClusterRole names are
        // cluster-wide, and scenarios run side by side.
        let mut docs = rbac::render(&ns, &ns, scope).await;
        edit(&mut docs);
        let cluster_scoped = rbac::ClusterScoped::of(&docs);
        rbac::apply(&kube, &docs).await;
        let (sa, sa_ns) = rbac::service_account(&docs);
        assert_eq!(
            sa_ns, ns,
            "the ServiceAccount lives in the release namespace"
        );

        rbac::flux_kustomization_crd(&kube).await;
        rbac::flux_kustomization(&kube, KUSTOMIZATION).await;
        kube.create(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": WEB, "namespace": ns, "labels": {
                "app": WEB,
                "kustomize.toolkit.fluxcd.io/name": KUSTOMIZATION,
                "kustomize.toolkit.fluxcd.io/namespace": ns,
            }},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": WEB}},
                "template": {
                    "metadata": {"labels": {"app": WEB}},
                    "spec": {"containers": [{"name": "app", "image": "web:v1"}]},
                },
            },
        }))
        .await;
        kube.settle(WorkloadKind::Deployment, WEB).await;
        kube.set_image(WorkloadKind::Deployment, WEB, "web:v2")
            .await;

        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        rbac::token_kubeconfig(&kubeconfig, &rbac::token(&kube, &sa).await, &ns);
        bindings_in_effect(&kubeconfig, &docs, &ns).await;

        let rules = dir.path().join("rules");
        std::fs::create_dir_all(&rules).unwrap();
        let default =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.yaml"))
                .unwrap();
        let suspend = default.replace("  gitops: refuse\n", "  gitops: suspend\n");
        assert_ne!(suspend, default, "the default rules' gitops line moved");
        std::fs::write(rules.join("default.yaml"), suspend).unwrap();
        Prepared {
            kube,
            docs,
            kubeconfig,
            rules,
            _cluster_scoped: cluster_scoped,
            dir,
        }
    }

    /// The ServiceAccount as the API server names it in a 403
    /// (`NAMESPACE/NAME`).
    fn account(&self) -> String {
        let (name, ns) = rbac::service_account(&self.docs);
        format!("{ns}/{name}")
    }

    /// `rollbackd serve`'s environment: the token's kubeconfig, leader
    /// election in the scenario's namespace, Slack at `slack_url`.
    fn env(&self, slack_url: Option<&str>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = auth_env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend(
            [
                ("KUBECONFIG", self.kubeconfig.display().to_string()),
                ("ROLLBACKD_LEADER_ELECT", "true".into()),
                ("ROLLBACKD_LEADER_ELECT_NAMESPACE", self.kube.ns.clone()),
                ("ROLLBACKD_IDENTITY", IDENTITY.into()),
                ("HOSTNAME", IDENTITY.into()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        if let Some(url) = slack_url {
            env.push(("ROLLBACKD_SLACK_WEBHOOK_URL".into(), url.into()));
        }
        env
    }

    /// What rollbackd says when the token may not `verb` `resource` in the
    /// scenario's namespace.
    fn forbidden(&self, verb: &str, resource: &str) -> String {
        format!(
            "forbidden: rollbackd's ServiceAccount {} may not {verb} {resource} in namespace {} (RBAC)",
            self.account(),
            self.kube.ns
        )
    }

    fn rules_arg(&self) -> String {
        format!("--rules={}", self.rules.display())
    }
}

/// A [`Prepared`] cluster with `rollbackd serve` running on it and a fake
/// Slack (incoming webhook) it reports to.
struct Scenario {
    p: Prepared,
    proc: Proc,
    slack: FakeSlack,
}

impl Scenario {
    async fn start(prefix: &str, scope: Scope, edit: impl FnOnce(&mut Vec<Value>)) -> Scenario {
        let p = Prepared::new(prefix, scope, edit).await;
        let slack = FakeSlack::start().await;
        let env = p.env(Some(&slack.webhook_url("least-privilege")));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let journal = p.dir.path().join("journal");
        std::fs::create_dir_all(&journal).unwrap();
        let proc = spawn(&journal, &[&p.rules_arg()], &env).await;
        Scenario { p, proc, slack }
    }

    /// This replica's `host:port`, as it advertises itself in the Lease.
    fn address(&self) -> &str {
        self.proc.url.trim_start_matches("http://")
    }

    /// Waits until this replica leads (it holds the Lease).
    async fn leads(&self) {
        until("rollbackd leads", DEADLINE, || async {
            (self.proc.role().await.as_deref() == Some("leader")).then_some(())
        })
        .await;
    }

    /// Posts a firing critical alert for `web`; the webhook's journal id.
    async fn alert(&self) -> i64 {
        let mut v: Value = serde_json::from_slice(FIRING).unwrap();
        v["alerts"] = json!([{
            "status": "firing",
            "labels": {"alertname": "ServiceDown", "severity": "critical",
                       "namespace": self.p.kube.ns, "deployment": WEB},
            "annotations": {"rollback": "true"},
            "startsAt": jiff::Timestamp::now().to_string(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": "1ea57f00d1ea57f0",
        }]);
        let resp = self
            .proc
            .post(
                &format!("Bearer {WEBHOOK_TOKEN}"),
                &serde_json::to_vec(&v).unwrap(),
            )
            .await;
        assert_eq!(resp.status().as_u16(), 200, "webhook accepted");
        resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    /// The journaled event once its actions satisfy `done`.
    async fn event_when(&self, id: i64, what: &str, done: impl Fn(&[Value]) -> bool) -> Value {
        until(what, DEADLINE, || async {
            let e = self.proc.event(id).await;
            let actions = e["alerts"][0]["actions"].as_array().cloned()?;
            (!e["processed_at"].is_null() && done(&actions)).then_some(e)
        })
        .await
    }

    /// The Kustomization's `spec.suspend`.
    async fn suspended(&self) -> bool {
        let out = self
            .p
            .kube
            .kubectl_ok(&[
                "get",
                "kustomizations.kustomize.toolkit.fluxcd.io",
                KUSTOMIZATION,
                "-o",
                "json",
            ])
            .await;
        let ks: Value = serde_json::from_str(&out).unwrap();
        ks["spec"]["suspend"] == json!(true)
    }

    /// Kubernetes Events on `web` with `reason`, as `kubectl get events`
    /// lists them.
    async fn events(&self, reason: &str) -> Vec<Value> {
        let selector = format!("involvedObject.name={WEB},reason={reason}");
        let out = self
            .p
            .kube
            .kubectl_ok(&["get", "events", "--field-selector", &selector, "-o", "json"])
            .await;
        let list: Value = serde_json::from_str(&out).unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until a Slack message carries `text`.
    async fn reported(&self, text: &str) {
        until(&format!("Slack told {text:?}"), DEADLINE, || async {
            self.slack
                .requests()
                .iter()
                .any(|r| r.body.to_string().contains(text))
                .then_some(())
        })
        .await;
    }

    /// The process still runs and answers.
    async fn alive(&mut self) {
        assert!(
            self.proc.child.try_wait().unwrap().is_none(),
            "rollbackd exited:\n{}",
            self.proc.log_text()
        );
        assert_eq!(
            self.proc.role().await.as_deref(),
            Some("leader"),
            "rollbackd answers /readyz"
        );
    }
}

/// `kubectl auth can-i` as the token's ServiceAccount.
async fn can_i(kubeconfig: &Path, ns: &str, verb: &str, resource: &str) -> bool {
    let out = rbac::kubectl_as(kubeconfig, &["auth", "can-i", verb, resource, "-n", ns]).await;
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// Waits until the API server's authorizer sees every binding (its RBAC
/// cache follows the objects within moments): one granted verb of every
/// rendered Role and ClusterRole answers yes for the token.
async fn bindings_in_effect(kubeconfig: &Path, docs: &[Value], ns: &str) {
    for doc in docs {
        if !matches!(doc["kind"].as_str(), Some("Role" | "ClusterRole")) {
            continue;
        }
        let rule = &doc["rules"][0];
        let group = rule["apiGroups"][0].as_str().unwrap();
        let resource = rule["resources"][0].as_str().unwrap();
        let verb = rule["verbs"][0].as_str().unwrap();
        let resource = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        until(
            &format!("RBAC grants {verb} {resource} to the token"),
            DEADLINE,
            || async { can_i(kubeconfig, ns, verb, &resource).await.then_some(()) },
        )
        .await;
    }
}

/// The whole rollback with the chart's RBAC and nothing more: every step
/// succeeds, and the cluster shows it.
async fn whole_rollback(prefix: &str, scope: Scope) {
    let s = Scenario::start(prefix, scope, |_| {}).await;
    let ns = s.p.kube.ns.clone();
    eprintln!(
        "rendered RBAC ({scope:?}):\n  {}",
        rbac::describe_rules(&s.p.docs).join("\n  ")
    );

    // The token is the ServiceAccount's, and no more than the chart grants.
    let whoami = rbac::kubectl_as(&s.p.kubeconfig, &["auth", "whoami", "-o", "json"]).await;
    let whoami: Value = serde_json::from_slice(&whoami.stdout).expect("kubectl auth whoami");
    let (sa, _) = rbac::service_account(&s.p.docs);
    assert_eq!(
        whoami["status"]["userInfo"]["username"],
        json!(format!("system:serviceaccount:{ns}:{sa}"))
    );
    for (verb, resource) in [
        ("delete", "deployments.apps"),
        ("create", "deployments.apps"),
        ("update", "deployments.apps"),
        ("patch", "replicasets.apps"),
        ("get", "secrets"),
        ("list", "pods"),
        ("get", "kustomizations.kustomize.toolkit.fluxcd.io"),
        ("delete", "leases.coordination.k8s.io"),
    ] {
        assert!(
            !can_i(&s.p.kubeconfig, &ns, verb, resource).await,
            "the chart's RBAC grants {verb} {resource}: more than rollbackd calls"
        );
    }

    s.leads().await;
    let id = s.alert().await;
    let event = s
        .event_when(id, "rolled back and followed to healthy", |actions| {
            actions.iter().any(|a| a["action"] == "watch")
        })
        .await;
    let actions = &event["alerts"][0]["actions"];
    let log = s.proc.log_text();
    assert_eq!(
        actions[0]["outcome"], "rolled-back",
        "event: {event:#}\nlog:\n{log}"
    );
    assert_eq!(actions[1]["outcome"], "healthy", "event: {event:#}");
    let detail = actions[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "from revision 2 (web:v2) to revision 1 (web:v1); Flux Kustomization {ns}/{KUSTOMIZATION} suspended"
        )),
        "{detail}"
    );
    // No step was refused along the way (a refused Event is only logged).
    assert!(
        !log.to_ascii_lowercase().contains("forbidden"),
        "something was forbidden:\n{log}"
    );

    // From the outside.
    assert_eq!(
        s.p.kube.image(WorkloadKind::Deployment, WEB).await,
        "web:v1"
    );
    let rolled_back = s.events("RolledBack").await;
    assert_eq!(rolled_back.len(), 1, "{rolled_back:#?}");
    assert_eq!(rolled_back[0]["source"]["component"], "rollbackd");
    assert!(
        rolled_back[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Rolled back from revision 2 to 1: rollbackd: alert ServiceDown"),
        "{:#}",
        rolled_back[0]
    );
    assert!(s.suspended().await, "the Kustomization is suspended");
    let lease: Value = serde_json::from_str(
        &s.p.kube
            .kubectl_ok(&[
                "get",
                "leases.coordination.k8s.io",
                "rollbackd",
                "-o",
                "json",
            ])
            .await,
    )
    .unwrap();
    assert_eq!(
        lease["spec"]["holderIdentity"],
        json!(format!("{IDENTITY}@{}", s.address())),
        "{lease:#}"
    );
    // What Slack got says so too.
    let slack = &s.slack;
    until("Slack told of the healthy rollout", DEADLINE, || async {
        slack
            .requests()
            .iter()
            .any(|r| r.body.to_string().contains("healthy"))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_charts_cluster_role_is_enough_for_a_whole_rollback() {
    whole_rollback("lp-cluster", Scope::Cluster).await;
}

#[tokio::test]
async fn the_charts_namespaced_role_is_enough_for_a_whole_rollback() {
    whole_rollback("lp-namespaced", Scope::Namespaces).await;
}

/// Takes `verb` on `resource` (API `group`) away from the chart's
/// namespaced Role, posts the alert, and waits until the rollback's
/// outcome is journaled (and, after a patch, the watch's too).
async fn denied(prefix: &str, group: &str, resource: &str, verb: &str) -> (Scenario, Vec<Value>) {
    denied_with(prefix, group, resource, verb, None).await
}

/// [`denied`], with the Deployment's `minReadySeconds` set first (as
/// cluster-admin; no new revision) when given.
async fn denied_with(
    prefix: &str,
    group: &str,
    resource: &str,
    verb: &str,
    min_ready_seconds: Option<u32>,
) -> (Scenario, Vec<Value>) {
    let s = Scenario::start(prefix, Scope::Namespaces, |docs| {
        rbac::remove_verb(docs, group, resource, verb)
    })
    .await;
    if let Some(secs) = min_ready_seconds {
        let patch = json!({"spec": {"minReadySeconds": secs}}).to_string();
        s.p.kube
            .kubectl_ok(&["patch", "deployment", WEB, "--type=merge", "-p", &patch])
            .await;
        s.p.kube.settle(WorkloadKind::Deployment, WEB).await;
    }
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    assert!(
        !can_i(&s.p.kubeconfig, &s.p.kube.ns, verb, &qualified).await,
        "the token may still {verb} {qualified}"
    );
    s.leads().await;
    let id = s.alert().await;
    let event = s
        .event_when(
            id,
            "the rollback's outcome journaled",
            |actions| match actions.first().and_then(|a| a["outcome"].as_str()) {
                Some("rolled-back") => actions.len() == 2,
                Some(_) => true,
                None => false,
            },
        )
        .await;
    let actions = event["alerts"][0]["actions"].as_array().unwrap().clone();
    (s, actions)
}

/// A failed rollback whose journaled detail (what Slack shows) says
/// `forbidden` and names the verb and the resource.
async fn fails_forbidden(s: &mut Scenario, actions: &[Value], forbidden: &str) -> String {
    assert_eq!(actions.len(), 1, "{actions:#?}");
    assert_eq!(actions[0]["action"], "rollback");
    assert_eq!(
        actions[0]["outcome"],
        "failed",
        "{actions:#?}\n{}",
        s.proc.log_text()
    );
    let detail = actions[0]["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains(forbidden),
        "journaled: {detail}\nwanted: {forbidden}"
    );
    s.reported(forbidden).await;
    assert_eq!(
        s.p.kube.image(WorkloadKind::Deployment, WEB).await,
        "web:v2",
        "nothing was rolled back"
    );
    s.alive().await;
    detail
}

#[tokio::test]
async fn without_patch_on_deployments_the_rollback_fails_forbidden_and_says_so() {
    let (mut s, actions) = denied("lp-no-patch", "apps", "deployments", "patch").await;
    // The API server's own words for the token, as kubectl shows them:
    // what rollbackd's wording is read from.
    let ns = s.p.kube.ns.clone();
    let (sa, _) = rbac::service_account(&s.p.docs);
    let out = rbac::kubectl_as(
        &s.p.kubeconfig,
        &[
            "patch",
            "deployment",
            WEB,
            "-n",
            &ns,
            "--type=merge",
            "-p",
            "{}",
        ],
    )
    .await;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "Error from server (Forbidden): deployments.apps \"{WEB}\" is forbidden: User \
             \"system:serviceaccount:{ns}:{sa}\" cannot patch resource \"deployments\" in API \
             group \"apps\" in the namespace \"{ns}\""
        )
    );
    let forbidden = s.p.forbidden("patch", "deployments.apps");
    let detail = fails_forbidden(&mut s, &actions, &forbidden).await;
    assert_eq!(detail, format!(
        "{ns}/deployment/{WEB}: {forbidden}; Flux Kustomization {ns}/{KUSTOMIZATION} was suspended first and stays suspended: \
         resume it with `flux resume kustomization {KUSTOMIZATION} -n {ns}`"
    ));
    // The suspend came first, and stays (the journal says so).
    assert!(s.suspended().await);
    // The RollbackFailed Event on the Deployment says it too.
    let failed = s.events("RollbackFailed").await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{forbidden}: rollbackd: alert ServiceDown")),
        "{:#}",
        failed[0]
    );
}

#[tokio::test]
async fn without_list_on_replicasets_the_rollback_fails_forbidden_and_says_so() {
    let (mut s, actions) = denied("lp-no-list-rs", "apps", "replicasets", "list").await;
    let forbidden = s.p.forbidden("list", "replicasets.apps");
    let detail = fails_forbidden(&mut s, &actions, &forbidden).await;
    assert_eq!(
        detail,
        format!("{}/deployment/{WEB}: {forbidden}", s.p.kube.ns)
    );
    assert!(
        !s.suspended().await,
        "nothing suspended before the history was read"
    );
    assert_eq!(s.events("RollbackFailed").await.len(), 1);
}

#[tokio::test]
async fn without_get_on_deployments_the_rollback_fails_forbidden_and_says_so() {
    let (mut s, actions) = denied("lp-no-get", "apps", "deployments", "get").await;
    let forbidden = s.p.forbidden("get", "deployments.apps");
    let detail = fails_forbidden(&mut s, &actions, &forbidden).await;
    assert_eq!(
        detail,
        format!("{}/deployment/{WEB}: {forbidden}", s.p.kube.ns)
    );
    assert!(!s.suspended().await);
}

#[tokio::test]
async fn without_patch_on_kustomizations_the_rollback_fails_forbidden_and_says_so() {
    let (mut s, actions) = denied(
        "lp-no-flux",
        "kustomize.toolkit.fluxcd.io",
        "kustomizations",
        "patch",
    )
    .await;
    let forbidden =
        s.p.forbidden("patch", "kustomizations.kustomize.toolkit.fluxcd.io");
    let detail = fails_forbidden(&mut s, &actions, &forbidden).await;
    let ns = &s.p.kube.ns;
    assert_eq!(
        detail,
        format!("{ns}/deployment/{WEB}: not rolled back: suspending Flux Kustomization {ns}/{KUSTOMIZATION} failed: {forbidden}")
    );
    assert!(!s.suspended().await);
}

#[tokio::test]
async fn without_create_on_events_the_rollback_is_done_and_the_missing_event_journaled() {
    let (mut s, actions) = denied("lp-no-events", "", "events", "create").await;
    let forbidden = s.p.forbidden("create", "events");
    assert_eq!(actions[0]["outcome"], "rolled-back", "{actions:#?}");
    assert_eq!(actions[1]["outcome"], "healthy", "{actions:#?}");
    let detail = actions[0]["detail"].as_str().unwrap();
    assert!(
        detail.ends_with(&format!("; Kubernetes Event not recorded: {forbidden}")),
        "{detail}"
    );
    s.reported(&forbidden).await;
    assert_eq!(
        s.p.kube.image(WorkloadKind::Deployment, WEB).await,
        "web:v1"
    );
    assert!(s.events("RolledBack").await.is_empty());
    s.alive().await;
}

#[tokio::test]
async fn without_watch_on_deployments_the_rollout_is_followed_by_polling_and_journaled() {
    // The rollback's rollout cannot be complete at the watch's first GET
    // (new pods count as available only 3 s after Ready), so the watch is
    // tried, and refused.
    let (mut s, actions) =
        denied_with("lp-no-watch", "apps", "deployments", "watch", Some(3)).await;
    let forbidden = s.p.forbidden("watch", "deployments.apps");
    assert_eq!(actions[0]["outcome"], "rolled-back", "{actions:#?}");
    assert_eq!(actions[1]["outcome"], "healthy", "{actions:#?}");
    let detail = actions[1]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("deployment \"{WEB}\" successfully rolled out"))
            && detail.contains(&format!("(followed by polling: {forbidden})")),
        "{detail}"
    );
    s.reported(&forbidden).await;
    assert_eq!(
        s.p.kube.image(WorkloadKind::Deployment, WEB).await,
        "web:v1"
    );
    s.alive().await;
}

/// Without a verb on Leases, `serve --leader-elect` refuses to start and
/// says which: a replica that could never take the Lease would otherwise
/// wait as a follower for good.
async fn lease_refused_at_start(prefix: &str, verb: &str) {
    let p = Prepared::new(prefix, Scope::Namespaces, |docs| {
        rbac::remove_verb(docs, "coordination.k8s.io", "leases", verb)
    })
    .await;
    let journal = p.dir.path().join("journal.db");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .arg("serve")
        .arg("--listen=127.0.0.1:0")
        .arg(format!("--journal={}", journal.display()))
        .arg(p.rules_arg())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .envs(p.env(None))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("rollbackd starts");
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("rollbackd refuses to start rather than waiting")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rollbackd started:\n{stderr}");
    let want = format!(
        "cannot use Lease {}/rollbackd: {}",
        p.kube.ns,
        p.forbidden(verb, "leases.coordination.k8s.io")
    );
    assert!(stderr.contains(&want), "stderr:\n{stderr}\nwanted: {want}");
}

#[tokio::test]
async fn without_get_on_leases_serve_refuses_to_start_and_says_so() {
    lease_refused_at_start("lp-no-lease-get", "get").await;
}

#[tokio::test]
async fn without_create_on_leases_serve_refuses_to_start_and_says_so() {
    lease_refused_at_start("lp-no-lease-create", "create").await;
}

#[tokio::test]
async fn without_patch_on_leases_serve_refuses_to_start_and_says_so() {
    lease_refused_at_start("lp-no-lease-patch", "patch").await;
}
