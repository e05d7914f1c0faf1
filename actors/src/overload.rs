//! Ordered load shedding. Under overload Corral gives up work in a fixed order: feeds and
//! history first, chat next, claims and countdowns last (SPEC section 7). The level comes from
//! a probe that measures how late the actor threads run a timer (scheduling lag): a node whose
//! threads are behind answers low-priority requests `unavailable` at once instead of queueing
//! them behind the claims that matter.
//!
//! A second signal is fan-out pressure: connections closed lately as slow consumers
//! ([`pressure`]), room messages fanned out late (the node's own fan-out falling behind, which
//! neither the clients nor the probe show), and more than a few members a second answering
//! their lag probes late ([`late_members`]). Under it new room members are taken in at a
//! measured rate ([`join_budget`]: halved while the pressure lasts, grown back while it does
//! not), so the node settles at the members it can serve; every retry hint grows with the
//! level or the slow-consumer closes, whichever is higher.

mod join_budget;
mod late_members;
mod pressure;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metric_catalogue as metric;
use join_budget::{Admission, JoinBudget};
use late_members::LateMembers;
use pressure::Pressure;

// The priority classes live in the protocol's op table, beside each op (one listing from
// which decoding, names and shedding derive); re-exported here where they are enforced.
pub use corral_protocol::ops::Priority;

/// Lag thresholds (from the `[overload]` config section).
#[derive(Debug, Clone)]
pub struct OverloadConfig {
    /// Whether the probe runs (when off, the level only changes by [`Overload::set_level`]).
    pub enabled: bool,
    /// How often the probe measures.
    pub interval: Duration,
    /// Lag above which low-priority work is shed.
    pub shed_low: Duration,
    /// Lag above which medium-priority work is shed too.
    pub shed_medium: Duration,
    /// Lag above which high-priority work is shed too.
    pub shed_high: Duration,
}

/// How long joins stay paced after the last pressure and the last refused join, by default.
pub const MEMBER_CALM: Duration = Duration::from_secs(5);

/// A room message fanned out this long after its request arrived counts as fan-out
/// pressure, by default.
pub const FANOUT_DELAY: Duration = Duration::from_secs(2);

/// A lag probe answered this much later than it was sent is a member served late, by default.
pub const LATE_MEMBER: Duration = Duration::from_secs(2);

/// What counts as fan-out pressure and how long joins stay paced after it (from the
/// `[overload]` config section; a zero turns that part off).
#[derive(Debug, Clone, Copy)]
pub struct MemberPacing {
    /// Joins are paced until this long has passed without pressure and without a refused
    /// join; the slow-consumer closes of this long make retry hints longer.
    pub calm: Duration,
    /// A room message fanned out later than this after its request arrived is pressure.
    pub fanout_delay: Duration,
    /// A lag probe answered later than this is a member served late.
    pub late_member: Duration,
}

impl Default for MemberPacing {
    fn default() -> Self {
        MemberPacing {
            calm: MEMBER_CALM,
            fanout_delay: FANOUT_DELAY,
            late_member: LATE_MEMBER,
        }
    }
}

/// The node's current overload level: 0 (serve everything) to 3 (serve only critical ops),
/// and its fan-out pressure.
pub struct Overload {
    level: AtomicU8,
    pressure: Mutex<Pressure>,
    joins: Mutex<JoinBudget>,
    late: Mutex<LateMembers>,
    /// A fan-out later than this counts as pressure (zero: never).
    fanout_delay: Duration,
}

impl Default for Overload {
    fn default() -> Self {
        Overload::new(MemberPacing::default())
    }
}

impl Overload {
    /// No load yet.
    pub fn new(pacing: MemberPacing) -> Overload {
        let now = Instant::now();
        Overload {
            level: AtomicU8::new(0),
            pressure: Mutex::new(Pressure::new(pacing.calm)),
            joins: Mutex::new(JoinBudget::new(pacing.calm, now)),
            late: Mutex::new(LateMembers::new(pacing.late_member, now)),
            fanout_delay: pacing.fanout_delay,
        }
    }

    /// A room message was fanned out to this node's members `delay` after its request
    /// arrived: pressure when that is later than the node's bound.
    pub fn note_fanout_delay(&self, delay: Duration) {
        if !self.fanout_delay.is_zero() && delay > self.fanout_delay {
            self.feel_pressure(Instant::now(), "late_fanout");
        }
    }

    /// A connection's lag probe was answered `lag` after it was sent: pressure when more
    /// than a few of a second's probes are late.
    pub fn note_client_lag(&self, lag: Duration) {
        let now = Instant::now();
        let late_second = self.late.lock().is_ok_and(|mut late| late.note(lag, now));
        if late_second {
            self.feel_pressure(now, "late_members");
        }
    }

    /// A connection was closed for not keeping up with its pushes (4008).
    pub fn note_slow_consumer(&self) {
        let now = Instant::now();
        if let Ok(mut pressure) = self.pressure.lock() {
            pressure.note(now);
        }
        self.feel_pressure(now, "slow_consumer");
    }

