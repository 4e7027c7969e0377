//! CLI: the commands besides `serve`. Each returns its output as text so it
//! is tested without a process; `main` prints it.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::core::decide::{decide, WorkloadKind};
use crate::core::parse::parse_notification;
use crate::core::rules::{format_duration, DecisionKind, Rules, RulesError};
use crate::core::undo_plan::{Revision, CHANGE_CAUSE};
use crate::service::config::RulesSource;

/// Why a CLI command failed; printed as `error: ...`, exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Rules refused.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The payload file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The payload is not an Alertmanager notification.
    #[error("{path}: {reason}")]
    Payload {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
}

/// Where `check` and `explain` take rules from when not told: `rules/` if it
/// exists, else the embedded defaults (as `serve` does).
pub fn default_rules_source(explicit: Option<PathBuf>) -> RulesSource {
    match explicit {
        Some(dir) => RulesSource::Dir(dir),
        None if Path::new("rules").is_dir() => RulesSource::Dir(PathBuf::from("rules")),
        None => RulesSource::Embedded,
    }
}

/// `rollbackd check [RULES]`: validates and prints the matrix.
pub fn check(source: &RulesSource) -> Result<String, CliError> {
    let rules = crate::service::state::load_rules(source)?;
    let from = match source {
        RulesSource::Dir(d) => d.display().to_string(),
        RulesSource::Embedded => "embedded defaults".to_string(),
    };
    Ok(format!(
        "{}\n{} rules OK ({from})\n",
        rules.matrix_table().trim_end(),
        rules.rules.len()
    ))
}

/// `rollbackd explain PAYLOAD.json`: the decision for each alert, no cluster.
pub fn explain(rules: &Rules, payload: &Path, now: Timestamp) -> Result<String, CliError> {
    let body = std::fs::read(payload).map_err(|e| CliError::Read {
        path: payload.to_path_buf(),
        reason: e.to_string(),
    })?;
    let n = parse_notification(&body).map_err(|e| CliError::Payload {
        path: payload.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut out = format!(
        "group {} ({}, {} alerts, receiver {})\n",
        n.group_key,
        n.status.as_str(),
        n.alerts.len(),
        n.receiver
    );
    for (i, alert) in n.alerts.iter().enumerate() {
        let d = decide(rules, alert, now);
        out.push_str(&format!(
            "\n[{i}] {} ({}, severity {}, fingerprint {})\n",
            alert.name(),
            alert.status.as_str(),
            alert.labels.get("severity").map_or("-", String::as_str),
            alert.fingerprint,
        ));
        out.push_str(&format!("    decision: {}\n", d.kind.as_str()));
        out.push_str(&format!(
            "    rule:     {}\n",
            d.rule.as_deref().unwrap_or("-")
        ));
        out.push_str(&format!("    why:      {}\n", d.reason));
        let rolls_back = matches!(d.kind, DecisionKind::Rollback | DecisionKind::RollbackAfter);
        match &d.target {
            Some(t) if rolls_back => {
                let to = t
                    .to_revision
                    .map_or("the previous revision".to_string(), |n| {
                        format!("revision {n}")
                    });
                out.push_str(&format!("    target:   {t} (to {to})\n"));
            }
            Some(t) => out.push_str(&format!("    target:   {t}\n")),
            None => out.push_str("    target:   -\n"),
        }
        if let Some(secs) = d.deadline_secs {
            let deadline = format_duration(std::time::Duration::from_secs(secs));
            out.push_str(&format!("    deadline: {deadline}\n"));
        }
        if let Some(until) = d.hold_until {
            out.push_str(&format!(
                "    hold:     until {until}, then roll back if still firing\n"
            ));
        }
    }
    Ok(out)
}

/// `kubectl rollout history` for a workload: a header, then REVISION and
/// CHANGE-CAUSE columns as kubectl's tab writer aligns them.
pub fn format_history(kind: WorkloadKind, name: &str, history: &[Revision]) -> String {
    let mut out = format!("{}/{name} \n", kubectl_resource(kind));
    let rows: Vec<(String, String)> = history
        .iter()
        .map(|r| {
            let cause = r
                .annotations
                .get(CHANGE_CAUSE)
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let cause = if cause.is_empty() { "<none>" } else { cause };
            (r.number.to_string(), cause.to_string())
        })
        .collect();
    let width = rows
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0)
        .max("REVISION".len())
        + 2;
    out.push_str(&format!("{:<width$}{}\n", "REVISION", "CHANGE-CAUSE"));
    for (n, cause) in rows {
        out.push_str(&format!("{n:<width$}{cause}\n"));
    }
    out.push('\n');
    out
}

/// `kubectl rollout history --revision=N`: the revision's pod template.
pub fn format_revision(kind: WorkloadKind, name: &str, revision: &Revision) -> String {
    let template = match kind {
        WorkloadKind::Deployment => &revision.content,
        _ => &revision.content["spec"]["template"],
    };
    let mut out = format!(
        "{}/{name} with revision #{}\nPod Template:\n",
        kubectl_resource(kind),
        revision.number
    );
    let map_lines = |title: &str, map: &serde_json::Value, sep: &str| -> String {
        let entries: Vec<String> = map
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}{sep}{}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        if entries.is_empty() {
            format!("  {title}:\t<none>\n")
        } else {
            format!("  {title}:\t{}\n", entries.join("\n\t"))
        }
    };
    out.push_str(&map_lines("Labels", &template["metadata"]["labels"], "="));
    // kubectl shows the template's annotations plus the holder's
    // change-cause (`historyInfo[v].Annotations[ChangeCauseAnnotation]`).
    let mut annotations = template["metadata"]["annotations"].clone();
    if let Some(cause) = revision
        .annotations
        .get(CHANGE_CAUSE)
        .and_then(|v| v.as_str())
    {
        if !annotations.is_object() {
            annotations = serde_json::json!({});
        }
        annotations[CHANGE_CAUSE] = cause.into();
    }
    out.push_str(&map_lines("Annotations", &annotations, ": "));
    out.push_str("  Containers:\n");
    for c in template["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("   {}:\n", c["name"].as_str().unwrap_or_default()));
        out.push_str(&format!(
            "    Image:\t{}\n",
            c["image"].as_str().unwrap_or_default()
        ));
        let ports: Vec<String> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}/{}",
                    p["containerPort"],
                    p["protocol"].as_str().unwrap_or("TCP")
                )
            })
            .collect();
        let ports = if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports.join(", ")
        };
        out.push_str(&format!("    Port:\t{ports}\n"));
    }
    out
}

