//! A client's claims ([`ClaimBook`]), shared by the flash crowd and the soak: every claim has
//! its own idempotency key for the run (`lt-<run>-<client>-<k>`), and the book remembers which
//! request carries which key. A claim answered `unavailable`, `rate_limited` or `timeout` goes
//! again with the same key after a short jittered backoff, never sooner than the answer's
//! `retry_after_ms` (up to the scenario's retries), as protocol/README.md tells clients to; one answered `not_started` (the client's estimate of
//! the start was early) goes again just after the instant the client believes claiming opens;
//! and claims lost with their socket go again on the next one. The server's idempotency, not
//! the load generator, decides what each key got, so the claim checks hold whatever happened
//! on the way.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::scenarios::rejoin::{backoff, with_own_jitter};
use crate::client::{ClientError, Conn};

/// Before sending a claim again after `not_started`, at least this long.
const NOT_STARTED_PAUSE: Duration = Duration::from_millis(2);
/// Claims sent again after `not_started`, per key (apart from the scenario's `retries`).
const NOT_STARTED_RETRIES: u32 = 3;

/// Whether a claim answered with `code` goes again with its key: the answer said nothing
/// about the claim (a hold may or may not have been made).
fn retryable(code: &str) -> bool {
    matches!(code, "unavailable" | "rate_limited" | "timeout")
}

/// One claim on its way: its key's index, retries spent, `not_started` retries spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attempt {
    k: usize,
    tries: u32,
    early: u32,
}

/// What a reply to a claim means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// Not a claim of the book's (or one answered already).
    Unknown,
    /// The decision (held, or refused by the promotion's rules), or a failure for good.
    Final,
    /// A failure that goes again with the same key; it is still counted as an error.
    Retry,
    /// Early on this client's clock: no answer yet (not an outcome, not an error); it goes
    /// again just after the start.
    Early,
}

/// One client's claims on one promotion.
#[derive(Debug)]
pub(super) struct ClaimBook {
    activity: i64,
    /// Retries of a retryable failure, per key.
    retries: u32,
    /// `lt-<run>-<client>`: the keys are this plus `-<k>`.
    prefix: String,
    /// Keys opened so far.
    opened: usize,
    /// Sent on the current socket, by request id.
    outstanding: HashMap<u64, Attempt>,
    /// To send again at their instant.
    due: Vec<(Instant, Attempt)>,
    /// When this client believes claiming opens (a crowd's synced start).
    opens_at: Option<Instant>,
    /// Holds made and not yet taken by [`ClaimBook::take_won`]: claim id, `expires_at` (ms).
    won: Vec<(i64, i64)>,
}

impl ClaimBook {
    /// An empty book for claims in `activity`, keys prefixed with `prefix`.
    pub(super) fn new(prefix: String, activity: i64, retries: u32) -> ClaimBook {
        ClaimBook {
            activity,
            retries,
            prefix,
            opened: 0,
            outstanding: HashMap::new(),
            due: Vec::new(),
            opens_at: None,
            won: Vec::new(),
        }
    }

    /// Claims answered `not_started` go again just after `at`.
    pub(super) fn opens_at(&mut self, at: Instant) {
        self.opens_at = Some(at);
    }

    fn key(&self, k: usize) -> String {
        format!("{}-{k}", self.prefix)
    }

    /// Sends a claim with a new key.
    pub(super) async fn claim(&mut self, conn: &mut Conn) -> Result<(), ClientError> {
        let attempt = Attempt {
            k: self.opened,
            tries: 0,
            early: 0,
        };
        self.opened += 1;
        self.send(conn, attempt).await
    }

    async fn send(&mut self, conn: &mut Conn, attempt: Attempt) -> Result<(), ClientError> {
        let key = self.key(attempt.k);
        let id = conn
            .send("claim", &json!({ "activity": self.activity, "key": key }))
            .await?;
        self.outstanding.insert(id, attempt);
        Ok(())
    }

    /// Reads the reply to request `id`: what it means, and when the claim goes again.
    pub(super) fn answered(&mut self, id: u64, result: &Result<Value, ClientError>) -> Answer {
        let Some(attempt) = self.outstanding.remove(&id) else {
            return Answer::Unknown;
        };
        let now = Instant::now();
        match result {
            Err(err) if err.code == "not_started" && attempt.early < NOT_STARTED_RETRIES => {
                let at = self.opens_at.map_or(now, |open| open.max(now)) + NOT_STARTED_PAUSE;
                let early = attempt.early + 1;
                self.due.push((at, Attempt { early, ..attempt }));
                Answer::Early
            }
            Err(err) if retryable(&err.code) && attempt.tries < self.retries => {
                let unit = rand::random::<f64>();
                let wait = backoff(attempt.tries, unit);
                // Never sooner than the node asked (an `unavailable`'s `retry_after_ms`).
                let wait = err
                    .retry_after
                    .map_or(wait, |hint| wait.max(with_own_jitter(hint, unit)));
                let at = now + wait;
                let tries = attempt.tries + 1;
                self.due.push((at, Attempt { tries, ..attempt }));
                Answer::Retry
            }
            Err(_) => Answer::Final,
            Ok(ok) => {
                let claim_id = ok.get("claim_id").and_then(Value::as_i64);
                let expires_at = ok.get("expires_at").and_then(Value::as_i64);
                if let (Some(claim_id), Some(expires_at)) = (claim_id, expires_at) {
                    self.won.push((claim_id, expires_at));
                }
                Answer::Final
            }
        }
    }

