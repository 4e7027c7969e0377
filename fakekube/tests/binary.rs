//! The `fakekube` binary: announces its address, writes a kubeconfig,
//! serves the seed, and stops on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn binary_serves_the_seed_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let seed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/shop-web-before-undo.json"
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fakekube"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--seed", seed])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line))
        .await
        .expect("fakekube announces its address")
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening addr=")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();

    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        config.contains(&format!("server: http://{addr}")),
        "{config}"
    );
    assert!(config.contains("namespace: default"));

    let d: serde_json::Value = reqwest::get(format!(
        "http://{addr}/apis/apps/v1/namespaces/shop/deployments/web"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(d["metadata"]["resourceVersion"], "119");

    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("fakekube stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn bad_arguments_are_refused_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_fakekube"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("usage: fakekube"), "{err}");
}
