//! Ordered load shedding. Under overload Corral gives up work in a fixed order: feeds and
//! history first, chat next, claims and countdowns last (SPEC section 7). The level comes from
//! a probe that measures how late the actor threads run a timer (scheduling lag): a node whose
//! threads are behind answers low-priority requests `unavailable` at once instead of queueing
//! them behind the claims that matter.
//!
//! A second signal is fan-out pressure ([`pressure`]): connections closed lately as slow
//! consumers, and room messages fanned out late (the node's own fan-out falling behind, which
//! neither the clients nor the probe show). While it lasts, new room members are refused, and
//! every retry hint grows with whichever of the two signals is higher.

mod pressure;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metric_catalogue as metric;
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

/// How long new room members are refused after a slow consumer was closed, by default.
pub const MEMBER_PAUSE: Duration = Duration::from_secs(5);

/// A room message fanned out this long after its request arrived counts as fan-out
/// pressure, by default.
pub const FANOUT_DELAY: Duration = Duration::from_secs(2);

/// The node's current overload level: 0 (serve everything) to 3 (serve only critical ops),
/// and its fan-out pressure.
pub struct Overload {
    level: AtomicU8,
    pressure: Mutex<Pressure>,
    /// A fan-out later than this counts as pressure (zero: never).
    fanout_delay: Duration,
}

impl Default for Overload {
    fn default() -> Self {
        Overload::new(MEMBER_PAUSE, FANOUT_DELAY)
    }
}

impl Overload {
    /// No load yet; new room members are refused for `member_pause` after each slow-consumer
    /// close or fan-out later than `fanout_delay` (zero: never, not counted).
    pub fn new(member_pause: Duration, fanout_delay: Duration) -> Overload {
        Overload {
            level: AtomicU8::new(0),
            pressure: Mutex::new(Pressure::new(member_pause)),
            fanout_delay,
        }
    }

    /// A room message was fanned out to this node's members `delay` after its request
    /// arrived: pressure when that is later than the node's bound.
    pub fn note_fanout_delay(&self, delay: Duration) {
        if !self.fanout_delay.is_zero() && delay > self.fanout_delay {
            self.note_slow_consumer();
        }
    }

    /// A connection was closed for not keeping up with its pushes (4008), or a message was
    /// fanned out late.
    pub fn note_slow_consumer(&self) {
        if let Ok(mut pressure) = self.pressure.lock() {
            pressure.note(Instant::now());
        }
    }

    /// The fan-out pressure now (0 to 3, see [`pressure`]).
    fn pressure(&self) -> u8 {
        self.pressure
            .lock()
            .map_or(0, |pressure| pressure.level(Instant::now()))
    }

    /// Whether a new room member is refused now, and then how long it should wait: the node
    /// closed slow consumers lately, or it is shedding (its threads run late), and a member
    /// taken in now would be served late or dropped in turn. Counted when refused.
    pub fn refuses_members(&self) -> Option<Duration> {
        let load = self.pressure().max(self.level());
        if load == 0 {
            return None;
        }
        metrics::counter!(metric::JOINS_REFUSED).increment(1);
        Some(crate::retry_hint::jittered(load))
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

    #[test]
    fn new_members_wait_under_fan_out_pressure_or_while_shedding() {
        let s = Duration::from_secs;
        let overload = Overload::new(s(5), s(2));
        assert_eq!(overload.refuses_members(), None);
        overload.note_slow_consumer();
        let wait = overload
            .refuses_members()
            .expect("refused after a slow consumer");
        assert!(wait >= crate::retry_hint::MIN, "{wait:?}");
        let late = Overload::new(s(5), s(2));
        late.note_fanout_delay(s(1));
        assert_eq!(late.refuses_members(), None, "a fan-out in time");
        late.note_fanout_delay(Duration::from_millis(2_001));
        assert!(
            late.refuses_members().is_some(),
            "refused after a late fan-out"
        );
        let unbounded = Overload::new(s(5), Duration::ZERO);
        unbounded.note_fanout_delay(s(60));
        assert_eq!(
            unbounded.refuses_members(),
            None,
            "a zero bound counts nothing"
        );
        let calm = Overload::new(s(5), s(2));
        calm.set_level(1);
        assert!(calm.refuses_members().is_some(), "refused while shedding");
        calm.set_level(0);
        assert_eq!(calm.refuses_members(), None);
        let never = Overload::new(Duration::ZERO, s(2));
        never.note_slow_consumer();
        assert_eq!(never.refuses_members(), None, "a zero pause never refuses");
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
