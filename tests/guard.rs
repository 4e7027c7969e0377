//! The guard and holds through the whole pipeline, against the fake API
//! server, with the clock in the test's hands.

mod common;

use std::time::Duration;

use common::*;
use fakekube::FakeKube;
use rollbackd::adapters::cluster::Cluster;
use serde_json::{json, Value};

/// The real firing group with only the alerts at `keep`.
fn group(keep: &[usize], from: &[u8]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(from).unwrap();
    let alerts = v["alerts"].as_array().unwrap().clone();
    v["alerts"] = keep.iter().map(|i| alerts[*i].clone()).collect();
    serde_json::to_vec(&v).unwrap()
}

/// A firing group of made-up alerts `(alertname, severity, namespace, deployment)`.
fn alerts(list: &[(&str, &str, &str, &str)]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(FIRING).unwrap();
    v["alerts"] = list
        .iter()
        .enumerate()
        .map(|(i, (name, severity, ns, deploy))| {
            json!({"status": "firing",
                "labels": {"alertname": name, "severity": severity, "namespace": ns, "deployment": deploy},
                "annotations": {"rollback": "true"},
                "startsAt": "2026-11-22T12:50:41.011Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph", "fingerprint": format!("{i:016x}")})
        })
        .collect();
    serde_json::to_vec(&v).unwrap()
}

async fn release_twice(fake: &FakeKube, ns: &str, name: &str) -> fakekube::Workload {
    let w = fake
        .deployment(ns, name)
        .image(&format!("{name}:good"))
        .create()
        .await;
    w.set_image(&format!("{name}:bad"));
    w
}

async fn event_when(server: &TestServer, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    eventually(|| async {
        let (_, e) = server.get_json(&format!("/api/v1/events/{id}")).await;
        (!e["processed_at"].is_null() && done(&e)).then_some(e)
    })
    .await
}

