//! What operators see: `/metrics` against the metric catalogue, the Grafana dashboard and the
//! alert rules in `deploy/` (checked with `promtool`), and the access log of the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use corral_actors::metric_catalogue::{self, Kind};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::claims::{Promo, seed};
use crate::support::node::{Launch, Output};
use crate::support::{NodeProcess, TestApp, WAIT, WsClient, upgrade_status, wait_until};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `promtool` binary. Missing, the test fails naming the fix: a skipped check is no pass.
fn promtool() -> &'static str {
    match Command::new("promtool").arg("--version").output() {
        Ok(out) if out.status.success() => "promtool",
        other => panic!(
            "promtool is needed to check /metrics and deploy/prometheus: install Debian's \
             `prometheus` package (`apt-get install prometheus`; .ci/run does): {other:?}"
        ),
    }
}

/// Runs promtool with `args` (in `dir`), feeding it `stdin`; fails with its output.
fn run_promtool(dir: &Path, args: &[&str], stdin: &str) {
    let mut child = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Metric names a PromQL expression selects: identifiers that are not functions, aggregation
/// operators, keywords, label names (in `{}` or in `by (...)`-like lists), numbers, durations
/// or Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const WORDS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
    ];
    const LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_list => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_list = false;
                i += 1;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if LISTS.contains(&word.as_str()) {
                    skip_list = true;
                } else if next != Some(&'(') && !WORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn the_promql_reader_finds_metric_names_only() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (instance, le) (rate(a_seconds_bucket{op="claim", x=~"y|z"}[5m]))) > 0.25
           and on (instance) sum without (kind) (increase(b_total{instance=~"$instance"}[$__rate_interval])) / c 1e3"#,
    );
    let want: BTreeSet<String> = ["a_seconds_bucket", "b_total", "c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, want);
}

/// Every `expr` in the Grafana dashboard.
fn dashboard_exprs() -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let path = repo().join("deploy/grafana/corral-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut exprs = Vec::new();
    walk(&dashboard, &mut exprs);
    assert!(exprs.len() > 20, "{} queries in {path:?}", exprs.len());
    exprs
}

/// Every `expr:` of the alert rules (one line, or a `|` / `>` block).
fn alert_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("deploy/prometheus/corral-alerts.yml"))
        .expect("alert rules");
    let lines: Vec<&str> = text.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((indent, rest)) = line.split_once("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| {
                    l.trim().is_empty() || l.len() - l.trim_start().len() > indent.len()
                })
                .copied()
                .collect();
            exprs.push(block.join("\n"));
        } else {
            exprs.push(rest.to_string());
        }
    }
    assert!(exprs.len() > 10, "{} alert expressions", exprs.len());
    exprs
}

/// Series made by Prometheus itself, not by a node.
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// `/metrics` parsed: every sample's name with its label names, and the `# TYPE` and `# HELP`
/// lines' names.
struct Scrape {
    samples: BTreeMap<String, BTreeSet<BTreeSet<String>>>,
    types: BTreeMap<String, String>,
    helps: BTreeSet<String>,
}

fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape {
        samples: BTreeMap::new(),
        types: BTreeMap::new(),
        helps: BTreeSet::new(),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                scrape.types.insert(name.into(), kind.into());
            }
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, _)) = rest.split_once(' ') {
                scrape.helps.insert(name.into());
            }
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = line[..end].to_string();
            let mut labels = BTreeSet::new();
            if line[end..].starts_with('{') {
                // Label values here never contain `",`: route patterns, words, numbers.
                let inner = &line[end + 1..line.rfind('}').unwrap_or(line.len())];
                for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                    if let Some((label, _)) = pair.split_once('=') {
                        labels.insert(label.trim().to_string());
                    }
                }
            }
            scrape.samples.entry(name).or_default().insert(labels);
        }
    }
    scrape
}

async fn scrape(app: &TestApp) -> String {
    let (status, body) = app.get("/metrics", None).await;
    assert_eq!(status, 200);
    body.as_str().expect("metrics text").to_string()
}

