//! `corral admin` against the real binary and a running node: roles, disabling, password
//! resets (changes a running node applies within its standing refresh), and backups and
//! restores of the database while the node runs or after it stopped.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use corral_protocol::limits::close;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::engine_tests;
use crate::support::node::corral;
use crate::support::{
    Engine, NodeProcess, TestApp, WAIT, WsClient, fresh_postgres_database, unique, upgrade_status,
    wait_until,
};

engine_tests!(
    account_changes_from_the_cli_reach_a_running_node,
    a_backup_is_taken_while_the_node_runs,
);

/// How often the test nodes re-read standings (the default is 5 s).
const REFRESH_MS: &str = "300";

/// The environment a node and the CLI share on `engine` (logins are not limited here: the
/// edge tests cover that).
async fn engine_env(engine: Engine) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("CORRAL_AUTH__STANDING_REFRESH_MS", REFRESH_MS),
        ("CORRAL_AUTH__LOGIN_PER_ACCOUNT_BURST", "1000"),
        ("CORRAL_AUTH__LOGIN_PER_IP_BURST", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if engine == Engine::Postgres {
        env.push((
            "CORRAL_DATABASE__URL".to_string(),
            fresh_postgres_database().await,
        ));
    }
    env
}

/// Runs `corral --data-dir DIR admin ARGS` with `env`, feeding `stdin`.
fn admin(dir: &Path, env: &[(String, String)], args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = corral()
        .arg("--data-dir")
        .arg(dir)
        .arg("admin")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corral admin");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("corral admin output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs an admin command that must succeed; returns its standard output.
fn admin_ok(dir: &Path, env: &[(String, String)], args: &[&str], stdin: &str) -> String {
    let out = admin(dir, env, args, stdin);
    assert!(
        out.status.success(),
        "corral admin {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs an admin command that must fail; returns its standard error.
fn admin_err(dir: &Path, env: &[(String, String)], args: &[&str]) -> String {
    let out = admin(dir, env, args, "");
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "corral admin {args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// A JSON HTTP client for one node.
struct Http {
    node: String,
    client: reqwest::Client,
}

impl Http {
    fn of(node: &NodeProcess) -> Http {
        // A fresh connection per request: between two requests a CLI command runs, long
        // enough on a loaded host for the node to close an idle kept-alive connection just as
        // the next request is written on it.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client");
        Http {
            node: node.url(""),
            client,
        }
    }

    async fn register(&self, name: &str, password: &str) {
        let resp = self
            .client
            .post(format!("{}/api/v1/auth/register", self.node))
            .json(&json!({"username": name, "password": password}))
            .send()
            .await
            .expect("register");
        assert_eq!(resp.status(), 201);
    }

    /// Logs in: (status, body).
    async fn login(&self, name: &str, password: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}/api/v1/auth/login", self.node))
            .json(&json!({"username": name, "password": password}))
            .send()
            .await
            .expect("login");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn token(&self, name: &str, password: &str) -> String {
        let (status, body) = self.login(name, password).await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// The status `GET /api/v1/me` answers `token` with.
    async fn me(&self, token: &str) -> u16 {
        self.client
            .get(format!("{}/api/v1/me", self.node))
            .bearer_auth(token)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    }
}

/// A name within the 32 characters usernames may have.
fn name(prefix: &str) -> String {
    unique(prefix).chars().take(32).collect()
}

async fn account_changes_from_the_cli_reach_a_running_node(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = engine_env(engine).await;
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let node = NodeProcess::start(dir.path(), &pairs).await;
    let http = Http::of(&node);
    let alice = name("alice");
    http.register(&alice, "correct-horse").await;
    let token = http.token(&alice, "correct-horse").await;
    assert_eq!(http.me(&token).await, 200);

    // Unknown users and roles are named in the error.
    let stderr = admin_err(dir.path(), &env, &["set-role", "nobody-here", "admin"]);
    assert!(stderr.contains("no user named `nobody-here`"), "{stderr}");
    let stderr = admin_err(dir.path(), &env, &["set-role", &alice, "overlord"]);
    assert!(
        stderr.contains("unknown role `overlord` (roles: user, merchant, admin)"),
        "{stderr}"
    );
    let stderr = admin_err(dir.path(), &env, &["set-role", &alice, "merchant"]);
    assert!(stderr.contains("no merchant profile"), "{stderr}");

    // Made an admin: the old token stops working on the running node; a new login is admin.
    let out = admin_ok(dir.path(), &env, &["set-role", &alice, "admin"], "");
    assert!(out.contains("role user -> admin"), "{out}");
    wait_until(
        "the node refuses the token issued before",
        WAIT,
        async || match http.me(&token).await {
            401 => Ok(()),
            other => Err(other),
        },
    )
    .await;
    let (status, body) = http.login(&alice, "correct-horse").await;
    assert_eq!((status, &body["role"]), (200, &json!("admin")), "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let id = body["user_id"].as_i64().expect("user_id");

    // Disabled (named by id): HTTP and WebSocket upgrades refuse its token, its socket is
    // closed, and it cannot log in.
    let mut ws = WsClient::connect(&node.ws_url(), Some(&token))
        .await
        .expect("connect while enabled");
    assert!(ws.is_open().await);
    let out = admin_ok(dir.path(), &env, &["disable", &id.to_string()], "");
    assert!(out.contains("enabled -> disabled"), "{out}");
    assert!(out.contains("within 300 ms"), "{out}");
    wait_until(
        "the node refuses the disabled account",
        WAIT,
        async || match http.me(&token).await {
            401 => Ok(()),
            other => Err(other),
        },
    )
    .await;
    let upgrade = WsClient::connect(&node.ws_url(), Some(&token)).await;
    assert_eq!(upgrade_status(&upgrade), Some(401));
    assert_eq!(ws.close_code().await, Some(close::POLICY));
    let (status, _) = http.login(&alice, "correct-horse").await;
    assert_eq!(status, 403, "a disabled account cannot log in");
    let out = admin_ok(dir.path(), &env, &["disable", &alice], "");
    assert!(out.contains("already disabled: nothing changed"), "{out}");

    // Enabled again: it logs in (its old tokens stay refused).
    admin_ok(dir.path(), &env, &["enable", &alice], "");
    let token = http.token(&alice, "correct-horse").await;
    assert_eq!(http.me(&token).await, 200);

    // A password from standard input: the old one and the tokens issued before stop working.
    let stderr = admin(dir.path(), &env, &["reset-password", &alice], "short\n");
    assert!(
        text(&stderr.stderr).contains("must be 8 to 128 characters"),
        "{}",
        text(&stderr.stderr)
    );
    admin_ok(
        dir.path(),
        &env,
        &["reset-password", &alice],
        "battery-staple\n",
    );
    assert_eq!(http.login(&alice, "correct-horse").await.0, 401);
    assert_eq!(http.login(&alice, "battery-staple").await.0, 200);
    wait_until(
        "the node refuses tokens from before the reset",
        WAIT,
        async || match http.me(&token).await {
            401 => Ok(()),
            other => Err(other),
        },
    )
    .await;
    let stderr = admin_err(dir.path(), &env, &["reset-password", &alice]);
    assert!(stderr.contains("no password on standard input"), "{stderr}");

    // A generated password is printed, and works.
    let out = admin_ok(
        dir.path(),
        &env,
        &["reset-password", &alice, "--generate"],
        "",
    );
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("new password for {alice}: ")))
        .unwrap_or_else(|| panic!("no generated password in {out}"));
    assert_eq!(http.login(&alice, generated).await.0, 200);
}

/// A SQLite data directory that holds no database yet is not mistaken for one with nobody in
/// it.
#[test]
fn account_commands_refuse_a_data_directory_without_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = admin_err(dir.path(), &[], &["disable", "alice"]);
    assert!(stderr.contains("no database at"), "{stderr}");
    assert!(
        !dir.path().join("corral.db").exists(),
        "nothing was created"
    );
}

async fn a_backup_is_taken_while_the_node_runs(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backups = tempfile::tempdir().expect("tempdir");
    let env = engine_env(engine).await;
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let node = NodeProcess::start(dir.path(), &pairs).await;
    let http = Http::of(&node);
    let before = name("before");
    http.register(&before, "correct-horse").await;
    let out_file = backups.path().join("corral.backup");
    let out_arg = out_file.to_string_lossy().into_owned();
    let out = admin_ok(dir.path(), &env, &["backup", &out_arg], "");
    let head = std::fs::read(&out_file).expect("the backup exists");
    match engine {
        Engine::Sqlite => {
            assert!(head.starts_with(b"SQLite format 3\0"), "a SQLite file");
            assert!(out.contains("backed up the SQLite database"), "{out}");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&out_file)
                    .expect("stat")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "it holds password hashes");
            }
        }
        Engine::Postgres => {
            assert!(head.starts_with(b"PGDMP"), "a pg_dump custom-format file");
            assert!(
                out.contains("ran pg_dump") && out.contains("pg_restore --clean"),
                "{out}"
            );
            // A restore is pg_restore's job, with every node stopped.
            let stderr = admin_err(dir.path(), &env, &["restore", &out_arg]);
            assert!(stderr.contains("pg_restore --clean"), "{stderr}");
            // Without pg_dump installed, the commands are printed and nothing is written.
            let bare = tempfile::tempdir().expect("tempdir");
            let mut no_tools = env.clone();
            no_tools.push(("PATH".into(), bare.path().to_string_lossy().into_owned()));
            let elsewhere = backups.path().join("other.backup");
            let stderr = admin_err(
                dir.path(),
                &no_tools,
                &["backup", &elsewhere.to_string_lossy()],
            );
            assert!(
                stderr.contains("pg_dump is not installed here")
                    && stderr.contains("pg_dump --format=custom")
                    && stderr.contains("pg_restore"),
                "{stderr}"
            );
            assert!(!elsewhere.exists());
        }
    }
    let stderr = admin_err(dir.path(), &env, &["backup", &out_arg]);
    assert!(stderr.contains("already exists"), "{stderr}");
}

