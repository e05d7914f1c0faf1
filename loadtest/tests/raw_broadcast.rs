//! The real command, end to end: `corral-loadtest run` with two worker processes and two
//! source addresses drives the bare broadcast peer, and its result file says every client
//! got every message once and in order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Peer(std::process::Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the broadcast peer on a free port and returns it with its address.
fn peer() -> (Peer, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_broadcast-peer"))
        .arg("127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start broadcast-peer");
    let mut line = String::new();
    BufReader::new(child.stderr.take().expect("stderr"))
        .read_line(&mut line)
        .expect("peer banner");
    let addr = line.trim().rsplit(' ').next().expect("address").to_string();
    (Peer(child), addr)
}

fn run(scenario: &str, out: &std::path::Path) -> (i32, serde_json::Value) {
    let file = out.join("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_corral-loadtest"))
        .args(["run", file.to_str().unwrap(), "--quiet", "--out"])
        .arg(out)
        .status()
        .expect("run corral-loadtest");
    let result = std::fs::read_to_string(out.join("result.json")).unwrap_or_default();
    (
        status.code().unwrap_or(-1),
        serde_json::from_str(&result).unwrap_or_default(),
    )
}

#[test]
fn drives_a_broadcast_server_with_two_worker_processes() {
    let (_peer, addr) = peer();
    let out = tempfile::tempdir().unwrap();
    let scenario = format!(
        r#"
        name = "ci-raw"
        kind = "raw-broadcast"
        target = "ws://{addr}/"
        workers = 2
        source_addrs = 2
        max_seconds = 60
        [connect]
        clients = 200
        ramp_per_sec = 2000
        [broadcast]
        publishers = 2
        rate_per_sec = 5
        seconds = 2
        drain_seconds = 1
        "#
    );
    let (code, result) = run(&scenario, out.path());
    assert_eq!(code, 0, "{result:#}");
    assert_eq!(result["connected"], 200);
    assert_eq!(result["passed"], true);
    // 2 publishers x 5/s x 2 s = 20 messages, each to all 200 clients.
    assert_eq!(result["counters"]["sends"], 20);
    assert_eq!(result["counters"]["deliveries"], 4000);
    assert_eq!(result["latency"]["delivery"]["count"], 4000);
    assert_eq!(result["latency"]["connect"]["count"], 200);
    assert!(result["timelines"]["deliveries"].as_array().is_some());
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("delivery"));
    assert!(!html.contains("http://") || !html.contains("<script src"));
}

#[test]
fn refuses_a_non_loopback_target() {
    let out = tempfile::tempdir().unwrap();
    let scenario = r#"
        name = "remote"
        kind = "raw-broadcast"
        target = "ws://192.0.2.1:9001/"
        max_seconds = 5
        [connect]
        clients = 1
        [broadcast]
        publishers = 1
        rate_per_sec = 1
        seconds = 1
    "#;
    let (code, result) = run(scenario, out.path());
    assert_eq!(code, 2);
    assert_eq!(result, serde_json::Value::Null);
}
