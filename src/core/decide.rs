//! Decide: alert + rules + now → decision. Pure: no IO, no clock, no logs.
//!
//! In order:
//! 1. the gate: an alert without the opt-in annotation is ignored;
//! 2. a resolved alert is ignored (the worker cancels its hold, if any);
//! 3. the first rule whose matchers all hold decides; none: ignored;
//! 4. the workload comes from the `rollback_target` annotation, else from
//!    the kube-state-metrics labels; a rollback without one becomes a
//!    notification, with the reason ("No target: reported, not an error").

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::core::parse::{Alert, AlertStatus, LabelSet};
use crate::core::rules::{DecisionKind, Gate, Rule, Rules};

/// Annotation naming the workload, `KIND/NAME` as kubectl takes it; it wins
/// over the labels.
pub const TARGET_ANNOTATION: &str = "rollback_target";

/// Annotation with the revision to roll back to (`kubectl rollout undo
/// --to-revision`); without it, the previous revision.
pub const REVISION_ANNOTATION: &str = "rollback_to_revision";

/// Label with the workload's namespace (required).
pub const NAMESPACE_LABEL: &str = "namespace";

/// Kind of workload a rollback acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// `apps/v1` Deployment (ReplicaSets hold its revisions).
    Deployment,
    /// `apps/v1` StatefulSet (ControllerRevisions hold its revisions).
    StatefulSet,
    /// `apps/v1` DaemonSet (ControllerRevisions hold its revisions).
    DaemonSet,
}

impl WorkloadKind {
    /// Every kind, in the order labels are looked up.
    pub const ALL: [WorkloadKind; 3] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
    ];

    /// Lower-case name, as kubectl and kube-state-metrics' labels spell it:
    /// `deployment`, `statefulset`, `daemonset`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
        }
    }

    /// The kind kubectl means by `name`, case-insensitive: singular, plural,
    /// short (`deploy`, `sts`, `ds`), optionally with the group
    /// (`deployment.apps`).
    pub fn from_kubectl_name(name: &str) -> Option<WorkloadKind> {
        let name = name.to_ascii_lowercase();
        let name = name.strip_suffix(".apps").unwrap_or(&name);
        match name {
            "deployment" | "deployments" | "deploy" => Some(WorkloadKind::Deployment),
            "statefulset" | "statefulsets" | "sts" => Some(WorkloadKind::StatefulSet),
            "daemonset" | "daemonsets" | "ds" => Some(WorkloadKind::DaemonSet),
            _ => None,
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The workload an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Namespace (a DNS-1123 label).
    pub namespace: String,
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: WorkloadKind,
    /// Workload name (a DNS-1123 subdomain).
    pub name: String,
    /// Revision to roll back to; `None`: the previous one.
    pub to_revision: Option<i64>,
}

/// `shop/deployment/web`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.kind, self.name)
    }
}

/// The decision for one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What to do. A matched rollback without a target comes out as
    /// `Notify`.
    pub kind: DecisionKind,
    /// The rule that matched, if one did.
    pub rule: Option<String>,
    /// Why, in one sentence, for reports and logs.
    pub reason: String,
    /// The workload, when it could be resolved (also for `Notify`).
    pub target: Option<Target>,
    /// The rule's deadline in whole seconds (rounded up); `None` for
    /// `Ignore`.
    pub deadline_secs: Option<u64>,
    /// For `RollbackAfter`: when the hold ends (`now` + hold).
    pub hold_until: Option<Timestamp>,
}

impl Decision {
    fn ignore(rule: Option<String>, reason: impl Into<String>) -> Decision {
        Decision {
            kind: DecisionKind::Ignore,
            rule,
            reason: reason.into(),
            target: None,
            deadline_secs: None,
            hold_until: None,
        }
    }
}