/// A restore waits for the node to stop, refuses files that are not Corral databases, keeps
/// the replaced database, and the restarted node serves what the backup held.
#[actix_web::test]
async fn a_sqlite_restore_refuses_a_running_node_and_keeps_the_old_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backups = tempfile::tempdir().expect("tempdir");
    let env: Vec<(String, String)> = Vec::new();
    let mut node = NodeProcess::start(dir.path(), &[]).await;
    let http = Http::of(&node);
    let (before, after) = (name("before"), name("after"));
    http.register(&before, "correct-horse").await;
    let backup = backups.path().join("corral.backup");
    let backup_arg = backup.to_string_lossy().into_owned();
    admin_ok(dir.path(), &env, &["backup", &backup_arg], "");
    http.register(&after, "correct-horse").await;

    let stderr = admin_err(dir.path(), &env, &["restore", &backup_arg]);
    assert!(
        stderr.contains(&format!(
            "in use by another corral process (pid {})",
            node.pid()
        )),
        "{stderr}"
    );
    node.signal("TERM");
    node.wait_exit(Duration::from_secs(15))
        .await
        .expect("the node stopped");

    let junk = backups.path().join("notes.txt");
    std::fs::write(&junk, "not a database at all").expect("write");
    let stderr = admin_err(dir.path(), &env, &["restore", &junk.to_string_lossy()]);
    assert!(
        stderr.contains("is not a readable SQLite database"),
        "{stderr}"
    );
    let missing = backups.path().join("missing.db");
    let stderr = admin_err(dir.path(), &env, &["restore", &missing.to_string_lossy()]);
    assert!(stderr.contains("no database at"), "{stderr}");

    let out = admin_ok(dir.path(), &env, &["restore", &backup_arg], "");
    assert!(out.contains("restored"), "{out}");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("corral.db.replaced-") && !n.ends_with("-wal") && !n.ends_with("-shm")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the replaced database is kept: {kept:?}");
    assert!(out.contains(&kept[0]), "{out}");

    let node = NodeProcess::start(dir.path(), &[]).await;
    let http = Http::of(&node);
    assert_eq!(http.login(&before, "correct-horse").await.0, 200);
    assert_eq!(
        http.login(&after, "correct-horse").await.0,
        401,
        "registered after the backup"
    );
}

