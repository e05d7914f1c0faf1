//! The group-commit batcher: appends queue up while a transaction commits, and the next
//! transaction takes them all (up to `max`). Each room's seqs are reserved on its `rooms` row,
//! which the transaction holds locked until commit, so seqs are gap-free and commit in order
//! even with several nodes writing the same room. A sender is answered only after commit.
//!
//! On PostgreSQL several writers commit in parallel, each owning the rooms whose id falls in
//! its shard (so one room's appends stay in order on one writer). A batch costs four
//! statements whatever its size and rooms (lock the rooms, find repeated client keys, insert,
//! store the new `last_seq`): each takes its rows as one JSON array, so the SQL text is fixed
//! and prepared once per connection.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use corral_actors::metric_catalogue as metric;
use corral_actors::ports::chat::{Appended, ChatStoreError, LateOutcome, NewMessage};
use corral_protocol::ops::{ChatMessage, RoomId};
use serde_json::{Value, json};
use sqlx::{Any, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::config::BatchConfig;
use crate::store::{Backend, Db};

/// The batch statements of one engine.
struct Statements {
    /// Locks the rooms of `$1` (a JSON array of ids) and reads their `last_seq`.
    lock: &'static str,
    /// Earlier messages with the `(r, k)` room and client keys of `$1`.
    known: &'static str,
    /// Inserts the messages of `$1`.
    insert: &'static str,
    /// Sets each room's `last_seq` to its value in `$1` (a JSON object by room id).
    advance: &'static str,
}

/// PostgreSQL keeps a generic plan per prepared statement, made when the tables may still be
/// small; each statement is shaped so that its only sensible plan reaches rows through their
/// indexes (`= ANY` on the key, a lateral probe per key), so it stays fast as they grow. Row
/// locks are taken in id order (`ORDER BY ... FOR UPDATE` locks rows as sorted), so writers
/// on several nodes cannot deadlock.
const POSTGRES: Statements = Statements {
    lock: "SELECT id, last_seq FROM rooms \
           WHERE id = ANY(ARRAY(SELECT CAST(value AS BIGINT) FROM json_array_elements_text($1::json))) \
           ORDER BY id FOR UPDATE",
    known: "SELECT m.room_id, m.seq, m.user_id, m.text, m.ts, m.client_msg_id \
            FROM json_to_recordset($1::json) AS w(r BIGINT, k TEXT) \
            CROSS JOIN LATERAL (SELECT * FROM messages \
            WHERE room_id = w.r AND client_msg_id = w.k OFFSET 0) AS m",
    insert: "INSERT INTO messages (room_id, seq, user_id, client_msg_id, text, ts) \
             SELECT r, s, u, k, t, ts FROM json_to_recordset($1::json) \
             AS m(r BIGINT, s BIGINT, u BIGINT, k TEXT, t TEXT, ts BIGINT)",
    advance: "UPDATE rooms SET last_seq = CAST($1::json ->> CAST(id AS TEXT) AS BIGINT) \
              WHERE id = ANY(ARRAY(SELECT CAST(k AS BIGINT) FROM json_object_keys($1::json) AS k))",
};

/// SQLite has one writer at a time: the first statement writes, so the transaction takes the
/// write lock at once (a read first would have to upgrade later and could fail busy).
const SQLITE: Statements = Statements {
    lock: "UPDATE rooms SET last_seq = last_seq \
           WHERE id IN (SELECT value FROM json_each($1)) RETURNING id, last_seq",
    known: "SELECT m.room_id, m.seq, m.user_id, m.text, m.ts, m.client_msg_id \
            FROM jsonb_each($1) AS w \
            JOIN messages m ON m.room_id = w.value ->> 'r' AND m.client_msg_id = w.value ->> 'k'",
    insert: "INSERT INTO messages (room_id, seq, user_id, client_msg_id, text, ts) \
             SELECT m.value ->> 'r', m.value ->> 's', m.value ->> 'u', m.value ->> 'k', \
             m.value ->> 't', m.value ->> 'ts' FROM jsonb_each($1) AS m",
    advance: "UPDATE rooms SET last_seq = json_extract($1, '$.\"' || id || '\"') \
              WHERE id IN (SELECT CAST(key AS INTEGER) FROM json_each($1))",
};

type Outcome = Result<Appended, ChatStoreError>;

struct Job {
    message: NewMessage,
    done: oneshot::Sender<Outcome>,
}

/// The handle appends go through: one queue per writer.
#[derive(Clone)]
pub(super) struct Batcher {
    writers: Vec<mpsc::Sender<Job>>,
}

impl Batcher {
    /// Starts the writer tasks on the current runtime: one on SQLite, up to four on
    /// PostgreSQL (a quarter of the pool).
    pub(super) fn start(db: Db, config: BatchConfig) -> Batcher {
        let writers = (0..db.writers(4, 4))
            .map(|_| {
                let (tx, rx) = mpsc::channel(config.queue);
                tokio::spawn(run(db.clone(), config, rx));
                tx
            })
            .collect();
        Batcher { writers }
    }

    /// Queues `message` and waits for its transaction to commit, at most `deadline`. Past it
    /// the answer is [`ChatStoreError::Unavailable`] if the message never reached a writer's
    /// queue, or [`ChatStoreError::Undecided`] if it did (it may still commit; its outcome
    /// follows, and a retry with the same `client_msg_id` finds it rather than storing it
    /// twice).
    pub(super) async fn append(&self, message: NewMessage, deadline: Duration) -> Outcome {
        let stopped = || ChatStoreError::Unavailable("the message store is stopped".into());
        let deadline = tokio::time::Instant::now() + deadline;
        let (done, mut outcome) = oneshot::channel();
        let shard = message.room.rem_euclid(self.writers.len() as i64) as usize;
        let queued = self.writers[shard].send(Job { message, done });
        match tokio::time::timeout_at(deadline, queued).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(stopped()),
            Err(elapsed) => return Err(ChatStoreError::Unavailable(Box::new(elapsed))),
        }
        match tokio::time::timeout_at(deadline, &mut outcome).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(stopped()),
            Err(elapsed) => Err(ChatStoreError::Undecided {
                cause: Box::new(elapsed),
                outcome: LateOutcome::new(outcome),
            }),
        }
    }
}