/// Decides what to do about one alert, at `now`.
pub fn decide(rules: &Rules, alert: &Alert, now: Timestamp) -> Decision {
    if let Some(why) = not_opted_in(&rules.gate, &alert.annotations) {
        return Decision::ignore(None, why);
    }
    if alert.status == AlertStatus::Resolved {
        return Decision::ignore(None, "alert resolved");
    }
    let Some(rule) = rules.first_match(&alert.labels) else {
        return Decision::ignore(None, "no rule matched");
    };
    let matched = matched_reason(rule);
    let name = Some(rule.name.clone());
    let deadline_secs = Some(whole_seconds(rule.deadline));
    match rule.decision {
        DecisionKind::Ignore => Decision::ignore(name, matched),
        DecisionKind::Notify => Decision {
            kind: DecisionKind::Notify,
            rule: name,
            reason: matched,
            target: resolve_target(alert, rules.guard.allow_revision_annotation).ok(),
            deadline_secs,
            hold_until: None,
        },
        kind @ (DecisionKind::Rollback | DecisionKind::RollbackAfter) => {
            match resolve_target(alert, rules.guard.allow_revision_annotation) {
                Ok(target) => Decision {
                    kind,
                    rule: name,
                    reason: matched,
                    target: Some(target),
                    deadline_secs,
                    hold_until: rule
                        .hold
                        .filter(|_| kind == DecisionKind::RollbackAfter)
                        .map(|hold| {
                            // Holds are minutes; only a corrupt clock could overflow.
                            now.saturating_add(hold).unwrap_or(Timestamp::MAX)
                        }),
                },
                Err(why) => Decision {
                    kind: DecisionKind::Notify,
                    rule: name,
                    reason: format!("no rollback target: {why}"),
                    target: None,
                    deadline_secs,
                    hold_until: None,
                },
            }
        }
    }
}

/// Why the alert does not take part, if it does not.
fn not_opted_in(gate: &Gate, annotations: &LabelSet) -> Option<String> {
    match annotations.get(&gate.annotation) {
        None => Some(format!("not opted in: {gate} is missing")),
        Some(value) if *value != gate.value => Some(format!(
            "not opted in: annotation {} is {value:?}, not {:?}",
            gate.annotation, gate.value
        )),
        Some(_) => None,
    }
}

/// `rule "service-down" matched severity="critical"`.
fn matched_reason(rule: &Rule) -> String {
    if rule.matchers.is_empty() {
        format!("rule {:?} matched (it matches every alert)", rule.name)
    } else {
        format!("rule {:?} matched {}", rule.name, rule.matchers_text())
    }
}

/// A deadline in whole seconds, rounded up so `500ms` is not "0 s".
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The workload the alert names, or why there is none.
///
/// `allow_revision`: the rules' `guard.allow_revision_annotation`; without
/// it an alert that names a revision gets no target (a notification says
/// why) rather than a rollback to another revision than it asked for.
fn resolve_target(alert: &Alert, allow_revision: bool) -> Result<Target, String> {
    let annotation = alert
        .annotations
        .get(TARGET_ANNOTATION)
        .filter(|v| !v.trim().is_empty());
    let (kind, name) = match annotation {
        Some(spec) => target_from_annotation(spec)?,
        None => target_from_labels(&alert.labels)?,
    };
    if !is_dns1123_subdomain(&name) {
        return Err(format!(
            "workload name {name:?} is not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most 253 characters)"
        ));
    }
    let namespace = match alert.labels.get(NAMESPACE_LABEL) {
        None => return Err(format!("label {NAMESPACE_LABEL} is missing")),
        Some(ns) if ns.is_empty() => return Err(format!("label {NAMESPACE_LABEL} is empty")),
        Some(ns) if !is_dns1123_label(ns) => {
            return Err(format!(
                "namespace {ns:?} is not a valid Kubernetes namespace (lowercase letters, digits and '-', at most 63 characters)"
            ))
        }
        Some(ns) => ns.clone(),
    };
    let to_revision = match alert.annotations.get(REVISION_ANNOTATION) {
        None => None,
        Some(_) if !allow_revision => {
            return Err(format!(
                "annotation {REVISION_ANNOTATION} is not allowed: the rules' guard.allow_revision_annotation is off"
            ))
        }
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(format!(
                    "annotation {REVISION_ANNOTATION} {text:?} is not a positive revision number"
                ))
            }
        },
    };
    Ok(Target {
        namespace,
        kind,
        name,
        to_revision,
    })
}

