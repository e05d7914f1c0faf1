//! `corral-loadtest run <scenario.toml> [--target URL] [--out DIR]`: runs a load scenario
//! against a local server with several worker processes, shows progress, checks the
//! invariants, writes `result.json` and `report.html`, and exits non-zero when a check failed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use corral_loadtest::coordinator::{self, RunOptions, WorkerMode};
use corral_loadtest::scenario::Scenario;

/// Corral's load generator (loopback targets only; every run bounded in clients and time).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario (see config/loadtest/*.toml).
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// WebSocket URL of the server, overriding the scenario's (loopback only).
        #[arg(long)]
        target: Option<String>,
        /// Where to write result.json and report.html.
        #[arg(long, default_value = "loadtest-out")]
        out: PathBuf,
        /// Pid of the local server whose memory connect-capacity reports (found from the
        /// target's listening port when omitted).
        #[arg(long)]
        server_pid: Option<u32>,
        /// No live progress line.
        #[arg(long)]
        quiet: bool,
    },
    /// Internal: one worker process, speaking JSON lines on stdin/stdout.
    #[command(hide = true)]
    Worker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A worker is one core's worth of clients on a single-threaded runtime (no cross-thread
    // wakeups or stealing on the per-frame path); a run that needs more cores has more
    // workers.
    let mut builder = match cli.command {
        Cmd::Worker => tokio::runtime::Builder::new_current_thread(),
        Cmd::Run { .. } => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("corral-loadtest: cannot start the runtime: {err}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Cmd::Worker => {
                let input = tokio::io::BufReader::new(tokio::io::stdin());
                match corral_loadtest::worker::serve(input, tokio::io::stdout()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(err) => {
                        eprintln!("corral-loadtest worker: {err}");
                        ExitCode::from(2)
                    }
                }
            }
            Cmd::Run {
                scenario,
                target,
                out,
                server_pid,
                quiet,
            } => {
                let scenario = match Scenario::load(&scenario) {
                    Ok(s) => s,
                    Err(err) => {
                        eprintln!("corral-loadtest: {err}");
                        return ExitCode::from(2);
                    }
                };
                let exe = match std::env::current_exe() {
                    Ok(exe) => exe,
                    Err(err) => {
                        eprintln!("corral-loadtest: cannot find my own executable: {err}");
                        return ExitCode::from(2);
                    }
                };
                let opts = RunOptions {
                    target,
                    out: out.clone(),
                    mode: WorkerMode::Processes(exe),
                    server_pid,
                    progress: !quiet,
                };
                match coordinator::run(scenario, &opts).await {
                    Ok(result) => {
                        eprint!("{}", corral_loadtest::report::summary(&result));
                        eprintln!("wrote {}/result.json and report.html", out.display());
                        if result.passed {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(1)
                        }
                    }
                    Err(err) => {
                        eprintln!("corral-loadtest: {err}");
                        ExitCode::from(2)
                    }
                }
            }
        }
    })
}
