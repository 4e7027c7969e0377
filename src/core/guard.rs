//! The guard's policy: the decisions it makes from facts, between decide
//! and undo. Every refusal is an outcome with a
//! reason, reported like a rollback, never an error.
//!
//! In the order the worker asks:
//! 0. the cluster: with `--cluster-name`, an alert whose cluster label names
//!    another cluster (or has none, when required) is refused;
//! 1. namespaces: protected (kube-system, kube-public), allow and deny lists;
//! 2. (the undo engine's own checks: one rollback per episode, cooldown);
//! 3. change correlation: a live revision rolled out well before the alert
//!    started is probably not its cause: notify instead;
//! 4. GitOps: Flux or Argo CD would revert a manual rollback: refuse, or
//!    (Flux) suspend reconciliation first;
//! 5. rate limits: per workload, per namespace, cluster-wide; a spent
//!    cluster budget opens the breaker until it refills ([`Limit`] and its
//!    arithmetic here; the limiters that count are the service's
//!    `guard::Guard`).

use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use crate::core::parse::LabelSet;

/// What to do with a workload that a GitOps tool manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GitOpsPolicy {
    /// Do not roll back; say that the tool would revert it.
    Refuse,
    /// Flux: set `spec.suspend: true` on the owning Kustomization or
    /// HelmRelease, then roll back; say how to resume.
    Suspend,
}

/// A rate: `count` rollbacks per `per`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Rollbacks per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
    /// How many may happen back to back.
    pub burst: u32,
}

impl Limit {
    /// Parses `N per DURATION` with an optional `, burst B` (default: N).
    pub fn parse(text: &str) -> Result<Limit, String> {
        let err = || {
            format!("invalid limit {text:?}: expected like \"1 per 10m\" or \"5 per 1h, burst 2\"")
        };
        let (rate, burst) = match text.split_once(',') {
            Some((rate, burst)) => {
                let burst = burst.trim().strip_prefix("burst").ok_or_else(err)?.trim();
                (rate, Some(burst.parse::<u32>().map_err(|_| err())?))
            }
            None => (text, None),
        };
        let (count, per) = rate.trim().split_once(" per ").ok_or_else(err)?;
        let count: u32 = count.trim().parse().map_err(|_| err())?;
        let per = crate::core::rules::parse_duration_text(per.trim())
            .map_err(|e| format!("{}: {e}", err()))?;
        let burst = burst.unwrap_or(count);
        if count == 0 || burst == 0 || per.is_zero() {
            return Err(format!(
                "{}: count, burst and period must be above zero",
                err()
            ));
        }
        Ok(Limit { count, per, burst })
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} per {}, burst {}",
            self.count,
            crate::core::rules::format_duration(self.per),
            self.burst
        )
    }
}

