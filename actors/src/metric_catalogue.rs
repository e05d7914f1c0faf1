//! Every metric Corral exports, in one table: its name (a constant each call site uses), its
//! kind, its unit and the help text `/metrics` shows in `# HELP`. A name cannot drift from its
//! description because both are declared here, once; `docs/metrics.md` says what each one
//! tells an operator, and a test checks that page names every metric in this table.
//!
//! The table sits in this crate, not the server's, because both crates record metrics and
//! arrows only point down (`src` -> `actors`). The process metrics (`process_*`) come from the
//! `metrics-process` collector, which describes its own.

use metrics::Unit;

/// What a metric is, as Prometheus types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution in buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One metric's declaration.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The exported name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// What one unit of its value is.
    pub unit: Unit,
    /// The names of its labels (none: one series).
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
}

/// Declares each metric's constant (documented with its help text) and [`ALL`].
macro_rules! catalogue {
    ($($id:ident: $kind:ident, $unit:ident, [$($label:literal),*], $name:literal, $help:literal;)*) => {
        $(
            #[doc = $help]
            pub const $id: &str = $name;
        )*
        /// Every metric Corral records, in the order of `docs/metrics.md`.
        pub const ALL: &[Metric] = &[
            $(Metric {
                name: $id,
                kind: Kind::$kind,
                unit: Unit::$unit,
                labels: &[$($label),*],
                help: $help,
            },)*
        ];
    };
}