    fn feel_pressure(&self, now: Instant, signal: &'static str) {
        metrics::counter!(metric::FANOUT_PRESSURE, "signal" => signal).increment(1);
        if let Ok(mut joins) = self.joins.lock() {
            joins.pressure(now);
            publish_budget(&joins);
        }
    }

    /// The fan-out pressure now (0 to 3, see [`pressure`]).
    fn pressure(&self) -> u8 {
        self.pressure
            .lock()
            .map_or(0, |pressure| pressure.level(Instant::now()))
    }

    /// Whether a new room member is refused now, and then how long it should wait: under
    /// fan-out pressure, or while the node sheds (its threads run late), members are taken in
    /// at the join budget's rate. Counted when refused.
    pub fn refuses_members(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut joins = self.joins.lock().ok()?;
        let before = joins.rate();
        if self.level() > 0 {
            metrics::counter!(metric::FANOUT_PRESSURE, "signal" => "shedding").increment(1);
            joins.pressure(now);
        }
        let admission = joins.admit(now);
        // Every join passes here: the gauge is written only when the budget moved.
        if joins.rate() != before {
            publish_budget(&joins);
        }
        match admission {
            Admission::Admitted => None,
            Admission::Wait(wait) => {
                metrics::counter!(metric::JOINS_REFUSED).increment(1);
                Some(crate::retry_hint::spread(wait))
            }
        }
    }

    /// The current level.
    pub fn level(&self) -> u8 {
        self.level.load(Ordering::Relaxed)
    }

    /// Sets the level (the probe does; tests and operators may too).
    pub fn set_level(&self, level: u8) {
        let level = level.min(3);
        if self.level.swap(level, Ordering::Relaxed) != level {
            metrics::gauge!(metric::OVERLOAD_LEVEL).set(f64::from(level));
            tracing::warn!(level, "overload level changed");
        }
    }

    /// Whether a request of `priority` should be refused now. Counted when it is.
    pub fn sheds(&self, priority: Priority) -> bool {
        let shed = (priority as u8) <= self.level();
        if shed {
            metrics::counter!(metric::SHED, "priority" => priority.label()).increment(1);
        }
        shed
    }

    /// How long a client refused or closed now should wait before trying again: grows with
    /// the level or the fan-out pressure, whichever is higher, jittered (see
    /// [`crate::retry_hint`]).
    pub fn retry_after(&self) -> Duration {
        crate::retry_hint::jittered(self.level().max(self.pressure()))
    }

    /// The level for a measured lag.
    pub fn level_for(config: &OverloadConfig, lag: Duration) -> u8 {
        [config.shed_low, config.shed_medium, config.shed_high]
            .iter()
            .filter(|threshold| lag > **threshold)
            .count() as u8
    }

    /// Runs the lag probe on the current (actor) thread until the process ends. Each round it
    /// sleeps `interval` and measures how much later than asked it woke; the level follows the
    /// worst lag of the last few rounds, so one hiccup does not flap it.
    pub async fn probe(self: Arc<Self>, config: OverloadConfig) {
        if !config.enabled {
            return;
        }
        let mut recent = [Duration::ZERO; 5];
        let mut i = 0;
        loop {
            let asked = Instant::now();
            tokio::time::sleep(config.interval).await;
            let lag = asked.elapsed().saturating_sub(config.interval);
            metrics::histogram!(metric::EVENT_LOOP_LAG).record(lag.as_secs_f64());
            recent[i % recent.len()] = lag;
            i += 1;
            let worst = recent.iter().copied().max().unwrap_or_default();
            self.set_level(Overload::level_for(&config, worst));
        }
    }
}

