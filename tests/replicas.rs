//! Several replicas of the real binary against one fake API server: a
//! Lease elects the leader, followers hand their webhooks to it, and each
//! alert episode is rolled back once, through a leader's crash and a
//! graceful stop.

mod common;

use std::path::Path;
use std::time::Duration;

use common::proc::{auth_env, spawn, Proc};
use common::{actions, eventually_within, rules_with_budget, until, FIRING, WEBHOOK_TOKEN};
use fakekube::FakeKube;
use serde_json::{json, Value};

const NS: &str = "shop";
/// Lease timings of the test replicas: a dead leader is replaced about
/// three seconds after its last renewal.
const LEASE: [&str; 2] = [
    "--leader-elect-lease-duration=2",
    "--leader-elect-renew-grace=1",
];
/// A deadline for conditions that wait on a Lease expiring (a failure
/// bound, not a timing assumption).
const TAKEOVER: Duration = Duration::from_secs(30);

/// A firing webhook with one critical alert for shop/`deploy`: its own
/// episode (fingerprint) per workload.
fn webhook(deploy: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(FIRING).unwrap();
    let fingerprint: String = format!("{:0>16}", deploy.trim_start_matches("svc"));
    v["alerts"] = json!([{
        "status": "firing",
        "labels": {"alertname": "ServiceDown", "severity": "critical", "namespace": NS, "deployment": deploy},
        "annotations": {"rollback": "true"},
        "startsAt": "2026-11-22T12:50:41.011Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint,
    }]);
    serde_json::to_vec(&v).unwrap()
}

/// Replica `i`, with its own journal under `dir`.
async fn replica(dir: &Path, i: usize, rules: &str, kubeconfig: &Path) -> Proc {
    let journal = dir.join(format!("replica-{i}"));
    std::fs::create_dir_all(&journal).unwrap();
    let mut env = auth_env();
    let kubeconfig = kubeconfig.display().to_string();
    env.push(("KUBECONFIG", &kubeconfig));
    let identity = format!("--identity=replica-{i}");
    let args = [
        "--leader-elect",
        "--leader-elect-namespace=rollbackd",
        LEASE[0],
        LEASE[1],
        &identity,
        rules,
    ];
    spawn(&journal, &args, &env).await
}

/// Successful, real (not dry-run) PATCHes to shop/`deploy`: the rollbacks.
fn rollbacks(fake: &FakeKube, deploy: &str) -> usize {
    fake.patches_to("deployments", NS, deploy)
        .iter()
        .filter(|r| (200..300).contains(&r.status) && !r.dry_run)
        .count()
}

/// The Lease's holder, as rollbackd writes it (`identity@host:port`).
fn holder(fake: &FakeKube) -> Option<String> {
    let lease = fake.get("leases", "rollbackd", "rollbackd")?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_string)
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

/// Waits until shop/`deploy` has been rolled back at least once.
async fn rolled_back(fake: &FakeKube, deploy: &str) {
    until(&format!("{deploy} rolled back"), TAKEOVER, || async {
        (rollbacks(fake, deploy) >= 1).then_some(())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_roll_back_each_episode_once_through_a_leader_crash() {
    let fake = FakeKube::start().await;
    for i in 0..18 {
        let name = format!("svc{i}");
        let w = fake
            .deployment(NS, &name)
            .image(&format!("{name}:good"))
            .create()
            .await;
        w.set_image(&format!("{name}:bad"));
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig).unwrap();
    let rules = rules_with_budget(dir.path(), 100);
    let mut replicas = Vec::new();
    for i in 0..3 {
        replicas.push(Some(replica(dir.path(), i, &rules, &kubeconfig).await));
    }
    let first = leader_of(&replicas).await;
    let leader_url = replicas[first].as_ref().unwrap().url.clone();
    assert_eq!(
        holder(&fake).unwrap(),
        format!(
            "replica-{first}@{}",
            leader_url.trim_start_matches("http://")
        )
    );

    // The same six webhooks reach all three replicas, as from Alertmanager
    // replicas that did not deduplicate.
    let mut receipts = Vec::new();
    for i in 0..6 {
        receipts.push(post_all(&replicas, &webhook(&format!("svc{i}"))).await);
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
    for i in 0..6 {
        let name = format!("svc{i}");
        assert_eq!(
            rollbacks(&fake, &name),
            1,
            "{name}: one rollback for three deliveries"
        );
        assert_eq!(
            fake.workload(fakekube::WorkloadKind::Deployment, NS, &name)
                .image(),
            format!("{name}:good")
        );
    }

    // Mid-storm, the leader dies (SIGKILL: no release); the survivors keep
    // accepting, one of them takes the Lease over once it expires and
    // finishes the work sent after the crash. What the dead leader had
    // acknowledged before it (its own copies of svc6..8 and those the
    // followers had handed it) waits in its journal until it comes back.
    let mut storm = Vec::new();
    for i in 6..18 {
        if i == 9 {
            let mut dead = replicas[first].take().unwrap();
            dead.child.kill().await.unwrap();
            replicas[first] = None;
            // Keep the dead one's journal to restart it later.
            storm.push(None);
            drop(dead);
        }
        storm.push(Some(
            post_all(&replicas, &webhook(&format!("svc{i}"))).await,
        ));
    }
    let second = leader_of(&replicas).await;
    assert_ne!(second, first, "a survivor leads");
    for ids in storm.iter().flatten() {
        for (r, id) in replicas.iter().zip(ids) {
            let (Some(r), Some(id)) = (r, id) else {
                continue;
            };
            processed(r, *id).await;
        }
    }
    for i in 9..18 {
        rolled_back(&fake, &format!("svc{i}")).await;
    }

    // The killed replica comes back on its journal: it is a follower now and
    // hands what it had accepted but not processed to the new leader.
    let restarted = replica(dir.path(), first, &rules, &kubeconfig).await;
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
    for i in 0..18 {
        rolled_back(&fake, &format!("svc{i}")).await;
    }
    all_processed(replicas[second].as_ref().unwrap(), None).await;
    for i in 0..18 {
        let name = format!("svc{i}");
        assert_eq!(
            rollbacks(&fake, &name),
            1,
            "{name}: rolled back exactly once"
        );
    }

    // A graceful stop releases the Lease: the holder is cleared at once,
    // not left to expire, and another replica takes over.
    let leaving = replicas[second].take().unwrap();
    let mut leaving = leaving;
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
