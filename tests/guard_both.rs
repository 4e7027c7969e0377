//! The guard through the whole pipeline (webhook → worker → cluster), on
//! fakekube and on the real control plane, from the same scenario code.

mod common;

use std::time::Duration;

use common::cluster::TestKube;
use common::*;
use rollbackd::core::decide::WorkloadKind;
use serde_json::Value;

const DEPLOY: WorkloadKind = WorkloadKind::Deployment;

/// `name`: v1 then v2-broken, both rolled out (the broken one is Ready:
/// the alert, not the pods, says it is bad).
async fn bad_release(kube: &TestKube, name: &str) {
    kube.workload(DEPLOY, name, &format!("registry.local/{name}:v1"), 1)
        .await;
    kube.set_image(DEPLOY, name, &format!("registry.local/{name}:v2-broken"))
        .await;
}

/// Revisions the Deployment has had (its `revision` annotation).
async fn revision(kube: &TestKube, name: &str) -> String {
    kube.get(DEPLOY, name).await["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .unwrap()
        .to_string()
}

const STARTED: &str = "2026-11-22T12:50:41.011Z";

on_both! {
    async fn a_redelivered_alert_rolls_back_once(kube) {
        bad_release(&kube, "web").await;
        let server = TestServer::start_with_cluster(kube.cluster()).await;
        let body = service_down(&kube.ns, STARTED, &[("web", &[])]);
        let first = server.processed_event(server.post_id(&body).await).await;
        assert_eq!(actions(&first, 0)[0], "rollback:rolled-back", "{first}");
        kube.settle(DEPLOY, "web").await;
        assert_eq!(kube.image(DEPLOY, "web").await, "registry.local/web:v1");
        assert_eq!(revision(&kube, "web").await, "3");
        // Alertmanager delivers again (repeat_interval, HA peer, retry).
        let again = server.processed_event(server.post_id(&body).await).await;
        assert_eq!(actions(&again, 0), ["rollback:already-rolled-back"], "{again}");
        let detail = again["alerts"][0]["actions"][0]["detail"].as_str().unwrap();
        assert!(detail.contains("already rolled back for this incident"), "{detail}");
        assert_eq!(kube.image(DEPLOY, "web").await, "registry.local/web:v1", "no toggle back");
        assert_eq!(revision(&kube, "web").await, "3");
        server.stop().await;
    }
}

on_both! {
    async fn an_alert_for_another_cluster_changes_nothing_here(kube) {
        bad_release(&kube, "eu").await;
        bad_release(&kube, "us").await;
        let before = kube.get(DEPLOY, "eu").await;
        let server = TestServer::start_full(
            |s| s.cluster_name = Some("prod-us".into()),
            rollbackd::adapters::journal::JournalOptions::default(),
            kube.cluster(),
        )
        .await;
        let body = service_down(
            &kube.ns,
            STARTED,
            &[("eu", &[("cluster", "prod-eu")]), ("us", &[("cluster", "prod-us")])],
        );
        let event = server.processed_event(server.post_id(&body).await).await;
        assert_eq!(actions(&event, 0), ["rollback:refused"]);
        assert_eq!(
            event["alerts"][0]["actions"][0]["detail"],
            format!("{}/deployment/eu: alert is for cluster prod-eu, this is prod-us", kube.ns)
        );
        assert_eq!(actions(&event, 1)[0], "rollback:rolled-back");
        let after = kube.get(DEPLOY, "eu").await;
        assert_eq!(after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);
        kube.settle(DEPLOY, "us").await;
        assert_eq!(kube.image(DEPLOY, "us").await, "registry.local/us:v1");
        server.stop().await;
    }
}

on_both! {
    async fn a_deploy_older_than_the_alert_is_not_rolled_back(kube) {
        bad_release(&kube, "legacy").await;
        // The alert starts an hour after the deploy: probably not its cause.
        let later = jiff::Timestamp::now() + Duration::from_secs(3600);
        let server = TestServer::start_with_cluster(kube.cluster()).await;
        server.clock.set(&(later + Duration::from_secs(5)).to_string());
        let body = service_down(&kube.ns, &later.to_string(), &[("legacy", &[])]);
        let event = server.processed_event(server.post_id(&body).await).await;
        assert_eq!(actions(&event, 0), ["rollback:refused"], "{event}");
        let detail = event["alerts"][0]["actions"][0]["detail"].as_str().unwrap();
        assert!(detail.contains("deploy predates the alert"), "{detail}");
        assert_eq!(kube.image(DEPLOY, "legacy").await, "registry.local/legacy:v2-broken");
        let refused = kube
            .kubectl_ok(&["get", "events", "--field-selector", "reason=RollbackRefused", "-o", "json"])
            .await;
        let refused: Value = serde_json::from_str(&refused).unwrap();
        assert_eq!(refused["items"].as_array().unwrap().len(), 1, "{refused}");
        server.stop().await;
    }
}