catalogue! {
    // Connections and frames.
    CONNECTIONS: Gauge, Count, [], "corral_connections",
        "WebSocket connections open on this node.";
    CONNECTIONS_ACCEPTED: Counter, Count, [], "corral_connections_total",
        "WebSocket upgrades accepted.";
    CONNECTIONS_REFUSED: Counter, Count, ["reason"], "corral_connections_refused_total",
        "Connections refused before or at upgrade, by reason (node_full, per_ip, per_user, rate, origin, http_per_ip).";
    FRAMES_IN: Counter, Count, ["op"], "corral_frames_in_total",
        "Request frames received, by op.";
    FRAMES_OUT: Counter, Count, ["kind", "op"], "corral_frames_out_total",
        "Frames sent, by kind (reply, push) and op; room messages are counted in corral_fanout_deliveries_total.";
    HEAP_IN_USE: Gauge, Bytes, [], "corral_heap_in_use_bytes",
        "Bytes the memory allocator has handed out and not had back (read at each scrape).";
    HEAP_FREE: Gauge, Bytes, [], "corral_heap_free_bytes",
        "Free bytes the memory allocator keeps rather than return to the OS (read at each scrape).";
    SQLITE_MEMORY: Gauge, Bytes, [], "corral_sqlite_memory_bytes",
        "Bytes SQLite holds: page caches, prepared statements, schema (read at each scrape).";
    BYTES_IN: Counter, Bytes, [], "corral_bytes_in_total",
        "Bytes of WebSocket text frames received.";
    OVERSIZE_FRAMES: Counter, Count, [], "corral_oversize_frames_total",
        "Connections closed for a frame over ws.max_frame_bytes (close code 1009).";
    IDLE_DISCONNECTS: Counter, Count, [], "corral_idle_disconnects_total",
        "Connections closed for missing heartbeats.";
    SLOW_CONSUMER_DROPS: Counter, Count, [], "corral_slow_consumer_drops_total",
        "Connections closed as slow consumers (close code 4008): outbound queue full, or too far behind.";
    CLIENT_LAG: Histogram, Seconds, [], "corral_ws_client_lag_seconds",
        "How far behind its pushes a busy connection's client is: the round trip of a ping queued after them.";
    REPLIES: Counter, Count, ["op", "outcome"], "corral_replies_total",
        "Replies sent, by op and outcome (ok or the error code).";
    REPLY_LATENCY: Histogram, Seconds, ["op"], "corral_reply_latency_seconds",
        "Time from a request frame's arrival to its reply being queued, by op.";
    RATE_LIMITED: Counter, Count, ["scope"], "corral_rate_limited_total",
        "Requests refused by a rate limit, by scope (connection, user, login_ip, login_account, register_ip).";
    RATE_LIMITER_RESETS: Counter, Count, [], "corral_rate_limiter_resets_total",
        "Times a keyed rate limiter was full of active keys and forgot them all.";
    AUTH_FAILURES: Counter, Count, ["reason"], "corral_auth_failures_total",
        "Failed authentications, by reason (login, bearer, expired, invalid, revoked, timeout).";
    SESSIONS_REVOKED: Counter, Count, [], "corral_sessions_revoked_total",
        "Users whose sessions were closed because their role, token version or standing changed.";

    // Rooms and fan-out.
    MESSAGES_STORED: Counter, Count, [], "corral_messages_stored_total",
        "Chat messages committed by this node's room actors.";
    FANOUT_DELIVERIES: Counter, Count, [], "corral_fanout_deliveries_total",
        "Room messages queued to member sessions (one per recipient).";
    DELIVERY_LATENCY: Histogram, Seconds, [], "corral_delivery_seconds",
        "Time for a room actor to queue one message to all its local members.";
    BROADCAST_FANOUT: Histogram, Seconds, ["kind"], "corral_broadcast_fanout_seconds",
        "Time to queue one push to all subscribers, by kind.";
    ROOM_CATCH_UPS: Counter, Count, [], "corral_room_catch_ups_total",
        "Room reads from the store to close a sequence gap or repair after a lost publish.";
    PRESENCE_SUPPRESSED: Counter, Count, [], "corral_presence_suppressed_total",
        "Presence pushes not sent because the room had more than chat.presence_max_online users online.";
    ROOM_ACTORS_RETIRED: Counter, Count, [], "corral_room_actors_retired_total",
        "Idle room actors stopped.";
    ROOM_ACTORS: Gauge, Count, [], "corral_room_actors",
        "Room actors running on this node (read when /metrics is scraped).";
    ACTIVITY_ACTORS: Gauge, Count, [], "corral_activity_actors",
        "Activity actors running on this node.";
    ACTOR_RESTARTS: Counter, Count, ["kind"], "corral_actor_restarts_total",
        "Supervised actors restarted after a panic, by kind (room, activity).";
    MEMORY_TRIMS: Counter, Count, [], "corral_memory_trims_total",
        "Times the allocator's free memory was returned to the operating system (server.memory_trim_secs).";

    // Claims.
    CLAIMS: Counter, Count, ["outcome"], "corral_claims_total",
        "Claim decisions, by outcome (held, repeat, sold_out, limit_reached, no_such_item).";
    RULE_FACT_LOADS: Counter, Count, ["reason"], "corral_rule_fact_loads_total",
        "Reads of one user's facts for a promotion's rules (one SQL statement each), by reason (subscribe, claim, refresh); a claim by a user whose facts are cached reads none.";
    ELIGIBILITY_PUSHES: Counter, Count, [], "corral_eligibility_pushes_total",
        "activity.eligibility pushes: a watcher's eligibility changed because their facts did.";
    CLAIM_TIMEOUTS: Counter, Count, [], "corral_claim_timeouts_total",
        "Claims answered unavailable because the ledger did not settle them within promotions.claim_timeout_ms.";
    CLAIM_LEDGER_ERRORS: Counter, Count, [], "corral_claim_ledger_errors_total",
        "Claims answered unavailable because the claim ledger (Redis or SQL) failed.";
    CLAIMS_EXPIRED: Counter, Count, [], "corral_claims_expired_total",
        "Holds expired unpaid; their stock went back.";
    CLAIM_PAYMENTS: Counter, Count, ["outcome"], "corral_claim_payments_total",
        "Payments applied to holds, by outcome (the claim's new status).";
    CLAIMS_RECONCILED: Counter, Count, ["action"], "corral_claims_reconciled_total",
        "Redis claim slots fixed by the reconciler, by action (orphan, repaired).";
    REDIS_CLAIM_BATCH_SIZE: Histogram, Count, [], "corral_redis_claim_batch_size",
        "Claims decided in one Redis script call.";
    SQL_BATCH_SIZE: Histogram, Count, ["table"], "corral_sql_batch_size",
        "Rows committed in one durable batch, by table.";
    SQL_BATCH_LATENCY: Histogram, Seconds, ["table"], "corral_sql_batch_seconds",
        "Time to commit one durable batch, by table.";
    WEBHOOK_REFUSED: Counter, Count, ["reason"], "corral_webhook_refused_total",
        "Payment webhooks refused, by reason (signature, stale, amount, replay).";

    // The chat store and the cluster.
    STORE_BATCH_SIZE: Histogram, Count, [], "corral_store_batch_size",
        "Chat messages committed in one group-commit batch.";
    STORE_COMMIT_LATENCY: Histogram, Seconds, [], "corral_store_commit_seconds",
        "Time to commit one chat group-commit batch.";
    STORE_BATCH_FAILURES: Counter, Count, [], "corral_store_batch_failures_total",
        "Chat batches that failed to commit (their senders were answered unavailable).";
    REDIS_ERRORS: Counter, Count, ["area"], "corral_redis_errors_total",
        "Redis commands or connections that failed, by area (broker, claims, presence, user_rates).";
    BROKER_DROPS: Counter, Count, [], "corral_broker_drops_total",
        "Room frames from the broker dropped: a full room queue or an unreadable frame.";
    CLUSTER_EVENTS_IN: Counter, Count, ["event"], "corral_cluster_events_in_total",
        "Events from other nodes applied, by event.";
    CLUSTER_EVENTS_OUT: Counter, Count, [], "corral_cluster_events_out_total",
        "Events published to other nodes.";
    CLUSTER_EVENTS_DROPPED: Counter, Count, [], "corral_cluster_events_dropped_total",
        "Cluster events dropped: the local queue was full or the event was unreadable or unencodable.";
    USER_RATE_SETTLE_ERRORS: Counter, Count, [], "corral_user_rate_settle_errors_total",
        "Failed exchanges of users' request budgets with the cluster.";

    // Feeds.
    FEED_POSTS: Counter, Count, [], "corral_feed_posts_total",
        "Feed posts published.";
    FEED_PUSHES: Counter, Count, [], "corral_feed_pushes_total",
        "Users a feed post was pushed to.";
    FEED_FANOUT: Histogram, Seconds, ["strategy"], "corral_feed_fanout_seconds",
        "Time to fan one feed post out, by strategy (followers, online).";

    // Overload.
    OVERLOAD_LEVEL: Gauge, Count, [], "corral_overload_level",
        "Load shedding level: 0 serves everything, 1 sheds feeds and history, 2 also chat, 3 also claims.";
    SHED: Counter, Count, ["priority"], "corral_shed_total",
        "Requests refused by load shedding, by priority (low, medium, high).";
    JOINS_REFUSED: Counter, Count, [], "corral_room_joins_refused_total",
        "room.join refused by the join budget (fan-out pressure or shedding).";
    FANOUT_PRESSURE: Counter, Count, ["signal"], "corral_fanout_pressure_total",
        "Fan-out pressure felt, by signal: slow_consumer, late_fanout, late_members, shedding.";
    JOIN_BUDGET: Gauge, Count, [], "corral_room_join_budget",
        "New room members a second the node takes in under fan-out pressure; 0 while unlimited.";
    EVENT_LOOP_LAG: Histogram, Seconds, [], "corral_event_loop_lag_seconds",
        "How late an actor thread ran the overload probe's timer.";

    // HTTP and the edge.
    HTTP_REQUESTS: Counter, Count, ["method", "route", "status"], "corral_http_requests_total",
        "HTTP requests answered, by method, route pattern and status.";
    HTTP_REQUEST_DURATION: Histogram, Seconds, ["method", "route", "status"], "corral_http_request_duration_seconds",
        "Time from an HTTP request's arrival to its response head, by method, route pattern and status.";
    HTTP_TIMEOUTS: Counter, Count, [], "corral_http_timeouts_total",
        "HTTP requests cut off by server.request_timeout_ms.";
    PASSWORD_HASHES: Counter, Count, [], "corral_password_hashes_total",
        "Password hashes computed or verified.";
    PASSWORD_HASHES_REFUSED: Counter, Count, [], "corral_password_hashes_refused_total",
        "Password hashes refused because the hashing queue was full (the client got 429).";
}