/// A SQLite file that is not Corral's (no migrations table) is refused before anything moves.
#[actix_web::test]
async fn a_restore_refuses_a_sqlite_file_that_is_not_corrals() {
    use sqlx::{ConnectOptions, Connection};
    let dir = tempfile::tempdir().expect("tempdir");
    let other = dir.path().join("other.db");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&other)
        .create_if_missing(true)
        .connect()
        .await
        .expect("create");
    sqlx::query("CREATE TABLE notes (body TEXT)")
        .execute(&mut conn)
        .await
        .expect("table");
    conn.close().await.expect("close");
    let data = dir.path().join("data");
    let stderr = admin_err(&data, &[], &["restore", &other.to_string_lossy()]);
    assert!(stderr.contains("is not a Corral database"), "{stderr}");
    assert!(!data.join("corral.db").exists(), "nothing was put in place");
}

/// In a cluster the change also travels the cluster bus: nodes that never re-read the
/// database (`auth.standing_refresh_ms = 0`) refuse the token all the same.
#[actix_web::test]
async fn in_a_cluster_a_change_reaches_every_node_over_the_bus() {
    let nodes = TestApp::cluster(2, |s| s.auth.standing_refresh_ms = 0).await;
    let (id, token) = nodes[0].user("carol").await;
    for node in &nodes {
        assert_eq!(node.get("/api/v1/me", Some(&token)).await.0, 200);
    }
    let settings = &nodes[0].state.settings;
    let env: Vec<(String, String)> = [
        (
            "CORRAL_DATABASE__URL",
            settings.database.url.expose_secret(),
        ),
        ("CORRAL_REDIS__URL", settings.redis.url.expose_secret()),
        (
            "CORRAL_REDIS__KEY_PREFIX",
            settings.redis.key_prefix.as_str(),
        ),
        ("CORRAL_AUTH__STANDING_REFRESH_MS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = admin_ok(dir.path(), &env, &["disable", &id.to_string()], "");
    assert!(
        out.contains("told 2 running node(s) over the cluster bus"),
        "{out}"
    );
    for node in &nodes {
        wait_until(
            "every node refuses the disabled account",
            WAIT,
            async || match node.get("/api/v1/me", Some(&token)).await.0 {
                401 => Ok(()),
                other => Err(other),
            },
        )
        .await;
    }
}