/// The `guard:` section of a rules file.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// Per workload (namespace/kind/name).
    pub workload_limit: Option<Limit>,
    /// Per namespace.
    pub namespace_limit: Option<Limit>,
    /// Cluster-wide: the breaker.
    pub cluster_limit: Option<Limit>,
    /// After a rollback, refuse another on the same workload for another
    /// alert this long (the toggle hazard).
    pub cooldown: Duration,
    /// Change correlation: notify instead when the live revision was rolled
    /// out more than this long before the alert started; `None`: off.
    pub deploy_margin: Option<Duration>,
    /// Never rolled back.
    pub protected_namespaces: Vec<String>,
    /// If not empty, only these namespaces.
    pub allow_namespaces: Vec<String>,
    /// Never these namespaces.
    pub deny_namespaces: Vec<String>,
    /// Default GitOps policy for rules without their own.
    pub gitops: GitOpsPolicy,
    /// The alert label that names the cluster (external labels of a shared
    /// Alertmanager, Thanos, Mimir), compared with `--cluster-name`.
    pub cluster_label: String,
    /// Refuse alerts without that label too (only with a cluster name).
    pub require_cluster_label: bool,
    /// Let an alert's `rollback_to_revision` annotation choose the
    /// revision. Off: an alert could otherwise send a workload back to any
    /// revision still retained, however old.
    pub allow_revision_annotation: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            // One rollback per workload per 10 minutes: a second one that
            // soon means the first did not help; a human should look.
            workload_limit: Some(Limit {
                count: 1,
                per: Duration::from_secs(600),
                burst: 1,
            }),
            // A namespace is usually one team's: 5 in 10 minutes is already
            // an incident of its own.
            namespace_limit: Some(Limit {
                count: 5,
                per: Duration::from_secs(600),
                burst: 5,
            }),
            // Cluster-wide 10 per 10 minutes: beyond that the cause is
            // probably not the deploys (a node, the network, a dependency),
            // and mass rollbacks would make it worse.
            cluster_limit: Some(Limit {
                count: 10,
                per: Duration::from_secs(600),
                burst: 10,
            }),
            // 10 minutes covers a slow rollout plus Alertmanager's usual
            // group_interval and repeat cycles.
            cooldown: Duration::from_secs(600),
            // A deploy older than the alert by 10 minutes or more has had
            // time to show its problems before; the alert is likely about
            // something else.
            deploy_margin: Some(Duration::from_secs(600)),
            protected_namespaces: vec!["kube-system".into(), "kube-public".into()],
            allow_namespaces: Vec::new(),
            deny_namespaces: Vec::new(),
            gitops: GitOpsPolicy::Refuse,
            // The label Prometheus Operator, Thanos and Mimir setups set
            // from external labels.
            cluster_label: "cluster".into(),
            // Single-cluster Alertmanagers add no cluster label: accept
            // alerts without one unless told otherwise.
            require_cluster_label: false,
            // Whoever writes alert rules should not pick revisions unless
            // the platform team says so.
            allow_revision_annotation: false,
        }
    }
}

impl GuardConfig {
    /// Whether the alert is about this cluster. `cluster_name`: this
    /// rollbackd's `--cluster-name`; without one, every alert passes.
    pub fn check_cluster(
        &self,
        cluster_name: Option<&str>,
        labels: &LabelSet,
    ) -> Result<(), Refusal> {
        let Some(this) = cluster_name else {
            return Ok(());
        };
        let c = self;
        match labels.get(&c.cluster_label) {
            Some(alert) if alert == this => Ok(()),
            Some(alert) => Err(Refusal::OtherCluster {
                alert: alert.clone(),
                this: this.into(),
            }),
            None if c.require_cluster_label => Err(Refusal::NoClusterLabel {
                label: c.cluster_label.clone(),
                this: this.into(),
            }),
            None => Ok(()),
        }
    }

    /// Whether rollbacks may happen in `namespace`.
    pub fn check_namespace(&self, namespace: &str) -> Result<(), Refusal> {
        let c = self;
        if c.protected_namespaces.iter().any(|n| n == namespace) {
            return Err(Refusal::ProtectedNamespace(namespace.into()));
        }
        let allowed =
            c.allow_namespaces.is_empty() || c.allow_namespaces.iter().any(|n| n == namespace);
        if !allowed || c.deny_namespaces.iter().any(|n| n == namespace) {
            return Err(Refusal::NamespaceNotAllowed(namespace.into()));
        }
        Ok(())
    }

    /// Change correlation: refuses when the live revision was rolled out
    /// more than the margin before the alert started.
    pub fn check_change(
        &self,
        alert_started: Timestamp,
        deployed_at: Option<Timestamp>,
    ) -> Result<(), Refusal> {
        let (Some(margin), Some(deployed_at)) = (self.deploy_margin, deployed_at) else {
            return Ok(());
        };
        let lead = alert_started.duration_since(deployed_at);
        if lead > jiff::SignedDuration::try_from(margin).unwrap_or(jiff::SignedDuration::MAX) {
            return Err(Refusal::DeployPredatesAlert {
                deployed_at,
                alert_started,
            });
        }
        Ok(())
    }
}

