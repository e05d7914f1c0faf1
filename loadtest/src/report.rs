//! Output: `result.json` (every figure), a self-contained `report.html` (inline SVG charts
//! from [`crate::chart`]: latency histograms on one log scale with p50/p99 marks, timelines
//! on one shared time axis with the phase marks, and a zoom on a burst that one bar would
//! hide; no scripts, no CDN), and the summary table printed at the end of a run.

use std::fmt::Write as _;
use std::path::Path;

use crate::LoadError;
use crate::chart::{Bar, Chart, Mark, esc, fmt_num, nice_ticks, quantile, svg};
use crate::run_result::RunResult;
use crate::scenario::Kind;
use crate::stats::t;
use crate::timeline;

/// Writes `result.json` and `report.html` into `out` (created if needed).
pub fn write(result: &RunResult, out: &Path) -> Result<(), LoadError> {
    std::fs::create_dir_all(out)?;
    let json = serde_json::to_vec_pretty(result).map_err(|e| LoadError::Worker(e.to_string()))?;
    std::fs::write(out.join("result.json"), json)?;
    std::fs::write(out.join("report.html"), html(result))?;
    Ok(())
}

/// The summary table for the terminal.
pub fn summary(result: &RunResult) -> String {
    let mut s = String::new();
    let sc = &result.scenario;
    let _ = writeln!(
        s,
        "{} ({:?}) against {}: {} of {} clients connected, {:.1}s",
        sc.name, sc.kind, sc.target, result.connected, result.clients, result.duration_seconds
    );
    let _ = writeln!(
        s,
        "\n{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, l) in &result.latency {
        let _ = writeln!(
            s,
            "{:<28} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name, l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
    }
    let _ = writeln!(s, "\n{}", throughput_line(result));
    if let Some(c) = &result.capacity {
        let _ = writeln!(
            s,
            "server pid {}: RSS {:.1} MiB -> {:.1} MiB with {} connections = {:.0} bytes ({:.2} KiB) per connection; {} fds",
            c.server_pid,
            c.rss_before_bytes as f64 / 1048576.0,
            c.rss_after_bytes as f64 / 1048576.0,
            c.connections,
            c.bytes_per_connection,
            c.bytes_per_connection / 1024.0,
            c.server_fds.map_or("?".into(), |f| f.to_string()),
        );
    }
    if let Some(c) = &result.claims {
        let _ = writeln!(
            s,
            "merchant view: {} slots; held {}, confirmed {}, expired {}, cancelled {}, refund due {}",
            c.slots, c.held, c.confirmed, c.expired, c.cancelled, c.refund_due
        );
    }
    if !result.outcomes.is_empty() {
        let _ = writeln!(s, "\noutcomes (answers by the rules, not errors):");
        for (name, n) in &result.outcomes {
            let _ = writeln!(s, "  {name:<26} {n}");
        }
    }
    if !result.errors.is_empty() {
        let _ = writeln!(s, "\nerrors:");
        for (code, n) in &result.errors {
            let _ = writeln!(s, "  {code:<26} {n}");
        }
    }
    let _ = writeln!(s, "\nchecks:");
    for c in &result.checks {
        let _ = writeln!(
            s,
            "  [{}] {}: {}",
            if c.passed { "pass" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    let _ = writeln!(
        s,
        "\n{}",
        if result.passed {
            "all checks passed"
        } else {
            "CHECKS FAILED"
        }
    );
    s
}

/// The rates: deliveries where the scenario has them, decisions for a crowd, sends always.
fn throughput_line(result: &RunResult) -> String {
    let tp = &result.throughput;
    let mut parts = vec![format!("{:.0} sends/s", tp.sends_per_sec)];
    if let (Some(rate), Some(peak)) = (tp.deliveries_per_sec, tp.peak_deliveries_per_sec) {
        parts.push(format!("{rate:.0} deliveries/s (peak second {peak})"));
    }
    if let (Some(rate), Some(peak)) = (tp.decisions_per_sec, tp.peak_decisions_per_sec) {
        parts.push(format!("{rate:.0} decisions/s (peak second {peak})"));
    }
    format!(
        "throughput: {}, over {:.2}s of active phase; peak connects {}/s",
        parts.join(", "),
        tp.active_seconds,
        tp.peak_connects_per_sec
    )
}

/// Latency histograms are drawn over one log10(us) range, shared by every chart.
fn latency_range(result: &RunResult) -> Option<(f64, f64)> {
    let values = result.histograms.values().flatten().map(|(v, _)| *v);
    let (min, max) = values.fold(None, |acc: Option<(u64, u64)>, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })?;
    let lo = (min.max(1) as f64).log10().floor();
    let hi = (max.max(1) as f64).log10().ceil().max(lo + 1.0);
    Some((lo, hi))
}

/// Histogram bins (`[value_us, count]`) regrouped into log-spaced bars over `(lo, hi)`
/// (log10 of microseconds).
fn latency_bars(bins: &[(u64, u64)], (lo, hi): (f64, f64)) -> Vec<Bar> {
    let buckets = 60usize;
    let width = (hi - lo) / buckets as f64;
    let mut counts = vec![0u64; buckets];
    for &(v, c) in bins {
        let i = (((v.max(1) as f64).log10() - lo) / width).max(0.0) as usize;
        counts[i.min(buckets - 1)] += c;
    }
    counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, c)| {
            let (x0, x1) = (lo + i as f64 * width, lo + (i + 1) as f64 * width);
            Bar {
                x0,
                x1,
                y: *c as f64,
                title: format!("{} to {}: {c}", ms_label(x0), ms_label(x1)),
            }
        })
        .collect()
}

/// A log10(us) position as milliseconds for people.
fn ms_label(log_us: f64) -> String {
    let ms = 10f64.powf(log_us) / 1000.0;
    if ms >= 1000.0 {
        format!("{}s", fmt_num(ms / 1000.0))
    } else if ms >= 1.0 {
        format!("{}ms", fmt_num(ms.round()))
    } else {
        format!("{ms:.2}ms")
    }
}

fn latency_chart(name: &str, bins: &[(u64, u64)], result: &RunResult, range: (f64, f64)) -> String {
    let mut x_marks = Vec::new();
    if let Some(l) = result.latency.get(name) {
        for (label, ms, color) in [("p50", l.p50_ms, "#2ca02c"), ("p99", l.p99_ms, "#d62728")] {
            x_marks.push(Mark {
                at: (ms * 1000.0).max(1.0).log10(),
                label: format!("{label} {}ms", fmt_num(ms)),
                color,
            });
        }
    }
    let decades = (range.0 as i64)..=(range.1 as i64);
    svg(&Chart {
        x_range: range,
        x_ticks: decades.map(|d| (d as f64, ms_label(d as f64))).collect(),
        x_label: "latency (log scale)".into(),
        y_label: "samples".into(),
        bars: latency_bars(bins, range),
        x_marks,
        y_marks: Vec::new(),
    })
}

/// Timelines drawn over `(from_us, to_us)` of the run, all on the same x range and bar
/// width, with the phase marks, and p50/p99 of the bar heights among the bars that saw
/// anything.
fn timeline_charts(result: &RunResult, (from_us, to_us): (u64, u64)) -> String {
    let recorded = (result.timeline_bin_ms * 1000.0).round().max(1.0) as u64;
    let bar_us = timeline::chart_bin_us(to_us - from_us, recorded);
    let first_bar = from_us / bar_us;
    let bars_drawn = (to_us - from_us).div_ceil(bar_us);
    let range = (
        (first_bar * bar_us) as f64 / 1e6,
        ((first_bar + bars_drawn) * bar_us) as f64 / 1e6,
    );
    let x_ticks = nice_ticks(range.1 - range.0, 8)
        .into_iter()
        .map(|dx| range.0 + dx)
        .filter(|x| *x <= range.1)
        .map(|x| (x, format!("{}s", fmt_num(x))))
        .collect::<Vec<_>>();
    let x_marks: Vec<Mark> = result
        .phases
        .iter()
        .map(|p| Mark {
            at: p.at_seconds,
            label: p.label.clone(),
            color: "#d62728",
        })
        .collect();
    let per = timeline::width_label(bar_us);
    let mut out = String::new();
    for (name, line) in &result.timelines {
        let bars: Vec<Bar> = timeline::rebin(line, recorded, bar_us)
            .into_iter()
            .enumerate()
            .skip(first_bar as usize)
            .take(bars_drawn as usize)
            .filter(|(_, n)| *n > 0)
            .map(|(i, n)| {
                let x0 = (i as u64 * bar_us) as f64 / 1e6;
                Bar {
                    x0,
                    x1: x0 + bar_us as f64 / 1e6,
                    y: n as f64,
                    title: format!("{}s: {n}", fmt_num(x0)),
                }
            })
            .collect();
        let heights: Vec<f64> = bars.iter().map(|b| b.y).collect();
        let y_marks = [(0.5, "p50", "#2ca02c"), (0.99, "p99", "#9467bd")]
            .into_iter()
            .filter_map(|(q, label, color)| {
                quantile(&heights, q).map(|at| Mark {
                    at,
                    label: format!("{label} {}", fmt_num(at)),
                    color,
                })
            })
            .collect();
        let _ = write!(
            out,
            "<h3>{}</h3>{}",
            esc(name),
            svg(&Chart {
                x_range: range,
                x_ticks: x_ticks.clone(),
                x_label: "seconds from the start of the run".into(),
                y_label: format!("{name} per {per}"),
                bars,
                x_marks: x_marks.clone(),
                y_marks,
            })
        );
    }
    out
}

/// The timeline whose burst decides the zoom: what the scenario is about.
fn main_timeline(result: &RunResult) -> &'static str {
    if result.scenario.kind == Kind::FlashCrowd {
        t::DECISIONS
    } else if result.scenario.kind.has_deliveries() {
        t::DELIVERIES
    } else {
        t::CONNECTS
    }
}