/// The budget as a gauge: joins a second allowed, 0 while unlimited.
fn publish_budget(joins: &JoinBudget) {
    metrics::gauge!(metric::JOIN_BUDGET).set(joins.rate().unwrap_or(0.0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_protocol::Op;

    #[test]
    fn sheds_in_order() {
        let overload = Overload::default();
        let priority = |name: &str, params: &str| {
            let op = Op::decode(name, params)
                .expect("an op")
                .expect("valid params");
            op.priority()
        };
        let feed = priority("feed.timeline", r#"{"limit":1}"#);
        let chat = priority("room.leave", r#"{"room":1}"#);
        let watch = priority("activity.subscribe", r#"{"activity":1}"#);
        let auth = priority("auth", r#"{"token":""}"#);
        let shed = |o: &Overload| [feed, chat, watch, auth].map(|p| o.sheds(p));
        assert_eq!(shed(&overload), [false, false, false, false]);
        overload.set_level(1);
        assert_eq!(shed(&overload), [true, false, false, false]);
        overload.set_level(2);
        assert_eq!(shed(&overload), [true, true, false, false]);
        overload.set_level(3);
        assert_eq!(shed(&overload), [true, true, true, false]);
    }

    /// Every op's shedding priority, pinned: a change here changes what an overloaded node
    /// refuses first (SPEC section 7).
    #[test]
    fn every_op_keeps_its_priority() {
        use corral_protocol::ops::OP_NAMES;
        let pinned = [
            ("auth", r#"{"token":"t"}"#, Priority::Critical),
            ("time.sync", r#"{"client_time":1}"#, Priority::Critical),
            ("room.join", r#"{"room":1}"#, Priority::Medium),
            ("room.leave", r#"{"room":1}"#, Priority::Medium),
            (
                "room.send",
                r#"{"room":1,"text":"t","client_msg_id":"c"}"#,
                Priority::Medium,
            ),
            ("room.history", r#"{"room":1}"#, Priority::Low),
            (
                "dm.send",
                r#"{"to":2,"text":"t","client_msg_id":"c"}"#,
                Priority::Medium,
            ),
            ("follow", r#"{"user":2}"#, Priority::Low),
            ("unfollow", r#"{"user":2}"#, Priority::Low),
            ("feed.post", r#"{"text":"t"}"#, Priority::Low),
            ("feed.timeline", r#"{}"#, Priority::Low),
            ("feed.profile", r#"{"user":2}"#, Priority::Low),
            ("feed.like", r#"{"post":1}"#, Priority::Low),
            ("feed.unlike", r#"{"post":1}"#, Priority::Low),
            ("feed.comment", r#"{"post":1,"text":"t"}"#, Priority::Low),
            ("feed.delete", r#"{"post":1}"#, Priority::Low),
            ("activity.subscribe", r#"{"activity":1}"#, Priority::High),
            ("activity.unsubscribe", r#"{"activity":1}"#, Priority::High),
            ("claim", r#"{"activity":1,"key":"k"}"#, Priority::High),
            ("claim.cancel", r#"{"claim_id":1}"#, Priority::High),
        ];
        assert_eq!(pinned.map(|(name, _, _)| name), OP_NAMES);
        for (name, params, priority) in pinned {
            let op = Op::decode(name, params)
                .expect("decodes")
                .expect("valid params");
            assert_eq!(op.priority(), priority, "{name}");
        }
    }

    fn pacing(calm: u64, fanout_delay: u64, late_member: u64) -> Overload {
        let ms = Duration::from_millis;
        Overload::new(MemberPacing {
            calm: ms(calm),
            fanout_delay: ms(fanout_delay),
            late_member: ms(late_member),
        })
    }

    /// Refused joins of `tries` at once.
    fn refused(overload: &Overload, tries: usize) -> usize {
        (0..tries)
            .filter_map(|_| overload.refuses_members())
            .inspect(|wait| assert!(*wait >= crate::retry_hint::MIN, "{wait:?}"))
            .count()
    }

    #[test]
    fn new_members_are_paced_under_fan_out_pressure_or_while_shedding() {
        let overload = pacing(5_000, 2_000, 2_000);
        assert_eq!(refused(&overload, 100), 0);
        overload.note_slow_consumer();
        // Half the last second's joins a second, starting from an empty bucket.
        assert_eq!(refused(&overload, 10), 10, "paced after a slow consumer");

        let late = pacing(5_000, 2_000, 2_000);
        late.note_fanout_delay(Duration::from_secs(1));
        assert_eq!(refused(&late, 10), 0, "a fan-out in time");
        late.note_fanout_delay(Duration::from_millis(2_001));
        assert_eq!(refused(&late, 10), 10, "paced after a late fan-out");

        let unbounded = pacing(5_000, 0, 0);
        unbounded.note_fanout_delay(Duration::from_secs(60));
        unbounded.note_client_lag(Duration::from_secs(60));
        assert_eq!(refused(&unbounded, 10), 0, "zero bounds count nothing");

        let calm = pacing(5_000, 2_000, 2_000);
        calm.set_level(1);
        assert_eq!(refused(&calm, 10), 10, "paced while shedding");

        let never = pacing(0, 2_000, 2_000);
        never.note_slow_consumer();
        assert_eq!(refused(&never, 10), 0, "a zero calm never paces");
    }

    #[test]
    fn members_answering_late_pace_new_ones() {
        let overload = pacing(5_000, 2_000, 100);
        for _ in 0..10 {
            overload.note_client_lag(Duration::from_millis(500));
        }
        assert_eq!(refused(&overload, 10), 0, "no second has closed yet");
        std::thread::sleep(Duration::from_millis(1_000));
        overload.note_client_lag(Duration::from_millis(1));
        assert_eq!(refused(&overload, 10), 10, "a late second paces joins");
    }

    #[test]
    fn level_follows_lag_thresholds() {
        let config = OverloadConfig {
            enabled: true,
            interval: Duration::from_millis(100),
            shed_low: Duration::from_millis(50),
            shed_medium: Duration::from_millis(200),
            shed_high: Duration::from_millis(1000),
        };
        let ms = Duration::from_millis;
        assert_eq!(Overload::level_for(&config, ms(10)), 0);
        assert_eq!(Overload::level_for(&config, ms(60)), 1);
        assert_eq!(Overload::level_for(&config, ms(300)), 2);
        assert_eq!(Overload::level_for(&config, ms(2000)), 3);
    }
}
