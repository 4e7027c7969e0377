//! Several replicas of the real binary against one API server, fakekube
//! and the real control plane (`bash scripts/realkube`) from the same
//! scenario: a Lease elects the leader, followers hand their webhooks to
//! it, and each alert episode is rolled back once, through a leader's crash
//! and a graceful stop. On the real server there is no request log: a
//! rollback is counted by its `RolledBack` Event, and the Deployment's
//! revision (one undo of two releases makes revision 3, a second one 4)
//! and episode marker confirm it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::{Flavor, TestKube};
use common::proc::{auth_env, spawn, Proc};
use common::{actions, eventually_within, rules_with_budget, until, FIRING, WEBHOOK_TOKEN};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use rollbackd::core::decide::WorkloadKind;
use serde_json::{json, Value};

const DEPLOY: WorkloadKind = WorkloadKind::Deployment;
/// Lease timings of the test replicas: a dead leader is replaced about
/// four seconds after its last renewal.
const LEASE: [&str; 2] = [
    "--leader-elect-lease-duration=3",
    "--leader-elect-renew-grace=1",
];
/// The Lease's name (rollbackd's default), in the scenario's namespace.
const LEASE_NAME: &str = "rollbackd";
/// A deadline for conditions that wait on a Lease expiring or a real
/// rollout (a failure bound, not a timing assumption).
const TAKEOVER: Duration = Duration::from_secs(30);
/// The Deployment's revision annotation, which its controller keeps.
const REVISION: &str = "deployment.kubernetes.io/revision";
/// The workloads of the storm, `svc0` .. `svc17`.
const WORKLOADS: usize = 18;

/// A firing webhook with one critical alert for `ns`/`deploy`: its own
/// episode (fingerprint) per workload.
fn webhook(ns: &str, deploy: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(FIRING).unwrap();
    let fingerprint: String = format!("{:0>16}", deploy.trim_start_matches("svc"));
    v["alerts"] = json!([{
        "status": "firing",
        "labels": {"alertname": "ServiceDown", "severity": "critical", "namespace": ns, "deployment": deploy},
        "annotations": {"rollback": "true"},
        "startsAt": "2026-11-22T12:50:41.011Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint,
    }]);
    serde_json::to_vec(&v).unwrap()
}

/// Replica `i`, with its own journal under `dir`, electing on the Lease in
/// the scenario's namespace.
async fn replica(dir: &Path, i: usize, rules: &str, kube: &TestKube) -> Proc {
    let journal = dir.join(format!("replica-{i}"));
    std::fs::create_dir_all(&journal).unwrap();
    let mut env = auth_env();
    let kubeconfig = kube.kubeconfig().display().to_string();
    env.push(("KUBECONFIG", &kubeconfig));
    let identity = format!("--identity=replica-{i}");
    let namespace = format!("--leader-elect-namespace={}", kube.ns);
    let args = [
        "--leader-elect",
        &namespace,
        LEASE[0],
        LEASE[1],
        &identity,
        rules,
    ];
    spawn(&journal, &args, &env).await
}

/// `RolledBack` Events recorded on `deploy` (each undo records one).
async fn rolled_back_events(kube: &TestKube, deploy: &str) -> usize {
    let api: Api<Event> = Api::namespaced(kube.client(), &kube.ns);
    api.list(&ListParams::default())
        .await
        .expect("events listed")
        .items
        .iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(deploy)
                && e.reason.as_deref() == Some("RolledBack")
        })
        .map(|e| e.count.unwrap_or(1).max(1) as usize)
        .sum()
}

/// The rollbacks of `deploy`: on the fake, rollbackd's successful real
/// (not dry-run) PATCHes (field manager `rollbackd`; the test's own
/// `set image` is not one). The real server keeps no request log: there,
/// the revisions the controller added past the bad release's 2 once it has
/// observed the latest spec (each undo makes the release it restores the
/// next revision). Not the `RolledBack` Events: a leader killed between its
/// PATCH and its Event leaves a rollback without one.
async fn rollbacks(kube: &TestKube, deploy: &str) -> usize {
    if let Some(fake) = kube.fake() {
        return fake
            .patches_to("deployments", &kube.ns, deploy)
            .iter()
            .filter(|r| {
                (200..300).contains(&r.status)
                    && !r.dry_run
                    && r.field_manager.as_deref() == Some("rollbackd")
            })
            .count();
    }
    let w = until(
        &format!("the controller observed {deploy}"),
        TAKEOVER,
        || async {
            let w = kube.get(DEPLOY, deploy).await;
            (w["status"]["observedGeneration"] == w["metadata"]["generation"]).then_some(w)
        },
    )
    .await;
    let revision: usize = w["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{deploy} has no revision: {w}"));
    revision.saturating_sub(2)
}

