//! The group-commit batcher: appends queue up while a transaction commits, and the next
//! transaction takes them all (up to `max`). Each room's seqs are reserved on its `rooms` row,
//! which the transaction holds locked until commit, so seqs are gap-free and commit in order
//! even with several nodes writing the same room. A sender is answered only after commit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use corral_actors::ports::chat::{Appended, ChatStoreError, NewMessage};
use corral_protocol::ops::{ChatMessage, RoomId};
use sqlx::{Any, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::store::Db;

/// Rows per multi-row statement (keeps bind counts far below both engines' limits).
const ROWS_PER_STATEMENT: usize = 256;

/// How the batcher groups appends.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most messages per transaction.
    pub max: usize,
    /// How long a batch waits for more after its first message.
    pub linger: Duration,
    /// Queued appends before senders wait.
    pub queue: usize,
}

type Outcome = Result<Appended, ChatStoreError>;

struct Job {
    message: NewMessage,
    done: oneshot::Sender<Outcome>,
}

/// The handle appends go through.
#[derive(Clone)]
pub(super) struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the batcher task on the current runtime.
    pub(super) fn start(db: Db, config: BatchConfig) -> Batcher {
        let (tx, rx) = mpsc::channel(config.queue);
        tokio::spawn(run(db, config, rx));
        Batcher { tx }
    }

    /// Queues `message` and waits for its transaction to commit.
    pub(super) async fn append(&self, message: NewMessage) -> Outcome {
        let (done, outcome) = oneshot::channel();
        self.tx
            .send(Job { message, done })
            .await
            .map_err(|_| ChatStoreError::Unavailable("the message store is stopped".into()))?;
        outcome
            .await
            .map_err(|_| ChatStoreError::Unavailable("the message store is stopped".into()))?
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
        metrics::histogram!("corral_store_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("corral_store_batch_size").record(jobs.len() as f64);
        match outcomes {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.done.send(outcome);
                }
            }
            Err(err) => {
                tracing::error!(%err, batch = jobs.len(), "message batch failed to commit");
                metrics::counter!("corral_store_batch_failures_total").increment(1);
                let why = err.to_string();
                for job in jobs {
                    let _ = job.done.send(Err(ChatStoreError::Unavailable(why.clone())));
                }
            }
        }
    }
}

/// Stores a batch in one transaction; one outcome per message, in order.
async fn commit(db: &Db, messages: &[&NewMessage]) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; messages.len()];
    // Rooms in id order: concurrent writers lock rows in the same order (no deadlock).
    let mut rooms: Vec<(RoomId, Vec<usize>)> = Vec::new();
    let mut index: HashMap<RoomId, usize> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        let slot = *index.entry(m.room).or_insert_with(|| {
            rooms.push((m.room, Vec::new()));
            rooms.len() - 1
        });
        rooms[slot].1.push(i);
    }
    rooms.sort_by_key(|(room, _)| *room);

    let mut tx = db.pool.begin().await?;
    for (room, members) in &rooms {
        let batch: Vec<&NewMessage> = members.iter().map(|&i| messages[i]).collect();
        match commit_room(&mut tx, *room, &batch).await? {
            Some(room_outcomes) => {
                for (&i, outcome) in members.iter().zip(room_outcomes) {
                    outcomes[i] = Some(Ok(outcome));
                }
            }
            None => {
                for &i in members {
                    outcomes[i] = Some(Err(ChatStoreError::NotFound));
                }
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Err(ChatStoreError::Unavailable("unbatched".into()))))
        .collect())
}

/// One room's share of a batch: lock its row, find earlier copies of the same client keys,
/// number the new messages and insert them. `None` when the room does not exist.
async fn commit_room(
    tx: &mut Transaction<'static, Any>,
    room: RoomId,
    batch: &[&NewMessage],
) -> Result<Option<Vec<Appended>>, sqlx::Error> {
    let Some(row) =
        sqlx::query("UPDATE rooms SET last_seq = last_seq WHERE id = $1 RETURNING last_seq")
            .bind(room)
            .fetch_optional(&mut **tx)
            .await?
    else {
        return Ok(None);
    };
    let mut last: i64 = row.try_get(0)?;

    let mut known: HashMap<(i64, String), ChatMessage> = HashMap::new();
    let mut keys: Vec<&str> = batch.iter().map(|m| m.client_msg_id.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let placeholders = (0..chunk.len())
            .map(|i| format!("${}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT room_id, seq, user_id, text, ts, client_msg_id FROM messages \
             WHERE room_id = $1 AND client_msg_id IN ({placeholders})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(room);
        for key in chunk {
            query = query.bind(*key);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let message = super::messages::message_from_row(&row)?;
            known.insert((message.from, message.client_msg_id.clone()), message);
        }
    }

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut fresh: Vec<ChatMessage> = Vec::new();
    for m in batch {
        let key = (m.from, m.client_msg_id.clone());
        if let Some(original) = known.get(&key) {
            outcomes.push(Appended::Duplicate(original.clone()));
            continue;
        }
        last += 1;
        let message = ChatMessage {
            room,
            seq: last as u64,
            from: m.from,
            text: m.text.clone(),
            ts: m.ts,
            client_msg_id: m.client_msg_id.clone(),
        };
        known.insert(key, message.clone());
        outcomes.push(Appended::Stored(message.clone()));
        fresh.push(message);
    }
    if fresh.is_empty() {
        return Ok(Some(outcomes));
    }

    for chunk in fresh.chunks(ROWS_PER_STATEMENT) {
        let values = (0..chunk.len())
            .map(|i| {
                let b = i * 6;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO messages (room_id, seq, user_id, client_msg_id, text, ts) VALUES {values}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in chunk {
            query = query
                .bind(m.room)
                .bind(m.seq as i64)
                .bind(m.from)
                .bind(m.client_msg_id.as_str())
                .bind(m.text.as_str())
                .bind(m.ts);
        }
        query.execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE rooms SET last_seq = $2 WHERE id = $1")
        .bind(room)
        .bind(last)
        .execute(&mut **tx)
        .await?;
    Ok(Some(outcomes))
}
