//! Watching a local node through a long run (the soak): once a second its RSS and open files
//! (from `/proc`) and, when it serves `/metrics` on the run's HTTP address, its connections
//! and running room and activity actors; then the check that none of them grows after the
//! warm-up. The samples land in `result.json` (`server_watch`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::api::Api;
use crate::checks::Check;
use crate::proc_stat;
use crate::stats::now_us;

/// How much a watched figure may grow between the warm-up's end and the run's end.
pub const TOLERANCE: f64 = 0.05;

/// The gauges read from `/metrics`.
const GAUGES: [&str; 3] = [
    "corral_connections",
    "corral_room_actors",
    "corral_activity_actors",
];

/// One look at the node.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// Seconds since the active phase began.
    pub at_seconds: f64,
    /// Resident set size.
    pub rss_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// `corral_connections`, `corral_room_actors`, `corral_activity_actors`, in that order
    /// (absent when `/metrics` did not answer).
    pub gauges: Option<[f64; 3]>,
}

/// What the watch saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerWatch {
    /// The node's pid.
    pub pid: u32,
    /// Seconds of the active phase taken as warm-up (not held to flatness).
    pub warmup_seconds: f64,
    /// One sample a second.
    pub samples: Vec<Sample>,
}

/// A running watch; [`Watcher::stop`] ends it and returns what it saw.
pub struct Watcher {
    pid: u32,
    warmup_seconds: f64,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Samples `pid` (and `api`'s `/metrics`) every `every` from now on.
    pub fn start(pid: u32, api: Option<Api>, every: Duration, warmup_seconds: f64) -> Watcher {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let origin = now_us();
        let into = samples.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                let gauges = match &api {
                    Some(api) => api.metrics().await.and_then(|text| gauges(&text)),
                    None => None,
                };
                let sample = Sample {
                    at_seconds: now_us().saturating_sub(origin) as f64 / 1e6,
                    rss_bytes: proc_stat::rss_bytes(pid),
                    open_fds: proc_stat::open_fds(pid),
                    gauges,
                };
                if let Ok(mut all) = into.lock() {
                    all.push(sample);
                }
            }
        });
        Watcher {
            pid,
            warmup_seconds,
            samples,
            stop,
            task,
        }
    }

    /// Ends the watch.
    pub async fn stop(self) -> ServerWatch {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        ServerWatch {
            pid: self.pid,
            warmup_seconds: self.warmup_seconds,
            samples,
        }
    }
}

/// The three gauges out of a Prometheus text exposition (all or nothing).
fn gauges(text: &str) -> Option<[f64; 3]> {
    let value = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?;
            // `name value`, not a longer name sharing the prefix.
            let rest = rest.strip_prefix(' ')?;
            rest.trim().parse::<f64>().ok()
        })
    };
    Some([value(GAUGES[0])?, value(GAUGES[1])?, value(GAUGES[2])?])
}

impl ServerWatch {
    /// One check per watched figure: its mean over the last tenth of the run is at most
    /// [`TOLERANCE`] above its mean over the first tenth after the warm-up. With too few
    /// samples after the warm-up (under 10), one failing check says so.
    pub fn checks(&self) -> Vec<Check> {
        let after: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.at_seconds >= self.warmup_seconds)
            .collect();
        if after.len() < 10 {
            return vec![Check {
                name: "the node stays flat after warm-up".into(),
                passed: false,
                detail: format!(
                    "{} samples after the {} s warm-up: too few to judge (run longer)",
                    after.len(),
                    self.warmup_seconds
                ),
            }];
        }
        let window = (after.len() / 10).max(1);
        let (first, last) = (&after[..window], &after[after.len() - window..]);
        let mut checks = Vec::new();
        let mut flat = |name: &str, unit: &str, read: &dyn Fn(&Sample) -> Option<f64>| {
            let mean = |part: &[&Sample]| {
                let values: Vec<f64> = part.iter().filter_map(|s| read(s)).collect();
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
            };
            if let (Some(start), Some(end)) = (mean(first), mean(last)) {
                checks.push(grew_at_most(name, unit, start, end));
            }
        };
        const MIB: f64 = 1_048_576.0;
        flat("node RSS", "MiB", &|s| s.rss_bytes.map(|b| b as f64 / MIB));
        flat("node open files", "", &|s| s.open_fds.map(|n| n as f64));
        flat("node connections", "", &|s| s.gauges.map(|g| g[0]));
        flat("node room actors", "", &|s| s.gauges.map(|g| g[1]));
        flat("node activity actors", "", &|s| s.gauges.map(|g| g[2]));
        checks
    }
}

/// `end` is at most [`TOLERANCE`] above `start` (a small absolute allowance keeps counts near
/// zero from failing on one actor).
fn grew_at_most(name: &str, unit: &str, start: f64, end: f64) -> Check {
    let limit = (start * (1.0 + TOLERANCE)).max(start + 2.0);
    let change = if start > 0.0 {
        format!("{:+.1}%", (end - start) / start * 100.0)
    } else {
        format!("{:+.1}", end - start)
    };
    Check {
        name: format!(
            "{name} flat after warm-up (within {:.0}%)",
            TOLERANCE * 100.0
        ),
        passed: end <= limit,
        detail: format!("{start:.1}{unit} after warm-up, {end:.1}{unit} at the end ({change})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(rss: impl Fn(usize) -> u64, n: usize) -> ServerWatch {
        ServerWatch {
            pid: 1,
            warmup_seconds: 10.0,
            samples: (0..n)
                .map(|i| Sample {
                    at_seconds: i as f64,
                    rss_bytes: Some(rss(i)),
                    open_fds: Some(100),
                    gauges: Some([50.0, 1.0, 0.0]),
                })
                .collect(),
        }
    }

    #[test]
    fn growth_during_warm_up_is_allowed() {
        let mib = 1_048_576;
        let checks = watch(
            |i| {
                if i < 10 {
                    (10 + i as u64) * mib
                } else {
                    100 * mib
                }
            },
            60,
        )
        .checks();
        assert_eq!(checks.len(), 5, "{checks:?}");
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    }

    #[test]
    fn growth_after_warm_up_fails_the_memory_check() {
        let mib = 1_048_576;
        let checks = watch(|i| (100 + i as u64) * mib, 60).checks();
        let rss = checks
            .iter()
            .find(|c| c.name.starts_with("node RSS"))
            .expect("rss");
        assert!(!rss.passed, "{rss:?}");
        assert!(
            checks.iter().filter(|c| c.passed).count() == 4,
            "{checks:?}"
        );
    }

    #[test]
    fn too_short_a_watch_cannot_pass() {
        let checks = watch(|_| 1, 15).checks();
        assert_eq!(checks.len(), 1);
        assert!(!checks[0].passed);
    }

    #[test]
    fn gauges_are_read_by_exact_name() {
        let text = "# HELP x\ncorral_connections_total 9\ncorral_connections 12\n\
                    corral_room_actors 3\ncorral_activity_actors 0\n";
        assert_eq!(gauges(text), Some([12.0, 3.0, 0.0]));
        assert_eq!(gauges("corral_connections 1\n"), None);
    }
}
