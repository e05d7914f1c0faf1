//! Feed fan-out benchmark: a merchant with 50,000 followers, 10,000 of them online over real
//! WebSockets, posts; the bench measures push latency to the online followers, then timeline
//! read latency under 1,000 concurrent readers.
//!
//! `cargo run --release --example feed_bench` runs the client and starts the server as a
//! child process (`feed_bench server`), so each side stays under the 20,000 open-files limit.
//! The server is an ordinary Corral node on embedded SQLite, seeded straight in SQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use corral::Application;
use corral::auth::JwtKeys;
use corral::config::{Secret, Settings};
use corral_protocol::Role;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET: &str = "feed-bench-secret-not-for-production-0123456789";
const FOLLOWERS: i64 = 50_000;
const ONLINE: usize = 10_000;
const READERS: usize = 1_000;
const AUTHORS: i64 = 100;
const POSTS_PER_AUTHOR: i64 = 20;
const FOLLOWED_AUTHORS: i64 = 5;
const POSTS: usize = 5;
const READ_SECS: u64 = 10;
const SOURCE_ADDRS: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("server") {
        actix_web::rt::System::new().block_on(server());
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(client());
    }
}

async fn insert_rows(db: &corral::store::Db, head: &str, width: usize, rows: &[Vec<i64>]) {
    for chunk in rows.chunks(500) {
        let values = chunk
            .iter()
            .enumerate()
            .map(|(r, _)| {
                let cols: Vec<String> = (0..width)
                    .map(|c| format!("${}", r * width + c + 1))
                    .collect();
                format!("({})", cols.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!("{head} VALUES {values}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
        for row in chunk {
            for v in row {
                query = query.bind(*v);
            }
        }
        query.execute(&db.pool).await.expect("seed");
    }
}

/// Users: 1 merchant, then FOLLOWERS followers, then AUTHORS authors (ids from 1, fresh db).
async fn seed(db: &corral::store::Db) {
    let started = Instant::now();
    let now = corral_actors::clock::now_ms();
    let total = 1 + FOLLOWERS + AUTHORS;
    for chunk in (1..=total).collect::<Vec<_>>().chunks(500) {
        let values = chunk
            .iter()
            .map(|id| {
                let role = if *id == 1 { "merchant" } else { "user" };
                format!("('u{id}', '-', '{role}', {now})")
            })
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES {values}"
        )))
        .execute(&db.pool)
        .await
        .expect("seed users");
    }
    let first_author = 2 + FOLLOWERS;
    let mut follows = Vec::new();
    for follower in 2..2 + FOLLOWERS {
        follows.push(vec![follower, 1, now]);
        for k in 0..FOLLOWED_AUTHORS {
            follows.push(vec![
                follower,
                first_author + (follower + k * 7) % AUTHORS,
                now,
            ]);
        }
    }
    insert_rows(
        db,
        "INSERT INTO follows (follower_id, followee_id, created_at)",
        3,
        &follows,
    )
    .await;
    let mut posts = Vec::new();
    for i in 0..POSTS_PER_AUTHOR {
        for a in 0..AUTHORS {
            posts.push(vec![first_author + a, now + i]);
        }
        posts.push(vec![1, now + i]);
    }
    for chunk in posts.chunks(500) {
        let values = chunk
            .iter()
            .map(|p| format!("({}, 'seeded post about the farm', {})", p[0], p[1]))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO posts (author_id, text, created_at) VALUES {values}"
        )))
        .execute(&db.pool)
        .await
        .expect("seed posts");
    }
    eprintln!(
        "seeded {total} users, {} follows, {} posts in {:.1}s",
        follows.len(),
        posts.len(),
        started.elapsed().as_secs_f64()
    );
}

async fn server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Settings::defaults().expect("defaults");
    s.server.listen = "127.0.0.1:0".into();
    s.server.data_dir = dir.path().to_path_buf();
    s.server.workers = 1;
    s.database.sqlite_synchronous = "normal".into();
    s.auth.jwt_secret = Secret::from(SECRET);
    s.log.filter = "warn".into();
    // As many as the open-files limit allows; every client is 127.0.0.1.
    s.ws.max_connections = 0;
    s.ws.max_per_ip = 100_000;
    s.server.max_connections_per_ip = 100_000;
    s.ws.new_per_sec = 100_000.0;
    s.ws.new_burst = 100_000.0;
    s.ws.rate_per_sec = 10_000.0;
    s.ws.rate_burst = 10_000.0;
    s.ws.user_rate_per_sec = 10_000.0;
    s.ws.user_rate_burst = 10_000.0;
    s.ws.idle_timeout_ms = 600_000;
    s.ws.heartbeat_interval_ms = 300_000;
    corral::telemetry::init_logging(&s.log);
    // The bench client holds our stdin: when it exits (or panics), so do we.
    std::thread::spawn(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
        std::process::exit(0);
    });
    let app = Application::build(s).await.expect("build");
    seed(&app.state().db).await;
    println!("READY {}", app.port());
    app.run_until_stopped().await.expect("serve");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn connect(
    port: u16,
    source: usize,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    let ip = Ipv4Addr::new(127, 0, 0, 1 + (source % SOURCE_ADDRS) as u8);
    socket
        .bind(SocketAddr::new(IpAddr::V4(ip), 0))
        .expect("bind");
    let stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("connect");
    let mut req = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "corral.v1".parse().expect("h"));
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {token}").parse().expect("h"),
    );
    let (ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("upgrade");
    ws
}

