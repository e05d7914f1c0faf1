//! The chat storm: a few senders post to one public room as fast as a paced client would,
//! while members on every node read it. Clients behave as protocol/README.md tells them to:
//! `unavailable` is retried with the same `client_msg_id`; a lost connection or a reply
//! missing for 10 s is followed by the next node, where a member re-joins with `since` (its
//! last seq) and a sender posts the same `client_msg_id` again. [`Storm::finish`] returns
//! what everyone saw; [`StormReport::check`] holds it to the promise: every acknowledged
//! message reaches every member, once, in seq order, with no gap.

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::WsClient;

/// Pause between two sends of one sender.
const PACE: Duration = Duration::from_millis(150);

/// No client runs longer than this, whatever happens (the test then fails on what is
/// missing).
const GIVE_UP: Duration = Duration::from_secs(60);

/// A storm in progress (on a thread of its own).
pub struct Storm {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<StormReport>,
}

/// What the storm's clients met, counted as it happens.
#[derive(Debug, Default)]
struct StormCounts {
    unavailable: AtomicUsize,
    failovers: AtomicUsize,
    longest_send_ms: AtomicU64,
}

/// What the storm's clients saw.
#[derive(Debug)]
pub struct StormReport {
    /// Every acknowledged send: (client_msg_id, seq).
    pub acked: Vec<(String, u64)>,
    /// Each member's messages as received: (seq, client_msg_id).
    pub members: Vec<Vec<(u64, String)>>,
    /// The room's last seq once the senders stopped.
    pub last_seq: u64,
    /// `unavailable` replies to sends and joins (each retried).
    pub unavailable: usize,
    /// Connections lost or replies missing (each followed by the next node).
    pub failovers: usize,
    /// The longest wait for the answer to one `room.send` (acknowledged or not).
    pub longest_send: Duration,
}

/// One client's place: its node (index into the ports) and token.
#[derive(Clone)]
pub struct Seat {
    pub node: usize,
    pub token: String,
}

impl Storm {
    /// Starts `members` reading `room`, then `senders` posting to it until [`Storm::finish`].
    pub fn start(ports: Vec<u16>, room: i64, senders: Vec<Seat>, members: Vec<Seat>) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(StormCounts::default());
        let (stop2, counts2) = (stop.clone(), counts.clone());
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, run(ports, room, senders, members, stop2, counts2))
        });
        Storm { stop, handle }
    }

    /// Stops the senders; the members then catch up with the last message, and the thread
    /// ends with what everyone saw.
    pub fn stop(self) -> std::thread::JoinHandle<StormReport> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
    }
}

async fn run(
    ports: Vec<u16>,
    room: i64,
    senders: Vec<Seat>,
    members: Vec<Seat>,
    stop: Arc<AtomicBool>,
    counts: Arc<StormCounts>,
) -> StormReport {
    let ports = Rc::new(ports);
    let joined = Rc::new(Cell::new(0usize));
    let last_seq = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + GIVE_UP;
    let mut readers = Vec::new();
    for seat in &members {
        let client = Client::new(ports.clone(), seat, counts.clone());
        let reader = client.read(room, joined.clone(), last_seq.clone(), until);
        readers.push(tokio::task::spawn_local(reader));
    }
    let all = members.len();
    while joined.get() < all && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut writers = Vec::new();
    for (i, seat) in senders.iter().enumerate() {
        let client = Client::new(ports.clone(), seat, counts.clone());
        let writer = client.send(room, format!("s{i}"), stop.clone(), until);
        writers.push(tokio::task::spawn_local(writer));
    }
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.expect("sender"));
    }
    // The room's end, as a fresh join on any node reports it.
    let mut probe = Client::new(ports.clone(), &senders[0], counts.clone());
    let end = probe
        .join(room, 0, until)
        .await
        .map(|(last, _)| last)
        .unwrap_or(0);
    last_seq.store(end.max(1), Ordering::Relaxed);
    let mut seen = Vec::new();
    for reader in readers {
        seen.push(reader.await.expect("member"));
    }
    StormReport {
        acked,
        members: seen,
        last_seq: end,
        unavailable: counts.unavailable.load(Ordering::Relaxed),
        failovers: counts.failovers.load(Ordering::Relaxed),
        longest_send: Duration::from_millis(counts.longest_send_ms.load(Ordering::Relaxed)),
    }
}

/// A storm client: one connection at a time, to the node it is on.
struct Client {
    ports: Rc<Vec<u16>>,
    node: usize,
    token: String,
    ws: Option<WsClient>,
    counts: Arc<StormCounts>,
}

impl Client {
    fn new(ports: Rc<Vec<u16>>, seat: &Seat, counts: Arc<StormCounts>) -> Client {
        Client {
            ports,
            node: seat.node,
            token: seat.token.clone(),
            ws: None,
            counts,
        }
    }

    /// The connection, made to the current node if there is none.
    async fn conn(&mut self) -> Option<&mut WsClient> {
        if self.ws.is_none() {
            let url = format!("ws://127.0.0.1:{}/ws", self.ports[self.node]);
            match WsClient::connect(&url, Some(&self.token)).await {
                Ok(ws) => self.ws = Some(ws),
                Err(_) => {
                    self.fail_over().await;
                    return None;
                }
            }
        }
        self.ws.as_mut()
    }

