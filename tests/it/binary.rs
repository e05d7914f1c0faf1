//! The real `corral` binary: `--help`, `migrate`, and graceful shutdown on SIGTERM.

use std::time::Duration;

use corral_protocol::limits::close;
use serde_json::json;

use crate::support::NodeProcess;
use crate::support::node::corral;
use crate::support::{WsClient, unique};

#[test]
fn help_lists_the_commands() {
    let out = corral().arg("--help").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["serve", "migrate", "--config", "--listen", "--data-dir"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
}

#[test]
fn migrate_creates_the_embedded_database_and_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = corral()
        .arg("migrate")
        .arg("--data-dir")
        .arg(dir.path())
        .status()
        .expect("run");
    assert!(status.success());
    assert!(dir.path().join("corral.db").exists());
}

/// A misspelt config key stops the binary with a message naming it (exit code 1, no panic),
/// instead of being silently ignored.
#[test]
fn a_bad_config_key_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = corral()
        .arg("migrate")
        .arg("--data-dir")
        .arg(dir.path())
        .env("CORRAL_SERVER__NO_SUCH_KEY", "1")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("no_such_key"),
        "the error names the key: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !dir.path().join("corral.db").exists(),
        "nothing was migrated"
    );
}

#[actix_web::test]
async fn sigterm_drains_clients_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = NodeProcess::start(dir.path(), &[("CORRAL_SERVER__DRAIN_MS", "800")]).await;
    let http = reqwest::Client::new();
    let creds = json!({"username": unique("sig").chars().take(20).collect::<String>(), "password": "correct-horse"});
    http.post(node.url("/api/v1/auth/register"))
        .json(&creds)
        .send()
        .await
        .expect("register");
    let login: serde_json::Value = http
        .post(node.url("/api/v1/auth/login"))
        .json(&creds)
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["token"].as_str().expect("token").to_string();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut ws = WsClient::connect(&node.ws_url(), Some(&token))
            .await
            .expect("connect");
        assert!(ws.is_open().await);
        clients.push(ws);
    }
    node.signal("TERM");
    for ws in &mut clients {
        assert!(ws.next_event("server.going_away").await.is_some());
        assert_eq!(ws.close_code().await, Some(close::GOING_AWAY));
    }
    let status = node
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("exited");
    assert!(status.success(), "exit status {status:?}");
}