/// `deployment/web`, `sts/db`, `DaemonSet/agent`, `deployment.apps/web`.
fn target_from_annotation(spec: &str) -> Result<(WorkloadKind, String), String> {
    let spec = spec.trim();
    let Some((kind, name)) = spec.split_once('/') else {
        return Err(format!(
            "annotation {TARGET_ANNOTATION} {spec:?} is not KIND/NAME, like deployment/web"
        ));
    };
    let Some(kind) = WorkloadKind::from_kubectl_name(kind) else {
        return Err(format!(
            "annotation {TARGET_ANNOTATION} {spec:?}: kind {kind:?} is not deployment, statefulset or daemonset"
        ));
    };
    Ok((kind, name.to_string()))
}

/// kube-state-metrics' `deployment`, `statefulset` or `daemonset` label;
/// exactly one may be set.
fn target_from_labels(labels: &LabelSet) -> Result<(WorkloadKind, String), String> {
    let found: Vec<(WorkloadKind, &String)> = WorkloadKind::ALL
        .into_iter()
        .filter_map(|kind| {
            labels
                .get(kind.as_str())
                .filter(|v| !v.is_empty())
                .map(|v| (kind, v))
        })
        .collect();
    match found.as_slice() {
        [] => Err(format!(
            "no deployment, statefulset or daemonset label and no {TARGET_ANNOTATION} annotation"
        )),
        [(kind, name)] => Ok((*kind, (*name).clone())),
        [(k1, n1), (k2, n2), ..] => Err(format!(
            "conflicting labels {k1}={n1:?} and {k2}={n2:?} (set the {TARGET_ANNOTATION} annotation to choose)"
        )),
    }
}

/// Kubernetes object names: lowercase alphanumerics, '-' and '.', starting
/// and ending alphanumeric, each dot-separated part a DNS label, ≤ 253.
fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_part)
}

/// Namespace names: lowercase alphanumerics and '-', ≤ 63.
fn is_dns1123_label(name: &str) -> bool {
    name.len() <= 63 && is_dns1123_part(name)
}

