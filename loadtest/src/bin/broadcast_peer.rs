//! A bare tokio-tungstenite broadcast server, the machine's ceiling for fan-out: every text
//! frame a client sends goes, unchanged, to every connected client (the sender included).
//! One encoded frame is shared by all recipients; each connection has a bounded queue and is
//! dropped when it falls too far behind, like a real server would. Its writer feeds every frame
//! queued at a wake-up into tungstenite's write buffer and flushes once, so frames queued
//! together leave in one system call: the best a plain tokio-tungstenite server does, and the
//! fair ceiling to compare Corral with.
//!
//! `broadcast-peer [ADDR]` (default 127.0.0.1:9001); runs on a current-thread runtime, so
//! `taskset -c 0` pins all of it to one core.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Frames queued per connection before it is dropped as a slow consumer.
const QUEUE: usize = 4096;
/// Bytes gathered before tungstenite writes without waiting for the flush.
const WRITE_BUFFER: usize = 64 * 1024;

type Peers = Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr))
}

async fn serve(addr: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("broadcast-peer listening on {}", listener.local_addr()?);
    let peers: Peers = Arc::default();
    let ids = AtomicU64::new(0);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(stream, id, peers.clone()));
    }
}

fn lock(peers: &Peers) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<Message>>> {
    match peers.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

async fn connection(stream: tokio::net::TcpStream, id: u64, peers: Peers) {
    // A write buffer lets `feed` gather the queued frames (with 0 every frame is its own
    // system call); it is empty while idle and grows only for a connection with a backlog.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(WRITE_BUFFER);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    lock(&peers).insert(id, tx);
    // One task owns the socket: no split halves and no lock between reader and writer.
    loop {
        tokio::select! {
            biased;
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                // Write what is queued, then flush once.
                if ws.feed(msg).await.is_err() {
                    break;
                }
                let mut failed = false;
                while let Ok(more) = rx.try_recv() {
                    if ws.feed(more).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || ws.flush().await.is_err() {
                    break;
                }
            }
            incoming = ws.next() => {
                let Some(Ok(msg)) = incoming else { break };
                if let Message::Text(_) = msg {
                    broadcast(&peers, &msg);
                }
            }
        }
    }
    lock(&peers).remove(&id);
}

/// Queues `msg` (shared bytes) to every connection; one whose queue is full is dropped.
fn broadcast(peers: &Peers, msg: &Message) {
    let mut slow = Vec::new();
    for (peer, tx) in lock(peers).iter() {
        if tx.try_send(msg.clone()).is_err() {
            slow.push(*peer);
        }
    }
    if !slow.is_empty() {
        let mut all = lock(peers);
        for peer in slow {
            all.remove(&peer);
        }
    }
}