/// Traffic through two nodes of a cluster so that every series the dashboard and the alert
/// rules query exists: HTTP, an origin refusal, a failed auth, a throttled login, chat, a feed
/// post, a claim with a watcher (stock push, durable hold, a push to the other node).
async fn exercise(apps: &[TestApp]) {
    let (a, b) = (&apps[0], &apps[1]);
    let (_, alice) = a.user("obs_a").await;
    let mut ws = a.client(Some(&alice)).await;
    let mut other = b.client(Some(&alice)).await;

    let mut evil = a.ws_url().into_client_request().expect("request");
    evil.headers_mut()
        .insert("origin", "http://evil.example".parse().expect("header"));
    let refused = tokio_tungstenite::connect_async(evil).await;
    assert_eq!(upgrade_status(&refused), Some(403));
    let mut stranger = a.client(None).await;
    assert!(
        stranger
            .request("auth", json!({"token": "not-a-token"}))
            .await
            .is_err()
    );
    let creds = json!({"username": "obs_nobody", "password": "wrong-password"});
    let mut throttled = false;
    for _ in 0..3 {
        let (status, _) = a.post("/api/v1/auth/login", None, creds.clone()).await;
        throttled |= status == 429;
    }
    assert!(throttled, "a burst of one login per account is throttled");

    let (status, body) = a
        .post(
            "/api/v1/rooms",
            Some(&alice),
            json!({"name": "observed", "private": false}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let room = body["room_id"].clone();
    ws.request("room.join", json!({"room": room}))
        .await
        .expect("join");
    ws.request(
        "room.send",
        json!({"room": room, "text": "hello", "client_msg_id": "obs-1"}),
    )
    .await
    .expect("send");
    ws.request("feed.post", json!({"text": "observed"}))
        .await
        .expect("post");

    let (activity, items, _) = seed(a, &Promo::open(2)).await;
    ws.request("activity.subscribe", json!({"activity": activity}))
        .await
        .expect("subscribe");
    let held = ws
        .request(
            "claim",
            json!({"activity": activity, "item": items[0], "key": "obs-claim"}),
        )
        .await
        .expect("claim");
    assert_eq!(held["status"], "held");
    // The hold reaches Alice's device on the other node through the cluster bus.
    other
        .next_event("claim.updated")
        .await
        .expect("claim.updated on the other node");
}

#[actix_web::test]
async fn every_metric_the_dashboard_and_the_alerts_query_is_exported_and_described() {
    promtool();
    let apps = TestApp::cluster(2, |s| {
        s.auth.login_per_account_burst = 1.0;
        s.auth.login_per_account_per_min = 0.1;
        // The lag probe on, far from shedding: its histogram is on the dashboard.
        s.overload.enabled = true;
        s.overload.shed_low_lag_ms = 60_000;
        s.overload.shed_medium_lag_ms = 60_000;
        s.overload.shed_high_lag_ms = 60_000;
    })
    .await;
    exercise(&apps).await;

    let mut wanted: BTreeMap<String, &str> = BTreeMap::new();
    for expr in dashboard_exprs() {
        for name in metric_names(&expr) {
            wanted.insert(name, "deploy/grafana/corral-dashboard.json");
        }
    }
    for expr in alert_exprs() {
        for name in metric_names(&expr) {
            wanted.insert(name, "deploy/prometheus/corral-alerts.yml");
        }
    }
    for name in PROMETHEUS_SERIES {
        wanted.remove(*name);
    }
    // Some series come from pushes still on their way (the stock frame, the cluster event).
    let text = wait_until("every queried series is exported", WAIT, async || {
        let text = scrape(&apps[0]).await;
        let samples = parse(&text).samples;
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(name, _)| !samples.contains_key(*name))
            .collect();
        if missing.is_empty() {
            Ok(text)
        } else {
            Err(format!("not in /metrics: {missing:?}"))
        }
    })
    .await;
    let scrape = parse(&text);

    let undescribed: Vec<_> = scrape
        .types
        .keys()
        .filter(|name| !scrape.helps.contains(*name))
        .collect();
    assert!(
        undescribed.is_empty(),
        "# TYPE without # HELP: {undescribed:?}"
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
    ] {
        assert!(scrape.types.contains_key(name), "{name} missing");
    }

    // Each exported Corral metric is in the catalogue, with its kind and its labels.
    let catalogue: BTreeMap<&str, _> = metric_catalogue::ALL.iter().map(|m| (m.name, m)).collect();
    for (name, kind) in scrape
        .types
        .iter()
        .filter(|(n, _)| n.starts_with("corral_"))
    {
        let declared = catalogue
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} is exported but not in the metric catalogue"));
        let want_kind = match declared.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        assert_eq!(kind, want_kind, "{name}");
        let labels: BTreeSet<String> = declared.labels.iter().map(|l| l.to_string()).collect();
        for (sample, sets) in scrape.samples.iter().filter(|(s, _)| {
            s.strip_prefix(name.as_str())
                .is_some_and(|rest| ["", "_bucket", "_sum", "_count"].contains(&rest))
        }) {
            for set in sets {
                let mut set = set.clone();
                set.remove("le");
                assert_eq!(set, labels, "{sample}: labels as declared in the catalogue");
            }
        }
    }
    // The HTTP series are labelled by route pattern, never by raw path.
    assert!(
        text.contains(r#"route="/api/v1/auth/login""#) && text.contains(r#"route="/ws""#),
        "HTTP routes by pattern"
    );

    let dir = repo().join("deploy/prometheus");
    run_promtool(&dir, &["check", "metrics"], &text);
    run_promtool(&dir, &["check", "rules", "corral-alerts.yml"], "");
    run_promtool(&dir, &["test", "rules", "corral-alerts.test.yml"], "");
}

/// The binary with its log in a file: one access line per request (the WebSocket once, at the
/// upgrade, none for its frames; probes that succeed are quiet), no colour escapes.
#[actix_web::test]
async fn every_request_leaves_one_plain_access_log_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("corral.log");
    let launch = Launch {
        env: vec![("CORRAL_LOG__FILTER".into(), "info".into())],
        env_remove: vec!["NO_COLOR".into()],
        output: Output::File(log_path.clone()),
    };
    let mut node = NodeProcess::start_with(dir.path(), launch).await;
    let port = node.port;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let resp = http
        .get(url("/api/v1/users/424242"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http.get(url("/no/such/page")).send().await.expect("get");
    assert_eq!(resp.status().as_u16(), 404);
    let mut ws = WsClient::connect(&format!("ws://127.0.0.1:{port}/ws"), None)
        .await
        .expect("ws");
    for _ in 0..5 {
        ws.request("time.sync", json!({"client_time": 0}))
            .await
            .expect("time.sync");
    }
    drop(ws);
    let _ = http.get(url("/metrics")).send().await.expect("metrics");

    // SIGTERM: the node drains and exits, so everything it logged is in the file.
    let exited = node.terminate().await;
    assert!(exited.success(), "{exited}");

    let text = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        !text.contains('\u{1b}'),
        "colour escapes in a log file:\n{text}"
    );
    let access: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("corral::access"))
        .collect();
    let one = |needles: &[&str]| {
        let found: Vec<_> = access
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .collect();
        assert_eq!(found.len(), 1, "one line with {needles:?} in:\n{text}");
    };
    one(&[
        "http request",
        "/api/v1/users/{id}",
        "/api/v1/users/424242",
        "401",
        "trace-me-42",
        "127.0.0.1",
    ]);
    one(&["http request", "unmatched", "/no/such/page", "404"]);
    one(&["websocket upgrade", "/ws", "101"]);
    let ws_lines = access.iter().filter(|l| l.contains("/ws")).count();
    assert_eq!(ws_lines, 1, "frames leave no access line:\n{text}");
    assert!(
        !access
            .iter()
            .any(|l| l.contains("/readyz") || l.contains("/metrics")),
        "successful probes and scrapes stay at debug:\n{text}"
    );
}
