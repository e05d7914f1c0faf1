//! Measurements: HDR histograms (microseconds), timelines (counts per time bin, see
//! [`crate::timeline`]) and counters, outcomes and errors by name. A worker's clients record into one [`Recorder`]; workers' results merge into one
//! [`Stats`], which also travels between processes as JSON.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch (the timestamps carried in payloads).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Histogram names.
pub mod h {
    /// TCP connect + WebSocket handshake.
    pub const CONNECT: &str = "connect";
    /// Publish to receipt, from the timestamp in the payload.
    pub const DELIVERY: &str = "delivery";
    /// Arrival of `activity.started` minus `starts_at`.
    pub const START_SKEW: &str = "start_skew";
    /// Flash crowd: how far from `starts_at` (true time) a client opened claiming on its own
    /// estimate of the server clock, either way (`start_early` counts the early ones).
    pub const START_ERROR: &str = "start_error";
    /// Flash crowd: the error of a client's `time.sync` estimate of the server clock (the
    /// load generator shares the node's clock, so the true offset is 0); `start_error` adds
    /// how late the load generator's own timers fire with the whole crowd due at once.
    pub const CLOCK_ERROR: &str = "clock_error";
    /// Prefix of per-op reply latency (`reply.<op>`).
    pub const REPLY: &str = "reply.";
}

/// Timeline and counter names.
pub mod t {
    /// Connections established.
    pub const CONNECTS: &str = "connects";
    /// Messages published (or requests sent).
    pub const SENDS: &str = "sends";
    /// Messages received.
    pub const DELIVERIES: &str = "deliveries";
    /// Errors of any kind.
    pub const ERRORS: &str = "errors";
    /// Replies received.
    pub const REPLIES: &str = "replies";
    /// Requests the server decided by its rules (a claim held or refused as sold out, ...).
    pub const DECISIONS: &str = "decisions";
}

/// 1 us .. 1 hour at 3 significant figures, growing past that. (Creation only fails for
/// invalid bounds, which these are not; the `Option` keeps the code panic-free.)
fn new_histogram() -> Option<Histogram<u64>> {
    let mut hist = Histogram::new_with_bounds(1, 3_600_000_000, 3).ok()?;
    hist.auto(true);
    Some(hist)
}

/// Everything one run (or part of one) measured.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Latency histograms by name, in microseconds.
    pub histograms: BTreeMap<String, Histogram<u64>>,
    /// Counts per time bin by name; bin 0 starts at the run's origin.
    pub timelines: BTreeMap<String, Vec<u64>>,
    /// Totals by name.
    pub counters: BTreeMap<String, u64>,
    /// Expected answers by name (`claim.held`, `claim.sold_out`, ...).
    pub outcomes: BTreeMap<String, u64>,
    /// Errors by code (`rate_limited`, `connect_refused`, `http_503`, ...).
    pub errors: BTreeMap<String, u64>,
}

impl Stats {
    /// Records a latency sample in microseconds (allocation-free once `name` exists: this
    /// runs for every delivered frame).
    pub fn record(&mut self, name: &str, micros: u64) {
        if !self.histograms.contains_key(name) {
            let Some(hist) = new_histogram() else { return };
            self.histograms.insert(name.to_string(), hist);
        }
        if let Some(hist) = self.histograms.get_mut(name) {
            let _ = hist.record(micros.max(1));
        }
    }

    /// Adds `n` to a counter and to its timeline at bin `bin` of the run (allocation-free
    /// once `name` exists).
    pub fn count(&mut self, name: &str, bin: usize, n: u64) {
        match self.counters.get_mut(name) {
            Some(total) => *total += n,
            None => {
                self.counters.insert(name.to_string(), n);
            }
        }
        if !self.timelines.contains_key(name) {
            self.timelines.insert(name.to_string(), Vec::new());
        }
        if let Some(line) = self.timelines.get_mut(name) {
            if line.len() <= bin {
                line.resize(bin + 1, 0);
            }
            line[bin] += n;
        }
    }

    /// Counts an error by code (and in the `errors` timeline).
    pub fn error(&mut self, code: &str, bin: usize) {
        *self.errors.entry(code.to_string()).or_default() += 1;
        self.count(t::ERRORS, bin, 1);
    }

    /// Counts an expected answer by name (and in the `decisions` timeline).
    pub fn outcome(&mut self, name: &str, bin: usize) {
        *self.outcomes.entry(name.to_string()).or_default() += 1;
        self.count(t::DECISIONS, bin, 1);
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        for (name, hist) in &other.histograms {
            match self.histograms.get_mut(name) {
                Some(mine) => {
                    let _ = mine.add(hist);
                }
                None => {
                    self.histograms.insert(name.clone(), hist.clone());
                }
            }
        }
        for (name, line) in &other.timelines {
            let mine = self.timelines.entry(name.clone()).or_default();
            if mine.len() < line.len() {
                mine.resize(line.len(), 0);
            }
            for (a, b) in mine.iter_mut().zip(line) {
                *a += b;
            }
        }
        for (name, n) in &other.counters {
            *self.counters.entry(name.clone()).or_default() += n;
        }
        for (name, n) in &other.outcomes {
            *self.outcomes.entry(name.clone()).or_default() += n;
        }
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
    }

    /// A counter's total (0 when never counted).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// The wire form (histograms as recorded `[value, count]` pairs).
    pub fn to_wire(&self) -> WireStats {
        WireStats {
            histograms: self
                .histograms
                .iter()
                .map(|(name, hist)| {
                    let bins = hist
                        .iter_recorded()
                        .map(|v| (v.value_iterated_to(), v.count_at_value()))
                        .collect();
                    (name.clone(), bins)
                })
                .collect(),
            timelines: self.timelines.clone(),
            counters: self.counters.clone(),
            outcomes: self.outcomes.clone(),
            errors: self.errors.clone(),
        }
    }