async fn client() {
    let exe = std::env::current_exe().expect("exe");
    let mut child = Command::new(exe)
        .arg("server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("ready");
    let port: u16 = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .expect("READY <port>");
    let keys = Arc::new(JwtKeys::new(&Secret::from(SECRET), "corral", 86_400));

    // 10,000 online followers (ids 2..), spread over 127.0.0.1-10.
    let started = Instant::now();
    let base = Instant::now();
    let sent_at = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::with_capacity(ONLINE * POSTS)));
    let delivered = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::new();
    for i in 0..ONLINE {
        let token = keys.issue(2 + i as i64, Role::User).expect("token");
        let permit = gate.clone().acquire_owned().await.expect("permit");
        let (sent_at, latencies, delivered) =
            (sent_at.clone(), latencies.clone(), delivered.clone());
        tasks.push(tokio::spawn(async move {
            let ws = connect(port, i, &token).await;
            drop(permit);
            let (_sink, mut stream) = ws.split();
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Text(text) = msg
                    && text.starts_with("{\"ev\":\"feed.post\"")
                {
                    let now = base.elapsed().as_nanos() as u64;
                    let sent = sent_at.load(Ordering::Acquire);
                    latencies
                        .lock()
                        .await
                        .push((now.saturating_sub(sent)) as f64 / 1e6);
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let _ = gate.acquire_many(256).await.expect("all connected");
    eprintln!(
        "{ONLINE} followers connected in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let merchant = keys.issue(1, Role::Merchant).expect("token");
    let mut m = connect(port, 0, &merchant).await;
    let mut per_post = Vec::new();
    for n in 0..POSTS {
        latencies.lock().await.clear();
        delivered.store(0, Ordering::Relaxed);
        sent_at.store(base.elapsed().as_nanos() as u64, Ordering::Release);
        let frame = format!(
            "{{\"id\":{n},\"op\":\"feed.post\",\"text\":\"New lambs at the farm, post {n}\"}}"
        );
        m.send(Message::text(frame)).await.expect("post");
        loop {
            let msg = m.next().await.expect("reply").expect("reply");
            if let Message::Text(text) = msg {
                assert!(text.contains("post_id"), "{text}");
                break;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while delivered.load(Ordering::Relaxed) < ONLINE && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut l = latencies.lock().await.clone();
        l.sort_by(f64::total_cmp);
        eprintln!(
            "post {n}: {} of {ONLINE} online followers got it; p50 {:.1} ms, p99 {:.1} ms, last {:.1} ms",
            l.len(),
            percentile(&l, 0.5),
            percentile(&l, 0.99),
            l.last().copied().unwrap_or(f64::NAN)
        );
        per_post.push(l);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let mut all: Vec<f64> = per_post.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    let lasts: Vec<f64> = per_post.iter().filter_map(|l| l.last().copied()).collect();
    println!(
        "PUSH posts={POSTS} followers={FOLLOWERS} online={ONLINE} deliveries={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} last_delivery_ms_per_post={:?}",
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(f64::NAN),
        lasts
            .iter()
            .map(|v| (v * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );

    // 1,000 concurrent timeline readers (followers 10,002..), closed loop for READ_SECS.
    let gate = Arc::new(Semaphore::new(256));
    let mut readers = Vec::new();
    for i in 0..READERS {
        let token = keys
            .issue(2 + (ONLINE + i) as i64, Role::User)
            .expect("token");
        let permit = gate.clone().acquire_owned().await.expect("permit");
        readers.push(connect(port, i, &token).await);
        drop(permit);
    }
    let read_started = Instant::now();
    let stop = read_started + Duration::from_secs(READ_SECS);
    let handles: Vec<_> = readers
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut id = 0u64;
                while Instant::now() < stop {
                    id += 1;
                    let t = Instant::now();
                    ws.send(Message::text(format!(
                        "{{\"id\":{id},\"op\":\"feed.timeline\",\"limit\":20}}"
                    )))
                    .await
                    .expect("send");
                    loop {
                        let msg = ws.next().await.expect("reply").expect("reply");
                        if let Message::Text(text) = msg
                            && text.starts_with("{\"re\"")
                        {
                            assert!(text.contains("\"posts\""), "{text}");
                            break;
                        }
                    }
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                }
                lat
            })
        })
        .collect();
    let mut reads = Vec::new();
    for h in handles {
        reads.extend(h.await.expect("reader"));
    }
    let secs = read_started.elapsed().as_secs_f64();
    reads.sort_by(f64::total_cmp);
    println!(
        "TIMELINE readers={READERS} reads={} reads_per_s={:.0} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        reads.len(),
        reads.len() as f64 / secs,
        percentile(&reads, 0.5),
        percentile(&reads, 0.99),
        reads.last().copied().unwrap_or(f64::NAN)
    );
    for t in tasks {
        t.abort();
    }
    let _ = child.kill();
    let _ = child.wait();
}
