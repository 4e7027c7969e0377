//! Leader election in process: start-up refusals, and a follower that keeps
//! what the leader will not take.

mod common;

use common::*;
use fakekube::FakeKube;
use rollbackd::app::{AppState, Cluster, Server, StartError};
use rollbackd::config::{LeaderElection, Secret};
use rollbackd::journal::JournalOptions;

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
    adjust: impl FnOnce(&mut rollbackd::config::Settings),
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
