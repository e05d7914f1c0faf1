//! A TCP proxy a test puts between a node and a dependency (PostgreSQL, Redis) to break the
//! link without touching the dependency itself: [`Mode::Forward`] passes bytes both ways,
//! [`Mode::Refuse`] closes every connection it holds and each one it accepts (a restart, a
//! partition that resets), [`Mode::Hang`] accepts and passes nothing (a hung server, a
//! partition that drops packets), [`Mode::Delay`] passes each chunk after a pause (a slow
//! server). The mode switches at runtime and applies to open connections too. The proxy
//! runs on a thread of its own (it keeps forwarding while the test thread blocks) and stops
//! when dropped.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    Refuse,
    Hang,
    /// Each chunk is passed on this many milliseconds after it arrived.
    Delay(u64),
}

/// A proxy from `127.0.0.1:port` to `upstream`.
pub struct TcpProxy {
    pub port: u16,
    mode: watch::Sender<Mode>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TcpProxy {
    /// Listens on a free loopback port, forwarding to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> TcpProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (mode, modes) = watch::channel(Mode::Forward);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("listener");
                tokio::select! {
                    () = accept_loop(listener, upstream, modes) => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task: all links close.
        });
        TcpProxy {
            port,
            mode,
            stop: Some(stop),
        }
    }

    /// The proxy's `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Switches the mode; open connections follow at once.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: String, modes: watch::Receiver<Mode>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if *modes.borrow() == Mode::Refuse {
            drop(client);
            continue;
        }
        let upstream = upstream.clone();
        let modes = modes.clone();
        tokio::spawn(async move {
            // Hung from the start: hold the client, dial nobody, until the mode changes.
            let mut waiting = modes.clone();
            while *waiting.borrow_and_update() == Mode::Hang {
                if waiting.changed().await.is_err() {
                    return;
                }
            }
            if *waiting.borrow() == Mode::Refuse {
                return;
            }
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            // Either direction ending (a close, a refusal) ends the link: both halves drop.
            tokio::select! {
                () = pump(client_read, server_write, modes.clone()) => {}
                () = pump(server_read, client_write, modes) => {}
            }
        });
    }
}

/// Copies `from` to `to` as the mode says, until either side closes or the mode is
/// [`Mode::Refuse`].
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut modes: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mode = *modes.borrow_and_update();
        match mode {
            Mode::Refuse => return,
            Mode::Hang => {
                if modes.changed().await.is_err() {
                    return;
                }
            }
            Mode::Forward | Mode::Delay(_) => {
                let n = tokio::select! {
                    read = from.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    },
                    changed = modes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                // The mode when the bytes arrived decides: a chunk read just before a hang
                // waits for the hang to end, one read before a refusal is dropped.
                loop {
                    let now = *modes.borrow_and_update();
                    match now {
                        Mode::Refuse => return,
                        Mode::Hang => {
                            if modes.changed().await.is_err() {
                                return;
                            }
                        }
                        Mode::Delay(ms) => {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            break;
                        }
                        Mode::Forward => break,
                    }
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
