//! SIGKILL in the middle of a webhook storm, then a restart on the same
//! journal: every acknowledged webhook is processed exactly once and no
//! workload is rolled back twice.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::proc::{auth_env, spawn};
use common::{eventually_within, rules_with_budget, FIRING, WEBHOOK_TOKEN};
use fakekube::FakeKube;
use serde_json::{json, Value};

const NS: &str = "shop";
const WORKLOADS: usize = 100;
const WEBHOOKS: usize = 1000;
/// Acknowledgements before the kill.
const KILL_AFTER: usize = 300;
/// Concurrent senders, as Alertmanager's parallel notifications.
const SENDERS: usize = 8;
const DEADLINE: Duration = Duration::from_secs(120);

fn workload(n: usize) -> usize {
    n / (WEBHOOKS / WORKLOADS)
}

/// Webhook `n`: one firing alert for workload `n / 10`. Each workload's
/// alert is one episode, sent ten times in a row (Alertmanager re-sends),
/// so a kill after `KILL_AFTER` acknowledgements leaves most workloads
/// untouched.
fn webhook(n: usize) -> Vec<u8> {
    let w = workload(n);
    let mut v: Value = serde_json::from_slice(FIRING).unwrap();
    v["groupKey"] = json!(format!("{{}}:{{deployment=\"svc{w}\"}}"));
    v["alerts"] = json!([{
        "status": "firing",
        "labels": {"alertname": "ServiceDown", "severity": "critical", "namespace": NS, "deployment": format!("svc{w}")},
        "annotations": {"rollback": "true"},
        "startsAt": "2026-11-22T12:50:41.011Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph", "fingerprint": format!("{w:016x}"),
    }]);
    serde_json::to_vec(&v).unwrap()
}

/// Posts every webhook of `queue` to `url` with `SENDERS` senders; a webhook
/// not acknowledged (connection refused or cut) goes back to `retry`.
async fn storm(
    url: String,
    queue: Arc<Mutex<VecDeque<usize>>>,
    acked: Arc<Mutex<Vec<(usize, i64)>>>,
    retry: Arc<Mutex<Vec<usize>>>,
    count: Arc<AtomicUsize>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (client, url, queue, acked, retry, count) = (
            client.clone(),
            url.clone(),
            queue.clone(),
            acked.clone(),
            retry.clone(),
            count.clone(),
        );
        senders.push(tokio::spawn(async move {
            loop {
                let Some(n) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let sent = client
                    .post(format!("{url}/webhook"))
                    .bearer_auth(WEBHOOK_TOKEN)
                    .header("content-type", "application/json")
                    .body(webhook(n))
                    .send()
                    .await;
                let id = match sent {
                    Ok(resp) if resp.status().is_success() => resp
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|r| r["id"].as_i64()),
                    _ => None,
                };
                match id {
                    Some(id) => {
                        acked.lock().unwrap().push((n, id));
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    None => retry.lock().unwrap().push(n),
                }
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
}

/// Successful, real PATCHes to shop/`deploy`: the rollbacks.
fn rollbacks(fake: &FakeKube, deploy: &str) -> usize {
    fake.patches_to("deployments", NS, deploy)
        .iter()
        .filter(|r| (200..300).contains(&r.status) && !r.dry_run)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_storm_then_restart_processes_every_acknowledged_webhook_once() {
    let fake = FakeKube::start().await;
    for w in 0..WORKLOADS {
        let name = format!("svc{w}");
        fake.deployment(NS, &name)
            .image(&format!("{name}:good"))
            .create()
            .await
            .set_image(&format!("{name}:bad"));
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig).unwrap();
    let kubeconfig = kubeconfig.display().to_string();
    let mut env = auth_env();
    env.push(("KUBECONFIG", &kubeconfig));
    let rules = rules_with_budget(dir.path(), 1000);
    let args = [rules.as_str()];

    let queue = Arc::new(Mutex::new((0..WEBHOOKS).collect::<VecDeque<_>>()));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let retry = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));

    let mut first = spawn(dir.path(), &args, &env).await;
    let sending = tokio::spawn(storm(
        first.url.clone(),
        queue.clone(),
        acked.clone(),
        retry.clone(),
        count.clone(),
    ));
    eventually_within(DEADLINE, || async {
        (count.load(Ordering::SeqCst) >= KILL_AFTER).then_some(())
    })
    .await;
    first.child.kill().await.unwrap(); // SIGKILL mid-storm.
    sending.await.unwrap();
    let before_kill = acked.lock().unwrap().len();
    assert!(before_kill >= KILL_AFTER);
    assert!(
        before_kill < WEBHOOKS,
        "the kill landed mid-storm ({before_kill} acknowledged)"
    );
    // The storm was cut: some workloads were rolled back, not all.
    let done_at_kill = (0..WORKLOADS)
        .filter(|w| rollbacks(&fake, &format!("svc{w}")) > 0)
        .count();

    // Restart on the same journal; the senders re-send what was not
    // acknowledged, as Alertmanager retries.
    let second = spawn(dir.path(), &args, &env).await;
    let mut rest: Vec<usize> = std::mem::take(&mut *retry.lock().unwrap());
    rest.extend(queue.lock().unwrap().drain(..));
    rest.sort_unstable();
    *queue.lock().unwrap() = rest.into();
    storm(
        second.url.clone(),
        queue.clone(),
        acked.clone(),
        retry.clone(),
        count.clone(),
    )
    .await;
    assert!(
        retry.lock().unwrap().is_empty(),
        "the restarted process acknowledges all"
    );
    let acked = acked.lock().unwrap().clone();
    let delivered: std::collections::BTreeSet<usize> = acked.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        delivered.len(),
        WEBHOOKS,
        "every webhook acknowledged once in the end"
    );

    // Every acknowledged webhook processed, exactly once: one rollback
    // outcome for its alert, journaled with the webhook. Per workload, at
    // most one says "rolled-back" (none when the kill cut the journaling of
    // a rollback already made: its re-run finds the episode marker), and
    // every other one found the episode already rolled back.
    let mut rolled_back = vec![0; WORKLOADS];
    for (n, id) in &acked {
        let e = eventually_within(DEADLINE, || async {
            let e = second.event(*id).await;
            (!e["processed_at"].is_null()).then_some(e)
        })
        .await;
        let rollback: Vec<&str> = e["alerts"][0]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["action"] == "rollback")
            .map(|a| a["outcome"].as_str().unwrap())
            .collect();
        match rollback[..] {
            ["rolled-back"] => rolled_back[workload(*n)] += 1,
            ["already-rolled-back"] => {}
            _ => panic!("webhook {n} (journal id {id}): {e}"),
        }
    }
    assert!(rolled_back.iter().all(|&r| r <= 1), "{rolled_back:?}");
    // The cluster saw one rollback per workload, no more.
    for w in 0..WORKLOADS {
        let name = format!("svc{w}");
        assert_eq!(rollbacks(&fake, &name), 1, "{name}");
        assert_eq!(
            fake.workload(fakekube::WorkloadKind::Deployment, NS, &name)
                .image(),
            format!("{name}:good")
        );
    }
    assert!(
        done_at_kill < WORKLOADS,
        "the kill came before the last rollback"
    );
    eprintln!(
        "acknowledged before the kill: {before_kill}; workloads rolled back before it: \
         {done_at_kill}; journaled as rolled-back: {}",
        rolled_back.iter().sum::<usize>()
    );
    drop(second);
}