async fn run(db: Db, config: BatchConfig, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < config.max {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if !config.linger.is_zero() {
            let deadline = tokio::time::Instant::now() + config.linger;
            while jobs.len() < config.max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(job)) => jobs.push(job),
                    _ => break,
                }
            }
        }
        let started = Instant::now();
        let messages: Vec<&NewMessage> = jobs.iter().map(|j| &j.message).collect();
        let outcomes = commit(&db, &messages).await;
        metrics::histogram!(metric::STORE_COMMIT_LATENCY).record(started.elapsed().as_secs_f64());
        metrics::histogram!(metric::STORE_BATCH_SIZE).record(jobs.len() as f64);
        match outcomes {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.done.send(outcome);
                }
            }
            Err(err) => {
                tracing::error!(%err, batch = jobs.len(), "message batch failed to commit");
                metrics::counter!(metric::STORE_BATCH_FAILURES).increment(1);
                // Every job of the batch fails with the same cause.
                let err = std::sync::Arc::new(err);
                for job in jobs {
                    let _ = job
                        .done
                        .send(Err(ChatStoreError::Unavailable(Box::new(err.clone()))));
                }
            }
        }
    }
}

/// Stores a batch in one transaction; one outcome per message, in order.
async fn commit(db: &Db, messages: &[&NewMessage]) -> Result<Vec<Outcome>, sqlx::Error> {
    let sql = match db.backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    let mut rooms: Vec<RoomId> = messages.iter().map(|m| m.room).collect();
    rooms.sort_unstable();
    rooms.dedup();

    let mut tx = db.pool.begin().await?;
    let mut last: HashMap<RoomId, i64> = HashMap::with_capacity(rooms.len());
    for row in bind_json(sql.lock, json!(rooms))
        .fetch_all(&mut *tx)
        .await?
    {
        last.insert(row.try_get(0)?, row.try_get(1)?);
    }
    let mut known = known_messages(&mut tx, sql, messages, &last).await?;
    let mut fresh: Vec<Value> = Vec::new();
    let mut outcomes = Vec::with_capacity(messages.len());
    for m in messages {
        let Some(seq) = last.get_mut(&m.room) else {
            outcomes.push(Err(ChatStoreError::NotFound));
            continue;
        };
        let key = (m.room, m.from, m.client_msg_id.clone());
        if let Some(original) = known.get(&key) {
            outcomes.push(Ok(Appended::Duplicate(original.clone())));
            continue;
        }
        *seq += 1;
        let message = ChatMessage {
            room: m.room,
            seq: *seq as u64,
            from: m.from,
            text: m.text.clone(),
            ts: m.ts,
            client_msg_id: m.client_msg_id.clone(),
        };
        fresh.push(json!({
            "r": m.room, "s": *seq, "u": m.from, "k": m.client_msg_id, "t": m.text, "ts": m.ts,
        }));
        known.insert(key, message.clone());
        outcomes.push(Ok(Appended::Stored(message)));
    }
    if !fresh.is_empty() {
        bind_json(sql.insert, Value::Array(fresh))
            .execute(&mut *tx)
            .await?;
        let advanced: serde_json::Map<String, Value> = last
            .iter()
            .map(|(r, s)| (r.to_string(), json!(s)))
            .collect();
        bind_json(sql.advance, Value::Object(advanced))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// `sql` with `value` (serialized) as `$1`.
fn bind_json(
    sql: &'static str,
    value: Value,
) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
    sqlx::query(sql).bind(value.to_string())
}

/// Messages already stored under the batch's client keys (in rooms that exist), by
/// `(room, sender, client_msg_id)`.
async fn known_messages(
    tx: &mut Transaction<'static, Any>,
    sql: &Statements,
    messages: &[&NewMessage],
    rooms: &HashMap<RoomId, i64>,
) -> Result<HashMap<(RoomId, i64, String), ChatMessage>, sqlx::Error> {
    let mut wanted: Vec<(RoomId, &str)> = messages
        .iter()
        .filter(|m| rooms.contains_key(&m.room))
        .map(|m| (m.room, m.client_msg_id.as_str()))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let wanted: Vec<Value> = wanted
        .into_iter()
        .map(|(r, k)| json!({"r": r, "k": k}))
        .collect();
    let mut known = HashMap::new();
    if wanted.is_empty() {
        return Ok(known);
    }
    for row in bind_json(sql.known, Value::Array(wanted))
        .fetch_all(&mut **tx)
        .await?
    {
        let message = super::row::message_from_row(&row)?;
        known.insert(
            (message.room, message.from, message.client_msg_id.clone()),
            message,
        );
    }
    Ok(known)
}
