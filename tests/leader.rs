//! Leader election in process: start-up refusals, and a follower that keeps
//! what the leader will not take.

mod common;

use common::*;
use fakekube::FakeKube;
use rollbackd::adapters::cluster::Cluster;
use rollbackd::adapters::journal::JournalOptions;
use rollbackd::adapters::lease::LeaderElection;
use rollbackd::core::secret::Secret;
use rollbackd::service::server::Server;
use rollbackd::service::state::{AppState, StartError};

fn election(identity: &str) -> LeaderElection {
    LeaderElection {
        lease_name: "rollbackd".into(),
        namespace: Some("ops".into()),
        lease_duration: 15,
        renew_grace: 5,
        identity: identity.into(),
        advertise_address: None,
    }
}

async fn start_error(
    adjust: impl FnOnce(&mut rollbackd::service::config::Settings),
    cluster: Cluster,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    adjust(&mut s);
    let state = AppState::build(
        s,
        TestClock::at("2026-11-22T12:50:45Z"),
        JournalOptions::default(),
        cluster,
    )
    .unwrap();
    match Server::start(state).await {
        Ok(_) => panic!("started"),
        Err(e) => {
            assert!(matches!(
                e,
                StartError::Election(_) | StartError::NoAdvertiseAddress(_)
            ));
            e.to_string()
        }
    }
}

#[tokio::test]
async fn leader_election_without_a_cluster_or_a_reachable_address_does_not_start() {
    let err = start_error(
        |s| s.leader_election = Some(election("a")),
        Cluster::Unavailable("no Kubernetes configuration: none found".into()),
    )
    .await;
    assert_eq!(
        err,
        "leader election needs the Kubernetes API: no Kubernetes configuration: none found"
    );

    let fake = FakeKube::start().await;
    let err = start_error(
        |s| {
            s.listen = "0.0.0.0:0".parse().unwrap();
            s.leader_election = Some(election("a"));
        },
        Cluster::at_url(&fake.url()),
    )
    .await;
    assert!(
        err.starts_with("leader election: set ROLLBACKD_ADVERTISE_ADDRESS (pod IP:port); the listen address 0.0.0.0:"),
        "{err}"
    );
    // Nothing was written to the cluster: no Lease taken.
    assert!(fake.writes().is_empty());
}

#[tokio::test]
async fn a_follower_keeps_the_webhooks_the_leader_refuses() {
    let fake = FakeKube::start().await;
    let leader = TestServer::start_full(
        |s| s.leader_election = Some(election("leader")),
        JournalOptions::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;
    eventually(|| async {
        let (_, ready) = leader.get_open_json("/readyz").await;
        (ready["role"] == "leader").then_some(())
    })
    .await;
    // The follower was given another webhook token than the leader's: what
    // it hands over is refused (401), so it must keep it.
    let follower = TestServer::start_full(
        |s| {
            s.leader_election = Some(election("follower"));
            s.webhook_auth.bearer = Some(Secret::new("follower-only-token"));
            s.webhook_auth.basic = None;
        },
        JournalOptions::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;
    let (_, ready) = follower.get_open_json("/readyz").await;
    assert_eq!(ready["role"], "follower");
    let resp = follower
        .client
        .post(format!("{}/webhook", follower.url))
        .bearer_auth("follower-only-token")
        .header("content-type", "application/json")
        .body(FIRING.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let id = resp.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    // The leader saw the hand-over and refused it ...
    eventually(|| async {
        leader
            .metrics()
            .await
            .lines()
            .any(|l| {
                l.starts_with("rollbackd_webhooks_total{outcome=\"unauthorized\",code=\"401\"} ")
            })
            .then_some(())
    })
    .await;
    // ... so the webhook is still the follower's, unprocessed, and nothing
    // reached the workloads.
    let (_, event) = follower.get_json(&format!("/api/v1/events/{id}")).await;
    assert!(event["processed_at"].is_null(), "{event}");
    assert!(fake
        .writes()
        .iter()
        .all(|w| w.resource.as_deref() == Some("leases")));
    follower.stop().await;
    leader.stop().await;
}

/// The events of a server's journal, newest first.
async fn events(server: &TestServer) -> Vec<serde_json::Value> {
    let (_, page) = server.get_json("/api/v1/events?limit=500").await;
    page["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_leading_hands_its_holds_over() {
    let fake = FakeKube::start().await;
    let short = |identity: &str| LeaderElection {
        lease_duration: 2,
        renew_grace: 1,
        ..election(identity)
    };
    let a = TestServer::start_full(
        |s| s.leader_election = Some(short("a")),
        JournalOptions::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;
    eventually(|| async {
        let (_, ready) = a.get_open_json("/readyz").await;
        (ready["role"] == "leader").then_some(())
    })
    .await;
    let b = TestServer::start_full(
        |s| s.leader_election = Some(short("b")),
        JournalOptions::default(),
        Cluster::at_url(&fake.url()),
    )
    .await;
    // The real firing group: SlowCheckout (medium) is held by the leader.
    let id = a
        .post_webhook(FIRING)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let event = a.processed_event(id).await;
    assert_eq!(actions(&event, 3), ["hold:waiting"]);
    // And a dry-run hold (as a dry-run replay leaves): never handed over.
    let n = rollbackd::core::parse::parse_notification(FIRING).unwrap();
    let now = jiff::Timestamp::now();
    let decision = rollbackd::core::decide::decide(&a.state.rules, &n.alerts[3], now);
    a.state
        .journal
        .hold_start(rollbackd::adapters::journal::NewHold {
            episode: "dry-run-replay@2026-11-22T12:51:11.011Z".into(),
            webhook_id: id,
            index: 1,
            due_at: now,
            decision,
            dry_run: true,
            now,
        })
        .await
        .unwrap();

    // b takes the Lease (as after a partition); a notices at its next
    // renewal and becomes a follower.
    let mut lease = fake.get("leases", "ops", "rollbackd").unwrap();
    let b_holder = format!("b@{}", b.url.trim_start_matches("http://"));
    lease["spec"]["holderIdentity"] = b_holder.clone().into();
    lease["spec"]["renewTime"] = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
        .into();
    fake.replace(lease).unwrap();
    let long = std::time::Duration::from_secs(30);
    eventually_within(long, || async {
        let (_, ra) = a.get_open_json("/readyz").await;
        let (_, rb) = b.get_open_json("/readyz").await;
        (ra["role"] == "follower" && rb["role"] == "leader").then_some(())
    })
    .await;

    // a hands the held alert's webhook to b, which holds it anew.
    let event = eventually_within(long, || async {
        let (_, e) = a.get_json(&format!("/api/v1/events/{id}")).await;
        (actions(&e, 3).len() == 2).then_some(e)
    })
    .await;
    assert_eq!(actions(&event, 3), ["hold:waiting", "hold:handed-over"]);
    let detail = event["alerts"][3]["actions"][1]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("this replica no longer leads: handed to the leader b (its webhook 1)"),
        "{detail}"
    );
    assert_eq!(actions(&event, 1), ["notify:planned", "hold:dropped"]);
    let at_b = eventually_within(long, || async {
        let list = events(&b).await;
        (list.len() == 1 && !list[0]["processed_at"].is_null()).then(|| list[0].clone())
    })
    .await;
    let (_, at_b) = b.get_json(&format!("/api/v1/events/{}", at_b["id"])).await;
    assert_eq!(actions(&at_b, 3), ["hold:waiting"]);
    b.stop().await;
    a.stop().await;
}
