//! Output: `result.json` (every figure), a self-contained `report.html` (inline SVG charts:
//! latency histograms and per-second timelines; no scripts, no CDN), and the summary table
//! printed at the end of a run.

use std::fmt::Write as _;
use std::path::Path;

use crate::LoadError;
use crate::coordinator::RunResult;

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
    let tp = &result.throughput;
    let _ = writeln!(
        s,
        "\nthroughput: {:.0} sends/s, {:.0} deliveries/s (peak second {}), over {:.1}s; peak connects {}/s",
        tp.sends_per_sec,
        tp.deliveries_per_sec,
        tp.peak_deliveries_per_sec,
        tp.active_seconds,
        tp.peak_connects_per_sec
    );
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

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 640.0;
const H: f64 = 200.0;
const PAD: f64 = 40.0;

/// Bars of `(label, value)` as an SVG.
fn bars(values: &[(String, f64)], x_label: &str, y_label: &str, mark: Option<usize>) -> String {
    let max = values.iter().map(|v| v.1).fold(0.0, f64::max).max(1.0);
    let n = values.len().max(1) as f64;
    let bw = (W - 2.0 * PAD) / n;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" viewBox="0 0 {W} {}">"#,
        H + 30.0,
        H + 30.0
    );
    let _ = write!(
        svg,
        r##"<line x1="{PAD}" y1="{H}" x2="{}" y2="{H}" stroke="#444"/><line x1="{PAD}" y1="10" x2="{PAD}" y2="{H}" stroke="#444"/>"##,
        W - PAD
    );
    let _ = write!(
        svg,
        r##"<text x="{PAD}" y="9" font-size="10">{} (max {})</text><text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"##,
        esc(y_label),
        fmt_num(max),
        W - PAD,
        H + 26.0,
        esc(x_label)
    );
    for (i, (label, v)) in values.iter().enumerate() {
        let h = (v / max) * (H - 20.0);
        let x = PAD + i as f64 * bw;
        let fill = if Some(i) == mark {
            "#d62728"
        } else {
            "#1f77b4"
        };
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{fill}"><title>{}: {}</title></rect>"#,
            H - h,
            (bw - 1.0).max(0.5),
            esc(label),
            fmt_num(*v)
        );
    }
    // A few x labels.
    let step = (values.len() / 8).max(1);
    for (i, (label, _)) in values.iter().enumerate().step_by(step) {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="9" text-anchor="middle">{}</text>"#,
            PAD + (i as f64 + 0.5) * bw,
            H + 12.0,
            esc(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Latency bins regrouped into log-spaced buckets (labels in ms).
fn latency_buckets(bins: &[(u64, u64)]) -> Vec<(String, f64)> {
    let Some(max) = bins.iter().map(|b| b.0).max() else {
        return Vec::new();
    };
    let min = bins.iter().map(|b| b.0).min().unwrap_or(1).max(1);
    let (lo, hi) = ((min as f64).log10(), (max as f64).log10() + 1e-9);
    let buckets = 40usize;
    let width = ((hi - lo) / buckets as f64).max(1e-9);
    let mut counts = vec![0u64; buckets];
    for &(v, c) in bins {
        let i = (((v.max(1) as f64).log10() - lo) / width) as usize;
        counts[i.min(buckets - 1)] += c;
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let upper_us = 10f64.powf(lo + (i + 1) as f64 * width);
            (format!("{:.2}ms", upper_us / 1000.0), *c as f64)
        })
        .collect()
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
    let _ = write!(body, "<h2>Latency histograms</h2>");
    for (name, bins) in &result.histograms {
        let _ = write!(
            body,
            "<h3>{}</h3>{}",
            esc(name),
            bars(
                &latency_buckets(bins),
                "latency (log scale)",
                "samples",
                None
            )
        );
    }
    let _ = write!(
        body,
        "<h2>Per-second timelines</h2><p>The red bar is the second the active phase began.</p>"
    );
    for (name, line) in &result.timelines {
        let values: Vec<(String, f64)> = line
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{i}s"), *v as f64))
            .collect();
        let _ = write!(
            body,
            "<h3>{}</h3>{}",
            esc(name),
            bars(
                &values,
                "second of the run",
                &format!("{name} per second"),
                Some(result.go_second as usize)
            )
        );
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>body{{font-family:sans-serif;max-width:720px;margin:2em auto}}.ok{{color:#2a7a2a}}.bad{{color:#b00}}pre{{background:#f4f4f4;padding:1em;overflow:auto;font-size:12px}}</style></head><body>{body}</body></html>",
        esc(&sc.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_keep_every_sample() {
        let bins = vec![(100, 5), (1000, 10), (50_000, 1)];
        let buckets = latency_buckets(&bins);
        assert_eq!(buckets.len(), 40);
        assert_eq!(buckets.iter().map(|b| b.1).sum::<f64>(), 16.0);
        assert!(latency_buckets(&[]).is_empty());
    }

    #[test]
    fn charts_escape_labels() {
        let svg = bars(&[("<a>".into(), 1.0)], "x", "y", None);
        assert!(svg.contains("&lt;a&gt;"));
        assert!(svg.starts_with("<svg"));
    }
}
