//! Timelines: counts per time bin since the run's origin. Workers record at a fine, fixed
//! resolution chosen from the run's time bound ([`record_bin_us`]); the report regroups the
//! bins for a chart ([`chart_bin_us`], [`rebin`]), zooms in where one bar would swallow a
//! burst ([`hidden_burst`]), marks where the phases began ([`Phase`]), and rates are taken
//! over the active window ([`rate`]). Everything here is pure arithmetic on bins.

use serde::{Deserialize, Serialize};

/// Bin widths a timeline may be recorded or drawn at, finest first (microseconds).
pub const LADDER_US: [u64; 13] = [
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
];

/// Most bins a worker records per timeline (it sends them all to the coordinator at the
/// end, as JSON): 10 ms bins up to a 5-minute bound, coarser beyond.
pub const MAX_RECORDED_BINS: u64 = 30_000;

/// Most bars a chart draws.
pub const MAX_BARS: u64 = 150;

/// The recording resolution for a run bounded by `max_seconds`: the finest width that
/// keeps a timeline within [`MAX_RECORDED_BINS`].
pub fn record_bin_us(max_seconds: u64) -> u64 {
    let span = max_seconds.max(1) * 1_000_000;
    LADDER_US
        .iter()
        .copied()
        .find(|w| span.div_ceil(*w) <= MAX_RECORDED_BINS)
        .unwrap_or(LADDER_US[LADDER_US.len() - 1])
}

/// The bar width for a chart spanning `span_us` of timelines recorded at `recorded_us`: the
/// finest width, no finer than recorded, that keeps the chart within [`MAX_BARS`].
pub fn chart_bin_us(span_us: u64, recorded_us: u64) -> u64 {
    LADDER_US
        .iter()
        .copied()
        .filter(|w| *w >= recorded_us && *w % recorded_us == 0)
        .find(|w| span_us.max(1).div_ceil(*w) <= MAX_BARS)
        .unwrap_or(LADDER_US[LADDER_US.len() - 1].max(recorded_us))
}

/// Regroups `line` (bins of `from_us`) into bins of `to_us` (a multiple of `from_us`).
pub fn rebin(line: &[u64], from_us: u64, to_us: u64) -> Vec<u64> {
    let k = (to_us / from_us.max(1)).max(1) as usize;
    line.chunks(k).map(|c| c.iter().sum()).collect()
}

/// Where one bar of a chart at `chart_us` would hide a burst that the recording can show:
/// the bar holding at least half of the line's events, when the recording is finer. Returns
/// that bar and one on either side, as a time range in us from the run's origin.
pub fn hidden_burst(line: &[u64], recorded_us: u64, chart_us: u64) -> Option<(u64, u64)> {
    if chart_us <= recorded_us {
        return None;
    }
    let bars = rebin(line, recorded_us, chart_us);
    let total: u64 = bars.iter().sum();
    let (busiest, peak) = bars.iter().enumerate().max_by_key(|(_, n)| **n)?;
    if total == 0 || *peak * 2 < total {
        return None;
    }
    let from = (busiest as u64).saturating_sub(1) * chart_us;
    let to = (busiest as u64 + 2) * chart_us;
    Some((from, to))
}

/// A phase boundary drawn on every timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// What began or ended.
    pub label: String,
    /// When, in seconds from the run's origin.
    pub at_seconds: f64,
}

/// When the active phase really began, in us from the run's origin: a flash crowd claims at
/// the promotion's start instant (`starts_at_ms`, the server's clock), every other scenario
/// acts from the common `go` instant.
pub fn active_start_us(epoch_us: u64, go_us: u64, starts_at_ms: Option<i64>) -> u64 {
    let at = match starts_at_ms {
        Some(ms) => (ms.max(0) as u64) * 1000,
        None => go_us,
    };
    at.saturating_sub(epoch_us)
}