/// Gives every metric its help text and unit. Run once, right after the recorder is installed
/// (descriptions sent to no recorder are lost).
pub fn describe_all() {
    for metric in ALL {
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.unit, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.unit, metric.help),
            Kind::Histogram => {
                metrics::describe_histogram!(metric.name, metric.unit, metric.help)
            }
        }
    }
}

/// Creates, at zero, every counter and gauge without labels, and the labelled series of the
/// faults that alerts watch. A counter born at 1 hides its first event from `increase()` and
/// `rate()` (there is no earlier sample), and a panel of a series that does not exist reads
/// "No data" instead of 0. Adding zero leaves a series that already counts as it is.
pub fn start_series() {
    for metric in ALL.iter().filter(|m| m.labels.is_empty()) {
        match metric.kind {
            Kind::Counter => metrics::counter!(metric.name).increment(0),
            Kind::Gauge => metrics::gauge!(metric.name).increment(0.0),
            // An empty histogram would be a page of zero buckets: it appears with its first
            // sample.
            Kind::Histogram => {}
        }
    }
    for kind in ["room", "activity"] {
        metrics::counter!(ACTOR_RESTARTS, "kind" => kind).increment(0);
    }
    for priority in [
        crate::Priority::Low,
        crate::Priority::Medium,
        crate::Priority::High,
    ] {
        metrics::counter!(SHED, "priority" => priority.label()).increment(0);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashSet;
    use std::path::{Path, PathBuf};

    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn names_are_unique_and_follow_the_conventions() {
        let mut seen = HashSet::new();
        for m in ALL {
            assert!(seen.insert(m.name), "{} declared twice", m.name);
            assert!(m.name.starts_with("corral_"), "{}", m.name);
            assert!(
                m.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{} is not snake_case",
                m.name
            );
            // Counters end in _total and nothing else does; time is in seconds, and a
            // histogram says what it measures.
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            assert_eq!(
                m.unit == Unit::Seconds,
                m.name.ends_with("_seconds"),
                "{}",
                m.name
            );
            assert_eq!(
                m.unit == Unit::Bytes,
                m.name.contains("_bytes"),
                "{}",
                m.name
            );
            if m.kind == Kind::Histogram {
                assert!(
                    m.name.ends_with("_seconds") || m.name.ends_with("_size"),
                    "{} has no unit suffix",
                    m.name
                );
            }
            assert!(
                m.help.ends_with('.') && !m.help.contains('\n'),
                "{}: help is one sentence",
                m.name
            );
        }
    }

    /// `docs/metrics.md` names every metric (a new one without an entry fails here).
    #[test]
    fn the_docs_page_names_every_metric() {
        let page =
            std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
        let missing: Vec<&str> = ALL
            .iter()
            .map(|m| m.name)
            .filter(|name| !page.contains(&format!("`{name}`")))
            .collect();
        assert!(missing.is_empty(), "docs/metrics.md lacks {missing:?}");
    }

    /// Every call site names its metric by a constant from this table: a literal name would
    /// have no description and could drift.
    #[test]
    fn no_metric_is_recorded_by_a_literal_name() {
        fn walk(dir: &Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read");
                    let squeezed: String = text.split_whitespace().collect();
                    for mac in ["counter!(\"", "gauge!(\"", "histogram!(\""] {
                        if squeezed.contains(mac) {
                            found.push(format!("{} ({mac})", path.display()));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(&repo().join("src"), &mut found);
        walk(&repo().join("actors/src"), &mut found);
        assert!(
            found.is_empty(),
            "metrics recorded by literal name in {found:?}"
        );
    }
}
