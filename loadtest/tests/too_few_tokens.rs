//! The real command with a tokens file too short for the scenario: one clear error, before
//! any worker starts or anything is created on the server, saying how many accounts there
//! are, how many are needed, and the command that makes more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn too_few_tokens_fail_once_before_any_worker_starts() {
    let dir = tempfile::tempdir().unwrap();
    let accounts: Vec<_> = (0..3)
        .map(|i| serde_json::json!({"id": i, "username": format!("u{i}"), "token": "t"}))
        .collect();
    std::fs::write(
        dir.path().join("tokens.json"),
        serde_json::to_vec(&accounts).unwrap(),
    )
    .unwrap();
    // Nothing listens on port 1: a run that got as far as provisioning or connecting would
    // fail differently.
    let scenario = r#"
        name = "short"
        kind = "chat-storm"
        target = "ws://127.0.0.1:1/ws"
        tokens = "tokens.json"
        workers = 4
        max_seconds = 30
        [connect]
        clients = 10
        [broadcast]
        publishers = 1
        rate_per_sec = 1
        seconds = 1
    "#;
    let file = dir.path().join("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_corral-loadtest"))
        .args(["run", file.to_str().unwrap(), "--out"])
        .arg(dir.path().join("out"))
        .output()
        .expect("run corral-loadtest");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line, got: {stderr}");
    assert!(lines[0].contains("3 accounts for 10 clients"), "{stderr}");
    assert!(
        lines[0].contains("corral admin seed-users --count 10 --out"),
        "{stderr}"
    );
    assert!(!stderr.contains("worker"), "{stderr}");
    assert!(!dir.path().join("out").exists());
}