/// The phase marks of a run, from its instants (us since the epoch): every client set up
/// (`ready`), the active phase's real start ([`active_start_us`]: `go`, or the promotion's
/// `starts_at` for a flash crowd) and its end (`done`).
pub fn phases(
    epoch_us: u64,
    ready_us: u64,
    go_us: u64,
    starts_at_ms: Option<i64>,
    done_us: u64,
) -> Vec<Phase> {
    let secs = |us: u64| us as f64 / 1e6;
    let start_label = match starts_at_ms {
        Some(_) => "starts_at",
        None => "go",
    };
    vec![
        Phase {
            label: "ready".into(),
            at_seconds: secs(ready_us.saturating_sub(epoch_us)),
        },
        Phase {
            label: start_label.into(),
            at_seconds: secs(active_start_us(epoch_us, go_us, starts_at_ms)),
        },
        Phase {
            label: "done".into(),
            at_seconds: secs(done_us.saturating_sub(epoch_us)),
        },
    ]
}

/// A rate over the active window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Events per second over the window.
    pub per_sec: f64,
    /// The window: from the active start to the end of the last bin with an event (or to
    /// `until_us` when there was none), in seconds.
    pub seconds: f64,
    /// The busiest whole second of the run (bins regrouped into seconds from the origin).
    pub peak_per_sec: u64,
}

/// `line`'s events counted from `from_us` (the active start) to the last busy bin, bounded by
/// `until_us` (idle drain time after the last event does not dilute the rate).
pub fn rate(line: &[u64], bin_us: u64, from_us: u64, until_us: u64) -> Rate {
    let first = (from_us / bin_us) as usize;
    let last_busy = line.iter().rposition(|n| *n > 0);
    let end_us = match last_busy {
        Some(last) if last >= first => ((last as u64 + 1) * bin_us).min(until_us.max(from_us)),
        _ => until_us,
    };
    let events: u64 = line.iter().skip(first).sum();
    let seconds = (end_us.saturating_sub(from_us) as f64 / 1e6).max(1e-3);
    let per_second = rebin(line, bin_us, 1_000_000.max(bin_us));
    Rate {
        per_sec: events as f64 / seconds,
        seconds,
        peak_per_sec: per_second.into_iter().max().unwrap_or(0),
    }
}

