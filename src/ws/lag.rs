//! How far behind its pushes a connection's client is, measured by pings.
//!
//! The outbound queue catches a client that stops reading, but not one that reads slower than
//! the node writes: the kernel's socket buffers (megabytes on loopback and fast links) hold
//! tens of seconds of a busy room before the queue fills, and every member is served that much
//! late. So while pushes flow (replies answer the client's own requests and do not count: a
//! client may rightly read one late, as one waiting out a retry hint does), the connection
//! pings every `probe_every` (the ping goes after the frames queued before it, in the outbound
//! queue and the write batch, and the client answers once it has read them, so its round trip
//! is the whole backlog): a probe unanswered for more than `max_lag` while frames kept flowing
//! means the client is that far behind, and it is closed as a slow consumer (4008, with a retry
//! hint) to come back with `since` when it can. An idle connection is pinged every heartbeat as
//! before, and a client that answers no pings is judged by the idle timeout alone, never by
//! lag.
//!
//! Pure: the connection loop owns the timer and the socket and passes the clock.

use std::time::{Duration, Instant};

/// The ping payload: the probe's number, so only the answer to the probe counts.
pub type Token = [u8; 8];

/// What a timer tick asks the connection to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Send a ping with this payload.
    pub ping: Option<Token>,
    /// Close as a slow consumer: the client is at least this far behind.
    pub behind: Option<Duration>,
    /// Frames were written since the last tick (buffers are in use: keep them).
    pub busy: bool,
}

#[derive(Debug, Clone, Copy)]
struct Probe {
    token: u64,
    sent: Instant,
    /// Frames were written while it was out.
    busy: bool,
}

/// One connection's lag probe.
#[derive(Debug, Clone)]
pub struct LagProbe {
    /// `None`: lag is not judged (pings at the heartbeat only).
    max_lag: Option<Duration>,
    probe_every: Duration,
    heartbeat: Duration,
    next_token: u64,
    outstanding: Option<Probe>,
    busy: bool,
}

impl LagProbe {
    /// A probe closing clients more than `max_lag` behind (`None`: never), pinging every
    /// `probe_every` while frames flow and every `heartbeat` otherwise.
    pub fn new(max_lag: Option<Duration>, probe_every: Duration, heartbeat: Duration) -> Self {
        LagProbe {
            max_lag,
            probe_every: probe_every.min(heartbeat),
            heartbeat,
            next_token: 0,
            outstanding: None,
            busy: false,
        }
    }

    /// Frames were written. Returns whether the connection just turned busy, when the next
    /// tick should come within [`LagProbe::probe_every`] rather than at the heartbeat.
    pub fn wrote(&mut self) -> bool {
        if let Some(probe) = &mut self.outstanding {
            probe.busy = true;
        }
        let turned = !self.busy;
        self.busy = true;
        turned && self.max_lag.is_some()
    }

    /// The tick period while frames flow.
    pub fn probe_every(&self) -> Duration {
        self.probe_every
    }

    /// A timer tick at `now`.
    pub fn tick(&mut self, now: Instant) -> Tick {
        let busy = std::mem::take(&mut self.busy);
        let mut tick = Tick {
            ping: None,
            behind: None,
            busy,
        };
        if let Some(probe) = self.outstanding {
            let age = now.saturating_duration_since(probe.sent);
            if self.max_lag.is_some_and(|max| probe.busy && age > max) {
                tick.behind = Some(age);
                return tick;
            }
            // Still within its time; an unanswered idle ping is replaced at the heartbeat.
            if age < self.heartbeat {
                return tick;
            }
        }
        self.next_token = self.next_token.wrapping_add(1);
        // A ping sent after frames were written goes out behind them.
        self.outstanding = Some(Probe {
            token: self.next_token,
            sent: now,
            busy,
        });
        tick.ping = Some(self.next_token.to_be_bytes());
        tick
    }

    /// When the next tick is due after one at `now`: soon while frames flow or a probe is
    /// out on a busy connection, at the heartbeat otherwise.
    pub fn next_tick(&self, now: Instant, busy: bool) -> Instant {
        let soon = self.max_lag.is_some() && (busy || self.outstanding.is_some_and(|p| p.busy));
        now + if soon {
            self.probe_every
        } else {
            self.heartbeat
        }
    }