    async fn fail_over(&mut self) {
        self.ws = None;
        self.counts.failovers.fetch_add(1, Ordering::Relaxed);
        self.node = (self.node + 1) % self.ports.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// `op` until a final answer (retrying `unavailable`, failing over on silence), or
    /// `None` at `until`.
    async fn request(
        &mut self,
        op: &str,
        params: serde_json::Value,
        until: Instant,
    ) -> Option<serde_json::Value> {
        while Instant::now() < until {
            let Some(ws) = self.conn().await else {
                continue;
            };
            let asked = Instant::now();
            let reply = ws
                .try_request(op, params.clone(), Duration::from_secs(10))
                .await;
            if op == "room.send" {
                let waited = asked.elapsed().as_millis() as u64;
                self.counts
                    .longest_send_ms
                    .fetch_max(waited, Ordering::Relaxed);
            }
            match reply {
                None => self.fail_over().await,
                Some(Ok(ok)) => return Some(ok),
                Some(Err(err)) if err.code.as_str() == "unavailable" => {
                    self.counts.unavailable.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Some(Err(err)) => panic!("{op} refused: {err:?}"),
            }
        }
        None
    }

    /// Joins `room` after `since`; returns its last seq and the missed messages.
    async fn join(
        &mut self,
        room: i64,
        since: u64,
        until: Instant,
    ) -> Option<(u64, Vec<(u64, String)>)> {
        let ok = self
            .request("room.join", json!({"room": room, "since": since}), until)
            .await?;
        assert_ne!(ok["truncated"], true, "a catch-up beyond the window: {ok}");
        let missed = ok["missed"]
            .as_array()
            .expect("missed")
            .iter()
            .map(message)
            .collect();
        Some((ok["last_seq"].as_u64().expect("last_seq"), missed))
    }

    /// A member: joins, reads every message, re-joins with `since` on another node when its
    /// connection goes, until it has the room's last seq (once known) or `until`.
    async fn read(
        mut self,
        room: i64,
        joined: Rc<Cell<usize>>,
        last_seq: Arc<AtomicU64>,
        until: Instant,
    ) -> Vec<(u64, String)> {
        let mut got: Vec<(u64, String)> = Vec::new();
        let mut counted = false;
        loop {
            let since = got.last().map_or(0, |(seq, _)| *seq);
            let Some((_, missed)) = self.join(room, since, until).await else {
                return got;
            };
            got.extend(missed);
            if !counted {
                joined.set(joined.get() + 1);
                counted = true;
            }
            loop {
                let end = last_seq.load(Ordering::Relaxed);
                let have = got.last().map_or(0, |(seq, _)| *seq);
                if (end > 0 && have >= end) || Instant::now() > until {
                    return got;
                }
                let Some(ws) = self.ws.as_mut() else { break };
                let wait = tokio::time::Instant::now() + Duration::from_millis(300);
                match ws.next_event_until("room.message", wait).await {
                    Some(msg) if msg["room"] == room => got.push(message(&msg)),
                    Some(_) => {}
                    None if ws.closed.is_some() => {
                        self.fail_over().await;
                        break;
                    }
                    None => {}
                }
            }
        }
    }

    /// A sender: posts `tag-1`, `tag-2`, ... (each retried with its id until acknowledged)
    /// until `stop`; returns the acknowledgements.
    async fn send(
        mut self,
        room: i64,
        tag: String,
        stop: Arc<AtomicBool>,
        until: Instant,
    ) -> Vec<(String, u64)> {
        let mut acked = Vec::new();
        if self.join(room, 0, until).await.is_none() {
            return acked;
        }
        for n in 1.. {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let id = format!("{tag}-{n}");
            let params = json!({"room": room, "text": id, "client_msg_id": id});
            let Some(ok) = self.request("room.send", params, until).await else {
                panic!("{id} never acknowledged");
            };
            acked.push((id, ok["seq"].as_u64().expect("seq")));
            // The sender's own pushes are not read: drop them as they come.
            if let Some(ws) = self.ws.as_mut() {
                while ws
                    .next_push_until(tokio::time::Instant::now())
                    .await
                    .is_some()
                {}
            }
            tokio::time::sleep(PACE).await;
        }
        acked
    }
}

fn message(msg: &serde_json::Value) -> (u64, String) {
    (
        msg["seq"].as_u64().expect("seq"),
        msg["client_msg_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

impl StormReport {
    /// Every member has seq 1 to the last, once each and in order; every acknowledged
    /// message is at its seq; no message was stored twice (a retried id has one seq).
    /// Returns how many messages each member received.
    pub fn check(&self) -> u64 {
        assert!(self.last_seq > 0, "the storm sent nothing");
        let mut seqs = HashSet::new();
        for (id, seq) in &self.acked {
            assert!(
                seqs.insert(*seq),
                "two acknowledgements share seq {seq} ({id})"
            );
        }
        for (i, got) in self.members.iter().enumerate() {
            let order: Vec<u64> = got.iter().map(|(seq, _)| *seq).collect();
            assert_eq!(
                order,
                (1..=self.last_seq).collect::<Vec<_>>(),
                "member {i}: every message once, in order"
            );
            let ids: HashSet<&String> = got.iter().map(|(_, id)| id).collect();
            assert_eq!(ids.len(), got.len(), "member {i}: a message stored twice");
            for (id, seq) in &self.acked {
                assert_eq!(
                    &got[*seq as usize - 1].1,
                    id,
                    "member {i}: acknowledged {id} at seq {seq}"
                );
            }
        }
        self.last_seq
    }
}