/// A width for people: `10 ms`, `2 s`, `5 min`.
pub fn width_label(us: u64) -> String {
    match us {
        us if us < 1_000_000 => format!("{} ms", us / 1000),
        us if us < 60_000_000 || us % 60_000_000 != 0 => format!("{} s", us / 1_000_000),
        us => format!("{} min", us / 60_000_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_is_fine_for_short_runs_and_bounded_for_long_ones() {
        assert_eq!(record_bin_us(60), 10_000);
        assert_eq!(record_bin_us(300), 10_000);
        assert_eq!(record_bin_us(301), 20_000);
        assert_eq!(record_bin_us(3600), 200_000);
        for secs in [1, 59, 300, 900, 3600] {
            assert!(secs * 1_000_000 / record_bin_us(secs) <= MAX_RECORDED_BINS);
        }
    }

    #[test]
    fn a_short_run_is_drawn_in_sub_second_bars() {
        // 12 s recorded at 10 ms: 100 ms bars (120 of them), not one bar per second.
        assert_eq!(chart_bin_us(12_000_000, 10_000), 100_000);
        // A 2-minute run: 1 s bars; an hour: 30 s bars.
        assert_eq!(chart_bin_us(120_000_000, 10_000), 1_000_000);
        assert_eq!(chart_bin_us(3_600_000_000, 200_000), 30_000_000);
        // Never finer than recorded.
        assert_eq!(chart_bin_us(100_000, 200_000), 200_000);
    }

    #[test]
    fn rebinning_keeps_every_event() {
        let line = [1, 2, 3, 4, 5, 6, 7];
        assert_eq!(rebin(&line, 10, 30), vec![6, 15, 7]);
        assert_eq!(rebin(&line, 10, 10), line.to_vec());
        assert!(rebin(&[], 10, 30).is_empty());
    }

    #[test]
    fn a_burst_inside_one_bar_is_found_and_a_spread_load_is_not() {
        // 30 s at 10 ms; 1,000 decisions within 200 ms at 20.0 s.
        let mut line = vec![0u64; 3000];
        for bin in line.iter_mut().skip(2000).take(20) {
            *bin = 50;
        }
        let chart = chart_bin_us(30_000_000, 10_000);
        assert_eq!(chart, 200_000);
        assert_eq!(
            hidden_burst(&line, 10_000, chart),
            Some((19_800_000, 20_400_000))
        );
        // Spread evenly: no bar holds half.
        let even = vec![1u64; 3000];
        assert_eq!(hidden_burst(&even, 10_000, chart), None);
        // Drawn at the recorded resolution already: nothing hidden.
        assert_eq!(hidden_burst(&line, 10_000, 10_000), None);
        assert_eq!(hidden_burst(&[0, 0], 10_000, 20_000), None);
    }

    #[test]
    fn the_crowd_is_marked_at_its_start_instant_not_at_go() {
        let epoch = 1_000_000_000;
        // Go 2.5 s into the run; the promotion starts at 7.25 s.
        let go = epoch + 2_500_000;
        let starts_at_ms = ((epoch + 7_250_000) / 1000) as i64;
        assert_eq!(active_start_us(epoch, go, Some(starts_at_ms)), 7_250_000);
        assert_eq!(active_start_us(epoch, go, None), 2_500_000);
        // A start before the origin (a reused, live activity) clamps to the origin.
        assert_eq!(active_start_us(epoch, go, Some(1)), 0);
    }

    #[test]
    fn phase_marks_fall_where_the_instants_were() {
        let epoch = 5_000_000_000;
        let marks = phases(
            epoch,
            epoch + 1_200_000,
            epoch + 1_700_000,
            None,
            epoch + 4_000_000,
        );
        let at: Vec<(&str, f64)> = marks
            .iter()
            .map(|p| (p.label.as_str(), p.at_seconds))
            .collect();
        assert_eq!(at, [("ready", 1.2), ("go", 1.7), ("done", 4.0)]);
        // A crowd's active phase is marked at the promotion's start, seconds after go.
        let starts_at_ms = ((epoch + 6_250_000) / 1000) as i64;
        let marks = phases(
            epoch,
            epoch + 1_200_000,
            epoch + 1_700_000,
            Some(starts_at_ms),
            epoch + 7_000_000,
        );
        assert_eq!(marks[1].label, "starts_at");
        assert_eq!(marks[1].at_seconds, 6.25);
    }

    #[test]
    fn rates_run_from_the_active_start_to_the_last_event() {
        // 100 ms bins: nothing until 2.0 s, then 300 events over 0.5 s, then idle.
        let mut line = vec![0u64; 60];
        for bin in line.iter_mut().skip(20).take(5) {
            *bin = 60;
        }
        let r = rate(&line, 100_000, 2_000_000, 6_000_000);
        assert!((r.seconds - 0.5).abs() < 1e-9, "{r:?}");
        assert!((r.per_sec - 600.0).abs() < 1e-6, "{r:?}");
        assert_eq!(r.peak_per_sec, 300);
        // Nothing happened: the window is the whole active phase, the rate zero.
        let idle = rate(&[0; 10], 100_000, 0, 1_000_000);
        assert_eq!((idle.per_sec, idle.seconds), (0.0, 1.0));
    }

    #[test]
    fn widths_read_naturally() {
        assert_eq!(width_label(10_000), "10 ms");
        assert_eq!(width_label(1_000_000), "1 s");
        assert_eq!(width_label(30_000_000), "30 s");
        assert_eq!(width_label(300_000_000), "5 min");
    }
}
