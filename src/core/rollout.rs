//! kubectl's rollout verdict (`polymorphichelpers/rollout_status.go`) as a
//! pure function of the workload object: [`rollout_status`]. The cluster
//! adapter's watch feeds it the objects a Kubernetes watch delivers.

use serde_json::Value;

use crate::core::decide::WorkloadKind;

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStatus {
    /// Still rolling; kubectl's "Waiting for ..." line.
    Progressing(String),
    /// Done; kubectl's success line.
    Complete(String),
    /// Will not finish by itself (`ProgressDeadlineExceeded`, or a strategy
    /// kubectl cannot follow).
    Failed(String),
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Evaluates `object` (a Deployment, StatefulSet or DaemonSet as JSON).
pub fn rollout_status(kind: WorkloadKind, object: &Value) -> RolloutStatus {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let generation = int(&object["metadata"]["generation"]);
    let status = &object["status"];
    let spec = &object["spec"];
    match kind {
        WorkloadKind::Deployment => {
            if generation > int(&status["observedGeneration"]) {
                return RolloutStatus::Progressing(
                    "Waiting for deployment spec update to be observed...".into(),
                );
            }
            let timed_out = status["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded"
                })
            });
            if timed_out {
                return RolloutStatus::Failed(format!(
                    "deployment {name:?} exceeded its progress deadline"
                ));
            }
            let replicas = spec["replicas"].as_i64();
            let updated = int(&status["updatedReplicas"]);
            if let Some(replicas) = replicas {
                if updated < replicas {
                    return RolloutStatus::Progressing(format!(
                        "Waiting for deployment {name:?} rollout to finish: {updated} out of {replicas} new replicas have been updated..."
                    ));
                }
            }
            let total = int(&status["replicas"]);
            if total > updated {
                return RolloutStatus::Progressing(format!(
                    "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                    total - updated
                ));
            }
            let available = int(&status["availableReplicas"]);
            if available < updated {
                return RolloutStatus::Progressing(format!(
                    "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
                ));
            }
            RolloutStatus::Complete(format!("deployment {name:?} successfully rolled out"))
        }
        WorkloadKind::StatefulSet => {
            let strategy = spec["updateStrategy"]["type"]
                .as_str()
                .unwrap_or("RollingUpdate");
            if strategy != "RollingUpdate" {
                return RolloutStatus::Failed(
                    "rollout status is only available for RollingUpdate strategy type".into(),
                );
            }
            let observed = int(&status["observedGeneration"]);
            if observed == 0 || generation > observed {
                return RolloutStatus::Progressing(
                    "Waiting for statefulset spec update to be observed...".into(),
                );
            }
            let replicas = spec["replicas"].as_i64();
            let ready = int(&status["readyReplicas"]);
            if let Some(replicas) = replicas {
                if ready < replicas {
                    return RolloutStatus::Progressing(format!(
                        "Waiting for {} pods to be ready...",
                        replicas - ready
                    ));
                }
                // kubectl takes this path whenever a partition is set, 0
                // included, and the API server defaults it to 0.
                let partition = &spec["updateStrategy"]["rollingUpdate"]["partition"];
                if let Some(partition) = partition.as_i64() {
                    let updated = int(&status["updatedReplicas"]);
                    if updated < replicas - partition {
                        return RolloutStatus::Progressing(format!(
                            "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                            replicas - partition
                        ));
                    }
                    return RolloutStatus::Complete(format!(
                        "partitioned roll out complete: {updated} new pods have been updated..."
                    ));
                }
            }
            let update = status["updateRevision"].as_str().unwrap_or_default();
            let current = status["currentRevision"].as_str().unwrap_or_default();
            if update != current {
                return RolloutStatus::Progressing(format!(
                    "waiting for statefulset rolling update to complete {} pods at revision {update}...",
                    int(&status["updatedReplicas"])
                ));
            }
            RolloutStatus::Complete(format!(
                "statefulset rolling update complete {} pods at revision {current}...",
                int(&status["currentReplicas"])
            ))
        }
        WorkloadKind::DaemonSet => {
            let strategy = spec["updateStrategy"]["type"]
                .as_str()
                .unwrap_or("RollingUpdate");
            if strategy != "RollingUpdate" {
                return RolloutStatus::Failed(
                    "rollout status is only available for RollingUpdate strategy type".into(),
                );
            }
            if generation > int(&status["observedGeneration"]) {
                return RolloutStatus::Progressing(
                    "Waiting for daemon set spec update to be observed...".into(),
                );
            }
            let desired = int(&status["desiredNumberScheduled"]);
            let updated = int(&status["updatedNumberScheduled"]);
            if updated < desired {
                return RolloutStatus::Progressing(format!(
                    "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
                ));
            }
            let available = int(&status["numberAvailable"]);
            if available < desired {
                return RolloutStatus::Progressing(format!(
                    "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
                ));
            }
            RolloutStatus::Complete(format!("daemon set {name:?} successfully rolled out"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": 3}, "status": status})
    }

    #[test]
    fn deployment_verdicts_follow_kubectl_in_order() {
        use RolloutStatus::*;
        let cases = [
            (deployment(2, json!({"observedGeneration": 1})),
             Progressing("Waiting for deployment spec update to be observed...".into())),
            (deployment(2, json!({"observedGeneration": 2, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]})),
             Failed("deployment \"web\" exceeded its progress deadline".into())),
            (deployment(2, json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1})),
             Progressing("Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...".into())),
            (deployment(2, json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3})),
             Progressing("Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...".into())),
            (deployment(2, json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2})),
             Progressing("Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...".into())),
            (deployment(2, json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3})),
             Complete("deployment \"web\" successfully rolled out".into())),
        ];
        for (object, want) in cases {
            assert_eq!(
                rollout_status(WorkloadKind::Deployment, &object),
                want,
                "{object}"
            );
        }
    }

    #[test]
    fn statefulset_and_daemonset_verdicts_follow_kubectl() {
        use RolloutStatus::*;
        let sts = |status: Value| {
            json!({"metadata": {"name": "db", "generation": 3},
            "spec": {"replicas": 2, "updateStrategy": {"type": "RollingUpdate"}}, "status": status})
        };
        assert_eq!(
            rollout_status(
                WorkloadKind::StatefulSet,
                &sts(json!({"observedGeneration": 3, "readyReplicas": 1}))
            ),
            Progressing("Waiting for 1 pods to be ready...".into())
        );
        assert_eq!(
            rollout_status(
                WorkloadKind::StatefulSet,
                &sts(json!({"observedGeneration": 3, "readyReplicas": 2,
                "updatedReplicas": 1, "updateRevision": "db-2", "currentRevision": "db-1"}))
            ),
            Progressing(
                "waiting for statefulset rolling update to complete 1 pods at revision db-2..."
                    .into()
            )
        );
        assert_eq!(
            rollout_status(
                WorkloadKind::StatefulSet,
                &sts(json!({"observedGeneration": 3, "readyReplicas": 2,
                "currentReplicas": 2, "updateRevision": "db-2", "currentRevision": "db-2"}))
            ),
            Complete("statefulset rolling update complete 2 pods at revision db-2...".into())
        );
        let on_delete =
            json!({"metadata": {"name": "db"}, "spec": {"updateStrategy": {"type": "OnDelete"}}});
        assert_eq!(
            rollout_status(WorkloadKind::StatefulSet, &on_delete),
            Failed("rollout status is only available for RollingUpdate strategy type".into())
        );
        let ds = |status: Value| {
            json!({"metadata": {"name": "agent", "generation": 5},
            "spec": {"updateStrategy": {"type": "RollingUpdate"}}, "status": status})
        };
        assert_eq!(
            rollout_status(WorkloadKind::DaemonSet, &ds(json!({"observedGeneration": 5,
                "desiredNumberScheduled": 3, "updatedNumberScheduled": 2}))),
            Progressing("Waiting for daemon set \"agent\" rollout to finish: 2 out of 3 new pods have been updated...".into())
        );
        assert_eq!(
            rollout_status(
                WorkloadKind::DaemonSet,
                &ds(json!({"observedGeneration": 5,
                "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 3}))
            ),
            Complete("daemon set \"agent\" successfully rolled out".into())
        );
    }
}
