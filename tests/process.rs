//! Tests of the real binary as a process: crash recovery and secrets.

mod common;

use common::proc::{auth_env, spawn};
use common::{eventually, FIRING, OPERATOR_TOKEN, WEBHOOK_TOKEN};
use serde_json::Value;
use std::time::Duration;

use tokio::process::Command;

#[tokio::test]
async fn webhook_acknowledged_before_a_kill_is_processed_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Intake only: the process acknowledges and journals, and is killed
    // before any processing, deterministically.
    let mut first = spawn(dir.path(), &["--intake-only"], &auth_env()).await;
    let resp = first.post(&format!("Bearer {WEBHOOK_TOKEN}"), FIRING).await;
    assert_eq!(resp.status().as_u16(), 200);
    let id = resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert!(first.event(id).await["processed_at"].is_null());
    first.child.kill().await.unwrap(); // SIGKILL: no shutdown code runs.

    let second = spawn(dir.path(), &[], &auth_env()).await;
    let event = eventually(|| async {
        let e = second.event(id).await;
        (!e["processed_at"].is_null()).then_some(e)
    })
    .await;
    let kinds: Vec<&str> = event["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["decision"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["rollback", "notify", "rollback", "rollback-after"]);
    // Processed exactly once: one action per acting alert, no duplicates.
    let actions: usize = event["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["actions"].as_array().unwrap().len())
        .sum();
    assert_eq!(actions, 4);
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "basic-secret-pw\n").unwrap();
    let mut env = auth_env();
    env.push(("ROLLBACKD_WEBHOOK_USER", "alertmanager"));
    let pw = password_file.display().to_string();
    env.push(("ROLLBACKD_WEBHOOK_PASSWORD_FILE", &pw));
    let mut p = spawn(dir.path(), &[], &env).await;
    assert_eq!(
        p.post(&format!("Bearer {WEBHOOK_TOKEN}"), FIRING)
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        p.post("Bearer wrong-token-guess", FIRING)
            .await
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        p.post(&format!("Bearer {OPERATOR_TOKEN}"), b"{")
            .await
            .status()
            .as_u16(),
        401
    );
    // Wait for the worker's log of the processed webhook, then stop.
    eventually(|| async { (!p.event(1).await["processed_at"].is_null()).then_some(()) }).await;
    p.child.kill().await.unwrap();
    let log = p.log.lock().unwrap().join("\n");
    assert!(
        log.contains("alert decided for rollback"),
        "the log has content: {log}"
    );
    // The two refusals: one WARN (rate-limited), without the credentials.
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request refused: bad credentials"))
        .collect();
    assert_eq!(refused.len(), 1, "{log}");
    assert!(
        refused[0].contains("WARN") && refused[0].contains("api=webhook"),
        "{}",
        refused[0]
    );
    for secret in [
        WEBHOOK_TOKEN,
        OPERATOR_TOKEN,
        "basic-secret-pw",
        "wrong-token-guess",
    ] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
}

#[tokio::test]
async fn bad_configuration_is_a_clear_cli_error_without_the_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .args([
            "serve",
            "--webhook-token",
            "tok-in-argv",
            "--webhook-token-file",
            "/nonexistent",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "error: webhook token is given both as a value and as a file; give one\n"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .args(["serve", "--listen=127.0.0.1:0"])
        .env_remove("ROLLBACKD_WEBHOOK_TOKEN")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("no webhook credentials configured"));
}

/// An empty secret used to start a server that accepted `Authorization:
/// Bearer ` with no token. Each empty source refuses to start, naming it.
#[tokio::test]
async fn an_empty_secret_refuses_to_start_naming_the_variable_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("token");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.to_str().unwrap();
    let cases: [(&[(&str, &str)], String); 4] = [
        (
            &[("ROLLBACKD_WEBHOOK_TOKEN", "")],
            "webhook token is empty (ROLLBACKD_WEBHOOK_TOKEN".into(),
        ),
        (
            &[("ROLLBACKD_WEBHOOK_TOKEN_FILE", empty)],
            format!("webhook token file {empty} is empty"),
        ),
        (
            &[
                ("ROLLBACKD_WEBHOOK_USER", ""),
                ("ROLLBACKD_WEBHOOK_PASSWORD", ""),
            ],
            "is empty (ROLLBACKD_WEBHOOK_".into(),
        ),
        (
            &[
                ("ROLLBACKD_WEBHOOK_TOKEN", "same"),
                ("ROLLBACKD_OPERATOR_TOKEN", "same"),
            ],
            "the webhook token equals the operator token".into(),
        ),
    ];
    for (env, expected) in cases {
        let run = Command::new(env!("CARGO_BIN_EXE_rollbackd"))
            .args(["serve", "--listen=127.0.0.1:0"])
            .env_remove("ROLLBACKD_WEBHOOK_TOKEN")
            .env_remove("ROLLBACKD_OPERATOR_TOKEN")
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .kill_on_drop(true)
            .output();
        // Before the fix the server started and served: bound the wait.
        let out = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .unwrap_or_else(|_| panic!("{env:?}: serve started instead of refusing"))
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{env:?} started: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(&expected), "{env:?}: {err}");
    }
}

#[tokio::test]
async fn a_bad_rules_file_is_refused_at_start_up_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let bad = rules.join("10-matrix.yaml");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rules/unknown-decision.yaml"
        ),
        &bad,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollbackd"))
        .arg("serve")
        .arg("--listen=127.0.0.1:0")
        .arg(format!("--rules={}", rules.display()))
        .arg(format!("--journal={}", dir.path().join("j.db").display()))
        .env("ROLLBACKD_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.ends_with(&format!(
            "error: {}:5: rule \"service-down\": unknown decision \"rollbak\" (expected one of rollback, rollback-after, notify, ignore)\n",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(
        !dir.path().join("j.db").exists(),
        "nothing started: no journal created"
    );
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_with_exit_code_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path(), &[], &auth_env()).await;
    assert_eq!(
        p.post(&format!("Bearer {WEBHOOK_TOKEN}"), FIRING)
            .await
            .status()
            .as_u16(),
        200
    );
    p.terminate().await;
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), p.child.wait())
        .await
        .expect("rollbackd exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    let log = p.log.lock().unwrap().join("\n");
    assert!(log.contains("shutting down"), "{log}");
}

/// `rollbackd check --rules DIR` was a usage error while `check DIR`
/// worked; both work now, as with `explain --rules`, and both at once is a
/// usage error naming the conflict.
#[tokio::test]
async fn check_takes_the_rules_folder_positionally_or_as_rules() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let run = |args: Vec<&'static str>| async move {
        Command::new(env!("CARGO_BIN_EXE_rollbackd"))
            .args(args)
            .output()
            .await
            .unwrap()
    };
    let positional = run(vec!["check", rules]).await;
    let flag = run(vec!["check", "--rules", rules]).await;
    assert_eq!(positional.status.code(), Some(0));
    assert_eq!(
        flag.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&flag.stderr)
    );
    assert_eq!(flag.stdout, positional.stdout);
    assert!(String::from_utf8_lossy(&flag.stdout).contains("service-down"));
    let both = run(vec!["check", rules, "--rules", rules]).await;
    assert_eq!(both.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
}