    /// A pong with `payload` at `now`: the client's lag when it answers the probe out and
    /// frames flowed around it. An idle ping's round trip says nothing of lag: a client may
    /// read late when nothing is pushed (one waiting out a retry hint does).
    pub fn pong(&mut self, payload: &[u8], now: Instant) -> Option<Duration> {
        let probe = self.outstanding?;
        if payload != probe.token.to_be_bytes() {
            return None;
        }
        self.outstanding = None;
        probe
            .busy
            .then(|| now.saturating_duration_since(probe.sent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn probe() -> LagProbe {
        LagProbe::new(Some(5_000 * MS), 1_000 * MS, 15_000 * MS)
    }

    #[test]
    fn an_answered_probe_measures_the_lag_and_the_next_one_follows() {
        let t0 = Instant::now();
        let mut p = probe();
        p.wrote();
        let first = p.tick(t0).ping.expect("a ping behind the frames");
        assert_eq!(p.pong(&first, t0 + 40 * MS), Some(40 * MS));
        assert_eq!(p.pong(&first, t0 + 50 * MS), None, "answered once");
        let second = p.tick(t0 + 1_000 * MS).ping.expect("another ping");
        assert_ne!(first, second);
        assert_eq!(
            p.pong(&second, t0 + 9_000 * MS),
            None,
            "an idle ping's round trip is no lag"
        );
    }

    #[test]
    fn a_busy_client_too_far_behind_is_reported() {
        let t0 = Instant::now();
        let mut p = probe();
        p.tick(t0).ping.expect("a ping");
        p.wrote();
        let at = t0 + 3_000 * MS;
        assert_eq!(
            p.tick(at),
            Tick {
                ping: None,
                behind: None,
                busy: true
            }
        );
        p.wrote();
        let late = p.tick(t0 + 5_001 * MS);
        assert_eq!(late.behind, Some(5_001 * MS));
        assert_eq!(late.ping, None);
    }

    #[test]
    fn an_idle_client_that_never_answers_is_never_judged_by_lag() {
        let t0 = Instant::now();
        let mut p = probe();
        let first = p.tick(t0).ping.expect("a ping");
        assert_eq!(p.tick(t0 + 10_000 * MS).behind, None);
        // A heartbeat later the unanswered ping is replaced.
        let second = p.tick(t0 + 15_000 * MS).ping.expect("a fresh ping");
        assert_ne!(first, second);
        p.wrote();
        assert_eq!(p.pong(&first, t0 + 15_001 * MS), None, "a stale answer");
        assert!(p.pong(&second, t0 + 15_002 * MS).is_some());
    }

    #[test]
    fn an_unsolicited_pong_is_ignored() {
        let t0 = Instant::now();
        let mut p = probe();
        assert_eq!(p.pong(b"", t0), None);
        p.tick(t0);
        assert_eq!(p.pong(b"", t0), None);
        assert_eq!(p.pong(&[0; 8], t0), None);
    }

    #[test]
    fn ticks_come_soon_while_frames_flow() {
        let t0 = Instant::now();
        let mut p = probe();
        assert!(p.wrote(), "turned busy");
        assert!(!p.wrote(), "already busy");
        let tick = p.tick(t0);
        assert!(tick.busy);
        assert_eq!(p.next_tick(t0, tick.busy), t0 + 1_000 * MS);
        let ping = tick.ping.expect("a ping behind the frames");
        assert_eq!(
            p.next_tick(t0, false),
            t0 + 1_000 * MS,
            "soon while it is out"
        );
        p.pong(&ping, t0 + 10 * MS).expect("a lag");
        let quiet = p.tick(t0 + 1_000 * MS);
        assert!(!quiet.busy);
        assert_eq!(p.next_tick(t0, quiet.busy), t0 + 15_000 * MS);
    }

    #[test]
    fn without_a_limit_it_only_pings_at_the_heartbeat() {
        let t0 = Instant::now();
        let mut p = LagProbe::new(None, 1_000 * MS, 15_000 * MS);
        assert!(!p.wrote());
        p.tick(t0).ping.expect("a ping");
        p.wrote();
        assert_eq!(p.tick(t0 + 60_000 * MS).behind, None);
        assert_eq!(p.next_tick(t0, true), t0 + 15_000 * MS);
    }
}