/// The YAML form of [`GuardConfig`]; absent keys take the defaults,
/// `off` disables a limit or the change correlation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    cooldown: Option<String>,
    #[serde(default)]
    deploy_margin: Option<String>,
    #[serde(default)]
    protected_namespaces: Option<Vec<String>>,
    #[serde(default)]
    namespaces: Option<RawNamespaces>,
    #[serde(default)]
    gitops: Option<GitOpsPolicy>,
    #[serde(default)]
    cluster_label: Option<String>,
    #[serde(default)]
    require_cluster_label: Option<bool>,
    #[serde(default)]
    allow_revision_annotation: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default)]
    workload: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    cluster: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamespaces {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

impl RawGuard {
    /// Applies the file's values over the defaults.
    pub fn resolve(self) -> Result<GuardConfig, String> {
        let mut g = GuardConfig::default();
        let limit = |text: Option<String>,
                     default: Option<Limit>,
                     what: &str|
         -> Result<Option<Limit>, String> {
            match text.as_deref().map(str::trim) {
                None => Ok(default),
                Some("off") => Ok(None),
                Some(t) => Limit::parse(t)
                    .map(Some)
                    .map_err(|e| format!("guard.limits.{what}: {e}")),
            }
        };
        if let Some(l) = self.limits {
            g.workload_limit = limit(l.workload, g.workload_limit, "workload")?;
            g.namespace_limit = limit(l.namespace, g.namespace_limit, "namespace")?;
            g.cluster_limit = limit(l.cluster, g.cluster_limit, "cluster")?;
        }
        if let Some(c) = self.cooldown {
            g.cooldown = crate::core::rules::parse_duration_text(&c)
                .map_err(|e| format!("guard.cooldown: {e}"))?;
        }
        if let Some(m) = self.deploy_margin {
            g.deploy_margin = match m.trim() {
                "off" => None,
                t => Some(
                    crate::core::rules::parse_duration_text(t)
                        .map_err(|e| format!("guard.deploy_margin: {e}"))?,
                ),
            };
        }
        if let Some(p) = self.protected_namespaces {
            g.protected_namespaces = p;
        }
        if let Some(n) = self.namespaces {
            g.allow_namespaces = n.allow;
            g.deny_namespaces = n.deny;
        }
        if let Some(policy) = self.gitops {
            g.gitops = policy;
        }
        if let Some(label) = self.cluster_label {
            if label.trim().is_empty() {
                return Err("guard.cluster_label: must name a label".into());
            }
            g.cluster_label = label;
        }
        if let Some(require) = self.require_cluster_label {
            g.require_cluster_label = require;
        }
        if let Some(allow) = self.allow_revision_annotation {
            g.allow_revision_annotation = allow;
        }
        Ok(g)
    }
}

/// Why the guard held a rollback back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The alert's cluster label names another cluster.
    OtherCluster {
        /// The alert's cluster.
        alert: String,
        /// This rollbackd's `--cluster-name`.
        this: String,
    },
    /// The alert has no cluster label and `guard.require_cluster_label`
    /// is on.
    NoClusterLabel {
        /// The label looked for.
        label: String,
        /// This rollbackd's `--cluster-name`.
        this: String,
    },
    /// In `protected_namespaces`.
    ProtectedNamespace(String),
    /// Not in a non-empty allow list, or in the deny list.
    NamespaceNotAllowed(String),
    /// The live revision was rolled out well before the alert started.
    DeployPredatesAlert {
        /// When the live revision was rolled out.
        deployed_at: Timestamp,
        /// When the alert started.
        alert_started: Timestamp,
    },
    /// A GitOps tool would revert the rollback.
    GitOps(GitOpsOwner),
    /// The workload's budget is spent.
    WorkloadLimit {
        /// The limit.
        limit: Limit,
        /// When it allows the next one.
        retry_in: Duration,
    },
    /// The namespace's budget is spent.
    NamespaceLimit {
        /// The limit.
        limit: Limit,
        /// When it allows the next one.
        retry_in: Duration,
    },
    /// The cluster-wide budget is spent: the breaker is open.
    BreakerOpen {
        /// The limit.
        limit: Limit,
        /// When it allows the next one.
        retry_in: Duration,
        /// The first rollback held back since the breaker opened (report it
        /// loudly).
        first: bool,
    },
}