#[tokio::test]
async fn hold_rolls_back_when_it_ends_with_the_alert_still_firing() {
    let fake = FakeKube::start().await;
    let checkout = release_twice(&fake, "shop", "checkout").await;
    let server = TestServer::start_with_cluster(Cluster::at_url(&fake.url())).await;
    // SlowCheckout, severity medium: rollback-after, hold 2m.
    let id = server.post_id(&group(&[3], FIRING)).await;
    let event = event_when(&server, id, |_| true).await;
    assert_eq!(actions(&event, 0), ["hold:waiting"]);
    assert!(fake
        .patches_to("deployments", "shop", "checkout")
        .is_empty());

    // Alertmanager re-sends during the hold: same hold, same due time.
    server.clock.advance(Duration::from_secs(60));
    let again = server.post_id(&group(&[3], FIRING)).await;
    let event = event_when(&server, again, |_| true).await;
    assert_eq!(
        event["alerts"][0]["actions"][0]["detail"],
        "this alert's hold (until 2026-11-22T12:52:45Z) is already waiting"
    );

    server.clock.advance(Duration::from_secs(61));
    server.state.wake_worker();
    let event = event_when(&server, id, |e| {
        e["alerts"][0]["actions"].as_array().unwrap().len() >= 2
    })
    .await;
    assert_eq!(
        actions(&event, 0)[..2],
        ["hold:waiting", "rollback:rolled-back"]
    );
    assert!(event["alerts"][0]["actions"][1]["detail"]
        .as_str()
        .unwrap()
        .starts_with(
            "hold ended, alert still firing: rolled back shop/deployment/checkout from revision 2"
        ));
    assert_eq!(checkout.image(), "checkout:good");
    assert_eq!(fake.patches_to("deployments", "shop", "checkout").len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_resolved_notification_cancels_the_hold() {
    let fake = FakeKube::start().await;
    let checkout = release_twice(&fake, "shop", "checkout").await;
    let server = TestServer::start_with_cluster(Cluster::at_url(&fake.url())).await;
    let id = server.post_id(&group(&[3], FIRING)).await;
    event_when(&server, id, |_| true).await;
    // The captured resolved group: SlowCheckout resolved, same episode.
    let resolved = server.post_id(&group(&[3], RESOLVED)).await;
    let event = event_when(&server, resolved, |_| true).await;
    assert_eq!(actions(&event, 0), ["hold:cancelled"]);
    server.clock.advance(Duration::from_secs(600));
    server.state.wake_worker();
    // Another webhook goes through after the due time: the worker has
    // looked at holds since, and nothing was rolled back.
    let later = server
        .post_id(&alerts(&[("Other", "low", "shop", "checkout")]))
        .await;
    event_when(&server, later, |_| true).await;
    assert!(fake
        .patches_to("deployments", "shop", "checkout")
        .is_empty());
    assert_eq!(checkout.image(), "checkout:bad");
    server.stop().await;
}

#[tokio::test]
async fn a_hold_survives_a_restart() {
    let fake = FakeKube::start().await;
    let checkout = release_twice(&fake, "shop", "checkout").await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.db");
    let j = journal.clone();
    let first = TestServer::start_full(
        move |s| s.journal = j,
        Default::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;
    let id = first.post_id(&group(&[3], FIRING)).await;
    event_when(&first, id, |_| true).await;
    first.stop().await;

    let j = journal.clone();
    let second = TestServer::start_full(
        move |s| s.journal = j,
        Default::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;
    second.clock.advance(Duration::from_secs(121));
    second.state.wake_worker();
    let event = event_when(&second, id, |e| {
        e["alerts"][0]["actions"].as_array().unwrap().len() >= 2
    })
    .await;
    assert_eq!(
        actions(&event, 0)[..2],
        ["hold:waiting", "rollback:rolled-back"]
    );
    assert_eq!(checkout.image(), "checkout:good");
    second.stop().await;
}

#[tokio::test]
async fn protected_namespaces_and_old_deploys_are_not_rolled_back() {
    let fake = FakeKube::start().await;
    release_twice(&fake, "kube-system", "coredns").await;
    // A deploy three hours before the alert: probably not its cause.
    fake.freeze_clock(std::time::UNIX_EPOCH + Duration::from_secs(1_763_805_600)); // 2025-11-22T10:00:00Z
    release_twice(&fake, "shop", "legacy").await;
    let server = TestServer::start_with_cluster(Cluster::at_url(&fake.url())).await;
    let id = server
        .post_id(&alerts(&[
            ("DNSDown", "critical", "kube-system", "coredns"),
            ("LegacyDown", "critical", "shop", "legacy"),
        ]))
        .await;
    let event = event_when(&server, id, |_| true).await;
    assert_eq!(actions(&event, 0), ["rollback:refused"]);
    assert_eq!(
        event["alerts"][0]["actions"][0]["detail"],
        "kube-system/deployment/coredns: namespace kube-system is protected"
    );
    assert_eq!(actions(&event, 1), ["rollback:refused"]);
    assert!(event["alerts"][1]["actions"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("deploy predates the alert"));
    assert!(fake.writes().iter().all(|w| w.method != "PATCH"));
    let refused: Vec<Value> = fake
        .list("events", Some("shop"))
        .into_iter()
        .filter(|e| e["reason"] == "RollbackRefused")
        .collect();
    assert_eq!(refused.len(), 1, "an Event on the workload says why");
    let m = server.metrics().await;
    assert!(
        m.contains(r#"rollbackd_guard_refusals_total{reason="protected_namespace"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"rollbackd_guard_refusals_total{reason="deploy_predates_alert"} 1"#),
        "{m}"
    );
    server.stop().await;
}

#[tokio::test]
async fn gitops_managed_workloads_are_refused_or_suspended_first() {
    let fake = FakeKube::start().await;
    let flux = fake
        .deployment("shop", "web")
        .image("web:good")
        .label("kustomize.toolkit.fluxcd.io/name", "apps")
        .label("kustomize.toolkit.fluxcd.io/namespace", "flux-system")
        .create()
        .await;
    flux.set_image("web:bad");
    let argo = fake
        .deployment("shop", "api")
        .image("api:good")
        .label("app.kubernetes.io/instance", "shop-api")
        .create()
        .await;
    argo.set_image("api:bad");
    fake.put_object(
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {"interval": "5m", "path": "./apps", "prune": true,
                 "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}),
    );

    // Default policy: refuse, and say why.
    let server = TestServer::start_with_cluster(Cluster::at_url(&fake.url())).await;
    let id = server
        .post_id(&alerts(&[("WebDown", "critical", "shop", "web")]))
        .await;
    let event = event_when(&server, id, |_| true).await;
    assert_eq!(actions(&event, 0), ["rollback:refused"]);
    assert!(event["alerts"][0]["actions"][0]["detail"]
        .as_str()
        .unwrap()
        .contains(
            "managed by Flux Kustomization flux-system/apps: a manual rollback would be reverted"
        ));
    server.stop().await;

    // Policy suspend: the Kustomization is suspended first, then the undo.
    let rules = tempfile::tempdir().unwrap();
    let default =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.yaml"))
            .unwrap();
    std::fs::write(
        rules.path().join("rules.yaml"),
        default.replace("  gitops: refuse\n", "  gitops: suspend\n"),
    )
    .unwrap();
    let dir = rules.path().to_path_buf();
    let server = TestServer::start_full(
        move |s| s.rules = rollbackd::service::config::RulesSource::Dir(dir),
        Default::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;
    let id = server
        .post_id(&alerts(&[
            ("WebDown", "critical", "shop", "web"),
            ("ApiDown", "critical", "shop", "api"),
        ]))
        .await;
    let event = event_when(&server, id, |_| true).await;
    assert_eq!(actions(&event, 0)[0], "rollback:rolled-back");
    let detail = event["alerts"][0]["actions"][0]["detail"].as_str().unwrap();
    assert!(
        detail.ends_with("; Flux Kustomization flux-system/apps suspended: Git still declares the bad revision; revert it in Git, then resume with `flux resume kustomization apps -n flux-system`"),
        "{detail}"
    );
    let kustomization = fake.get("kustomizations", "flux-system", "apps").unwrap();
    assert_eq!(kustomization["spec"]["suspend"], true);
    let order: Vec<String> = fake
        .writes()
        .into_iter()
        .filter(|w| w.method == "PATCH")
        .map(|w| w.resource.unwrap_or_default())
        .collect();
    assert_eq!(
        order,
        ["kustomizations", "deployments"],
        "suspended before the undo"
    );
    assert_eq!(flux.image(), "web:good");
    // Argo CD cannot be suspended by rollbackd: refused even so.
    assert_eq!(actions(&event, 1), ["rollback:refused"]);
    assert_eq!(argo.image(), "api:bad");
    server.stop().await;
}

#[tokio::test]
async fn a_storm_is_bounded_by_the_budgets_and_every_alert_gets_an_outcome() {
    let fake = FakeKube::start().await;
    for i in 0..200 {
        release_twice(&fake, &format!("team{}", i % 20), &format!("svc{i}")).await;
    }
    let server = TestServer::start_with_cluster(Cluster::at_url(&fake.url())).await;
    // 1,000 alerts over 200 workloads, 5 alerts each, in 4 webhooks.
    let all: Vec<(String, String, String)> = (0..1000)
        .map(|n| {
            let w = n % 200;
            (
                format!("Alert{}", n / 200),
                format!("team{}", w % 20),
                format!("svc{w}"),
            )
        })
        .collect();
    let mut ids = Vec::new();
    for chunk in all.chunks(250) {
        let list: Vec<(&str, &str, &str, &str)> = chunk
            .iter()
            .map(|(a, ns, d)| (a.as_str(), "critical", ns.as_str(), d.as_str()))
            .collect();
        let mut body: Value = serde_json::from_slice(&alerts(&list)).unwrap();
        // Distinct fingerprints across webhooks: each alert its own episode.
        for (i, a) in body["alerts"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .enumerate()
        {
            a["fingerprint"] = format!("{:04}{:012x}", ids.len(), i).into();
        }
        ids.push(server.post_id(&serde_json::to_vec(&body).unwrap()).await);
    }
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    let mut loud = 0;
    for id in ids {
        // 1,000 alerts through a debug build: a minute's deadline, so a
        // machine busy with other builds does not fail it.
        let path = format!("/api/v1/events/{id}");
        let event = until(
            "the storm's webhook processed",
            Duration::from_secs(60),
            || async {
                let (_, e) = server.get_json(&path).await;
                (!e["processed_at"].is_null()).then_some(e)
            },
        )
        .await;
        for (i, a) in event["alerts"].as_array().unwrap().iter().enumerate() {
            let acts = actions(&event, i);
            // One rollback outcome each; a rollback done also has its watch.
            assert_eq!(
                acts.iter().filter(|x| x.starts_with("rollback:")).count(),
                1,
                "alert {i} of webhook {id}: {a}"
            );
            *outcomes.entry(acts[0].clone()).or_default() += 1;
            if a["actions"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("the breaker just opened")
            {
                loud += 1;
            }
        }
    }
    assert_eq!(loud, 1, "the breaker is reported loudly once");
    let patched = fake
        .writes()
        .iter()
        .filter(|w| w.method == "PATCH" && w.status == 200)
        .count();
    // Default budgets: cluster 10 per 10m. The first alert of 10 workloads
    // rolls back; their later alerts meet the cooldown; everything else is
    // held back by the open breaker.
    assert_eq!(patched, 10);
    assert_eq!(outcomes.get("rollback:rolled-back"), Some(&10));
    assert_eq!(outcomes.get("rollback:cooling-down"), Some(&40));
    assert_eq!(outcomes.get("rollback:refused"), Some(&950));
    assert_eq!(outcomes.values().sum::<usize>(), 1000);
    let m = server.metrics().await;
    assert!(
        m.contains(r#"rollbackd_guard_refusals_total{reason="breaker_open"} 950"#),
        "{m}"
    );
    assert!(m.contains("rollbackd_breaker_openings_total 1"), "{m}");
    assert!(server.state.guard.breaker_is_open());
    server.stop().await;
}

#[tokio::test]
async fn an_alert_for_another_cluster_leaves_this_cluster_untouched() {
    let fake = FakeKube::start().await;
    let eu = release_twice(&fake, "shop", "eu").await;
    let us = release_twice(&fake, "shop", "us").await;
    let plain = release_twice(&fake, "shop", "plain").await;
    let server = TestServer::start_full(
        |s| s.cluster_name = Some("prod-us".into()),
        rollbackd::adapters::journal::JournalOptions::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;
    let body = service_down(
        "shop",
        "2026-11-22T12:50:41.011Z",
        &[
            ("eu", &[("cluster", "prod-eu")]),
            ("us", &[("cluster", "prod-us")]),
            ("plain", &[]),
        ],
    );
    let id = server.post_id(&body).await;
    let event = event_when(&server, id, |_| true).await;
    assert_eq!(actions(&event, 0), ["rollback:refused"]);
    assert_eq!(
        event["alerts"][0]["actions"][0]["detail"],
        "shop/deployment/eu: alert is for cluster prod-eu, this is prod-us"
    );
    assert_eq!(actions(&event, 1)[0], "rollback:rolled-back");
    assert_eq!(
        actions(&event, 2)[0],
        "rollback:rolled-back",
        "no label: accepted"
    );
    // Not a read, not an event, not a patch for the other cluster's alert.
    assert!(fake.patches_to("deployments", "shop", "eu").is_empty());
    assert_eq!(eu.image(), "eu:bad");
    assert_eq!(us.image(), "us:good");
    assert_eq!(plain.image(), "plain:good");
    // Nothing was even read for it, and no Event names it.
    let touched: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| {
            r.path.ends_with("/deployments/eu")
                || r.verb == "create" && r.body_text.contains("\"eu\"")
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
    let (_, ready) = server.get_json("/readyz").await;
    assert_eq!(ready["cluster_name"], "prod-us"); // to the operator
    server.stop().await;
}

#[tokio::test]
async fn require_cluster_label_refuses_alerts_without_one() {
    let fake = FakeKube::start().await;
    let plain = release_twice(&fake, "shop", "plain").await;
    let rules = tempfile::tempdir().unwrap();
    let default = std::fs::read_to_string("rules/default.yaml").unwrap();
    let strict = default.replace(
        "  cluster_label: cluster\n  require_cluster_label: false\n",
        "  cluster_label: k8s_cluster\n  require_cluster_label: true\n",
    );
    assert_ne!(strict, default);
    std::fs::write(rules.path().join("rules.yaml"), strict).unwrap();
    let dir = rules.path().to_path_buf();
    let server = TestServer::start_full(
        move |s| {
            s.cluster_name = Some("prod-us".into());
            s.rules = rollbackd::service::config::RulesSource::Dir(dir);
        },
        rollbackd::adapters::journal::JournalOptions::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;
    let body = service_down(
        "shop",
        "2026-11-22T12:50:41.011Z",
        &[("plain", &[("cluster", "prod-us")])],
    );
    let id = server.post_id(&body).await;
    let event = event_when(&server, id, |_| true).await;
    assert_eq!(
        event["alerts"][0]["actions"][0]["detail"],
        "shop/deployment/plain: alert has no k8s_cluster label and guard.require_cluster_label is on; this is cluster prod-us"
    );
    assert_eq!(plain.image(), "plain:bad");
    server.stop().await;
}

#[tokio::test]
async fn without_a_cluster_name_readyz_says_alerts_are_not_checked() {
    let server = TestServer::start().await;
    let (_, ready) = server.get_json("/readyz").await;
    assert_eq!(ready["cluster_name"], Value::Null);
    assert_eq!(
        ready["cluster_check"],
        "off: alerts are not checked against a cluster name (set ROLLBACKD_CLUSTER_NAME)"
    );
    server.stop().await;
}