    /// The next instant a claim goes again, if one waits.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.due.iter().map(|(at, _)| *at).min()
    }

    /// Sends every claim whose instant came.
    pub(super) async fn send_due(&mut self, conn: &mut Conn) -> Result<(), ClientError> {
        let now = Instant::now();
        let (ready, later) = std::mem::take(&mut self.due)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.due = later;
        for (_, attempt) in ready {
            self.send(conn, attempt).await?;
        }
        Ok(())
    }

    /// The socket the outstanding claims went out on is gone: sends them again, with their
    /// keys, on `conn`.
    pub(super) async fn resend_lost(&mut self, conn: &mut Conn) -> Result<(), ClientError> {
        let lost: Vec<Attempt> = self.outstanding.drain().map(|(_, a)| a).collect();
        for attempt in lost {
            self.send(conn, attempt).await?;
        }
        Ok(())
    }

    /// Claims without a final answer yet (sent, or waiting to go again).
    pub(super) fn unsettled(&self) -> usize {
        self.outstanding.len() + self.due.len()
    }

    /// The holds made since the last call: claim id and `expires_at` (ms, server clock).
    pub(super) fn take_won(&mut self) -> Vec<(i64, i64)> {
        std::mem::take(&mut self.won)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_that_say_nothing_about_the_claim_are_retried() {
        for code in ["unavailable", "rate_limited", "timeout"] {
            assert!(retryable(code), "{code}");
        }
        for code in [
            "sold_out",
            "limit_reached",
            "not_eligible",
            "ended",
            "bad_request",
        ] {
            assert!(!retryable(code), "{code}");
        }
    }

    fn err(code: &str) -> Result<Value, ClientError> {
        Err(ClientError::new(code, "test"))
    }

    fn sent(book: &mut ClaimBook, id: u64, k: usize, tries: u32, early: u32) {
        book.outstanding.insert(id, Attempt { k, tries, early });
    }

    #[test]
    fn a_retryable_failure_goes_again_with_its_key_until_the_retries_run_out() {
        let mut book = ClaimBook::new("lt-1-2".into(), 9, 2);
        sent(&mut book, 1, 0, 0, 0);
        assert_eq!(book.answered(1, &err("unavailable")), Answer::Retry);
        assert_eq!(book.unsettled(), 1);
        let due = book.next_due().expect("due");
        assert!(due > Instant::now(), "after a backoff, not at once");
        assert_eq!(
            book.due[0].1,
            Attempt {
                k: 0,
                tries: 1,
                early: 0
            }
        );
        // Its last allowed retry fails too: final.
        book.due.clear();
        sent(&mut book, 2, 0, 2, 0);
        assert_eq!(book.answered(2, &err("unavailable")), Answer::Final);
        assert_eq!(book.unsettled(), 0);
        // A refusal by the rules is never retried; an unknown request is not the book's.
        sent(&mut book, 3, 1, 0, 0);
        assert_eq!(book.answered(3, &err("sold_out")), Answer::Final);
        assert_eq!(book.answered(3, &err("sold_out")), Answer::Unknown);
    }

    #[test]
    fn a_retry_waits_at_least_what_the_node_asked() {
        let mut book = ClaimBook::new("lt-1-2".into(), 9, 2);
        sent(&mut book, 1, 0, 0, 0);
        let hinted = Err(ClientError {
            retry_after: Some(Duration::from_secs(3)),
            ..ClientError::new("unavailable", "test")
        });
        assert_eq!(book.answered(1, &hinted), Answer::Retry);
        let due = book.next_due().expect("due");
        assert!(
            due >= Instant::now() + Duration::from_millis(2_900),
            "{due:?}"
        );
    }

    #[test]
    fn an_early_claim_goes_again_after_the_start_a_few_times() {
        let mut book = ClaimBook::new("lt-1-2".into(), 9, 0);
        let open = Instant::now() + Duration::from_secs(5);
        book.opens_at(open);
        sent(&mut book, 1, 0, 0, 0);
        assert_eq!(book.answered(1, &err("not_started")), Answer::Early);
        assert!(book.next_due().is_some_and(|at| at > open));
        book.due.clear();
        sent(&mut book, 2, 0, 0, NOT_STARTED_RETRIES);
        assert_eq!(book.answered(2, &err("not_started")), Answer::Final);
    }

    #[test]
    fn holds_are_handed_out_once() {
        let mut book = ClaimBook::new("lt-1-2".into(), 9, 0);
        sent(&mut book, 1, 0, 0, 0);
        let held = json!({"claim_id": 5, "item": 3, "status": "held", "expires_at": 1000});
        assert_eq!(book.answered(1, &Ok(held)), Answer::Final);
        assert_eq!(book.take_won(), vec![(5, 1000)]);
        assert!(book.take_won().is_empty());
    }

    #[test]
    fn keys_are_the_clients_own_and_distinct() {
        let book = ClaimBook::new("lt-7-3".into(), 1, 0);
        assert_eq!(book.key(0), "lt-7-3-0");
        assert_ne!(book.key(1), book.key(0));
    }
}