    /// Rebuilds from the wire form.
    pub fn from_wire(wire: &WireStats) -> Stats {
        let mut stats = Stats {
            timelines: wire.timelines.clone(),
            counters: wire.counters.clone(),
            outcomes: wire.outcomes.clone(),
            errors: wire.errors.clone(),
            ..Stats::default()
        };
        for (name, bins) in &wire.histograms {
            let Some(mut hist) = new_histogram() else {
                continue;
            };
            for &(value, count) in bins {
                let _ = hist.record_n(value.max(1), count);
            }
            stats.histograms.insert(name.clone(), hist);
        }
        stats
    }
}

/// [`Stats`] as JSON can carry it between processes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireStats {
    /// Histograms as `[value_us, count]` pairs.
    pub histograms: BTreeMap<String, Vec<(u64, u64)>>,
    /// Timelines (counts per bin).
    pub timelines: BTreeMap<String, Vec<u64>>,
    /// Totals.
    pub counters: BTreeMap<String, u64>,
    /// Expected answers by name.
    #[serde(default)]
    pub outcomes: BTreeMap<String, u64>,
    /// Errors by code.
    pub errors: BTreeMap<String, u64>,
}

/// A worker's recorder. One lock, not shards: a worker's clients share one thread, and the
/// histograms (hundreds of KiB each) stay hot in cache when every delivery lands in the
/// same one.
pub struct Recorder {
    stats: Mutex<Stats>,
    epoch_us: u64,
    bin_us: u64,
}

impl Recorder {
    /// A recorder whose timelines count bins of `bin_us` from `epoch_us`.
    pub fn new(epoch_us: u64, bin_us: u64) -> Recorder {
        Recorder {
            stats: Mutex::new(Stats::default()),
            epoch_us,
            bin_us: bin_us.max(1),
        }
    }

    /// The run's timeline bin for a timestamp.
    pub fn bin(&self, at_us: u64) -> usize {
        (at_us.saturating_sub(self.epoch_us) / self.bin_us) as usize
    }

    /// Runs `f` on the stats, with the run's current bin.
    pub fn with<R>(&self, f: impl FnOnce(&mut Stats, usize) -> R) -> R {
        self.with_at(now_us(), f)
    }

    /// [`Recorder::with`] for an event at `at_us` (saves a clock read on the hot path).
    pub fn with_at<R>(&self, at_us: u64, f: impl FnOnce(&mut Stats, usize) -> R) -> R {
        let bin = self.bin(at_us);
        f(&mut self.lock(), bin)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stats> {
        match self.stats.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Stats {
        self.lock().clone()
    }

    /// One counter's total (cheap enough for a progress line).
    pub fn counter(&self, name: &str) -> u64 {
        self.lock().counter(name)
    }
}

/// Percentiles of a histogram for the summary and `result.json`, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Minimum.
    pub min_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Summary {
    /// Summarises a histogram of microseconds.
    pub fn of(hist: &Histogram<u64>) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: hist.len(),
            min_ms: ms(hist.min()),
            p50_ms: ms(hist.value_at_quantile(0.5)),
            p90_ms: ms(hist.value_at_quantile(0.9)),
            p99_ms: ms(hist.value_at_quantile(0.99)),
            p999_ms: ms(hist.value_at_quantile(0.999)),
            max_ms: ms(hist.max()),
            mean_ms: hist.mean() / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_merge_and_survive_the_wire() {
        let mut a = Stats::default();
        a.record(h::CONNECT, 1000);
        a.record(h::CONNECT, 3000);
        a.count(t::CONNECTS, 2, 5);
        a.error("rate_limited", 0);
        a.outcome("claim.sold_out", 1);
        let mut b = Stats::default();
        b.outcome("claim.sold_out", 1);
        b.outcome("claim.held", 0);
        b.record(h::CONNECT, 2000);
        b.count(t::CONNECTS, 0, 1);
        let wire = serde_json::to_string(&b.to_wire()).unwrap_or_default();
        let b: WireStats = serde_json::from_str(&wire).unwrap_or_default();
        a.merge(&Stats::from_wire(&b));
        let hist = &a.histograms[h::CONNECT];
        assert_eq!(hist.len(), 3);
        assert!((1990..=2010).contains(&hist.value_at_quantile(0.5)));
        assert_eq!(a.timelines[t::CONNECTS], vec![1, 0, 5]);
        assert_eq!(a.counter(t::CONNECTS), 6);
        assert_eq!(a.errors["rate_limited"], 1);
        assert_eq!(a.counter(t::ERRORS), 1);
        // Expected answers are counted apart from errors, and as decisions.
        assert_eq!(a.outcomes["claim.sold_out"], 2);
        assert_eq!(a.outcomes["claim.held"], 1);
        assert_eq!(a.timelines[t::DECISIONS], vec![1, 2]);
    }

    #[test]
    fn the_recorder_bins_by_its_resolution() {
        let rec = Recorder::new(1_000_000, 10_000);
        assert_eq!(rec.bin(1_000_000), 0);
        assert_eq!(rec.bin(1_009_999), 0);
        assert_eq!(rec.bin(1_250_000), 25);
        // Before the origin (a clock read racing the plan) lands in the first bin.
        assert_eq!(rec.bin(0), 0);
    }
}