/// The Lease's holder, as rollbackd writes it (`identity@host:port`).
async fn holder(kube: &TestKube) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(kube.client(), &kube.ns);
    api.get_opt(LEASE_NAME)
        .await
        .expect("Lease read")?
        .spec?
        .holder_identity
}

/// Waits until the controller has rolled `deploy`'s release `revision`
/// into its history (observed the spec, written the revision), so that a
/// rollback finds the release to go back from.
async fn at_revision(kube: &TestKube, deploy: &str, revision: &str) -> Value {
    until(
        &format!("{deploy} at revision {revision}"),
        TAKEOVER,
        || async {
            let w = kube.get(DEPLOY, deploy).await;
            let observed = w["status"]["observedGeneration"] == w["metadata"]["generation"];
            let at = w["metadata"]["annotations"][REVISION] == revision;
            (observed && at).then_some(w)
        },
    )
    .await
}

/// Index of the replica whose `/readyz` says leader, once exactly one of
/// the live ones does and the others say follower.
async fn leader_of(replicas: &[Option<Proc>]) -> usize {
    eventually_within(TAKEOVER, || async {
        let mut leaders = Vec::new();
        for (i, r) in replicas.iter().enumerate() {
            let Some(r) = r else { continue };
            match r.role().await.as_deref() {
                Some("leader") => leaders.push(i),
                Some("follower") => {}
                _ => return None,
            }
        }
        (leaders.len() == 1).then(|| leaders[0])
    })
    .await
}

/// Posts `body` to every live replica; returns each one's journal id.
async fn post_all(replicas: &[Option<Proc>], body: &[u8]) -> Vec<Option<i64>> {
    let mut ids = Vec::new();
    for r in replicas {
        let id = match r {
            Some(r) => {
                let resp = r.post(&format!("Bearer {WEBHOOK_TOKEN}"), body).await;
                assert_eq!(resp.status().as_u16(), 200, "every replica accepts");
                resp.json::<Value>().await.unwrap()["id"].as_i64()
            }
            None => None,
        };
        ids.push(id);
    }
    ids
}

