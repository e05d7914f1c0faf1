//! The report's charts: self-contained SVG (no scripts, no fonts to fetch). A chart is bars
//! over an x range the caller chooses (so several charts can share one), y ticks at round
//! values, and labelled marks: vertical ones at an x (phases, latency percentiles) and
//! horizontal ones at a y (percentiles of the bar heights). The caller maps its data to
//! chart coordinates (a log scale is the caller's log10).

use std::fmt::Write as _;

/// One bar, from `x0` to `x1`, `y` high; `title` is its tooltip.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Left edge.
    pub x0: f64,
    /// Right edge.
    pub x1: f64,
    /// Height.
    pub y: f64,
    /// Tooltip.
    pub title: String,
}

/// A labelled line across the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Where (an x for a vertical mark, a y for a horizontal one).
    pub at: f64,
    /// Its label.
    pub label: String,
    /// Its colour.
    pub color: &'static str,
}

/// A bar chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// The x range drawn (shared by charts meant to be read together).
    pub x_range: (f64, f64),
    /// Labelled x ticks, in chart coordinates.
    pub x_ticks: Vec<(f64, String)>,
    /// The x axis' name.
    pub x_label: String,
    /// The y axis' name.
    pub y_label: String,
    /// The bars.
    pub bars: Vec<Bar>,
    /// Vertical marks.
    pub x_marks: Vec<Mark>,
    /// Horizontal marks.
    pub y_marks: Vec<Mark>,
}

const W: f64 = 680.0;
const H: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 34.0;

/// Round tick values from 0 covering `max` (the last tick is >= `max`), about `target` of
/// them: steps of 1, 2 or 5 times a power of ten.
pub fn nice_ticks(max: f64, target: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let rough = max / target.max(1) as f64;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power);
    let count = (max / step).ceil() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// The `q` quantile (0..=1) of `values` (nearest rank), or `None` when there are none.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).max(1);
    sorted.get(rank - 1).copied()
}

/// Escapes text for HTML and SVG.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `1.5k`, `2.00M`, `12`, `0.25`.
pub fn fmt_num(v: f64) -> String {
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

/// The chart as an `<svg>` element.
pub fn svg(chart: &Chart) -> String {
    let (x_lo, x_hi) = chart.x_range;
    let x_span = (x_hi - x_lo).max(f64::MIN_POSITIVE);
    let y_max = chart
        .bars
        .iter()
        .map(|b| b.y)
        .chain(chart.y_marks.iter().map(|m| m.at))
        .fold(0.0, f64::max);
    let y_ticks = nice_ticks(y_max, 4);
    let y_top = y_ticks
        .last()
        .copied()
        .unwrap_or(1.0)
        .max(f64::MIN_POSITIVE);
    let (plot_w, plot_h) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + ((x - x_lo) / x_span).clamp(0.0, 1.0) * plot_w;
    let py = |y: f64| TOP + plot_h - (y / y_top).clamp(0.0, 1.0) * plot_h;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif">"#
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="12" font-size="11">{}</text>"#,
        esc(&chart.y_label)
    );
    for tick in &y_ticks {
        let y = py(*tick);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            y + 3.0,
            fmt_num(*tick)
        );
    }
    for bar in &chart.bars {
        let (x0, x1) = (px(bar.x0), px(bar.x1));
        let (y, base) = (py(bar.y), py(0.0));
        let _ = write!(
            svg,
            r##"<rect x="{x0:.2}" y="{y:.2}" width="{:.2}" height="{:.2}" fill="#1f77b4"><title>{}</title></rect>"##,
            (x1 - x0 - 0.5).max(0.5),
            base - y,
            esc(&bar.title)
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#444"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#444"/>"##,
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h,
        TOP + plot_h
    );
    for (x, label) in &chart.x_ticks {
        let x = px(*x);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444"/><text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 4.0,
            TOP + plot_h + 15.0,
            esc(label)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#,
        W - RIGHT,
        H - 3.0,
        esc(&chart.x_label)
    );
    // A mark outside the range is left out (a zoomed chart does not pin it to an edge).
    let inside = chart
        .x_marks
        .iter()
        .filter(|m| m.at >= x_lo && m.at <= x_hi);
    for (k, mark) in inside.enumerate() {
        let x = px(mark.at);
        // Labels alternate between two rows so marks close together stay readable, and sit
        // left of a mark in the right third so they are not cut off.
        let label_y = TOP + 10.0 + (k % 2) as f64 * 11.0;
        let (label_x, anchor) = if x > LEFT + plot_w * 2.0 / 3.0 {
            (x - 3.0, "end")
        } else {
            (x + 3.0, "start")
        };
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="{c}" stroke-dasharray="4 3"/><text x="{label_x:.1}" y="{label_y:.1}" font-size="10" fill="{c}" text-anchor="{anchor}">{}</text>"#,
            TOP + plot_h,
            esc(&mark.label),
            c = mark.color,
        );
    }
    for mark in &chart.y_marks {
        let y = py(mark.at);
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{c}" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}" font-size="10" fill="{c}">{}</text>"#,
            W - RIGHT,
            LEFT + 3.0,
            y - 3.0,
            esc(&mark.label),
            c = mark.color,
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(nice_ticks(87.0, 4), vec![0.0, 50.0, 100.0]);
        assert_eq!(nice_ticks(1000.0, 4), vec![0.0, 500.0, 1000.0]);
        assert_eq!(nice_ticks(0.0, 4), vec![0.0, 0.5, 1.0]);
        assert_eq!(nice_ticks(7.0, 4), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), Some(50.0));
        assert_eq!(quantile(&values, 0.99), Some(99.0));
        assert_eq!(quantile(&[3.0], 0.99), Some(3.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn a_chart_draws_its_ticks_marks_and_escaped_labels() {
        let chart = Chart {
            x_range: (0.0, 10.0),
            x_ticks: vec![(0.0, "0s".into()), (5.0, "5s".into())],
            x_label: "seconds".into(),
            y_label: "claims <per bin>".into(),
            bars: vec![Bar {
                x0: 2.0,
                x1: 3.0,
                y: 87.0,
                title: "2s: 87".into(),
            }],
            x_marks: vec![Mark {
                at: 2.5,
                label: "starts_at".into(),
                color: "#d62728",
            }],
            y_marks: vec![Mark {
                at: 40.0,
                label: "p50 40".into(),
                color: "#2ca02c",
            }],
        };
        let svg = svg(&chart);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("claims &lt;per bin&gt;"));
        // y ticks 0, 50, 100 (the bar's 87 fits under the top tick).
        for tick in [">0</text>", ">50</text>", ">100</text>"] {
            assert!(svg.contains(tick), "{tick}");
        }
        assert!(svg.contains(">starts_at</text>") && svg.contains(">p50 40</text>"));
        // Outside the range (a zoomed chart): left out, not pinned to the edge.
        let mut zoomed = chart.clone();
        zoomed.x_range = (3.0, 4.0);
        assert!(!super::svg(&zoomed).contains("starts_at"));
        // The mark sits at a quarter of the plot's width: x = 56 + 0.25 * 608.
        assert!(svg.contains(r#"x1="208.0""#), "{svg}");
    }
}