/// The self-contained HTML report.
pub fn html(result: &RunResult) -> String {
    let mut body = String::new();
    let sc = &result.scenario;
    let _ = write!(
        body,
        "<h1>{} <small>({:?})</small></h1><p>target {} &middot; {} of {} clients &middot; {} workers &middot; {:.1}s &middot; <b class=\"{}\">{}</b></p>",
        esc(&sc.name),
        sc.kind,
        esc(&sc.target),
        result.connected,
        result.clients,
        sc.workers,
        result.duration_seconds,
        if result.passed { "ok" } else { "bad" },
        if result.passed {
            "all checks passed"
        } else {
            "CHECKS FAILED"
        }
    );
    let _ = write!(body, "<h2>Checks</h2><ul>");
    for c in &result.checks {
        let _ = write!(
            body,
            "<li class=\"{}\">{} {}: {}</li>",
            if c.passed { "ok" } else { "bad" },
            if c.passed { "&#10003;" } else { "&#10007;" },
            esc(&c.name),
            esc(&c.detail)
        );
    }
    let _ = write!(body, "</ul>");
    let _ = write!(body, "<h2>Summary</h2><pre>{}</pre>", esc(&summary(result)));
    if let Some(range) = latency_range(result) {
        let _ = write!(
            body,
            "<h2>Latency histograms</h2><p>One log scale for every histogram; dashed lines mark p50 and p99.</p>"
        );
        for (name, bins) in &result.histograms {
            let _ = write!(
                body,
                "<h3>{}</h3>{}",
                esc(name),
                latency_chart(name, bins, result, range)
            );
        }
    }
    let recorded = (result.timeline_bin_ms * 1000.0).round().max(1.0) as u64;
    // The shared axis runs to the last event or the last phase mark, whichever is later.
    let last_event = result.timelines.values().map(Vec::len).max().unwrap_or(0) as u64 * recorded;
    let last_mark = result
        .phases
        .iter()
        .map(|p| p.at_seconds)
        .fold(0.0, f64::max);
    let span = last_event.max((last_mark * 1e6).ceil() as u64 + 1);
    if last_event > 0 {
        let _ = write!(
            body,
            "<h2>Timelines</h2><p>Every chart spans the whole run on the same axis. Red dashed lines: every client set up (ready), the active phase's start (go, or the promotion's starts_at for a flash crowd) and its end (done). Dotted lines: p50 and p99 of the bars that saw anything. Recorded in {} bins.</p>{}",
            timeline::width_label(recorded),
            timeline_charts(result, (0, span))
        );
        let main = result.timelines.get(main_timeline(result));
        let chart_us = timeline::chart_bin_us(span, recorded);
        if let Some((from, to)) =
            main.and_then(|line| timeline::hidden_burst(line, recorded, chart_us))
        {
            // Widened to show the active start when it leads straight into the burst.
            let start = result
                .phases
                .iter()
                .find(|p| p.label == "go" || p.label == "starts_at")
                .map(|p| (p.at_seconds * 1e6) as u64);
            let from = match start {
                Some(at) if at < from && from - at <= to - from => at.saturating_sub(recorded),
                _ => from,
            };
            let _ = write!(
                body,
                "<h2>The burst, zoomed</h2><p>Half or more of the {} fell within one bar above: {:.2}s to {:.2}s at a finer resolution, every chart on the same axis.</p>{}",
                main_timeline(result),
                from as f64 / 1e6,
                to.min(span) as f64 / 1e6,
                timeline_charts(result, (from, to.min(span)))
            );
        }
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>body{{font-family:sans-serif;max-width:720px;margin:2em auto}}.ok{{color:#2a7a2a}}.bad{{color:#b00}}pre{{background:#f4f4f4;padding:1em;overflow:auto;font-size:12px}}</style></head><body>{body}</body></html>",
        esc(&sc.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crowd_result() -> RunResult {
        let scenario: crate::scenario::Scenario = toml::from_str(
            r#"
            name = "crowd"
            kind = "flash-crowd"
            target = "ws://127.0.0.1:1/ws"
            max_seconds = 10
            [connect]
            clients = 30
            [crowd]
            merchant_tokens = "m.json"
            "#,
        )
        .expect("scenario");
        // 30 decisions 2.0 s into the run, all within 30 ms.
        let mut decisions = vec![0u64; 203];
        decisions[200..203].copy_from_slice(&[10, 10, 10]);
        RunResult {
            scenario,
            started_at_ms: 0,
            duration_seconds: 2.5,
            clients: 30,
            connected: 30,
            latency: Default::default(),
            histograms: Default::default(),
            timelines: [(t::DECISIONS.to_string(), decisions)]
                .into_iter()
                .collect(),
            timeline_bin_ms: 10.0,
            phases: crate::timeline::phases(0, 500_000, 1_000_000, Some(1995), 2_100_000),
            counters: Default::default(),
            outcomes: [("claim.held".into(), 5), ("claim.sold_out".into(), 25)]
                .into_iter()
                .collect(),
            errors: [("unavailable".into(), 2)].into_iter().collect(),
            throughput: crate::run_result::Throughput {
                active_seconds: 0.035,
                sends_per_sec: 857.0,
                deliveries_per_sec: None,
                peak_deliveries_per_sec: None,
                decisions_per_sec: Some(857.0),
                peak_decisions_per_sec: Some(30),
                peak_connects_per_sec: 30,
            },
            capacity: None,
            server_watch: None,
            claims: None,
            checks: Vec::new(),
            passed: true,
        }
    }

    #[test]
    fn a_crowd_summary_lists_outcomes_apart_from_errors_and_rates_decisions() {
        let text = summary(&crowd_result());
        let (before_errors, errors) = text.split_once("\nerrors:").expect("an errors table");
        assert!(
            before_errors.contains("claim.sold_out             25"),
            "{text}"
        );
        assert!(
            !errors.contains("sold_out") && errors.contains("unavailable"),
            "{text}"
        );
        assert!(text.contains("857 decisions/s (peak second 30)"), "{text}");
        assert!(!text.contains("deliveries/s"), "{text}");
    }

    #[test]
    fn the_report_zooms_on_a_burst_and_marks_the_start() {
        let html = html(&crowd_result());
        assert!(html.contains("The burst, zoomed"), "no zoom");
        assert!(html.contains(">starts_at</text>"));
        // Every timeline chart shares the run's axis: 0 to 2.1 s in 20 ms bars.
        assert!(html.contains("decisions per 20 ms"), "{html}");
    }

    #[test]
    fn latency_bars_keep_every_sample() {
        let bins = vec![(100, 5), (1000, 10), (50_000, 1)];
        let bars = latency_bars(&bins, (2.0, 5.0));
        assert_eq!(bars.iter().map(|b| b.y).sum::<f64>(), 16.0);
        assert!(bars.iter().all(|b| b.x0 >= 2.0 && b.x1 <= 5.0 + 1e-9));
        assert!(latency_bars(&[], (0.0, 1.0)).is_empty());
    }
}
