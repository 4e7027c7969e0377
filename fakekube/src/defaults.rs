//! Defaulting and validation of the workloads, as the API server applies
//! them on every create and update (`pkg/apis/apps/v1/defaults.go`,
//! `pkg/apis/core/v1/defaults.go`), for the fields a rollback touches.
//!
//! Defaults matter for fidelity: the deployment controller and kubectl
//! compare templates as stored (defaulted), so a template a test writes
//! minimally must come back exactly as the fixture from a real cluster shows.

use crate::resources::ResourceType;
use crate::selector::LabelSelector;
use crate::status::ApiError;
use crate::util::{dig, dig_mut};
use serde_json::{json, Map, Value};

fn set_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// Fill the defaults the API server fills for the workload kinds.
pub(crate) fn apply(res: &ResourceType, obj: &mut Value) {
    if res.group != "apps" {
        return;
    }
    match res.kind {
        "Deployment" => {
            let spec = dig_mut(obj, &["spec"]);
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(spec, "strategy", json!({"type": "RollingUpdate"}));
            let strategy = dig_mut(obj, &["spec", "strategy"]);
            set_default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = dig_mut(obj, &["spec", "strategy", "rollingUpdate"]);
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
        "StatefulSet" => {
            let spec = dig_mut(obj, &["spec"]);
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            set_default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            let strategy = dig_mut(obj, &["spec", "updateStrategy"]);
            if strategy
                .get("type")
                .is_none_or(|t| t.as_str().is_none_or(str::is_empty))
            {
                strategy.insert("type".into(), json!("RollingUpdate"));
                set_default(strategy, "rollingUpdate", json!({}));
            }
            if strategy["type"] == "RollingUpdate" {
                if let Some(ru) = strategy
                    .get_mut("rollingUpdate")
                    .and_then(Value::as_object_mut)
                {
                    set_default(ru, "partition", json!(0));
                    // 1.35+ (MaxUnavailableStatefulSet): the real server
                    // stores it (tests/engine_both.rs found it).
                    set_default(ru, "maxUnavailable", json!(1));
                }
            }
        }
        "DaemonSet" => {
            set_default(dig_mut(obj, &["spec"]), "revisionHistoryLimit", json!(10));
            let strategy = dig_mut(obj, &["spec", "updateStrategy"]);
            set_default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = dig_mut(obj, &["spec", "updateStrategy", "rollingUpdate"]);
                set_default(ru, "maxUnavailable", json!(1));
                set_default(ru, "maxSurge", json!(0));
            }
        }
        "ReplicaSet" => {
            set_default(dig_mut(obj, &["spec"]), "replicas", json!(1));
        }
        _ => return,
    }
    if dig(obj, &["spec", "template"]).is_some() {
        default_pod_template(obj.get_mut("spec").and_then(|s| s.get_mut("template")));
    }
}

/// Pod template defaults (`SetDefaults_PodSpec`, `SetDefaults_Container`).
pub(crate) fn default_pod_template(template: Option<&mut Value>) {
    let Some(template) = template else { return };
    let spec = dig_mut(template, &["spec"]);
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for c in containers.iter_mut().filter(|c| c.is_object()) {
                default_container(c);
            }
        }
    }
}

fn default_container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or_default().to_string();
    let map = c.as_object_mut().expect("checked by caller");
    set_default(map, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(map, "terminationMessagePolicy", json!("File"));
    set_default(map, "resources", json!({}));
    // `:latest` or no tag pulls always; anything else only if not present.
    let last = image.rsplit('/').next().unwrap_or("");
    let tag = if last.contains('@') {
        Some("digest")
    } else {
        last.split_once(':').map(|(_, t)| t)
    };
    let policy = match tag {
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    };
    set_default(map, "imagePullPolicy", json!(policy));
    if let Some(Value::Array(ports)) = map.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
        }
    }
}

/// Validate a workload (create when `old` is `None`): the checks that a
/// rollback or a test can trip. Other kinds pass.
pub(crate) fn validate(
    res: &ResourceType,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let mut causes: Vec<(&str, &str, String)> = Vec::new();
    if res.group == "apps"
        && matches!(
            res.kind,
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
        )
    {
        let selector = dig(obj, &["spec", "selector"]);
        let empty = selector.is_none_or(|s| {
            s.get("matchLabels")
                .is_none_or(|m| m.as_object().is_none_or(Map::is_empty))
                && s.get("matchExpressions")
                    .is_none_or(|m| m.as_array().is_none_or(Vec::is_empty))
        });
        if empty {
            causes.push((
                "spec.selector",
                "FieldValueRequired",
                "Required value".into(),
            ));
        } else {
            let labels = dig(obj, &["spec", "template", "metadata", "labels"]);
            if !LabelSelector::from_json(selector).matches_labels(labels) {
                causes.push((
                    "spec.template.metadata.labels",
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: `selector` does not match template `labels`",
                        go_map(labels)
                    ),
                ));
            }
        }
        let containers = dig(obj, &["spec", "template", "spec", "containers"]);
        if containers
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            causes.push((
                "spec.template.spec.containers",
                "FieldValueRequired",
                "Required value".into(),
            ));
        }
        if let Some(old) = old {
            if res.kind != "ReplicaSet" && dig(old, &["spec", "selector"]) != selector {
                causes.push((
                    "spec.selector",
                    "FieldValueInvalid",
                    "Invalid value: field is immutable".into(),
                ));
            }
        }
        if dig(obj, &["spec", "replicas"])
            .and_then(Value::as_i64)
            .is_some_and(|r| r < 0)
        {
            causes.push((
                "spec.replicas",
                "FieldValueInvalid",
                "Invalid value: must be greater than or equal to 0".into(),
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(res, name, &causes))
    }
}

/// `map[string]string{"app":"web"}`, the way Go's `%#v` prints labels.
fn go_map(labels: Option<&Value>) -> String {
    let mut pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{:?}:{:?}", k, v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    if pairs.is_empty() {
        "map[string]string(nil)".into()
    } else {
        format!("map[string]string{{{}}}", pairs.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::deployments;

    #[test]
    fn a_minimal_deployment_defaults_to_what_a_real_cluster_stores() {
        let mut d = json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}
            }}
        });
        apply(deployments(), &mut d);
        // The same template as the kubectl fixture's ReplicaSets, hash aside.
        let fixture: Value =
            serde_json::from_str(include_str!("../tests/fixtures/shop-web-before-undo.json"))
                .unwrap();
        let mut want = fixture["items"][3]["spec"]["template"].clone();
        want["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("pod-template-hash");
        want["spec"]["containers"][0]["image"] = json!("nginx:1.25");
        assert_eq!(d["spec"]["template"], want);
        assert_eq!(
            d["spec"]["strategy"],
            fixture["items"][0]["spec"]["strategy"]
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    }

    #[test]
    fn latest_or_untagged_images_pull_always() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("reg:5000/x", "Always"),
            ("reg:5000/x:1", "IfNotPresent"),
        ] {
            let mut c = json!({"name": "c", "image": image});
            default_container(&mut c);
            assert_eq!(c["imagePullPolicy"], want, "{image}");
        }
    }

    #[test]
    fn selector_must_match_template_labels() {
        let d = json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]}
            }}
        });
        let err = validate(deployments(), &d, None).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`"
        );
    }
}