fn is_dns1123_part(part: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    part.starts_with(alnum) && part.ends_with(alnum) && part.chars().all(|c| alnum(c) || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::parse::parse_notification;

    const FIRING: &[u8] =
        include_bytes!("../../tests/fixtures/alertmanager-0.25-firing-group.json");
    const RESOLVED: &[u8] =
        include_bytes!("../../tests/fixtures/alertmanager-0.25-one-resolved.json");

    fn now() -> Timestamp {
        "2026-11-22T12:51:00Z".parse().unwrap()
    }

    /// A firing, opted-in alert with these labels and extra annotations.
    fn alert(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Alert {
        let set = |pairs: &[(&str, &str)]| -> LabelSet {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut annotations = set(annotations);
        annotations
            .entry("rollback".into())
            .or_insert_with(|| "true".into());
        Alert {
            status: AlertStatus::Firing,
            labels: set(labels),
            annotations,
            starts_at: "2026-11-22T12:50:41Z".parse().unwrap(),
            ends_at: None,
            generator_url: String::new(),
            fingerprint: "29cf3888210a5fcd".into(),
        }
    }

    fn decide_default(alert: &Alert) -> Decision {
        decide(&Rules::embedded_default(), alert, now())
    }

    fn web(to_revision: Option<i64>) -> Target {
        Target {
            namespace: "shop".into(),
            kind: WorkloadKind::Deployment,
            name: "web".into(),
            to_revision,
        }
    }

    #[test]
    fn every_matrix_row_decides_as_the_seeds_say() {
        // (alertname, severity) → (decision, rule, deadline, hold)
        let rows = [
            (
                "ServiceDown",
                "critical",
                DecisionKind::Rollback,
                "service-down",
                30,
                None,
            ),
            (
                "HighErrorRate",
                "high",
                DecisionKind::Rollback,
                "high-error-rate",
                60,
                None,
            ),
            (
                "SlowCheckout",
                "medium",
                DecisionKind::RollbackAfter,
                "performance-degradation",
                300,
                Some(120),
            ),
            (
                "MinorUIGlitch",
                "low",
                DecisionKind::Notify,
                "minor-bug",
                1800,
                None,
            ),
            (
                "CVE2026Exploited",
                "critical",
                DecisionKind::Rollback,
                "security-issue",
                30,
                None,
            ),
            (
                "UnauthorizedAccess",
                "critical",
                DecisionKind::Rollback,
                "security-issue",
                30,
                None,
            ),
        ];
        for (alertname, severity, kind, rule, deadline, hold) in rows {
            let a = alert(
                &[
                    ("alertname", alertname),
                    ("severity", severity),
                    ("namespace", "shop"),
                    ("deployment", "web"),
                ],
                &[],
            );
            let d = decide_default(&a);
            assert_eq!(d.kind, kind, "{alertname}");
            assert_eq!(d.rule.as_deref(), Some(rule), "{alertname}");
            assert_eq!(d.deadline_secs, Some(deadline), "{alertname}");
            assert_eq!(d.target, Some(web(None)), "{alertname}");
            let hold_until = hold.map(|s| now() + jiff::SignedDuration::from_secs(s));
            assert_eq!(d.hold_until, hold_until, "{alertname}");
        }
    }

    #[test]
    fn real_alertmanager_group_decides_rollback_notify_rollback_hold() {
        let n = parse_notification(FIRING).unwrap();
        let rules = Rules::embedded_default();
        let got: Vec<_> = n
            .alerts
            .iter()
            .map(|a| {
                let d = decide(&rules, a, now());
                (
                    a.name().to_string(),
                    d.kind,
                    d.target.map(|t| t.to_string()),
                )
            })
            .collect();
        let want = [
            (
                "HighErrorRate",
                DecisionKind::Rollback,
                "shop/deployment/ecommerce",
            ),
            (
                "MinorUIGlitch",
                DecisionKind::Notify,
                "shop/deployment/frontend",
            ),
            (
                "ServiceDown",
                DecisionKind::Rollback,
                "shop/deployment/checkout",
            ),
            (
                "SlowCheckout",
                DecisionKind::RollbackAfter,
                "shop/deployment/checkout",
            ),
        ]
        .map(|(n, k, t)| (n.to_string(), k, Some(t.to_string())));
        assert_eq!(got, want);
    }

    #[test]
    fn match_reason_names_the_rule_and_its_matchers() {
        let a = alert(
            &[
                ("severity", "critical"),
                ("namespace", "shop"),
                ("deployment", "web"),
            ],
            &[],
        );
        assert_eq!(
            decide_default(&a).reason,
            r#"rule "service-down" matched severity="critical""#
        );
        let a = alert(
            &[
                ("alertname", "SecurityBreach"),
                ("severity", "critical"),
                ("namespace", "shop"),
                ("deployment", "web"),
            ],
            &[],
        );
        assert_eq!(
            decide_default(&a).reason,
            r#"rule "security-issue" matched severity="critical", alertname=~".*(Security|CVE|Vulnerab|Intrusion|Unauthori[sz]ed).*""#
        );
    }

    #[test]
    fn security_regex_is_anchored_so_unrelated_critical_alerts_are_service_down() {
        let a = alert(
            &[
                ("alertname", "KubePodCrashLooping"),
                ("severity", "critical"),
                ("namespace", "shop"),
                ("deployment", "web"),
            ],
            &[],
        );
        assert_eq!(decide_default(&a).rule.as_deref(), Some("service-down"));
    }

    #[test]
    fn alert_without_gate_annotation_is_ignored() {
        let mut a = alert(
            &[
                ("severity", "critical"),
                ("namespace", "shop"),
                ("deployment", "web"),
            ],
            &[],
        );
        a.annotations.remove("rollback");
        let d = decide_default(&a);
        assert_eq!(
            d,
            Decision::ignore(
                None,
                r#"not opted in: annotation rollback="true" is missing"#
            )
        );
    }

    #[test]
    fn gate_value_is_compared_exactly() {
        for value in ["false", "True", "yes", " true", ""] {
            let a = alert(
                &[
                    ("severity", "critical"),
                    ("namespace", "shop"),
                    ("deployment", "web"),
                ],
                &[("rollback", value)],
            );
            let d = decide_default(&a);
            assert_eq!(d.kind, DecisionKind::Ignore, "{value:?}");
            assert_eq!(
                d.reason,
                format!("not opted in: annotation rollback is {value:?}, not \"true\"")
            );
        }
    }

    #[test]
    fn configured_gate_replaces_the_default_one() {
        let mut rules = Rules::embedded_default();
        rules.gate = Gate {
            annotation: "auto_undo".into(),
            value: "on".into(),
        };
        let a = alert(
            &[
                ("severity", "critical"),
                ("namespace", "shop"),
                ("deployment", "web"),
            ],
            &[("auto_undo", "on")],
        );
        assert_eq!(decide(&rules, &a, now()).kind, DecisionKind::Rollback);
        let a = alert(
            &[
                ("severity", "critical"),
                ("namespace", "shop"),
                ("deployment", "web"),
            ],
            &[],
        );
        assert_eq!(
            decide(&rules, &a, now()).reason,
            r#"not opted in: annotation auto_undo="on" is missing"#
        );
    }

    #[test]
    fn resolved_alert_is_ignored_without_a_rule() {
        let n = parse_notification(RESOLVED).unwrap();
        let slow = &n.alerts[3];
        assert_eq!(slow.status, AlertStatus::Resolved);
        assert_eq!(
            decide_default(slow),
            Decision::ignore(None, "alert resolved")
        );
        // The firing ones of the same group still decide.
        assert_eq!(decide_default(&n.alerts[2]).kind, DecisionKind::Rollback);
    }

    #[test]
    fn alert_no_rule_matches_is_ignored() {
        let a = alert(
            &[
                ("severity", "warning"),
                ("namespace", "shop"),
                ("deployment", "web"),
            ],
            &[],
        );
        assert_eq!(
            decide_default(&a),
            Decision::ignore(None, "no rule matched")
        );
        let a = alert(&[("namespace", "shop"), ("deployment", "web")], &[]);
        assert_eq!(decide_default(&a).reason, "no rule matched");
    }

    #[test]
    fn ignore_rule_keeps_its_name_and_has_no_deadline() {
        let rules = Rules::parse(
            "r.yaml",
            "rules:\n  - name: quiet\n    match: ['team=\"lab\"']\n    decision: ignore\n",
        )
        .unwrap();
        let a = alert(
            &[
                ("team", "lab"),
                ("namespace", "shop"),
                ("deployment", "web"),
            ],
            &[],
        );
        assert_eq!(
            decide(&rules, &a, now()),
            Decision::ignore(Some("quiet".into()), r#"rule "quiet" matched team="lab""#)
        );
    }

    #[test]
    fn every_operator_and_absent_labels_decide_like_alertmanager() {
        let source = r#"
rules:
  - {name: eq, match: ['severity="critical"'], decision: notify, deadline: 1m}
  - {name: not-eq, match: ['severity="high"', 'team!="shop"'], decision: notify, deadline: 1m}
  - {name: re, match: ['severity=~"medium|low"', 'alertname=~"Down"'], decision: notify, deadline: 1m}
  - {name: re-whole, match: ['severity=~"medium|low"', 'alertname=~".*Down"'], decision: notify, deadline: 1m}
  - {name: not-re, match: ['severity!~"medium|low|critical|high"', 'team=""'], decision: notify, deadline: 1m}
"#;
        let rules = Rules::parse("r.yaml", source).unwrap();
        let rule_for = |labels: &[(&str, &str)]| {
            let mut all = vec![("namespace", "shop"), ("deployment", "web")];
            all.extend_from_slice(labels);
            decide(&rules, &alert(&all, &[]), now()).rule
        };
        assert_eq!(rule_for(&[("severity", "critical")]).as_deref(), Some("eq"));
        // `team` absent counts as "": != "shop" holds.
        assert_eq!(rule_for(&[("severity", "high")]).as_deref(), Some("not-eq"));
        assert_eq!(rule_for(&[("severity", "high"), ("team", "shop")]), None);
        // Anchored: "Down" does not match "ServiceDown", ".*Down" does.
        assert_eq!(
            rule_for(&[("severity", "low"), ("alertname", "ServiceDown")]).as_deref(),
            Some("re-whole")
        );
        assert_eq!(
            rule_for(&[("severity", "low"), ("alertname", "Down")]).as_deref(),
            Some("re")
        );
        // Absent severity is "", which !~ the list; absent team is "".
        assert_eq!(rule_for(&[]).as_deref(), Some("not-re"));
        assert_eq!(rule_for(&[("team", "x")]), None);
    }

    #[test]
    fn rollback_after_holds_from_now() {
        let a = alert(
            &[
                ("severity", "medium"),
                ("namespace", "shop"),
                ("deployment", "web"),
            ],
            &[],
        );
        let d = decide_default(&a);
        assert_eq!(d.kind, DecisionKind::RollbackAfter);
        assert_eq!(d.hold_until.unwrap().to_string(), "2026-11-22T12:53:00Z");
        // From `now`, not from the alert's start: the hold starts when we hear of it.
        let later: Timestamp = "2026-11-22T13:00:00.5Z".parse().unwrap();
        let d = decide(&Rules::embedded_default(), &a, later);
        assert_eq!(d.hold_until.unwrap().to_string(), "2026-11-22T13:02:00.5Z");
    }

    #[test]
    fn sub_second_deadline_rounds_up() {
        assert_eq!(whole_seconds(Duration::from_millis(500)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
    }

    /// The decision for a critical (rollback) alert with these labels and
    /// annotations.
    fn critical(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Decision {
        let mut all = vec![("severity", "critical")];
        all.extend_from_slice(labels);
        decide_default(&alert(&all, annotations))
    }

    fn demoted(reason: &str) -> Decision {
        Decision {
            kind: DecisionKind::Notify,
            rule: Some("service-down".into()),
            reason: reason.into(),
            target: None,
            deadline_secs: Some(30),
            hold_until: None,
        }
    }

    #[test]
    fn rollback_without_target_becomes_notify_with_the_reason() {
        assert_eq!(
            critical(&[("namespace", "shop")], &[]),
            demoted("no rollback target: no deployment, statefulset or daemonset label and no rollback_target annotation")
        );
    }

    #[test]
    fn rollback_after_without_target_becomes_notify_without_hold() {
        let a = alert(&[("severity", "medium"), ("namespace", "shop")], &[]);
        let d = decide_default(&a);
        assert_eq!(
            (d.kind, d.hold_until, d.target),
            (DecisionKind::Notify, None, None)
        );
        assert_eq!(d.rule.as_deref(), Some("performance-degradation"));
        assert!(d.reason.starts_with("no rollback target: "), "{}", d.reason);
    }

    #[test]
    fn missing_namespace_means_no_target() {
        assert_eq!(
            critical(&[("deployment", "web")], &[]),
            demoted("no rollback target: label namespace is missing")
        );
        assert_eq!(
            critical(&[("deployment", "web"), ("namespace", "")], &[]),
            demoted("no rollback target: label namespace is empty")
        );
        assert_eq!(
            critical(&[("deployment", "web"), ("namespace", "Shop")], &[]),
            demoted("no rollback target: namespace \"Shop\" is not a valid Kubernetes namespace (lowercase letters, digits and '-', at most 63 characters)")
        );
    }

    #[test]
    fn conflicting_workload_labels_mean_no_target() {
        assert_eq!(
            critical(&[("namespace", "shop"), ("deployment", "web"), ("statefulset", "db")], &[]),
            demoted("no rollback target: conflicting labels deployment=\"web\" and statefulset=\"db\" (set the rollback_target annotation to choose)")
        );
    }

    #[test]
    fn statefulset_and_daemonset_labels_are_targets() {
        let d = critical(&[("namespace", "shop"), ("statefulset", "db")], &[]);
        assert_eq!(d.target.unwrap().to_string(), "shop/statefulset/db");
        let d = critical(
            &[
                ("namespace", "monitoring"),
                ("daemonset", "node-exporter"),
                ("deployment", ""),
            ],
            &[],
        );
        assert_eq!(
            d.target.unwrap().to_string(),
            "monitoring/daemonset/node-exporter"
        );
    }

    #[test]
    fn target_annotation_overrides_labels() {
        let d = critical(
            &[
                ("namespace", "shop"),
                ("deployment", "web"),
                ("statefulset", "db"),
            ],
            &[("rollback_target", "deployment/checkout")],
        );
        assert_eq!(d.kind, DecisionKind::Rollback);
        assert_eq!(d.target.unwrap().to_string(), "shop/deployment/checkout");
    }

    #[test]
    fn target_annotation_takes_kubectl_kind_names() {
        for (spec, kind) in [
            ("deploy/web", WorkloadKind::Deployment),
            ("Deployment/web", WorkloadKind::Deployment),
            ("deployments.apps/web", WorkloadKind::Deployment),
            ("sts/web", WorkloadKind::StatefulSet),
            ("StatefulSet/web", WorkloadKind::StatefulSet),
            ("ds/web", WorkloadKind::DaemonSet),
            ("daemonset/web", WorkloadKind::DaemonSet),
        ] {
            let d = critical(&[("namespace", "shop")], &[("rollback_target", spec)]);
            assert_eq!(
                d.target.map(|t| (t.kind, t.name)),
                Some((kind, "web".to_string())),
                "{spec}"
            );
        }
    }

    #[test]
    fn bad_target_annotation_is_not_replaced_by_labels() {
        let labels = [("namespace", "shop"), ("deployment", "web")];
        assert_eq!(
            critical(&labels, &[("rollback_target", "cronjob/web")]),
            demoted("no rollback target: annotation rollback_target \"cronjob/web\": kind \"cronjob\" is not deployment, statefulset or daemonset")
        );
        assert_eq!(
            critical(&labels, &[("rollback_target", "web")]),
            demoted("no rollback target: annotation rollback_target \"web\" is not KIND/NAME, like deployment/web")
        );
        assert_eq!(
            critical(&labels, &[("rollback_target", "deployment/Web_1")]),
            demoted("no rollback target: workload name \"Web_1\" is not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most 253 characters)")
        );
        assert_eq!(
            critical(&labels, &[("rollback_target", "deployment/")]).reason,
            "no rollback target: workload name \"\" is not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most 253 characters)"
        );
    }

    #[test]
    fn workload_names_must_be_dns1123_subdomains() {
        for ok in ["web", "web-1", "a.b-c.d", "0web"] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        let long = "a".repeat(254);
        for bad in [
            "",
            "Web",
            "web_1",
            "-web",
            "web-",
            "a..b",
            ".web",
            long.as_str(),
        ] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }

    /// The default rules with `guard.allow_revision_annotation: true`.
    fn revisions_allowed(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Decision {
        let mut rules = Rules::embedded_default();
        rules.guard.allow_revision_annotation = true;
        let mut all = vec![("severity", "critical")];
        all.extend_from_slice(labels);
        decide(&rules, &alert(&all, annotations), now())
    }

    #[test]
    fn to_revision_annotation_is_carried_in_the_target_when_allowed() {
        let labels = [("namespace", "shop"), ("deployment", "web")];
        let annotations = [("rollback_to_revision", "4")];
        let d = revisions_allowed(&labels, &annotations);
        assert_eq!(d.target, Some(web(Some(4))));
        // By default an alert may not choose the revision: notify, and why.
        assert_eq!(
            critical(&labels, &annotations),
            demoted("no rollback target: annotation rollback_to_revision is not allowed: the rules' guard.allow_revision_annotation is off")
        );
    }

    #[test]
    fn bad_to_revision_means_no_target() {
        for bad in ["abc", "0", "-3", "4.0", ""] {
            assert_eq!(
                revisions_allowed(&[("namespace", "shop"), ("deployment", "web")], &[("rollback_to_revision", bad)]),
                demoted(&format!("no rollback target: annotation rollback_to_revision {bad:?} is not a positive revision number")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn notify_reports_the_target_when_there_is_one() {
        let a = alert(
            &[
                ("severity", "low"),
                ("namespace", "shop"),
                ("deployment", "web"),
            ],
            &[],
        );
        let d = decide_default(&a);
        assert_eq!(
            (d.kind, d.target, d.deadline_secs),
            (DecisionKind::Notify, Some(web(None)), Some(1800))
        );
        assert_eq!(d.reason, r#"rule "minor-bug" matched severity="low""#);
        let a = alert(&[("severity", "low")], &[]);
        let d = decide_default(&a);
        assert_eq!((d.kind, d.target), (DecisionKind::Notify, None));
        assert_eq!(d.reason, r#"rule "minor-bug" matched severity="low""#);
    }

    #[test]
    fn target_and_kind_print_as_users_write_them() {
        assert_eq!(web(None).to_string(), "shop/deployment/web");
        assert_eq!(WorkloadKind::StatefulSet.as_str(), "statefulset");
        assert_eq!(WorkloadKind::DaemonSet.to_string(), "daemonset");
        assert_eq!(
            serde_json::to_value(WorkloadKind::StatefulSet).unwrap(),
            "statefulset"
        );
        assert_eq!(WorkloadKind::from_kubectl_name("cronjob"), None);
    }
}