impl Refusal {
    /// A closed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::OtherCluster { .. } => "other_cluster",
            Refusal::NoClusterLabel { .. } => "no_cluster_label",
            Refusal::ProtectedNamespace(_) => "protected_namespace",
            Refusal::NamespaceNotAllowed(_) => "namespace_not_allowed",
            Refusal::DeployPredatesAlert { .. } => "deploy_predates_alert",
            Refusal::GitOps(_) => "gitops",
            Refusal::WorkloadLimit { .. } => "workload_limit",
            Refusal::NamespaceLimit { .. } => "namespace_limit",
            Refusal::BreakerOpen { .. } => "breaker_open",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = |d: &Duration| d.as_secs().max(1);
        match self {
            Refusal::OtherCluster { alert, this } => {
                write!(f, "alert is for cluster {alert}, this is {this}")
            }
            Refusal::NoClusterLabel { label, this } => write!(
                f,
                "alert has no {label} label and guard.require_cluster_label is on; this is cluster {this}"
            ),
            Refusal::ProtectedNamespace(ns) => write!(f, "namespace {ns} is protected"),
            Refusal::NamespaceNotAllowed(ns) => write!(f, "namespace {ns} is not allowed by the guard's namespace lists"),
            Refusal::DeployPredatesAlert { deployed_at, alert_started } => write!(
                f,
                "deploy predates the alert: the live revision was rolled out at {deployed_at}, the alert started at {alert_started}; the deploy is probably not the cause"
            ),
            Refusal::GitOps(owner) => write!(
                f,
                "managed by {owner}: a manual rollback would be reverted at its next reconciliation; revert the change in Git instead"
            ),
            Refusal::WorkloadLimit { limit, retry_in } => write!(
                f,
                "held back: the workload's rollback budget ({limit}) is spent; next allowed in {}s",
                secs(retry_in)
            ),
            Refusal::NamespaceLimit { limit, retry_in } => write!(
                f,
                "held back: the namespace's rollback budget ({limit}) is spent; next allowed in {}s",
                secs(retry_in)
            ),
            Refusal::BreakerOpen { limit, retry_in, first: true } => write!(
                f,
                "held back: the breaker just opened: the cluster-wide rollback budget ({limit}) is spent, so every further rollback is held back until it refills (in {}s)",
                secs(retry_in)
            ),
            Refusal::BreakerOpen { limit, retry_in, first: false } => write!(
                f,
                "held back: breaker open, the cluster-wide rollback budget ({limit}) is spent; it closes in {}s",
                secs(retry_in)
            ),
        }
    }
}

/// The GitOps object that manages a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitOpsOwner {
    /// A Flux Kustomization.
    FluxKustomization {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A Flux HelmRelease.
    FluxHelmRelease {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// An Argo CD Application.
    ArgoCd {
        /// The application, as the tracking annotation or label names it.
        application: String,
    },
}

impl GitOpsOwner {
    /// The command that resumes reconciliation after a suspend.
    pub fn resume_hint(&self) -> Option<String> {
        match self {
            GitOpsOwner::FluxKustomization { namespace, name } => {
                Some(format!("flux resume kustomization {name} -n {namespace}"))
            }
            GitOpsOwner::FluxHelmRelease { namespace, name } => {
                Some(format!("flux resume helmrelease {name} -n {namespace}"))
            }
            GitOpsOwner::ArgoCd { .. } => None,
        }
    }
}

impl std::fmt::Display for GitOpsOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitOpsOwner::FluxKustomization { namespace, name } => {
                write!(f, "Flux Kustomization {namespace}/{name}")
            }
            GitOpsOwner::FluxHelmRelease { namespace, name } => {
                write!(f, "Flux HelmRelease {namespace}/{name}")
            }
            GitOpsOwner::ArgoCd { application } => write!(f, "Argo CD application {application}"),
        }
    }
}

