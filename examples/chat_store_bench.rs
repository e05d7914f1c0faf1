//! Durable chat throughput: drives the SQL message store's group-commit batcher with many
//! concurrent appends and reports rows/s, commit batch sizes and append (ack) latency.
//!
//! ```sh
//! cargo run --release --example chat_store_bench -- sqlite 2000 200000          # flat out
//! cargo run --release --example chat_store_bench -- postgres 2000 200000
//! cargo run --release --example chat_store_bench -- sqlite 200 100000 10000     # paced: 10k msg/s
//! ```
//! Arguments: engine (`sqlite` in a temp dir, or `postgres` at `CORRAL_BENCH_DATABASE_URL`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`, in a fresh database), concurrent
//! appenders, total messages, and an optional total rate (messages/s; flat out when absent).
//! Messages go to 10 rooms, 100 bytes each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use corral::config::{Secret, Settings};
use corral::store::sql::chat::SqlMessageStore;
use corral::store::{Db, Repos};
use corral_actors::ports::chat::{MessageStore, NewMessage};
use corral_protocol::Role;
use sqlx::Connection;

const ROOMS: i64 = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let engine = args.first().map_or("sqlite", String::as_str).to_string();
    let tasks: usize = args.get(1).map_or(Ok(1000), |a| a.parse())?;
    let total: usize = args.get(2).map_or(Ok(100_000), |a| a.parse())?;
    let rate: Option<f64> = args.get(3).map(|a| a.parse()).transpose()?;

    let recorder = corral::telemetry::metrics_handle();
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::defaults()?;
    settings.database.url = match engine.as_str() {
        "sqlite" => Secret::default(),
        "postgres" => Secret::from(fresh_postgres().await?),
        other => anyhow::bail!("unknown engine {other} (sqlite or postgres)"),
    };
    let db = Db::connect(&settings.database, dir.path()).await?;
    db.migrate().await?;
    let repos = Repos::new(&db);
    let user = repos
        .accounts
        .create_user("bench", "x", Role::User, 0)
        .await?;
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        rooms.push(
            repos
                .rooms
                .create_room(user, &format!("bench {i}"), false, 0)
                .await?,
        );
    }
    let store = SqlMessageStore::start(db.clone(), settings.chat.batch());
    let store: Arc<dyn MessageStore> = store;

    let per_task = total / tasks;
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        let room = rooms[t % rooms.len()];
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            let mut tick = rate.map(|r| {
                let mut i = tokio::time::interval(Duration::from_secs_f64(tasks as f64 / r));
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                i
            });
            for i in 0..per_task {
                if let Some(tick) = tick.as_mut() {
                    tick.tick().await;
                }
                let sent = Instant::now();
                store
                    .append(NewMessage {
                        room,
                        from: user,
                        client_msg_id: format!("{t}-{i}"),
                        text: "x".repeat(100),
                        ts: 0,
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("append: {e}"))?;
                latencies.push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for h in handles {
        latencies.extend(h.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let metrics = recorder.render();
    let read = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let commits = read("corral_store_batch_size_count");
    let rows = latencies.len();
    println!(
        "{engine}: {rows} messages, {tasks} appenders, rate {}: {:.0} rows/s; {commits} commits, \
         mean batch {:.1} rows, mean commit {:.2} ms; ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        rate.map_or("unpaced".to_string(), |r| format!("{r}/s")),
        rows as f64 / elapsed.as_secs_f64(),
        read("corral_store_batch_size_sum") / commits.max(1.0),
        1000.0 * read("corral_store_commit_seconds_sum") / commits.max(1.0),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        pct(1.0).as_secs_f64() * 1000.0,
    );
    Ok(())
}

async fn fresh_postgres() -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    let admin = std::env::var("CORRAL_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("corral_bench_{}", std::process::id());
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Ok(format!("{base}/{name}"))
}