/// kubectl's `TYPE.GROUP` for a kind: `deployment.apps`.
pub fn kubectl_resource(kind: WorkloadKind) -> String {
    format!("{}.apps", kind.as_str())
}

/// Parses `deployment/NAME` (kubectl's short names accepted).
pub fn parse_workload(arg: &str) -> Result<(WorkloadKind, String), String> {
    let (kind, name) = arg
        .split_once('/')
        .ok_or_else(|| format!("expected TYPE/NAME (like deployment/web), got {arg:?}"))?;
    let kind = WorkloadKind::from_kubectl_name(kind).ok_or_else(|| {
        format!("no rollback for resource type {kind:?}: use deployment, statefulset or daemonset")
    })?;
    if name.is_empty() {
        return Err(format!(
            "expected TYPE/NAME (like deployment/web), got {arg:?}"
        ));
    }
    Ok((kind, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    #[test]
    fn check_prints_the_matrix_of_the_shipped_rules() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
        let out = check(&RulesSource::Dir(dir.clone())).unwrap();
        assert!(
            out.starts_with("gate: annotation rollback=\"true\"\n"),
            "{out}"
        );
        let row = out
            .lines()
            .find(|l| l.starts_with("performance-degradation"))
            .unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "performance-degradation",
                "severity=\"medium\"",
                "rollback-after",
                "2m",
                "5m"
            ]
        );
        assert!(
            out.ends_with(&format!("5 rules OK ({})\n", dir.display())),
            "{out}"
        );
        assert_eq!(
            check(&RulesSource::Embedded).unwrap().lines().count(),
            out.lines().count()
        );
    }

    #[test]
    fn check_refuses_a_bad_folder_with_file_line_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad-regex.yaml");
        std::fs::copy(format!("{FIXTURES}/rules/bad-regex.yaml"), &bad).unwrap();
        let err = check(&RulesSource::Dir(dir.path().to_path_buf())).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}:7: rule \"service-down\": invalid regex in matcher alertname=~\"(Service\": unclosed group",
                bad.display()
            )
        );
    }

    #[test]
    fn explain_gives_each_alert_its_decision_rule_and_target() {
        let rules = Rules::embedded_default();
        let payload = PathBuf::from(format!("{FIXTURES}/alertmanager-0.25-firing-group.json"));
        let out = explain(&rules, &payload, "2026-11-22T12:50:45Z".parse().unwrap()).unwrap();
        let expected_first =
            "[0] HighErrorRate (firing, severity high, fingerprint 29cf3888210a5fcd)\n    \
            decision: rollback\n    rule:     high-error-rate\n    \
            why:      rule \"high-error-rate\" matched severity=\"high\"\n    \
            target:   shop/deployment/ecommerce (to the previous revision)\n    deadline: 1m\n";
        assert!(out.contains(expected_first), "{out}");
        assert!(
            out.contains("target:   shop/deployment/frontend\n    deadline: 30m\n"),
            "{out}"
        );
        assert!(
            out.contains("hold:     until 2026-11-22T12:52:45Z, then roll back if still firing"),
            "{out}"
        );
    }

    #[test]
    fn explain_reports_unreadable_and_invalid_payloads() {
        let rules = Rules::embedded_default();
        let missing = explain(
            &rules,
            Path::new("/nonexistent.json"),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("cannot read /nonexistent.json: "),
            "{missing}"
        );
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("p.json");
        std::fs::write(&bad, "{\"version\": \"3\"}").unwrap();
        let err = explain(&rules, &bad, Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: unsupported payload version \"3\": rollbackd understands version \"4\"",
                bad.display()
            )
        );
    }
}
