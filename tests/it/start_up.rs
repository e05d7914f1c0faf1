//! What a new operator sees when the real binary starts, or fails to: no false alarms on a
//! healthy single node, profiles that work from any directory, and failures that name what
//! failed, where, and the setting to change — each cause said once.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::NodeProcess;
use crate::support::node::{Launch, Output, corral, free_port};

/// Runs `command` to its end: (success, stdout and stderr together).
fn run(command: &mut Command) -> (bool, String) {
    let out = command.output().expect("run corral");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("panicked"), "{text}");
    (out.status.success(), text)
}

/// A single node has no cluster bus, so nothing may report one closing (the warning stays for
/// a real bus that closes).
#[actix_web::test]
async fn a_single_node_start_logs_no_cluster_bus_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let launch = Launch {
        output: Output::Captured,
        ..Launch::default()
    };
    let mut node = NodeProcess::start_with(dir.path(), launch).await;
    let status = node.terminate().await;
    let logs = node.captured();
    assert!(status.success(), "{logs}");
    assert!(!logs.contains("cluster bus closed"), "{logs}");
}

/// `CORRAL_PROFILE=cluster` is built in: it works from a directory with no `config/` in it,
/// a `config/cluster.toml` there is layered over it, and an unknown name says what exists.
#[test]
fn profiles_do_not_depend_on_the_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let migrate = |profile: &str| {
        let mut command = corral();
        command
            .arg("migrate")
            .arg("--data-dir")
            .arg(&data)
            .env("CORRAL_PROFILE", profile)
            .current_dir(dir.path());
        command
    };
    let (ok, text) = run(&mut migrate("cluster"));
    assert!(ok, "{text}");
    assert!(data.join("corral.db").exists());

    let (ok, text) = run(&mut migrate("staging"));
    assert!(!ok);
    assert!(
        text.contains("CORRAL_PROFILE=staging")
            && text.contains("built in: cluster")
            && text.contains(&dir.path().join("config/staging.toml").display().to_string()),
        "{text}"
    );

    std::fs::create_dir(dir.path().join("config")).expect("mkdir");
    std::fs::write(
        dir.path().join("config/cluster.toml"),
        "[server]\nno_such_key = 1\n",
    )
    .expect("write");
    let (ok, text) = run(&mut migrate("cluster"));
    assert!(
        !ok && text.contains("no_such_key"),
        "the file is read: {text}"
    );
}

/// Nobody listens on the database's port: the start fails at once (not after the pool's
/// 10 s), naming the address, the OS's answer and the setting.
#[test]
fn a_refused_postgres_connection_fails_fast_and_says_where() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let started = Instant::now();
    let (ok, text) = run(corral()
        .arg("migrate")
        .arg("--data-dir")
        .arg(dir.path())
        .env(
            "CORRAL_DATABASE__URL",
            format!("postgres://postgres@127.0.0.1:{port}/corral"),
        ));
    assert!(!ok);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        text.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}"))
            && text.contains("Connection refused")
            && text.contains("CORRAL_DATABASE__URL"),
        "{text}"
    );
    assert!(!text.contains("pool timed out"), "{text}");
}

/// A taken port names the address and where to change it, and the OS's words come once.
#[test]
fn a_taken_port_names_the_address_and_the_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = holder.local_addr().expect("addr");
    let (ok, text) = run(corral()
        .arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(dir.path()));
    assert!(!ok);
    assert!(
        text.contains(&format!("cannot listen on {addr}"))
            && text.contains("server.listen")
            && text.contains("--listen"),
        "{text}"
    );
    assert_eq!(
        text.matches("Address already in use").count(),
        1,
        "each cause once: {text}"
    );
}