/// Waits until `deploy` has been rolled back at least once.
async fn rolled_back(kube: &TestKube, deploy: &str) {
    until(&format!("{deploy} rolled back"), TAKEOVER, || async {
        (rollbacks(kube, deploy).await >= 1).then_some(())
    })
    .await;
}
/// Waits until replica `r` is ready and has processed every webhook it
/// journaled, `count` of them when given.
async fn all_processed(r: &Proc, count: Option<usize>) {
    let what = format!("{} processed all its webhooks", r.url);
    until(&what, TAKEOVER, || async {
        let ready = r.readyz().await?;
        let events: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/events?limit=500", r.url))
            .bearer_auth(common::OPERATOR_TOKEN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let list = events["events"].as_array()?;
        (ready["ready"] == true
            && count.is_none_or(|n| list.len() == n)
            && list.iter().all(|e| !e["processed_at"].is_null()))
        .then_some(())
    })
    .await;
}

/// Waits until replica `r` has processed (or handed over) its webhook `id`.
async fn processed(r: &Proc, id: i64) -> Value {
    eventually_within(TAKEOVER, || async {
        let e = r.event(id).await;
        (!e["processed_at"].is_null()).then_some(e)
    })
    .await
}

mod three_replicas_roll_back_each_episode_once_through_a_leader_crash {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fake() {
        scenario(TestKube::start(Flavor::Fake, "shop").await).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real() {
        scenario(TestKube::start(Flavor::Real, "replicas").await).await
    }
}

async fn scenario(kube: TestKube) {
    let ns = kube.ns.clone();
    // Each workload: a good release rolled out, then a bad one.
    let names: Vec<String> = (0..WORKLOADS).map(|i| format!("svc{i}")).collect();
    futures::future::join_all(names.iter().map(|name| {
        let kube = &kube;
        async move {
            kube.workload(DEPLOY, name, &format!("{name}:good"), 1)
                .await;
            kube.set_image_unsettled(DEPLOY, name, &format!("{name}:bad"))
                .await;
            at_revision(kube, name, "2").await;
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_with_budget(dir.path(), 100);
    let mut replicas = Vec::new();
    for i in 0..3 {
        replicas.push(Some(replica(dir.path(), i, &rules, &kube).await));
    }
    let first = leader_of(&replicas).await;
    let leader_url = replicas[first].as_ref().unwrap().url.clone();
    assert_eq!(
        holder(&kube).await.unwrap(),
        format!(
            "replica-{first}@{}",
            leader_url.trim_start_matches("http://")
        )
    );

    // The same six webhooks reach all three replicas, as from Alertmanager
    // replicas that did not deduplicate.
    let mut receipts = Vec::new();
    for name in &names[..6] {
        receipts.push(post_all(&replicas, &webhook(&ns, name)).await);
    }
    for ids in &receipts {
        for (r, id) in replicas.iter().zip(ids) {
            let (Some(r), Some(id)) = (r, id) else {
                continue;
            };
            let event = processed(r, *id).await;
            let acts = actions(&event, 0);
            if r.url == leader_url {
                assert!(
                    acts[0] == "rollback:rolled-back" || acts[0] == "rollback:already-rolled-back",
                    "{acts:?}"
                );
            } else {
                assert_eq!(acts, ["forward:forwarded"], "a follower hands over");
            }
        }
    }
    // Followers' copies reach the leader too; all of them processed there.
    all_processed(replicas[first].as_ref().unwrap(), Some(18)).await;
    for name in &names[..6] {
        assert_eq!(
            rollbacks(&kube, name).await,
            1,
            "{name}: one rollback for three deliveries"
        );
        assert_eq!(
            rolled_back_events(&kube, name).await,
            1,
            "{name}: one RolledBack Event"
        );
        assert_eq!(kube.image(DEPLOY, name).await, format!("{name}:good"));
    }

    // Mid-storm, the leader dies (SIGKILL: no release); the survivors keep
    // accepting, one of them takes the Lease over once it expires and
    // finishes the work sent after the crash. What the dead leader had
    // acknowledged before it (its own copies of svc6..8 and those the
    // followers had handed it) waits in its journal until it comes back.
    let mut storm = Vec::new();
    for (i, name) in names.iter().enumerate().skip(6) {
        if i == 9 {
            let mut dead = replicas[first].take().unwrap();
            dead.child.kill().await.unwrap();
            // Keep the dead one's journal to restart it later.
            drop(dead);
        }
        storm.push(post_all(&replicas, &webhook(&ns, name)).await);
    }
    let second = leader_of(&replicas).await;
    assert_ne!(second, first, "a survivor leads");
    for ids in &storm {
        for (r, id) in replicas.iter().zip(ids) {
            let (Some(r), Some(id)) = (r, id) else {
                continue;
            };
            processed(r, *id).await;
        }
    }
    for name in &names[9..] {
        rolled_back(&kube, name).await;
    }

    // The killed replica comes back on its journal: it is a follower now and
    // hands what it had accepted but not processed to the new leader.
    let restarted = replica(dir.path(), first, &rules, &kube).await;
    replicas[first] = Some(restarted);
    assert_eq!(leader_of(&replicas).await, second);
    let back = replicas[first].as_ref().unwrap();
    eventually_within(TAKEOVER, || async {
        let text = reqwest::get(format!("{}/metrics", back.url))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .any(|l| l == "rollbackd_webhooks_pending 0")
            .then_some(())
    })
    .await;
    // Everything handed over is journaled at the leader; once it has all
    // been processed there, no rollback is still on its way.
    for name in &names {
        rolled_back(&kube, name).await;
    }
    all_processed(replicas[second].as_ref().unwrap(), None).await;
    for name in &names {
        assert_eq!(
            rollbacks(&kube, name).await,
            1,
            "{name}: rolled back exactly once"
        );
        // At most one Event: the first leader may have died between a PATCH
        // and its Event.
        let events = rolled_back_events(&kube, name).await;
        assert!(events <= 1, "{name}: {events} RolledBack Events");
        // One undo of two releases: the good one is revision 3 (a second
        // undo would have made the bad one revision 4), and the episode
        // marker names the alert's episode.
        let w = at_revision(&kube, name, "3").await;
        assert_eq!(
            w["spec"]["template"]["spec"]["containers"][0]["image"],
            format!("{name}:good")
        );
        let fingerprint = format!("{:0>16}", name.trim_start_matches("svc"));
        let marker = w["metadata"]["annotations"]["rollbackd.io/episode"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no episode marker: {w}"));
        assert!(
            marker.starts_with(&format!(
                "{fingerprint}@2026-11-22T12:50:41.011Z from=2 to=1 "
            )),
            "{name}: {marker}"
        );
    }

    // A graceful stop releases the Lease: the holder is cleared at once,
    // not left to expire, and another replica takes over.
    let mut leaving = replicas[second].take().unwrap();
    leaving.terminate().await;
    let status = tokio::time::timeout(TAKEOVER, leaving.child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        leaving.log_text().contains("Lease released"),
        "{}",
        leaving.log_text()
    );
    let third = leader_of(&replicas).await;
    assert_ne!(third, second);
    for r in replicas.into_iter().flatten() {
        drop(r);
    }
}
