//! The `corral` binary: `serve` (the default), `migrate`, and operator commands under `admin`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use corral::Application;
use corral::admin::{self, SeedRequest};
use corral::auth::password::Hasher;
use corral::auth::{JwtKeys, secret};
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
    /// Operator commands that act on the node's database directly (never served over HTTP).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Bulk-create load-test accounts sharing one password and write a token for each to a
    /// JSON file (`[{id, username, token}, ...]`). Existing names are reused. Uses the
    /// database and signing key of the node configured by --config / --data-dir.
    SeedUsers {
        /// How many accounts.
        #[arg(long)]
        count: usize,
        /// Name prefix: accounts are <prefix>0 .. <prefix><count-1>.
        #[arg(long, default_value = "load")]
        prefix: String,
        /// Where to write the tokens.
        #[arg(long)]
        out: PathBuf,
        /// Role of the created accounts: user, merchant or admin.
        #[arg(long, default_value = "user", value_parser = parse_role)]
        role: corral_protocol::Role,
        /// The password the accounts share.
        #[arg(long, default_value = "loadtest-password")]
        password: String,
    },
}

fn parse_role(s: &str) -> Result<corral_protocol::Role, String> {
    corral_protocol::Role::parse(s).ok_or_else(|| format!("unknown role `{s}`"))
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

/// Large allocations (argon2's 19 MiB per password check) go straight to the kernel and back
/// when freed. glibc's default raises its mmap threshold after the first such free and then
/// keeps every later one in its arenas: each login left ~19 MiB resident, ten logins 200 MB.
fn return_large_allocations_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> anyhow::Result<()> {
    return_large_allocations_to_the_os();
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
            Command::Admin { command } => run_admin(settings, command).await,
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

async fn run_admin(settings: Settings, command: AdminCommand) -> anyhow::Result<()> {
    let AdminCommand::SeedUsers {
        count,
        prefix,
        out,
        role,
        password,
    } = command;
    let started = std::time::Instant::now();
    let db = Db::connect(&settings.database, &settings.server.data_dir)
        .await
        .context("connecting to the database")?;
    db.migrate().await.context("running migrations")?;
    let key = secret::load_or_generate(&settings.auth.jwt_secret, &settings.server.data_dir)
        .context("loading the token signing key")?;
    let keys = Arc::new(JwtKeys::new(
        &key,
        &settings.auth.issuer,
        settings.auth.token_ttl_secs,
    ));
    let request = SeedRequest {
        count,
        prefix,
        role,
        password,
    };
    let hasher = Hasher::new(&settings.auth).context("argon2 settings")?;
    let users = admin::seed_users(&db, &keys, &hasher, &request)
        .await
        .context("seeding users")?;
    let json = serde_json::to_vec(&users).context("encoding tokens")?;
    std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
    tracing::info!(
        count = users.len(),
        out = %out.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "seeded users"
    );
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
