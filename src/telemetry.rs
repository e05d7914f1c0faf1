//! Logging (tracing, text or JSON) and the Prometheus metrics recorder, with every metric's
//! help text (`corral_actors::metric_catalogue`) and the process metrics.

use std::io::IsTerminal;
use std::sync::OnceLock;

use corral_actors::metric_catalogue;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Installs the global tracing subscriber. `RUST_LOG` overrides the configured filter. Text
/// logs are coloured only on a terminal (and never with `NO_COLOR` set): escapes in a file or
/// a journal are noise.
pub fn init_logging(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.filter.as_str()));
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour);
    // A second init (tests build many apps in one process) is harmless and ignored.
    let _ = if settings.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The process-wide Prometheus recorder, installed on first use, with every metric described
/// and its series started at zero. Latency histograms get buckets from 100 µs to 10 s.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            const BUCKETS: &[f64] = &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ];
            const SIZE_BUCKETS: &[f64] =
                &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS)
                });
            let handle = match builder {
                Ok(builder) => match builder.install_recorder() {
                    Ok(handle) => handle,
                    Err(_) => PrometheusBuilder::new().build_recorder().handle(),
                },
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            metric_catalogue::describe_all();
            metric_catalogue::start_series();
            process_collector().describe();
            handle
        })
        .clone()
}

/// The `process_*` metrics (CPU seconds, resident memory, open files and their limit, threads,
/// start time), read from `/proc`.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The Prometheus text for a scrape: the process metrics are read afresh first, so they are as
/// recent as the scrape (nothing polls `/proc` between scrapes).
pub fn render_metrics(handle: &PrometheusHandle) -> String {
    process_collector().collect();
    crate::memory::publish_usage();
    handle.render()
}