/// Finds the GitOps tool managing `workload` from its labels and
/// annotations (Flux's `kustomize.toolkit.fluxcd.io/name` and
/// `helm.toolkit.fluxcd.io/name` labels; Argo CD's
/// `argocd.argoproj.io/tracking-id` annotation, `argocd.argoproj.io/instance`
/// or `app.kubernetes.io/instance` label).
pub fn gitops_owner(workload: &Value) -> Option<GitOpsOwner> {
    let labels = &workload["metadata"]["labels"];
    let annotations = &workload["metadata"]["annotations"];
    let own_ns = workload["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let get = |m: &Value, k: &str| m[k].as_str().filter(|v| !v.is_empty()).map(String::from);
    if let Some(name) = get(labels, "kustomize.toolkit.fluxcd.io/name") {
        let namespace =
            get(labels, "kustomize.toolkit.fluxcd.io/namespace").unwrap_or_else(|| own_ns.into());
        return Some(GitOpsOwner::FluxKustomization { namespace, name });
    }
    if let Some(name) = get(labels, "helm.toolkit.fluxcd.io/name") {
        let namespace =
            get(labels, "helm.toolkit.fluxcd.io/namespace").unwrap_or_else(|| own_ns.into());
        return Some(GitOpsOwner::FluxHelmRelease { namespace, name });
    }
    if let Some(id) = get(annotations, "argocd.argoproj.io/tracking-id") {
        // `APP:GROUP/KIND:NAMESPACE/NAME`
        let application = id.split(':').next().unwrap_or(&id).to_string();
        return Some(GitOpsOwner::ArgoCd { application });
    }
    get(labels, "argocd.argoproj.io/instance")
        .or_else(|| get(labels, "app.kubernetes.io/instance"))
        .map(|application| GitOpsOwner::ArgoCd { application })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_parse_with_explicit_and_implicit_burst() {
        assert_eq!(
            Limit::parse("1 per 10m").unwrap(),
            Limit {
                count: 1,
                per: Duration::from_secs(600),
                burst: 1
            }
        );
        assert_eq!(
            Limit::parse("5 per 1h, burst 2").unwrap(),
            Limit {
                count: 5,
                per: Duration::from_secs(3600),
                burst: 2
            }
        );
        for bad in [
            "1/10m",
            "0 per 1m",
            "1 per 0s",
            "x per 1m",
            "1 per 1m, bust 2",
        ] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn alerts_for_another_cluster_are_refused_by_name() {
        let labels = |pairs: &[(&str, &str)]| -> LabelSet {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let lenient = GuardConfig::default();
        let strict = GuardConfig {
            cluster_label: "k8s_cluster".into(),
            require_cluster_label: true,
            ..Default::default()
        };
        let eu = labels(&[("cluster", "prod-eu")]);
        let us = labels(&[("cluster", "prod-us")]);
        let none = labels(&[]);
        type Case<'a> = (
            &'a GuardConfig,
            Option<&'a str>,
            &'a LabelSet,
            Result<(), &'a str>,
        );
        let cases: [Case; 8] = [
            // Without a name, nothing is checked (as before).
            (&lenient, None, &eu, Ok(())),
            (&strict, None, &none, Ok(())),
            (&lenient, Some("prod-us"), &us, Ok(())),
            (&lenient, Some("prod-us"), &eu, Err("alert is for cluster prod-eu, this is prod-us")),
            (&lenient, Some("prod-us"), &none, Ok(())),
            // The strict guard reads its own label and wants one.
            (&strict, Some("prod-us"), &labels(&[("k8s_cluster", "prod-us")]), Ok(())),
            (&strict, Some("prod-us"), &us, Err("alert has no k8s_cluster label and guard.require_cluster_label is on; this is cluster prod-us")),
            (&strict, Some("prod-us"), &labels(&[("k8s_cluster", "prod-eu")]), Err("alert is for cluster prod-eu, this is prod-us")),
        ];
        for (guard, name, labels, expected) in cases {
            let got = guard.check_cluster(name, labels).map_err(|r| r.to_string());
            assert_eq!(got, expected.map_err(str::to_string), "{name:?} {labels:?}");
        }
    }

    #[test]
    fn namespaces_protected_allowed_and_denied() {
        let g = GuardConfig {
            allow_namespaces: vec!["shop".into(), "pay".into()],
            deny_namespaces: vec!["pay".into()],
            ..Default::default()
        };
        assert_eq!(g.check_namespace("shop"), Ok(()));
        assert_eq!(
            g.check_namespace("kube-system"),
            Err(Refusal::ProtectedNamespace("kube-system".into()))
        );
        assert_eq!(
            g.check_namespace("pay"),
            Err(Refusal::NamespaceNotAllowed("pay".into()))
        );
        assert_eq!(
            g.check_namespace("other"),
            Err(Refusal::NamespaceNotAllowed("other".into()))
        );
        assert_eq!(
            Refusal::ProtectedNamespace("kube-system".into()).to_string(),
            "namespace kube-system is protected"
        );
    }

    #[test]
    fn change_correlation_spares_deploys_older_than_the_margin() {
        let g = GuardConfig::default();
        let started: Timestamp = "2026-11-22T12:50:00Z".parse().unwrap();
        let recent: Timestamp = "2026-11-22T12:45:00Z".parse().unwrap();
        let old: Timestamp = "2026-11-22T09:00:00Z".parse().unwrap();
        assert_eq!(g.check_change(started, Some(recent)), Ok(()));
        assert_eq!(
            g.check_change(started, None),
            Ok(()),
            "unknown: not refused"
        );
        let refusal = g.check_change(started, Some(old)).unwrap_err();
        assert!(
            refusal.to_string().starts_with("deploy predates the alert"),
            "{refusal}"
        );
        let off = GuardConfig {
            deploy_margin: None,
            ..Default::default()
        };
        assert_eq!(off.check_change(started, Some(old)), Ok(()));
    }

    #[test]
    fn gitops_owners_are_found_from_flux_and_argo_markers() {
        let w = |labels: Value, annotations: Value| json!({"metadata": {"namespace": "shop", "labels": labels, "annotations": annotations}});
        assert_eq!(
            gitops_owner(&w(
                json!({"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}),
                json!({})
            )),
            Some(GitOpsOwner::FluxKustomization {
                namespace: "flux-system".into(),
                name: "apps".into()
            })
        );
        assert_eq!(
            gitops_owner(&w(json!({"helm.toolkit.fluxcd.io/name": "web"}), json!({}))),
            Some(GitOpsOwner::FluxHelmRelease {
                namespace: "shop".into(),
                name: "web".into()
            })
        );
        assert_eq!(
            gitops_owner(&w(
                json!({}),
                json!({"argocd.argoproj.io/tracking-id": "shop-app:apps/Deployment:shop/web"})
            )),
            Some(GitOpsOwner::ArgoCd {
                application: "shop-app".into()
            })
        );
        assert_eq!(
            gitops_owner(&w(
                json!({"app.kubernetes.io/instance": "shop-app"}),
                json!({})
            )),
            Some(GitOpsOwner::ArgoCd {
                application: "shop-app".into()
            })
        );
        assert_eq!(gitops_owner(&w(json!({"app": "web"}), json!({}))), None);
    }
}
