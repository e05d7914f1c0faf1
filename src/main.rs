//! The `corral` binary: `serve` (the default) and `migrate`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use corral::Application;
use corral::config::Settings;
use corral::store::Db;

/// Corral: a realtime social and claim server (chat, feeds, live promotions, animal claims).
///
/// With no arguments it serves on the embedded default: SQLite in ./data, no Redis,
/// listening on 127.0.0.1:8080.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Extra configuration file layered over the defaults (TOML).
    #[arg(long, global = true, env = "CORRAL_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, overriding `server.listen`.
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Data directory, overriding `server.data_dir`.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and WebSocket clients (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(cli.config.as_deref()).context("loading configuration")?;
    if let Some(listen) = cli.listen {
        settings.server.listen = listen.to_string();
    }
    if let Some(dir) = &cli.data_dir {
        settings.server.data_dir = dir.clone();
    }
    Ok(settings)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = settings(&cli)?;
    corral::telemetry::init_logging(&settings.log);
    actix_web::rt::System::new().block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Migrate => {
                let db = Db::connect(&settings.database, &settings.server.data_dir)
                    .await
                    .context("connecting to the database")?;
                db.migrate().await.context("running migrations")?;
                tracing::info!(backend = ?db.backend, "migrations applied");
                Ok(())
            }
            Command::Serve => serve(settings).await,
        }
    })
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings)
        .await
        .context("starting the server")?;
    tracing::info!(port = app.port(), "corral serving");
    let state = app.state();
    let handle = app.server_handle();
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        corral::shutdown::drain(state, handle).await;
    });
    app.run_until_stopped().await.context("serving")?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
